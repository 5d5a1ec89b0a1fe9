//! The Python extension module `pcapdns._core`: the engine that runs the whole per-packet
//! path, and the tallies' bucketing for callers that hold plain numbers.
//!
//! Built only with the `python` feature (maturin turns it on); `cargo test` runs the
//! logic without an interpreter.

use pyo3::prelude::*;

use crate::tally::{LatencyHistogram, Timeline};

mod convert;
mod engine;
mod facts;

/// (buckets as (bucket, count, sum), count, max) of a latency histogram of `seconds`.
#[pyfunction]
fn latency_histogram(seconds: Vec<f64>) -> (Vec<(i64, u64, f64)>, u64, f64) {
    let mut h = LatencyHistogram::new();
    for s in seconds {
        h.add(s);
    }
    (h.raw(), h.n, h.max)
}

/// (start, step, queries, failed, first, last) of a timeline of these query and failure
/// times.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn timeline_series(
    queries: Vec<f64>,
    failures: Vec<f64>,
    max_buckets: usize,
) -> PyResult<(f64, f64, Vec<u64>, Vec<u64>, Option<f64>, Option<f64>)> {
    let mut tl = Timeline::new(max_buckets).map_err(pyo3::exceptions::PyValueError::new_err)?;
    for t in queries {
        tl.add_query(t);
    }
    for t in failures {
        tl.add_failure(t);
    }
    let (start, step, q, f) = tl.series();
    Ok((start, step, q, f, tl.first, tl.last))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::Engine>()?;
    facts::register(m)?;
    m.add_function(wrap_pyfunction!(latency_histogram, m)?)?;
    m.add_function(wrap_pyfunction!(timeline_series, m)?)?;
    Ok(())
}
