//! Several files, or a directory, are one capture.
//!
//! A tcpdump ring (`-C`/`-W` names such as `dns.pcap0 .. dns.pcap9`, which wrap, or `-G`
//! strftime names) is ordered by each file's first packet time, not by name, and merged
//! into one time-ordered stream so that a query in one file and its response in the next
//! are one transaction.
//!
//! Each file is opened once to read its first record and closed again; during the merge a
//! file is opened only when the stream reaches its first packet's time, so a ring of
//! hundreds of files keeps open only the few whose time spans overlap.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::capture::{open_capture, strerror, Capture, Raw};
use super::{FileInfo, InputError, InputErrorKind};

/// Files whose time spans are further apart than this, and further apart than any one of
/// them spans, do not look like one capture (see `far_apart`).
pub const FAR_APART: f64 = 3600.0;

/// Files a capture directory holds that are not captures: the capture agent's metadata
/// and, with --analyze, its report; notes. Skipped without a warning.
const SIDE_FILES: [&str; 4] = ["capture.json", "report.html", "README", "README.md"];

/// One file to read: where it is, and how it is named in messages.
#[derive(Clone, Debug)]
pub struct InputPath {
    pub path: PathBuf,
    pub shown: String,
    /// Found by listing a directory (a file that is not a capture is then skipped).
    pub in_dir: bool,
}

/// Expand directories into their regular files (sorted by name, hidden and side files
/// left out).
///
/// Errors: a path does not exist, or a directory holds no files.
pub fn expand_paths(paths: &[String]) -> Result<Vec<InputPath>, InputError> {
    let mut out = Vec::new();
    for p in paths {
        let path = Path::new(p);
        if path.is_dir() {
            let entries = fs::read_dir(path).map_err(|e| {
                InputError::input(p, &format!("cannot list the directory: {}", strerror(&e)))
            })?;
            let mut names: Vec<OsString> = Vec::new();
            for entry in entries {
                let Ok(entry) = entry else { continue };
                let name = entry.file_name();
                let text = name.to_string_lossy();
                if text.starts_with('.') || SIDE_FILES.contains(&text.as_ref()) {
                    continue;
                }
                if path.join(&name).is_file() {
                    names.push(name);
                }
            }
            if names.is_empty() {
                return Err(InputError::input(p, "directory holds no capture files"));
            }
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let sep = if p.ends_with('/') { "" } else { "/" };
            for name in names {
                out.push(InputPath {
                    path: path.join(&name),
                    shown: format!("{p}{sep}{}", name.to_string_lossy()),
                    in_dir: true,
                });
            }
        } else if path.exists() {
            out.push(InputPath {
                path: path.to_path_buf(),
                shown: p.clone(),
                in_dir: false,
            });
        } else {
            return Err(InputError::input(p, "no such file or directory"));
        }
    }
    Ok(out)
}

/// A file whose records are due in the merge: its first record's time and its place in
/// the file list.
struct Pending {
    start: f64,
    slot: usize,
    input: InputPath,
}

/// The inputs, probed and ordered by first packet time, as the merge starts.
pub struct Probed {
    /// One entry per capture file, in merge order.
    pub files: Vec<FileInfo>,
    /// Problems met while choosing files (non-capture files skipped in a directory).
    pub warnings: Vec<String>,
    merge: Merge,
}

impl Probed {
    pub fn into_parts(self) -> (Vec<FileInfo>, Vec<String>, Merge) {
        (self.files, self.warnings, self.merge)
    }
}

