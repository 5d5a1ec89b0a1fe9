//! The read stage (core/src/read) for Python's tests and tools: the merged, time-ordered
//! records of some inputs (`Reader`), one file's records (`CaptureReader`), the reorder
//! buffer alone (`TimeOrder`), the expansion of directories, and link type names.
//!
//! Conversion only: every decision is the stage's. Records cross as plain tuples and files
//! as the keyword arguments of pcapdns.stats.CaptureFile. An input that cannot be used
//! raises the pcapdns.errors class the analysis raises for it.

use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::read::capture::{open_capture, Capture};
use crate::read::reorder;
use crate::read::{self, linktypes, FileInfo};
use crate::types::Record;

use super::engine::input_error;

/// (time, frame, link type, interface, bytes): a record of the merged capture.
type Numbered<'py> = (f64, u64, u32, u32, Bound<'py, PyBytes>);

fn empty_record() -> Record {
    Record {
        frame: 0,
        time: 0.0,
        link_type: 0,
        iface: 0,
        data: Vec::new(),
    }
}

fn numbered<'py>(py: Python<'py>, r: &Record) -> Numbered<'py> {
    (
        r.time,
        r.frame,
        r.link_type,
        r.iface,
        PyBytes::new(py, &r.data),
    )
}

/// One file's description as the keyword arguments of pcapdns.stats.CaptureFile.
fn file_dict<'py>(py: Python<'py>, f: &FileInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &f.path)?;
    d.set_item("size", f.size)?;
    d.set_item("format", &f.format)?;
    d.set_item("gzip", f.gzip)?;
    d.set_item("link_types", &f.link_types)?;
    let names = PyDict::new(py);
    for (k, v) in &f.interface_names {
        names.set_item(k, v)?;
    }
    d.set_item("interface_names", names)?;
    d.set_item("packets", f.packets)?;
    d.set_item("first_time", f.first_time)?;
    d.set_item("last_time", f.last_time)?;
    d.set_item("truncated", f.truncated)?;
    d.set_item("warnings", &f.warnings)?;
    d.set_item("bytes_read", f.bytes_read)?;
    d.set_item("bad_timestamps", f.bad_timestamps)?;
    Ok(d)
}

/// The inputs of one analysis (files and directories), opened and ordered, iterated as
/// numbered records in time order: `(time, frame, link_type, iface, data)`.
///
/// Raises the pcapdns.errors InputError family when an input cannot be used, from the
/// constructor or, for a problem met once reading has begun, from the iteration.
#[pyclass(unsendable, module = "pcapdns._core")]
pub struct Reader {
    inner: read::Reader,
    record: Record,
}

#[pymethods]
impl Reader {
    #[new]
    fn new(py: Python<'_>, paths: Vec<String>, reorder_window: f64) -> PyResult<Reader> {
        let inner = read::open_inputs(&paths, reorder_window).map_err(|e| input_error(py, e))?;
        Ok(Reader {
            inner,
            record: empty_record(),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Numbered<'py>>> {
        if self.inner.next_record_into(&mut self.record) {
            return Ok(Some(numbered(py, &self.record)));
        }
        match self.inner.error() {
            Some(e) => Err(input_error(py, e.clone())),
            None => Ok(None),
        }
    }

    /// Each capture file as the keyword arguments of pcapdns.stats.CaptureFile, in merge
    /// order (by first packet time); final once the records are read.
    fn files<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for f in self.inner.files() {
            out.append(file_dict(py, f)?)?;
        }
        Ok(out)
    }

    /// Problems met while choosing files (a file given twice, non-capture files skipped in
    /// a directory) and, once the records are read, files far apart in time.
    #[getter]
    fn open_warnings(&self) -> Vec<String> {
        self.inner.open_warnings().to_vec()
    }

    /// What the reorder buffer says about records read too late to be put in place.
    #[getter]
    fn late_warning(&self) -> Option<String> {
        self.inner.late_warning()
    }

    /// Records read (the last frame number given).
    #[getter]
    fn records(&self) -> u64 {
        self.inner.records()
    }

    #[getter]
    fn late(&self) -> u64 {
        self.inner.late()
    }

    #[getter]
    fn released_early(&self) -> u64 {
        self.inner.released_early()
    }

    #[getter]
    fn newest(&self) -> f64 {
        self.inner.newest()
    }

    #[getter]
    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read()
    }

    #[getter]
    fn total_bytes(&self) -> u64 {
        self.inner.total_bytes()
    }
}

