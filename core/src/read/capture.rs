//! Read one capture file: pcap or pcapng, plain or gzip-compressed.
//!
//! The format is told by magic bytes, never by the file name. A record is handed out as a
//! `Raw`: its time, link type, interface and where its bytes lie in the file's buffer
//! (valid until the next call), so reading costs no allocation.
//!
//! A file that ends in the middle of a record (tcpdump killed, disk full, a ring file copied
//! while it was written) is read up to its last whole record; `FileInfo::truncated` then
//! says so and `warnings` says where.
//!
//! A pcapng record whose time stamp lies outside `MIN_TIME .. MAX_TIME` is skipped and
//! counted in `FileInfo::bad_timestamps`: a time before 1970 or from 2200 on comes from a
//! damaged block or a wrong `if_tsresol`/`if_tsoffset`, not from a clock, and believing it
//! would stretch the capture over centuries.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::source::Source;
use super::{linktypes, pyfmt, FileInfo, InputError, MAX_TIME, MIN_TIME};

/// A record larger than this is not a packet but a corrupt length field.
pub const MAX_RECORD: usize = 1 << 18;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const PCAPNG_SHB: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const BOM_LITTLE: [u8; 4] = [0x4d, 0x3c, 0x2b, 0x1a];
const BOM_BIG: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];

// pcapng block types (draft-ietf-opsawg-pcapng)
const IDB: u32 = 1;
/// Obsolete Packet Block.
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;

// pcapng interface options
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// One record: where its bytes lie in the reader's buffer, valid until its next call.
#[derive(Clone, Copy, Debug)]
pub struct Raw {
    pub time: f64,
    pub link_type: u32,
    pub iface: u32,
    start: usize,
    len: usize,
}

impl Raw {
    pub const EMPTY: Raw = Raw {
        time: 0.0,
        link_type: 0,
        iface: 0,
        start: 0,
        len: 0,
    };
}

/// A pcapng interface of the current section.
#[derive(Clone, Copy)]
struct Iface {
    link_type: u32,
    /// Seconds per tick.
    tick: f64,
    /// Seconds added to every time stamp.
    offset: f64,
}

enum Form {
    Pcap {
        unit: f64,
        link_type: u32,
    },
    Pcapng {
        interfaces: Vec<Iface>,
        last_ts: f64,
    },
}

/// An open capture file, read record by record.
pub struct Capture {
    src: Source,
    big_endian: bool,
    form: Form,
    packets: u64,
    /// (record number in the file, time) of the first record with a bad time stamp.
    first_bad: Option<(u64, f64)>,
    /// The file was read to its end, or stopped: `FileInfo` holds its final counts.
    done: bool,
}

/// Open `path` (shown as `shown` in messages) and return its description and a reader.
///
/// Errors: `Input` when the file cannot be opened or read, `NotACapture` when the magic
/// bytes are not pcap, pcapng or gzip of either, `UnsupportedLinkType` for a classic pcap
/// with a link type pcapdns does not decode (for pcapng, raised by `Capture::next` when the
/// interface block is reached).
pub fn open_capture(path: &Path, shown: &str) -> Result<(FileInfo, Capture), InputError> {
    let (mut file, size, block_size) = open_file(path, shown)?;
    let mut info = FileInfo::new(shown.to_string(), size);
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match file.read(head.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(InputError::input(
                    shown,
                    &format!("cannot read: {}", strerror(&e)),
                ))
            }
        }
    }
    if let Err(e) = file.seek(SeekFrom::Start(0)) {
        return Err(InputError::input(
            shown,
            &format!("cannot read: {}", strerror(&e)),
        ));
    }
    let compressed = got >= 2 && head.starts_with(&GZIP_MAGIC);
    info.gzip = compressed;
    let mut src = if compressed {
        Source::gzip(file)
    } else {
        Source::plain(file, block_size)
    };
    src.fill(24);
    let n = src.avail().min(4);
    let magic: Vec<u8> = src
        .buf
        .get(src.start..src.start + n)
        .unwrap_or(&[])
        .to_vec();
    let pcap = match magic.as_slice() {
        [0xd4, 0xc3, 0xb2, 0xa1] => Some((false, 1e-6)),
        [0xa1, 0xb2, 0xc3, 0xd4] => Some((true, 1e-6)),
        [0x4d, 0x3c, 0xb2, 0xa1] => Some((false, 1e-9)),
        [0xa1, 0xb2, 0x3c, 0x4d] => Some((true, 1e-9)),
        _ => None,
    };
    if let Some((big_endian, unit)) = pcap {
        info.format = "pcap".into();
        if src.avail() < 24 {
            return Err(InputError::not_a_capture(
                shown,
                "pcap file shorter than its 24-byte header",
            ));
        }
        // The upper bits of the link field may carry FCS information (pcap-savefile(5)).
        let link_type = read_u32(&src.buf, src.start + 20, big_endian) & 0x0FFF_FFFF;
        if !linktypes::is_supported(link_type) {
            return Err(InputError::unsupported(
                shown,
                &linktypes::unsupported(link_type),
            ));
        }
        info.link_types.push(link_type);
        src.start += 24;
        let form = Form::Pcap { unit, link_type };
        return Ok((info, Capture::new(src, big_endian, form)));
    }
    if magic == PCAPNG_SHB {
        info.format = "pcapng".into();
        let form = Form::Pcapng {
            interfaces: Vec::new(),
            last_ts: 0.0,
        };
        return Ok((info, Capture::new(src, false, form)));
    }
    let problem = if src.broken && magic.len() < 4 {
        "gzip file cut off before the capture's first bytes".to_string()
    } else if magic.is_empty() {
        let what = if compressed {
            "gzip file with no data in it"
        } else {
            "empty file"
        };
        format!("{what}, not a capture")
    } else {
        let what = if compressed {
            "gzip file that holds no pcap or pcapng"
        } else {
            "not a pcap or pcapng file"
        };
        let hex: String = magic.iter().map(|b| format!("{b:02x}")).collect();
        format!("{what} (starts with {hex})")
    };
    Err(InputError::not_a_capture(shown, &problem))
}