/// Open every input once to learn its first packet time, and order them by it.
///
/// Errors: an input is missing or unusable; inside a directory, a file that is not a
/// capture or has an unsupported link type is skipped with a warning instead.
pub fn probe(paths: &[String]) -> Result<Probed, InputError> {
    let mut warnings = Vec::new();
    let mut probed: Vec<(f64, usize, InputPath, FileInfo)> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for (index, input) in expand_paths(paths)?.into_iter().enumerate() {
        let real = fs::canonicalize(&input.path).unwrap_or_else(|_| input.path.clone());
        if !seen.insert(real) {
            warnings.push(format!("{}: given more than once; read once", input.shown));
            continue;
        }
        // A pcapng declares its interfaces, and so their link types, before its first
        // packet: reading that packet finds an unsupported one.
        let first = open_capture(&input.path, &input.shown).and_then(|(mut info, mut cap)| {
            let first = cap.next(&mut info)?.map(|raw| raw.time);
            cap.close(&mut info);
            Ok((info, first))
        });
        let (mut info, first) = match first {
            Ok(found) => found,
            Err(e) if input.in_dir && e.kind != InputErrorKind::Input => {
                warnings.push(format!("{}; skipped", e.message));
                continue;
            }
            Err(e) => return Err(e),
        };
        info.packets = 0;
        info.bytes_read = 0;
        probed.push((first.unwrap_or(f64::INFINITY), index, input, info));
    }
    if probed.is_empty() {
        return Err(InputError::input(
            &paths.join(", "),
            "no capture files to read",
        ));
    }
    probed.sort_by(|a, b| py_cmp(a.0, b.0).then(a.1.cmp(&b.1)));
    let mut files = Vec::with_capacity(probed.len());
    let mut pending = Vec::new();
    for (slot, (start, _, input, info)) in probed.into_iter().enumerate() {
        files.push(info);
        if start != f64::INFINITY {
            pending.push(Pending { start, slot, input });
        }
    }
    Ok(Probed {
        files,
        warnings,
        merge: Merge::new(pending),
    })
}