/// One capture file, iterated as records `(time, link_type, iface, data)` in the order
/// written. `info()` describes the file as read so far.
///
/// Raises InputError (cannot open or read), NotACaptureError, or UnsupportedLinkTypeError
/// (from the constructor for classic pcap; from the iteration when a pcapng interface block
/// declares one).
#[pyclass(unsendable, module = "pcapdns._core")]
pub struct CaptureReader {
    info: FileInfo,
    capture: Capture,
}

#[pymethods]
impl CaptureReader {
    #[new]
    fn new(py: Python<'_>, path: String) -> PyResult<CaptureReader> {
        let (info, capture) =
            open_capture(Path::new(&path), &path).map_err(|e| input_error(py, e))?;
        Ok(CaptureReader { info, capture })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[allow(clippy::type_complexity)]
    fn __next__<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<Option<(f64, u32, u32, Bound<'py, PyBytes>)>> {
        match self.capture.next(&mut self.info) {
            Ok(Some(raw)) => {
                let data = PyBytes::new(py, self.capture.data(&raw));
                Ok(Some((raw.time, raw.link_type, raw.iface, data)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(input_error(py, e)),
        }
    }

    /// The file as the keyword arguments of pcapdns.stats.CaptureFile.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        file_dict(py, &self.info)
    }
}

/// The reorder buffer alone: numbers the records pushed in the order pushed and passes
/// them on in (time, frame) order within `window` seconds, each as
/// `(time, frame, link_type, iface, data)`.
#[pyclass(unsendable, module = "pcapdns._core")]
pub struct TimeOrder {
    inner: reorder::TimeOrder,
    record: Record,
}

impl TimeOrder {
    fn drain<'py>(&mut self, py: Python<'py>, out: &Bound<'py, PyList>) -> PyResult<()> {
        while self.inner.pop(&mut self.record) {
            out.append(numbered(py, &self.record))?;
        }
        Ok(())
    }
}

#[pymethods]
impl TimeOrder {
    #[new]
    fn new(window: f64) -> TimeOrder {
        TimeOrder {
            inner: reorder::TimeOrder::new(window),
            record: empty_record(),
        }
    }

    /// Take the next record read; return the records this lets go (a late one first).
    fn push<'py>(
        &mut self,
        py: Python<'py>,
        time: f64,
        link_type: u32,
        iface: u32,
        data: &[u8],
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        if self
            .inner
            .push(time, link_type, iface, data, &mut self.record)
        {
            out.append(numbered(py, &self.record))?;
        }
        self.drain(py, &out)?;
        Ok(out)
    }

    /// The input has ended: return every record still held, in order.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.inner.finish();
        let out = PyList::empty(py);
        self.drain(py, &out)?;
        Ok(out)
    }

    /// What the late records mean for the analysis, or None when there were none.
    fn warning(&self) -> Option<String> {
        self.inner.warning()
    }

    #[getter]
    fn records(&self) -> u64 {
        self.inner.records
    }

    #[getter]
    fn late(&self) -> u64 {
        self.inner.late
    }

    #[getter]
    fn most_behind(&self) -> f64 {
        self.inner.most_behind
    }

    #[getter]
    fn released_early(&self) -> u64 {
        self.inner.released_early
    }

    #[getter]
    fn newest(&self) -> f64 {
        self.inner.newest
    }
}

/// Directories expanded into their files as the analysis reads them: (path, found in a
/// directory) pairs. Raises InputError for a missing path or a directory without files.
#[pyfunction]
fn expand_paths(py: Python<'_>, paths: Vec<String>) -> PyResult<Vec<(String, bool)>> {
    read::expand_paths(&paths).map_err(|e| input_error(py, e))
}

/// The LINKTYPE_ name of a link type, or its number when it has none.
#[pyfunction]
fn link_type_name(link_type: u32) -> String {
    linktypes::name(link_type).into_owned()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Reader>()?;
    m.add_class::<CaptureReader>()?;
    m.add_class::<TimeOrder>()?;
    m.add_function(wrap_pyfunction!(expand_paths, m)?)?;
    m.add_function(wrap_pyfunction!(link_type_name, m)?)?;
    m.add("MAX_HELD", reorder::MAX_HELD)?;
    m.add("MAX_HELD_BYTES", reorder::MAX_HELD_BYTES)?;
    // Record times are believed in this range (see core/src/read/mod.rs).
    m.add("MIN_TIME", read::MIN_TIME)?;
    m.add("MAX_TIME", read::MAX_TIME)?;
    Ok(())
}