fn open_file(path: &Path, shown: &str) -> Result<(File, u64, usize), InputError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => InputError::input(shown, "no such file"),
        ErrorKind::IsADirectory => InputError::input(shown, "is a directory"),
        _ => InputError::input(shown, &format!("cannot open: {}", strerror(&e))),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| InputError::input(shown, &format!("cannot open: {}", strerror(&e))))?;
    if meta.is_dir() {
        return Err(InputError::input(shown, "is a directory"));
    }
    // A file is first read in one block of its file system's size, as buffered readers do.
    let block = if meta.blksize() > 1 {
        meta.blksize() as usize
    } else {
        8192
    };
    Ok((file, meta.len(), block))
}

/// The C library's text for an error ("Permission denied"), without Rust's
/// " (os error N)".
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if e.raw_os_error().is_some() => text.get(..i).unwrap_or(&text).to_string(),
        _ => text,
    }
}

#[inline]
fn read_u32(buf: &[u8], at: usize, big_endian: bool) -> u32 {
    match buf.get(at..at + 4) {
        Some(&[a, b, c, d]) => {
            if big_endian {
                u32::from_be_bytes([a, b, c, d])
            } else {
                u32::from_le_bytes([a, b, c, d])
            }
        }
        _ => 0,
    }
}

#[inline]
fn read_u16(buf: &[u8], at: usize, big_endian: bool) -> u16 {
    match buf.get(at..at + 2) {
        Some(&[a, b]) => {
            if big_endian {
                u16::from_be_bytes([a, b])
            } else {
                u16::from_le_bytes([a, b])
            }
        }
        _ => 0,
    }
}

fn cut_off(info: &mut FileInfo, packets: u64, place: &str) {
    info.truncated = true;
    info.warnings.push(format!(
        "{}: cut off inside a {place} after {packets} whole records; read up to the last whole \
         record",
        info.path
    ));
}

/// How one step of the walk ended.
enum Step {
    Record(Raw),
    /// The end of the file, or a place past which nothing can be read.
    End,
}

impl Capture {
    fn new(src: Source, big_endian: bool, form: Form) -> Self {
        Capture {
            src,
            big_endian,
            form,
            packets: 0,
            first_bad: None,
            done: false,
        }
    }

    /// The bytes of `raw`, the record this reader returned last.
    #[inline]
    pub fn data(&self, raw: &Raw) -> &[u8] {
        self.src
            .buf
            .get(raw.start..raw.start + raw.len)
            .unwrap_or(&[])
    }

    /// The next record, or None at the end of the file (or where it stops being readable).
    /// `info` is this file's description, updated as the file is read.
    ///
    /// Errors: `UnsupportedLinkType` when a pcapng interface block declares a link type
    /// pcapdns does not decode.
    pub fn next(&mut self, info: &mut FileInfo) -> Result<Option<Raw>, InputError> {
        if self.done {
            return Ok(None);
        }
        let step = match self.form {
            Form::Pcap { unit, link_type } => Ok(self.pcap_step(info, unit, link_type)),
            Form::Pcapng { .. } => self.pcapng_step(info),
        };
        match step {
            Ok(Step::Record(raw)) => {
                self.packets += 1;
                if let Form::Pcapng { last_ts, .. } = &mut self.form {
                    *last_ts = raw.time;
                }
                if self.packets == 1 {
                    info.first_time = Some(raw.time);
                }
                info.last_time = Some(raw.time);
                if self.packets & 0xFFF == 0 {
                    info.packets = self.packets;
                    info.bytes_read = self.src.disk_position();
                }
                Ok(Some(raw))
            }
            Ok(Step::End) => {
                // A gzip stream that broke off exactly at a record boundary still lost data.
                if self.src.broken && !info.truncated {
                    cut_off(info, self.packets, "gzip stream");
                }
                self.finish(info);
                Ok(None)
            }
            Err(e) => {
                self.finish(info);
                Err(e)
            }
        }
    }

