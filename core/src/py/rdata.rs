//! `pcapdns._core.answer_section`: a response's answer records (core/src/dns/records.rs)
//! for the JSON document's transactions, which show them only when the user asks.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::dns::records;

/// The decoded answer section of one response.
///
/// `records`: zone-file-like lines, `name TTL TYPE data`, in wire order, at most
/// MAX_ANSWER_RECORDS; a record whose rdata does not decode is kept as
/// `name TTL TYPE \# len hex ; malformed: reason`. `error`: the first problem met in the
/// section (a malformed record, or the damage that stopped the walk before the announced
/// count), prefixed with the record's position; None when every record read decoded.
#[pyclass(frozen, eq, module = "pcapdns._core")]
#[derive(PartialEq)]
pub struct AnswerSection {
    inner: records::AnswerSection,
}

#[pymethods]
impl AnswerSection {
    #[new]
    fn new(records: Vec<String>, error: Option<String>) -> Self {
        AnswerSection {
            inner: records::AnswerSection { records, error },
        }
    }

    #[getter]
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.inner.records)
    }

    #[getter]
    fn error(&self) -> Option<&str> {
        self.inner.error.as_deref()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let records = self.records(py)?.repr()?;
        let error = self.error().into_pyobject(py)?.repr()?;
        Ok(format!("AnswerSection(records={records}, error={error})"))
    }
}

/// Decode the answer section of the DNS message `data`. Never raises: damage ends the list
/// early and is described in `error`.
#[pyfunction]
fn answer_section(data: &[u8]) -> AnswerSection {
    AnswerSection {
        inner: records::answer_section(data),
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AnswerSection>()?;
    m.add_function(wrap_pyfunction!(answer_section, m)?)?;
    m.add("MAX_ANSWER_RECORDS", records::MAX_RECORDS)?;
    Ok(())
}
