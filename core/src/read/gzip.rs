//! A gzip stream read the way the analysis has always read it, so that a damaged or cut-off
//! file yields exactly the same bytes.
//!
//! What survives damage depends on how the stream is cut into calls, so this follows the
//! reader pcapdns was written against (CPython's `gzip.GzipFile.read1`) step by step:
//!
//! * each call takes the next 8 KiB of compressed bytes and inflates them into at most
//!   `limit` bytes; a call that yields nothing takes the next 8 KiB, and so on;
//! * input the inflater did not take (the output was full, or the member ended) is read
//!   again by the next call;
//! * a call that meets damaged deflate data fails whole: what it inflated is lost, what
//!   earlier calls returned is kept (the caller stops there);
//! * at the end of a member its CRC-32 and length are checked, zero bytes after it are
//!   skipped, and another member may follow; anything else after it is damage;
//! * the stream ending before a member's end is damage, but only once the bytes it did
//!   hold have been returned.
//!
//! The inflater is zlib's (zlib-rs, a port of the zlib the reference reader uses), so
//! damaged data is detected at the same place.

use std::fs::File;
use std::io::Read;

use flate2::{Crc, Decompress, FlushDecompress, Status};

/// Compressed bytes handed to the inflater per step (Python's io.DEFAULT_BUFFER_SIZE).
const STEP: usize = 8192;
/// Compressed bytes read from the file at once (any size gives the same stream).
const FILE_READ: usize = 64 * 1024;

const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

/// The stream is damaged or cut off; nothing more can be read from it.
#[derive(Debug)]
pub struct Broken;

pub struct GzipReader {
    file: File,
    /// Compressed bytes read from the file; `pos` is the next one to use, `end` the end.
    cbuf: Vec<u8>,
    pos: usize,
    end: usize,
    /// File offset of `cbuf[0]`.
    base: u64,
    file_eof: bool,
    /// How far into the file the stream has looked (the reference reader's file position).
    furthest: u64,
    inflate: Decompress,
    new_member: bool,
    member_ended: bool,
    crc: Crc,
    member_size: u64,
}

impl GzipReader {
    pub fn new(file: File) -> Self {
        GzipReader {
            file,
            cbuf: Vec::new(),
            pos: 0,
            end: 0,
            base: 0,
            file_eof: false,
            furthest: 0,
            inflate: Decompress::new(false),
            new_member: true,
            member_ended: false,
            crc: Crc::new(),
            member_size: 0,
        }
    }

    /// Compressed bytes the stream has looked at.
    pub fn position(&self) -> u64 {
        self.furthest
    }

    /// One call: decompressed bytes into `out` (at most `out.len()`), 0 at the clean end.
    pub fn read_call(&mut self, out: &mut [u8]) -> Result<usize, Broken> {
        loop {
            if self.member_ended {
                self.read_trailer()?;
                self.new_member = true;
                self.member_ended = false;
                self.inflate.reset(false);
            }
            if self.new_member {
                self.crc = Crc::new();
                self.member_size = 0;
                if !self.read_header()? {
                    return Ok(0);
                }
                self.new_member = false;
            }
            let (start, stop) = self.window(STEP);
            let (consumed, produced) = self.inflate_step(start, stop, out)?;
            self.pos += consumed;
            if produced > 0 {
                self.crc.update(out.get(..produced).unwrap_or_default());
                self.member_size += produced as u64;
                return Ok(produced);
            }
            if start == stop {
                return Err(Broken); // ended before the end-of-stream marker
            }
        }
    }