    /// Stop reading before the end: the counts so far become the file's.
    pub fn close(&mut self, info: &mut FileInfo) {
        self.finish(info);
    }

    fn finish(&mut self, info: &mut FileInfo) {
        if self.done {
            return;
        }
        self.done = true;
        info.packets = self.packets;
        info.bytes_read = info.size;
        if let Some((record, ts)) = self.first_bad {
            let n = info.bad_timestamps;
            info.warnings.push(format!(
                "{}: {n} record{} with a time stamp outside 1970..2200 skipped (the first is \
                 record {record}, at {} s since 1970)",
                info.path,
                if n > 1 { "s" } else { "" },
                pyfmt::g6(ts)
            ));
        }
    }

    #[inline]
    fn pcap_step(&mut self, info: &mut FileInfo, unit: f64, link_type: u32) -> Step {
        let big = self.big_endian;
        let src = &mut self.src;
        if src.avail() < 16 && !src.fill(16) {
            if src.avail() > 0 {
                cut_off(info, self.packets, "record header");
            }
            return Step::End;
        }
        let p = src.start;
        let sec = read_u32(&src.buf, p, big);
        let frac = read_u32(&src.buf, p + 4, big);
        let caplen = read_u32(&src.buf, p + 8, big) as usize;
        if caplen > MAX_RECORD {
            info.truncated = true;
            info.warnings.push(format!(
                "{}: record {} claims {caplen} bytes; the rest of the file is unreadable and was \
                 skipped",
                info.path,
                self.packets + 1
            ));
            return Step::End;
        }
        if src.avail() < 16 + caplen && !src.fill(16 + caplen) {
            cut_off(info, self.packets, "packet");
            return Step::End;
        }
        let p = src.start;
        src.start = p + 16 + caplen;
        let time = sec as f64 + frac as f64 * unit;
        Step::Record(Raw {
            time,
            link_type,
            iface: 0,
            start: p + 16,
            len: caplen,
        })
    }