/// Python's order of two floats inside a tuple: equal when `==`, so that the next item
/// decides (times are never NaN).
pub fn py_cmp(a: f64, b: f64) -> Ordering {
    if a < b {
        Ordering::Less
    } else if a > b {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// A file's next record waiting in the merge, ordered by (time, order of arrival).
struct Head {
    time: f64,
    order: u64,
    file: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    /// Reversed: BinaryHeap is a max-heap and the earliest record must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        py_cmp(other.time, self.time).then(other.order.cmp(&self.order))
    }
}

/// An open file of the merge and the record of it that is due.
struct Open {
    cap: Capture,
    slot: usize,
    raw: Raw,
}

/// One record of the merged stream; its bytes are `Merge::data(&record)`.
#[derive(Clone, Copy)]
pub struct Merged {
    pub raw: Raw,
    file: usize,
}

/// The files' records merged by time, each file opened when its time comes.
pub struct Merge {
    pending: Vec<Pending>,
    next_file: usize,
    open: Vec<Option<Open>>,
    heap: BinaryHeap<Head>,
    order: u64,
    /// The file whose record was handed out last: it moves on at the next call.
    last: Option<usize>,
    done: bool,
}

impl Merge {
    fn new(pending: Vec<Pending>) -> Self {
        let open = pending.iter().map(|_| None).collect();
        Merge {
            pending,
            next_file: 0,
            open,
            heap: BinaryHeap::new(),
            order: 0,
            last: None,
            done: false,
        }
    }

    /// The bytes of `m`, the record returned last.
    #[inline]
    pub fn data(&self, m: &Merged) -> &[u8] {
        match self.open.get(m.file) {
            Some(Some(o)) => o.cap.data(&m.raw),
            _ => &[],
        }
    }

    /// The next record in time order. `files[slot]` becomes the description of each file
    /// as it is actually read; `warnings` gets the far-apart warnings at the end.
    ///
    /// Errors: a file cannot be read again, or declares an unsupported link type after its
    /// first packet.
    pub fn next(
        &mut self,
        files: &mut [FileInfo],
        warnings: &mut Vec<String>,
    ) -> Result<Option<Merged>, InputError> {
        if self.done {
            return Ok(None);
        }
        let next = self.step(files, warnings);
        if next.is_err() {
            self.done = true;
        }
        next
    }

    fn step(
        &mut self,
        files: &mut [FileInfo],
        warnings: &mut Vec<String>,
    ) -> Result<Option<Merged>, InputError> {
        if let Some(f) = self.last.take() {
            if let Some(raw) = self.read(f, files)? {
                // The usual case, a file read in order: its next record comes before every
                // other file's and before any file still to be opened, so it would be
                // pushed and popped at once. Hand it out without the heap.
                let beats_heap = self.heap.peek().is_none_or(|h| raw.time < h.time);
                let file_due = self
                    .pending
                    .get(self.next_file)
                    .is_some_and(|p| p.start <= raw.time);
                if beats_heap && !file_due {
                    self.order += 1;
                    self.last = Some(f);
                    return Ok(Some(Merged { raw, file: f }));
                }
                self.push(f, raw);
            }
        }
        // Open every file whose first packet is due before the earliest record in hand.
        while let Some(p) = self
            .pending
            .get(self.next_file)
            .filter(|p| self.heap.peek().is_none_or(|h| p.start <= h.time))
        {
            let f = self.next_file;
            self.next_file += 1;
            let slot = p.slot;
            let (info, cap) = open_capture(&p.input.path, &p.input.shown)?;
            if let Some(info_slot) = files.get_mut(slot) {
                *info_slot = info;
            }
            if let Some(o) = self.open.get_mut(f) {
                *o = Some(Open {
                    cap,
                    slot,
                    raw: Raw::EMPTY,
                });
            }
            if let Some(raw) = self.read(f, files)? {
                self.push(f, raw);
            }
        }
        let Some(head) = self.heap.pop() else {
            // Only now are the files' last packet times known.
            warnings.extend(far_apart(files));
            self.done = true;
            return Ok(None);
        };
        self.last = Some(head.file);
        match self.open.get(head.file) {
            Some(Some(o)) => Ok(Some(Merged {
                raw: o.raw,
                file: head.file,
            })),
            _ => Ok(None),
        }
    }

    /// Queue file `f`'s record `raw` by its time and order of arrival.
    fn push(&mut self, f: usize, raw: Raw) {
        self.heap.push(Head {
            time: raw.time,
            order: self.order,
            file: f,
        });
        self.order += 1;
    }

    /// File `f`'s next record (kept as the file's due record); None and the file closed
    /// at its end.
    fn read(&mut self, f: usize, files: &mut [FileInfo]) -> Result<Option<Raw>, InputError> {
        let Some(entry) = self.open.get_mut(f) else {
            return Ok(None);
        };
        let Some(o) = entry else { return Ok(None) };
        let Some(info) = files.get_mut(o.slot) else {
            return Ok(None);
        };
        let next = o.cap.next(info);
        match next {
            Ok(Some(raw)) => o.raw = raw,
            // At its end (or on an error) the file is closed.
            _ => *entry = None,
        }
        next
    }
}

/// A warning for each gap in time that splits the files into parts that do not look like
/// one capture: more than FAR_APART seconds without any file's packets, and longer than
/// any single file spans.
///
/// The files of one ring follow each other, so a gap between two of them is a pause
/// between packets, no longer than pauses inside a file. Samples taken on different days
/// are separated by far more than any of them lasts: they are still merged (the user
/// named them together), but a query in one can never meet a response in the other.
pub fn far_apart(files: &[FileInfo]) -> Vec<String> {
    let mut spans: Vec<(f64, f64, &str)> = files
        .iter()
        .filter_map(|f| Some((f.first_time?, f.last_time?, f.path.as_str())))
        .collect();
    if spans.len() < 2 {
        return Vec::new();
    }
    spans.sort_by(|a, b| py_cmp(a.0, b.0).then(py_cmp(a.1, b.1)).then(a.2.cmp(b.2)));
    let longest = spans
        .iter()
        .map(|s| s.1 - s.0)
        .fold(f64::NEG_INFINITY, py_max);
    let mut out = Vec::new();
    let Some((&(_, first_end, first_path), rest)) = spans.split_first() else {
        return Vec::new();
    };
    let (mut end, mut ended) = (first_end, first_path);
    for &(first, last, path) in rest {
        let gap = first - end;
        if gap > FAR_APART && gap > longest {
            out.push(format!(
                "{path} starts {} after {ended} ends, a gap longer than any input file lasts: \
                 merged as one capture, though they do not look like one",
                duration(gap)
            ));
        }
        if last >= end {
            end = last;
            ended = path;
        }
    }
    out
}

/// Python's `max()` of two floats: the first unless the second is larger.
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

fn duration(seconds: f64) -> String {
    let hours = seconds / 3600.0;
    if hours < 48.0 {
        format!("{hours:.1} hours")
    } else {
        format!("{:.1} days", hours / 24.0)
    }
}