    /// Inflate `cbuf[start..stop]` into `out` as one call of the reference reader does:
    /// until the input is used up, the output is full or the member ends. Returns (bytes
    /// consumed, bytes produced); damage loses the whole call.
    fn inflate_step(
        &mut self,
        start: usize,
        stop: usize,
        out: &mut [u8],
    ) -> Result<(usize, usize), Broken> {
        let in0 = self.inflate.total_in();
        let out0 = self.inflate.total_out();
        loop {
            let consumed = (self.inflate.total_in() - in0) as usize;
            let produced = (self.inflate.total_out() - out0) as usize;
            let input = self.cbuf.get(start + consumed..stop).ok_or(Broken)?;
            let output = out.get_mut(produced..).ok_or(Broken)?;
            let status = self
                .inflate
                .decompress(input, output, FlushDecompress::Sync)
                .map_err(|_| Broken)?;
            let consumed2 = (self.inflate.total_in() - in0) as usize;
            let produced2 = (self.inflate.total_out() - out0) as usize;
            if status == Status::StreamEnd {
                self.member_ended = true;
                return Ok((consumed2, produced2));
            }
            let progress = consumed2 != consumed || produced2 != produced;
            if !progress || produced2 == out.len() || start + consumed2 == stop {
                return Ok((consumed2, produced2));
            }
        }
    }

    /// The member's CRC-32 and length, then the zero padding gzip allows after it.
    fn read_trailer(&mut self) -> Result<(), Broken> {
        let [c0, c1, c2, c3, s0, s1, s2, s3] = self.read_array::<8>()?;
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        let isize = u32::from_le_bytes([s0, s1, s2, s3]);
        if crc != self.crc.sum() || isize != self.member_size as u32 {
            return Err(Broken);
        }
        loop {
            let (s, e) = self.window(1);
            if s == e {
                return Ok(());
            }
            if self.cbuf.get(s).copied() != Some(0) {
                return Ok(()); // the next member's first byte, left in place
            }
            self.pos += 1;
        }
    }

    /// A member header; false at the clean end of the file.
    fn read_header(&mut self) -> Result<bool, Broken> {
        let (s, e) = self.window(2);
        self.pos = e;
        if s == e {
            return Ok(false);
        }
        if self.cbuf.get(s..e) != Some(&[0x1f, 0x8b][..]) {
            return Err(Broken);
        }
        let [method, flags, ..] = self.read_array::<8>()?;
        if method != 8 {
            return Err(Broken);
        }
        if flags & FEXTRA != 0 {
            let n = u16::from_le_bytes(self.read_array::<2>()?) as usize;
            self.skip_exact(n)?;
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                // A zero-terminated string; the end of the file ends it too.
                loop {
                    let (s, e) = self.window(1);
                    self.pos = e;
                    if s == e || self.cbuf.get(s).copied() == Some(0) {
                        break;
                    }
                }
            }
        }
        if flags & FHCRC != 0 {
            self.skip_exact(2)?;
        }
        Ok(true)
    }

    /// Step over the next `n` bytes; Broken when the file ends first.
    fn skip_exact(&mut self, n: usize) -> Result<(), Broken> {
        let (s, e) = self.window(n);
        self.pos = e;
        if e - s < n {
            return Err(Broken);
        }
        Ok(())
    }

    /// The next `N` bytes, or Broken when the file ends first.
    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], Broken> {
        let (s, e) = self.window(N);
        self.pos = e;
        self.cbuf
            .get(s..e)
            .and_then(|b| <[u8; N]>::try_from(b).ok())
            .ok_or(Broken)
    }

    /// Make up to `n` bytes available at `pos` (fewer only at the end of the file); return
    /// their range in `cbuf`.
    fn window(&mut self, n: usize) -> (usize, usize) {
        if self.end - self.pos < n && !self.file_eof {
            if self.pos > 0 {
                self.cbuf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.base += self.pos as u64;
                self.pos = 0;
            }
            let want = n.max(FILE_READ);
            if self.cbuf.len() < want {
                self.cbuf.resize(want, 0);
            }
            while self.end < n {
                let room = self.cbuf.len();
                let Some(space) = self.cbuf.get_mut(self.end..room) else {
                    break;
                };
                match self.file.read(space) {
                    Ok(0) => {
                        self.file_eof = true;
                        break;
                    }
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.file_eof = true;
                        break;
                    }
                }
            }
        }
        let stop = self.end.min(self.pos + n);
        self.furthest = self.furthest.max(self.base + stop as u64);
        (self.pos, stop)
    }
}
