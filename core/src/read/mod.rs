//! Stage 1: capture files -> numbered records in time order.
//!
//! ```text
//! paths -> files (merge: directories expanded, files ordered by first packet time)
//!       -> records of each file (capture: pcap / pcapng, plain or gzip)
//!       -> one stream merged by time (merge)
//!       -> numbered, put back in time order within a window (reorder)
//! ```
//!
//! This is the analysis' reader, record for record: the same files are chosen, the same
//! records survive a damaged file, with the same counts and the same warning and error
//! texts. Every file is read through a buffer of about 1 MiB, so memory stays flat however
//! long a ring of captures is.
//!
//! Nothing here trusts a length read from a file: every one is checked against the bytes
//! at hand before it is used, and a file that lies is read as far as it can be and then
//! described (`FileInfo::truncated`, `FileInfo::warnings`), never a panic.
//!
//! An input that cannot be used at all is an `InputError`: from `open_inputs` when it is
//! met while choosing and probing the files, or from `Reader::error` once `next_record`
//! has stopped (a pcapng interface of an unsupported link type declared after the file's
//! first packet, or a file that cannot be opened again). Either way the analysis fails
//! with its message.

use std::collections::BTreeMap;
use std::fmt;

pub mod capture;
mod gzip;
pub mod linktypes;
mod merge;
mod pyfmt;
mod reader;
pub mod reorder;
mod source;

pub use merge::FAR_APART;

/// Expand directories into their regular files, as the analysis reads them: (path as
/// shown in messages, found in a directory) pairs, a directory's files sorted by name,
/// hidden files and the capture agent's side files (capture.json, report.html, README,
/// README.md) left out. Python's `merge.expand_paths`, which also lists the inputs an
/// output file must not overwrite.
///
/// Errors: a path does not exist, or a directory holds no files.
pub fn expand_paths(paths: &[String]) -> Result<Vec<(String, bool)>, InputError> {
    Ok(merge::expand_paths(paths)?
        .into_iter()
        .map(|p| (p.shown, p.in_dir))
        .collect())
}
pub use reader::{open_inputs, Reader};
pub use reorder::{MAX_HELD, MAX_HELD_BYTES};

/// Record times are believed from 1970-01-01 up to (not including) 2200-01-01 UTC. A classic
/// pcap cannot leave this range (unsigned 32-bit seconds end in 2106), so only pcapng, whose
/// 64-bit tick count, resolution and offset can say anything, is checked.
pub const MIN_TIME: f64 = 0.0;
pub const MAX_TIME: f64 = 7_258_118_400.0;

/// What was learned about one input file while reading it (filled in as it goes).
#[derive(Clone, Debug, PartialEq)]
pub struct FileInfo {
    /// The path as the user gave it (or as a directory listing made it).
    pub path: String,
    /// Size of the file on disk in bytes (compressed size for gzip).
    pub size: u64,
    /// "pcap" or "pcapng".
    pub format: String,
    /// True when the file is gzip-compressed.
    pub gzip: bool,
    /// Link types seen, in the order their interfaces were declared.
    pub link_types: Vec<u32>,
    /// pcapng interface names by interface number in the file (counted across sections,
    /// as `link_types` is); empty for classic pcap.
    pub interface_names: BTreeMap<u32, String>,
    /// Records read.
    pub packets: u64,
    /// Time of the first and last record read.
    pub first_time: Option<f64>,
    pub last_time: Option<f64>,
    /// True when the file ended inside a record or block.
    pub truncated: bool,
    /// Human-readable problems met while reading (cut-off, skipped blocks).
    pub warnings: Vec<String>,
    /// Bytes of the file consumed so far (compressed bytes for gzip), for progress.
    pub bytes_read: u64,
    /// Records skipped because their time stamp is outside MIN_TIME .. MAX_TIME.
    pub bad_timestamps: u64,
}

impl FileInfo {
    fn new(path: String, size: u64) -> Self {
        FileInfo {
            path,
            size,
            format: String::new(),
            gzip: false,
            link_types: Vec::new(),
            interface_names: BTreeMap::new(),
            packets: 0,
            first_time: None,
            last_time: None,
            truncated: false,
            warnings: Vec::new(),
            bytes_read: 0,
            bad_timestamps: 0,
        }
    }
}

/// Which kind of unusable input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputErrorKind {
    /// The input cannot be analyzed (missing, unreadable, no capture files in it).
    Input,
    /// The file is neither pcap nor pcapng (nor a gzip of either).
    NotACapture,
    /// The capture's link type is not one pcapdns decodes.
    UnsupportedLinkType,
}

/// The input cannot be used at all. `message` is the one line the CLI prints:
/// `"<path>: <problem>"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    pub kind: InputErrorKind,
    pub message: String,
    /// The path as the user gave it, and what is wrong with it (`message` joins them).
    pub path: String,
    pub problem: String,
}

impl InputError {
    fn new(kind: InputErrorKind, path: &str, problem: &str) -> Self {
        InputError {
            kind,
            message: format!("{path}: {problem}"),
            path: path.to_string(),
            problem: problem.to_string(),
        }
    }
    fn input(path: &str, problem: &str) -> Self {
        Self::new(InputErrorKind::Input, path, problem)
    }
    fn not_a_capture(path: &str, problem: &str) -> Self {
        Self::new(InputErrorKind::NotACapture, path, problem)
    }
    fn unsupported(path: &str, problem: &str) -> Self {
        Self::new(InputErrorKind::UnsupportedLinkType, path, problem)
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InputError {}
