//! IPv4 and IPv6 fragment reassembly.
//!
//! Large EDNS answers (a 4096-byte buffer) leave the server as IP fragments; only the first
//! fragment carries the UDP header, so DNS cannot be seen until the datagram is whole again.
//! State is bounded in count (`MAX_DATAGRAMS`), in time (`MAX_AGE` seconds, RFC 791's
//! reassembly timer is of the same order) and in bytes (`max_bytes`, from
//! `Config::max_fragment_buffer_bytes`, all datagrams together: four IP IDs of 8,000
//! overlapping 16 kB pieces each are only 32,000 fragments, but half a gigabyte). What
//! expires or is evicted is counted, not decoded.
//!
//! Each fragment costs O(log n) in the fragments of its datagram, whatever their order: the
//! datagram keeps how far from offset 0 its pieces reach without a hole, and the pieces
//! beyond a hole in a heap. Linux sends the last fragment first, so the datagram's length
//! is known from the start and every piece asks whether it is now whole.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::IpAddr;

use super::ordered::OrderedMap;
use crate::types::Time;

pub const MAX_DATAGRAMS: usize = 4096;
pub const MAX_AGE: f64 = 30.0;
pub const MAX_SIZE: usize = 65535;
/// Default of `max_bytes`.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;
/// What a piece costs besides its bytes, so that 8,000 pieces of 8 bytes count for what
/// they take. The same figure as the Python analysis used, so that evictions agree.
pub const PIECE_OVERHEAD: usize = 160;

/// (source, destination, IP ID, protocol, capture interface). The interface is part of the
/// key because `tcpdump -i any` records each fragment on several interfaces in turn: mixed
/// together, the first copy completes and the later copies of the last fragment are left
/// over as datagrams that never complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ident: u32,
    pub proto: u8,
    pub iface: u32,
}

#[derive(Debug)]
struct Partial {
    first_time: Time,
    /// Fragment data by byte offset in the datagram's payload. Of two pieces at one offset
    /// the longer is kept (a copy of the same fragment is the same length).
    pieces: BTreeMap<usize, Vec<u8>>,
    /// Payload length, known once the last fragment (MF=0) arrived.
    total: Option<usize>,
    /// The pieces cover the payload from offset 0 up to here without a hole.
    covered: usize,
    /// (offset, end) of pieces beyond `covered`, smallest offset first.
    beyond: BinaryHeap<Reverse<(usize, usize)>>,
    /// Bytes counted against the budget (piece bytes plus PIECE_OVERHEAD each).
    held: usize,
}

impl Partial {
    fn new(first_time: Time) -> Self {
        Partial {
            first_time,
            pieces: BTreeMap::new(),
            total: None,
            covered: 0,
            beyond: BinaryHeap::new(),
            held: 0,
        }
    }

    /// A piece reaching `end` starts inside the covered prefix: take in the pieces beyond
    /// it that the prefix now reaches.
    fn extend(&mut self, end: usize) {
        let mut covered = self.covered.max(end);
        while let Some(Reverse((off, e))) = self.beyond.peek().copied() {
            if off > covered {
                break;
            }
            self.beyond.pop();
            covered = covered.max(e);
        }
        self.covered = covered;
    }
}

/// Collects fragments by `FragmentKey` and returns whole payloads.
#[derive(Debug)]
pub struct FragmentReassembler {
    /// Datagrams being reassembled, oldest first.
    partials: OrderedMap<FragmentKey, Partial>,
    /// Datagrams given up on (timed out, too many in flight, inconsistent, evicted).
    pub dropped: u64,
    /// Datagrams reassembled.
    pub reassembled: u64,
    /// Budget for the bytes held by all datagrams together.
    pub max_bytes: usize,
    /// Bytes held now.
    pub buffered: usize,
    /// Datagrams dropped (also in `dropped`) to stay within `max_bytes`, and the bytes
    /// they held.
    pub evicted: u64,
    pub evicted_bytes: u64,
}

impl FragmentReassembler {
    pub fn new(max_bytes: usize) -> Self {
        FragmentReassembler {
            partials: OrderedMap::new(),
            dropped: 0,
            reassembled: 0,
            max_bytes,
            buffered: 0,
            evicted: 0,
            evicted_bytes: 0,
        }
    }

    /// Datagrams being reassembled now.
    pub fn pending(&self) -> usize {
        self.partials.len()
    }

