//! The Python extension module `pcapdns._core`: the engine that runs the whole per-packet
//! path, and the tallies' bucketing for callers that hold plain numbers.
//!
//! Built only with the `python` feature (maturin turns it on); `cargo test` runs the
//! logic without an interpreter.

use pyo3::prelude::*;

use crate::tally::{LatencyHistogram, Timeline};

mod convert;
mod decode;
mod dns;
mod engine;
mod facts;
mod matcher;
mod policy;
mod rdata;
mod read;

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

/// Panic with `message`: the tests prove that a panic in the core reaches Python as an
/// exception (pyo3's PanicException) and the command line as one line, never an abort.
#[pyfunction]
fn panic_for_test(message: &str) {
    panic!("{message}");
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::Engine>()?;
    m.add_function(wrap_pyfunction!(dns::parse, m)?)?;
    m.add_class::<matcher::Deduplicator>()?;
    m.add_class::<matcher::Matcher>()?;
    facts::register(m)?;
    m.add_function(wrap_pyfunction!(latency_histogram, m)?)?;
    m.add_function(wrap_pyfunction!(panic_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(timeline_series, m)?)?;
    read::register(m)?;
    decode::register(m)?;
    rdata::register(m)?;
    Ok(())
}