    fn pcapng_step(&mut self, info: &mut FileInfo) -> Result<Step, InputError> {
        loop {
            let src = &mut self.src;
            if !src.fill(12) {
                if src.avail() > 0 {
                    cut_off(info, self.packets, "block header");
                }
                return Ok(Step::End);
            }
            let p = src.start;
            if src.buf.get(p..p + 4) == Some(&PCAPNG_SHB[..]) {
                match src.buf.get(p + 8..p + 12) {
                    Some(b) if b == BOM_LITTLE => self.big_endian = false,
                    Some(b) if b == BOM_BIG => self.big_endian = true,
                    _ => {
                        info.truncated = true;
                        info.warnings.push(format!(
                            "{}: bad pcapng byte-order magic; stopped",
                            info.path
                        ));
                        return Ok(Step::End);
                    }
                }
                if let Form::Pcapng { interfaces, .. } = &mut self.form {
                    interfaces.clear();
                }
            }
            let big = self.big_endian;
            let btype = read_u32(&src.buf, p, big);
            let blen = read_u32(&src.buf, p + 4, big) as usize;
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD + 64 {
                info.truncated = true;
                info.warnings.push(format!(
                    "{}: pcapng block of type {btype} has impossible length {blen} after {} \
                     records; the rest of the file was skipped",
                    info.path, self.packets
                ));
                return Ok(Step::End);
            }
            if !src.fill(blen) {
                cut_off(info, self.packets, "pcapng block");
                return Ok(Step::End);
            }
            let p = src.start;
            let body = p + 8;
            src.start = p + blen;
            let Form::Pcapng {
                interfaces,
                last_ts,
            } = &mut self.form
            else {
                return Ok(Step::End);
            };
            let buf = &src.buf;
            let (time, link_type, iface, start, len) = match btype {
                EPB => {
                    let iface = read_u32(buf, body, big);
                    let caplen = read_u32(buf, body + 12, big) as usize;
                    // A block too short for its fields is skipped like one that lies.
                    let known = interfaces.get(iface as usize).copied();
                    let Some(i) = known.filter(|_| blen >= 32 && caplen <= blen - 32) else {
                        info.warnings.push(format!(
                            "{}: packet block with unknown interface or bad length skipped",
                            info.path
                        ));
                        continue;
                    };
                    let ticks = (read_u32(buf, body + 4, big) as u64) << 32
                        | read_u32(buf, body + 8, big) as u64;
                    (
                        ticks as f64 * i.tick + i.offset,
                        i.link_type,
                        iface,
                        body + 20,
                        caplen,
                    )
                }
                SPB => {
                    let Some(first) = interfaces.first() else {
                        continue;
                    };
                    // A simple packet block has no time stamp and may hold less than the
                    // packet's length.
                    let wirelen = read_u32(buf, body, big) as usize;
                    let len = wirelen.min(blen.saturating_sub(16));
                    (*last_ts, first.link_type, 0, body + 4, len)
                }
                PB => {
                    let iface = read_u16(buf, body, big) as u32;
                    let caplen = read_u32(buf, body + 12, big) as usize;
                    let known = interfaces.get(iface as usize).copied();
                    let Some(i) = known.filter(|_| blen >= 32 && caplen <= blen - 32) else {
                        continue;
                    };
                    let ticks = (read_u32(buf, body + 4, big) as u64) << 32
                        | read_u32(buf, body + 8, big) as u64;
                    (
                        ticks as f64 * i.tick + i.offset,
                        i.link_type,
                        iface,
                        body + 20,
                        caplen,
                    )
                }
                IDB => {
                    match read_idb(info, buf, src.end, p, blen, big)? {
                        Some(i) => interfaces.push(i),
                        None => {
                            cut_off(info, self.packets, "pcapng block");
                            return Ok(Step::End);
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            if !(MIN_TIME..MAX_TIME).contains(&time) {
                info.bad_timestamps += 1;
                if self.first_bad.is_none() {
                    self.first_bad = Some((self.packets + info.bad_timestamps, time));
                }
                continue;
            }
            return Ok(Step::Record(Raw {
                time,
                link_type,
                iface,
                start,
                len,
            }));
        }
    }
}

/// Decode the Interface Description Block at `p` (`blen` bytes; the buffer holds bytes up to
/// `end`); None when its fields run past everything at hand.
///
/// Fields and options are read as the analysis always read them: an option whose length
/// runs past the block takes what follows it in the buffer.
///
/// Errors: `UnsupportedLinkType` when the interface's link type is not decoded by pcapdns.
fn read_idb(
    info: &mut FileInfo,
    buf: &[u8],
    end: usize,
    p: usize,
    blen: usize,
    big: bool,
) -> Result<Option<Iface>, InputError> {
    let body = p + 8;
    if body + 8 > end {
        return Ok(None);
    }
    let link_type = read_u16(buf, body, big) as u32;
    if !linktypes::is_supported(link_type) {
        let problem = format!(
            "interface {} has {}",
            info.link_types.len(),
            linktypes::unsupported(link_type)
        );
        return Err(InputError::unsupported(&info.path, &problem));
    }
    let mut tick = 1e-6;
    let mut offset = 0i64;
    let options_end = p + blen - 4;
    let mut opt = body + 8;
    while opt + 4 <= options_end {
        let code = read_u16(buf, opt, big);
        let olen = read_u16(buf, opt + 2, big) as usize;
        if code == 0 {
            break;
        }
        let value = buf.get(opt + 4..(opt + 4 + olen).min(end)).unwrap_or(&[]);
        if code == IF_TSRESOL && olen >= 1 {
            let v = value.first().copied().unwrap_or(0);
            tick = if v & 0x80 != 0 {
                power(2.0, v & 0x7F)
            } else {
                power(10.0, v)
            };
        } else if code == IF_TSOFFSET && olen == 8 {
            // (Fewer than 8 bytes at hand: the option is ignored.)
            if let Ok(b) = <[u8; 8]>::try_from(value) {
                offset = if big {
                    i64::from_be_bytes(b)
                } else {
                    i64::from_le_bytes(b)
                };
            }
        } else if code == IF_NAME {
            let name = String::from_utf8_lossy(value).into_owned();
            info.interface_names
                .insert(info.link_types.len() as u32, name);
        }
        opt += 4 + olen + (4 - olen % 4) % 4;
    }
    info.link_types.push(link_type);
    Ok(Some(Iface {
        link_type,
        tick,
        offset: offset as f64,
    }))
}

/// `base ** -exponent` as the C library's pow computes it (kept from being rewritten into
/// another function, which could round differently).
fn power(base: f64, exponent: u8) -> f64 {
    std::hint::black_box(base).powf(-(exponent as f64))
}
