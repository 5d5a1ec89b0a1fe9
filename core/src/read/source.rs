//! A capture file's bytes through one sliding buffer.
//!
//! The buffer grows by chunks only when a record needs more than it holds, and the
//! chunks are the ones the analysis has always read (the first block-size read of a plain
//! file, then 1 MiB reads; one decompression call for gzip). That matters only for
//! damaged pcapng blocks whose fields run past their block: what they then read is what
//! the buffer holds, as before.

use std::fs::File;
use std::io::Read;

use super::gzip::GzipReader;

/// Bytes asked of the file at once (and the most one gzip call yields).
pub const CHUNK: usize = 1 << 20;

enum Inner {
    /// A plain file; `first` is the size of the first read (the file's block size).
    Plain {
        file: File,
        first: Option<usize>,
        position: u64,
    },
    Gzip(Box<GzipReader>),
}

pub struct Source {
    inner: Inner,
    /// The bytes at hand are `buf[start..end]`.
    pub buf: Vec<u8>,
    pub start: usize,
    pub end: usize,
    eof: bool,
    /// True when the gzip stream ended before its end marker or was damaged.
    pub broken: bool,
}

impl Source {
    pub fn plain(file: File, block_size: usize) -> Self {
        Self::with(Inner::Plain {
            file,
            first: Some(block_size.max(1)),
            position: 0,
        })
    }

    pub fn gzip(file: File) -> Self {
        Self::with(Inner::Gzip(Box::new(GzipReader::new(file))))
    }

    fn with(inner: Inner) -> Self {
        Source {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            broken: false,
        }
    }

    /// Bytes at hand.
    #[inline]
    pub fn avail(&self) -> usize {
        self.end - self.start
    }

    /// Make `need` bytes available at `start`; false when the file ends first (what it
    /// had is still at hand).
    #[inline]
    pub fn fill(&mut self, need: usize) -> bool {
        while self.avail() < need {
            if self.eof {
                return false;
            }
            if self.read_chunk() == 0 {
                self.eof = true;
                return self.avail() >= need;
            }
        }
        true
    }

    /// Append one chunk after what is at hand (moved to the front first); its size.
    fn read_chunk(&mut self) -> usize {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let want = match &mut self.inner {
            Inner::Plain { first, .. } => first.take().unwrap_or(CHUNK),
            Inner::Gzip(_) => CHUNK,
        };
        if self.buf.len() < self.end + want {
            self.buf.resize(self.end + want, 0);
        }
        let room = self.end + want;
        let got = match &mut self.inner {
            Inner::Plain { file, position, .. } => {
                let mut got = 0;
                while self.end + got < room {
                    let Some(space) = self.buf.get_mut(self.end + got..room) else {
                        break;
                    };
                    match file.read(space) {
                        Ok(0) => break,
                        Ok(k) => got += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            self.broken = true;
                            break;
                        }
                    }
                }
                *position += got as u64;
                got
            }
            Inner::Gzip(g) => match self.buf.get_mut(self.end..room).map(|b| g.read_call(b)) {
                Some(Ok(n)) => n,
                _ => {
                    self.broken = true;
                    0
                }
            },
        };
        self.end += got;
        got
    }

    /// Bytes of the file on disk consumed so far (compressed bytes for gzip).
    pub fn disk_position(&self) -> u64 {
        match &self.inner {
            Inner::Plain { position, .. } => *position,
            Inner::Gzip(g) => g.position(),
        }
    }
}