    /// Add one fragment; return the whole payload when this fragment completes it.
    pub fn add(
        &mut self,
        key: FragmentKey,
        offset: usize,
        more: bool,
        data: &[u8],
        time: Time,
    ) -> Option<Vec<u8>> {
        let slot = match self.partials.find(&key) {
            Some(i) => i,
            None => {
                if self.partials.len() >= MAX_DATAGRAMS {
                    self.expire(time, true);
                }
                self.partials.push_back(key, Partial::new(time))
            }
        };
        let end = offset + data.len();
        let p = self.partials.get_mut(slot);
        if !more {
            p.total = Some(end);
        }
        if end > MAX_SIZE || p.total.is_some_and(|t| t > MAX_SIZE) {
            self.forget(slot); // no IP datagram is that long
            return None;
        }
        let old_len = p.pieces.get(&offset).map(Vec::len);
        if old_len.is_none_or(|n| n < data.len()) {
            p.pieces.insert(offset, data.to_vec());
            // Python: len(data) - (len(old) if old is not None else -PIECE_OVERHEAD)
            let grown = match old_len {
                Some(n) => data.len() - n,
                None => data.len() + PIECE_OVERHEAD,
            };
            p.held += grown;
            self.buffered += grown;
            let p = self.partials.get_mut(slot);
            if offset <= p.covered {
                p.extend(end);
            } else {
                p.beyond.push(Reverse((offset, end)));
            }
        }
        if self.buffered > self.max_bytes {
            self.evict();
            if self.partials.find(&key) != Some(slot) {
                return None;
            }
        }
        let p = self.partials.get(slot);
        let total = match p.total {
            Some(t) if p.covered >= t => t,
            _ => return None,
        };
        let mut out = vec![0u8; total];
        for (&off, piece) in &p.pieces {
            // A piece reaching past the datagram's end is cut there (Python's slice).
            if let Some(dst) = out.get_mut(off..) {
                for (o, &b) in dst.iter_mut().zip(piece) {
                    *o = b;
                }
            }
        }
        self.remove(slot);
        self.reassembled += 1;
        Some(out)
    }

    /// Over budget: drop the oldest datagrams until the rest fits.
    fn evict(&mut self) {
        while self.buffered > self.max_bytes {
            let Some(i) = self.partials.first() else {
                break;
            };
            self.evicted += 1;
            self.evicted_bytes += self.partials.get(i).held as u64;
            self.forget(i);
        }
    }

    fn forget(&mut self, slot: usize) {
        self.remove(slot);
        self.dropped += 1;
    }

    fn remove(&mut self, slot: usize) {
        let (_, p) = self.partials.remove(slot);
        self.buffered -= p.held;
    }

    /// Drop datagrams older than MAX_AGE (or, when `force`d because too many are open, the
    /// older half).
    pub fn expire(&mut self, now: Time, force: bool) {
        let order = self.partials.slots_in_order();
        let victims: Vec<usize> = if force {
            let mut ordered = order;
            // A stable sort by first time, as Python's sorted(); -0.0 and 0.0 compare equal.
            ordered.sort_by(|&a, &b| {
                let (x, y) = (
                    self.partials.get(a).first_time,
                    self.partials.get(b).first_time,
                );
                (x + 0.0).total_cmp(&(y + 0.0))
            });
            let n = (ordered.len() / 2).max(1).min(ordered.len());
            ordered.truncate(n);
            ordered
        } else {
            order
                .into_iter()
                .filter(|&i| now - self.partials.get(i).first_time > MAX_AGE)
                .collect()
        };
        for i in victims {
            self.forget(i);
        }
    }

    /// End of capture: what is still open is dropped.
    pub fn finish(&mut self) {
        self.dropped += self.partials.len() as u64;
        self.partials.clear();
        self.buffered = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn last_fragment_first_waits_alone_beyond_the_hole() {
        // Linux sends the last fragment first; every piece after it extends the prefix
        // without a hole, so only the last fragment waits in the heap and each piece costs
        // O(log n), not a walk over the pieces.
        let key = FragmentKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            ident: 7,
            proto: 17,
            iface: 0,
        };
        let payload: Vec<u8> = (0..8192).map(|i| i as u8).collect();
        let pieces: Vec<(usize, &[u8])> = payload
            .chunks(8)
            .enumerate()
            .map(|(i, c)| (8 * i, c))
            .collect();
        let mut r = FragmentReassembler::new(MAX_BYTES);
        let (last_off, last) = pieces[pieces.len() - 1];
        assert_eq!(r.add(key, last_off, false, last, 0.0), None);
        for &(off, data) in &pieces[..pieces.len() - 2] {
            assert_eq!(r.add(key, off, true, data, 0.0), None);
            let slot = r.partials.find(&key).expect("open");
            let p = r.partials.get(slot);
            assert_eq!(p.covered, off + 8);
            let beyond: Vec<(usize, usize)> = p.beyond.iter().map(|x| x.0).collect();
            assert_eq!(beyond, vec![(last_off, payload.len())]);
        }
        let (off, data) = pieces[pieces.len() - 2];
        assert_eq!(r.add(key, off, true, data, 0.0), Some(payload.clone()));
        assert_eq!((r.buffered, r.pending(), r.reassembled), (0, 0, 1));
    }
}
