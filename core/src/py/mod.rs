//! The Python extension module `pcapdns._core`: the engine that runs the whole per-packet
//! path, and thin bindings of each stage (for the stage tests in tests/).
//!
//! Built only with the `python` feature (maturin turns it on); `cargo test` runs the
//! logic without an interpreter.

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
