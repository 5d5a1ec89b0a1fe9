//! The read stage's one entry point: paths in, numbered records in time order out.

use super::merge::{probe, Merge};
use super::reorder::TimeOrder;
use super::{FileInfo, InputError};
use crate::types::Record;

/// The inputs of one analysis, opened and ordered, streaming numbered records.
pub struct Reader {
    files: Vec<FileInfo>,
    warnings: Vec<String>,
    merge: Merge,
    order: TimeOrder,
    error: Option<InputError>,
    input_ended: bool,
    ended: bool,
}

/// Open the inputs of one analysis: expand directories, skip the files in them that are
/// not captures pcapdns reads (with a warning), order the files by their first packet time,
/// and get ready to merge them by time and put the records back in time order within
/// `reorder_window` seconds.
///
/// Errors: an input is missing or unusable (named explicitly and not a capture, or of an
/// unsupported link type), or there is no capture file at all.
pub fn open_inputs(paths: &[String], reorder_window: f64) -> Result<Reader, InputError> {
    let (files, warnings, merge) = probe(paths)?.into_parts();
    Ok(Reader {
        files,
        warnings,
        merge,
        order: TimeOrder::new(reorder_window),
        error: None,
        input_ended: false,
        ended: false,
    })
}

impl Reader {
    /// The next record in time order, numbered from 1 in the order read; None at the end,
    /// or when reading stopped on an error (see `error`).
    pub fn next_record(&mut self) -> Option<Record> {
        let mut out = Record {
            frame: 0,
            time: 0.0,
            link_type: 0,
            iface: 0,
            data: Vec::new(),
        };
        self.next_record_into(&mut out).then_some(out)
    }

    /// As `next_record`, into `out`, whose byte vector is reused (no allocation for a
    /// steady stream). False at the end.
    pub fn next_record_into(&mut self, out: &mut Record) -> bool {
        if self.ended {
            return false;
        }
        loop {
            if self.order.pop(out) {
                return true;
            }
            if self.input_ended {
                self.ended = true;
                return false;
            }
            match self.merge.next(&mut self.files, &mut self.warnings) {
                Ok(Some(m)) => {
                    let data = self.merge.data(&m);
                    let raw = m.raw;
                    if self
                        .order
                        .push(raw.time, raw.link_type, raw.iface, data, out)
                    {
                        return true;
                    }
                }
                Ok(None) => {
                    self.order.finish();
                    self.input_ended = true;
                }
                Err(e) => {
                    // The analysis stops here: the records still held are not passed on.
                    self.error = Some(e);
                    self.ended = true;
                    return false;
                }
            }
        }
    }

    /// Why reading stopped before the end of the input: a file that could not be read
    /// again, or a pcapng interface of an unsupported link type met after the file's
    /// first packet. The analysis must fail with this error.
    pub fn error(&self) -> Option<&InputError> {
        self.error.as_ref()
    }

    /// One entry per capture file, in merge order (by first packet time). Filled in as
    /// reading goes; final once `next_record` has returned None.
    pub fn files(&self) -> &[FileInfo] {
        &self.files
    }

    /// Problems met while choosing files (a file given twice, non-capture files skipped in
    /// a directory) and, once the input is read, files far apart in time.
    pub fn open_warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What the reorder stage says about records read too late to be put in place.
    pub fn late_warning(&self) -> Option<String> {
        self.order.warning()
    }

    /// The read stage's warnings in the analysis' order: `open_warnings`, each file's
    /// warnings, then `late_warning`. (The analysis puts the capture agent's metadata
    /// warnings between the files' and the late one.)
    pub fn warnings(&self) -> Vec<String> {
        let mut out = self.warnings.clone();
        for f in &self.files {
            out.extend(f.warnings.iter().cloned());
        }
        out.extend(self.late_warning());
        out
    }

    /// Records read, all files together (the last frame number given).
    pub fn records(&self) -> u64 {
        self.order.records
    }

    /// Records read too far out of time order to be put back in place.
    pub fn late(&self) -> u64 {
        self.order.late
    }

    /// Records passed on before their window was up because the buffer was full.
    pub fn released_early(&self) -> u64 {
        self.order.released_early
    }

    /// The largest gap, in seconds, between a late record and the newest before it.
    pub fn most_behind(&self) -> f64 {
        self.order.most_behind
    }

    /// Time of the newest record read (-inf before any).
    pub fn newest(&self) -> f64 {
        self.order.newest
    }

    /// Bytes of the input files consumed so far (compressed bytes for gzip).
    pub fn bytes_read(&self) -> u64 {
        self.files.iter().map(|f| f.bytes_read).sum()
    }

    /// Size of the input files on disk.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}
