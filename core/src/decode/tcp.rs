//! DNS over TCP: reassemble each direction of a connection and cut out messages.
//!
//! RFC 1035 section 4.2.2 and RFC 7766: every message is preceded by a 2-byte length. One
//! segment may carry several messages (glibc sends A and AAAA in one write) and one message
//! may span several segments. Captures also hold retransmitted and out-of-order segments
//! and connections that started before the capture did.
//!
//! State per direction is bounded: at most `MAX_OUT_OF_ORDER` segments wait for a gap to
//! fill; when that overflows, or a buffered message can never complete, the gap is skipped
//! and counted, and framing restarts at the next segment that looks like a DNS message.
//! Pieces of the gaps skipped are remembered so that a segment arriving late inside one is
//! framed on its own: the last `MAX_HOLES` when a gap is skipped, at most `MAX_HOLE_PIECES`
//! as late segments split them; a late segment inside a piece that was forgotten is taken
//! for a retransmission (see `Direction::late`).
//!
//! All directions together hold at most `max_bytes` (`Config::max_tcp_buffer_bytes`) of
//! partial messages and waiting segments: counts alone do not bound memory, since 65,536
//! connections may each hold a 64 kB message that never completes, or 32 segments of 64 kB
//! beyond a gap. Past the budget the least recently active directions are dropped, their
//! partial messages counted as incomplete, and the drops counted in `TcpStats`.

use std::net::IpAddr;

use super::ordered::OrderedMap;
use crate::types::Time;

pub const MAX_OUT_OF_ORDER: usize = 32;
pub const MAX_HOLES: usize = 4;
/// Pieces of skipped gaps remembered per direction. A late segment inside a gap splits it in
/// two, so without a cap a stream of late segments grows the list by one piece each, and
/// each scans it: quadratic cost. A retransmission fills a gap from its start (no split); a
/// reordering splits a gap a few times: 16 leaves each of the MAX_HOLES gaps room for three
/// splits. The pieces are not counted in the byte budget, so the cap is kept small: 65,536
/// directions hold at most a million pieces.
pub const MAX_HOLE_PIECES: usize = 16;
pub const MAX_FLOWS: usize = 65536;
pub const IDLE_SECONDS: f64 = 120.0;
/// Default of `max_bytes`.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;
/// What a segment waiting beyond a gap costs besides its bytes, so that many tiny segments
/// count too (the figure the Python analysis used, so that evictions agree).
pub const SEGMENT_OVERHEAD: usize = 160;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// A DNS message's bytes (without the length prefix), and the frame number and time of
/// the segment that completed it.
pub type Emit<'a> = dyn FnMut(Vec<u8>, u64, Time) + 'a;
/// A message framed at the end of the capture, with its direction.
pub type EmitFlow<'a> = dyn FnMut(&FlowKey, Vec<u8>, u64, Time) + 'a;

/// What TCP reassembly had to skip, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Gaps (lost segments) skipped over; a reordered segment that fills one later is
    /// still framed, but the skip stays counted.
    pub gaps: u64,
    /// Bytes dropped because they could not be framed (mid-stream start, after a gap).
    pub unframed_bytes: u64,
    /// Messages cut short when their connection ended or expired.
    pub incomplete_messages: u64,
    /// Zero-length messages skipped.
    pub empty_messages: u64,
    /// Directions of connections dropped to keep reassembly within its byte budget, and
    /// the bytes they held (their partial messages are counted in incomplete_messages).
    pub evicted_flows: u64,
    pub evicted_bytes: u64,
}

/// One direction of a connection: (source, source port, destination, destination port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
}

impl FlowKey {
    fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

/// A segment that arrived ahead of a gap.
#[derive(Debug)]
struct Ahead {
    seq: u32,
    data: Vec<u8>,
    frame: u64,
    time: Time,
}

/// Reassembly state for one direction of one connection.
#[derive(Debug, Default)]
struct Direction {
    /// Sequence number expected next; None until the first SYN or data segment.
    next_seq: Option<u32>,
    /// Bytes received in order and not yet framed into messages.
    buf: Vec<u8>,
    /// Segments that arrived ahead of a gap, in the order first seen (a segment at a
    /// sequence number seen before replaces it in place, as in a Python dict). At most
    /// MAX_OUT_OF_ORDER + 1 entries: one more forces the gap to be skipped.
    ahead: Vec<Ahead>,
    /// True until framing is known to be aligned (no SYN seen, or after a skipped gap).
    unaligned: bool,
    /// While unaligned: offsets in `buf` where a segment began (a message may start there).
    starts: Vec<usize>,
    /// Gaps skipped on a message boundary, as (start, end) sequence numbers in stream order
    /// (at most MAX_HOLES pieces when a gap is skipped, MAX_HOLE_PIECES as late segments
    /// split them). Bytes that arrive later inside one were reordered or retransmitted after
    /// a loss, not copies of bytes already taken, and are framed on their own.
    holes: Vec<(u32, u32)>,
    /// The peer's latest acknowledgment of this direction: bytes before it reached the
    /// peer, so a gap before it is a capture loss that no retransmission will fill.
    acked: Option<u32>,
    /// Time of the last segment, for idle expiry.
    last_time: Time,
    /// Bytes this direction holds, as counted in `TcpReassembler::buffered`.
    held: usize,
}

/// Signed distance from `base` to `seq` in sequence space (RFC 793 arithmetic).
fn seq_diff(seq: u32, base: u32) -> i64 {
    seq.wrapping_sub(base) as i32 as i64
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]) as usize)
}

impl Direction {
    /// Feed one segment; return true when it closed the direction (FIN or RST).
    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        st: &mut TcpStats,
        mut seq: u32,
        flags: u8,
        payload: &[u8],
        frame: u64,
        time: Time,
        emit: &mut Emit,
    ) -> bool {
        if flags & SYN != 0 {
            let next = seq.wrapping_add(1);
            self.next_seq = Some(next);
            self.buf.clear();
            self.ahead.clear();
            self.unaligned = false;
            self.starts.clear();
            self.holes.clear();
            self.acked = None;
            if payload.is_empty() {
                return false;
            }
            seq = next;
        }
        if !payload.is_empty() {
            if self.next_seq.is_none() {
                // The connection started before the capture: framing is unknown.
                self.next_seq = Some(seq);
                self.unaligned = true;
            }
            self.accept(st, seq, payload, frame, time, emit);
        }
        if flags & (FIN | RST) != 0 {
            self.close(st, emit);
            return true;
        }
        false
    }

    fn accept(
        &mut self,
        st: &mut TcpStats,
        seq: u32,
        payload: &[u8],
        frame: u64,
        time: Time,
        emit: &mut Emit,
    ) {
        let Some(next) = self.next_seq else { return };
        let mut payload = payload;
        let diff = seq_diff(seq, next);
        if diff < 0 {
            if diff + payload.len() as i64 <= 0 {
                if !self.holes.is_empty() {
                    self.late(st, seq, payload, frame, time, emit);
                }
                return; // else a retransmission of bytes already taken
            }
            payload = payload.get((-diff) as usize..).unwrap_or(&[]);
        } else if diff > 0 {
            self.put_ahead(seq, payload, frame, time);
            // The gap is a lost segment (capture drop), not a reordering worth waiting for,
            // when the peer has acknowledged the bytes beyond it, or when the segments
            // beyond it start a DNS message while nothing partial is buffered: frame from
            // here on instead of holding the stream back.
            if self.ahead.len() > MAX_OUT_OF_ORDER
                || self.gap_acked()
                || (self.buf.is_empty() && self.ahead_starts_message())
            {
                self.skip_gap(st, emit);
            }
            return;
        }
        self.append(st, payload, frame, time, emit);
        // Messages that this segment completes from segments waiting beyond the gap were
        // whole only now: they take this segment's frame and time.
        self.drain_ahead(st, Some((frame, time)), emit);
    }

    fn put_ahead(&mut self, seq: u32, payload: &[u8], frame: u64, time: Time) {
        let data = payload.to_vec();
        match self.ahead.iter_mut().find(|a| a.seq == seq) {
            Some(a) => {
                a.data = data;
                a.frame = frame;
                a.time = time;
            }
            None => self.ahead.push(Ahead {
                seq,
                data,
                frame,
                time,
            }),
        }
    }

    fn append(
        &mut self,
        st: &mut TcpStats,
        payload: &[u8],
        frame: u64,
        time: Time,
        emit: &mut Emit,
    ) {
        let Some(next) = self.next_seq else { return };
        self.next_seq = Some(next.wrapping_add(payload.len() as u32));
        if self.unaligned {
            self.starts.push(self.buf.len());
            self.buf.extend_from_slice(payload);
            if !self.align(st) {
                return;
            }
        } else {
            self.buf.extend_from_slice(payload);
        }
        self.frame(st, frame, time, emit);
    }

    /// Framing is unknown: find the first segment start in `buf` where a length-prefixed
    /// DNS message begins and drop the bytes before it.
    ///
    /// A start with fewer than a header's worth of bytes after it waits for more. Only
    /// segment starts are tried: a message may begin there, hardly anywhere else.
    fn align(&mut self, st: &mut TcpStats) -> bool {
        let n = self.buf.len();
        for i in 0..self.starts.len() {
            let start = self.starts[i];
            if n.saturating_sub(start) < 14 {
                self.drop_front(st, start, Some(i));
                return false;
            }
            if looks_like_dns(self.buf.get(start..start + 14).unwrap_or(&[])) {
                self.drop_front(st, start, None);
                self.unaligned = false;
                return true;
            }
        }
        self.drop_front(st, n, None);
        false
    }

    /// Drop `n` bytes from the front of `buf`; keep the segment starts from index `keep`
    /// on (shifted), or none.
    fn drop_front(&mut self, st: &mut TcpStats, n: usize, keep: Option<usize>) {
        if n != 0 {
            st.unframed_bytes += n as u64;
            let k = n.min(self.buf.len());
            self.buf.drain(..k);
        }
        match keep {
            Some(i) => {
                self.starts.drain(..i);
                for s in &mut self.starts {
                    *s = s.saturating_sub(n);
                }
            }
            None => self.starts.clear(),
        }
    }

    /// A segment behind `next_seq`: frame it on its own when it lies in a skipped hole
    /// (the hole was a reordering, or a loss the sender repaired).
    ///
    /// Past MAX_HOLE_PIECES the oldest pieces are forgotten, as the oldest gaps are when a
    /// gap is skipped: a sender repairs the oldest loss first and a reordering is short, so
    /// late bytes for them are the least likely still to come. A segment inside a forgotten
    /// piece cannot be told from a retransmission of bytes already taken, so it is ignored
    /// like one: counted in no `TcpStats` field, its gap counted in `gaps` when it was
    /// skipped.
    fn late(
        &mut self,
        st: &mut TcpStats,
        seq: u32,
        payload: &[u8],
        frame: u64,
        time: Time,
        emit: &mut Emit,
    ) {
        let len = payload.len();
        for i in 0..self.holes.len() {
            let (start, end) = self.holes[i];
            let off = seq.wrapping_sub(start);
            if off as u64 + len as u64 > end.wrapping_sub(start) as u64 {
                continue;
            }
            // Take the bytes out of the hole so that a further copy is a retransmission.
            let after = seq.wrapping_add(len as u32);
            let mut rest: [(u32, u32); 2] = [(0, 0); 2];
            let mut k = 0;
            if off != 0 {
                rest[k] = (start, seq);
                k += 1;
            }
            if after != end {
                rest[k] = (after, end);
                k += 1;
            }
            self.holes.splice(i..i + 1, rest[..k].iter().copied());
            if self.holes.len() > MAX_HOLE_PIECES {
                self.holes.drain(..self.holes.len() - MAX_HOLE_PIECES);
            }
            let mut pos = 0;
            if looks_like_dns(payload.get(..14).unwrap_or(payload)) {
                while len - pos >= 2 {
                    let Some(length) = be16(payload, pos) else {
                        break;
                    };
                    if length == 0 || len - pos - 2 < length {
                        break;
                    }
                    let Some(msg) = payload.get(pos + 2..pos + 2 + length) else {
                        break;
                    };
                    emit(msg.to_vec(), frame, time);
                    pos += 2 + length;
                }
            }
            // A message that spans several late segments is not pieced together.
            st.unframed_bytes += (len - pos) as u64;
            return;
        }
    }

    /// Append buffered segments that are now in order; messages they complete take frame
    /// and time from `at` when given, else from their own segment.
    fn drain_ahead(&mut self, st: &mut TcpStats, at: Option<(u64, Time)>, emit: &mut Emit) {
        while !self.ahead.is_empty() {
            let mut progressed = false;
            // Python walks a snapshot of the keys in order, popping those now in order;
            // nothing is added meanwhile, so walking the shrinking list is the same walk.
            let mut i = 0;
            while i < self.ahead.len() {
                let Some(next) = self.next_seq else { return };
                let diff = seq_diff(self.ahead[i].seq, next);
                if diff <= 0 {
                    let a = self.ahead.remove(i);
                    let (frame, time) = at.unwrap_or((a.frame, a.time));
                    if diff + a.data.len() as i64 > 0 {
                        let rest = a.data.get((-diff) as usize..).unwrap_or(&[]);
                        self.append(st, rest, frame, time, emit);
                    }
                    progressed = true;
                } else {
                    i += 1;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// The waiting segment nearest after `next_seq`.
    fn first_ahead(&self, base: u32) -> Option<u32> {
        self.ahead
            .iter()
            .map(|a| a.seq)
            .min_by_key(|s| s.wrapping_sub(base))
    }

    /// Whether the peer acknowledged everything up to the first segment beyond the gap
    /// (what Wireshark calls "ACKed segment that wasn't captured").
    fn gap_acked(&self) -> bool {
        let (Some(acked), Some(base)) = (self.acked, self.next_seq) else {
            return false;
        };
        let Some(first) = self.first_ahead(base) else {
            return false;
        };
        let f = first.wrapping_sub(base);
        let a = acked.wrapping_sub(base);
        0 < f && f <= a && a < 0x8000_0000
    }

    /// Whether the contiguous run of segments after the gap begins a DNS message (the
    /// length prefix and header may come in separate segments).
    fn ahead_starts_message(&self) -> bool {
        let Some(base) = self.next_seq else {
            return false;
        };
        let mut order: Vec<usize> = (0..self.ahead.len()).collect();
        order.sort_by_key(|&i| self.ahead[i].seq.wrapping_sub(base));
        let mut head = [0u8; 14];
        let mut have = 0;
        let Some(&first) = order.first() else {
            return false;
        };
        let mut expect = self.ahead[first].seq;
        for i in order {
            let a = &self.ahead[i];
            if a.seq != expect || have >= 14 {
                break;
            }
            for (h, &b) in head[have..].iter_mut().zip(&a.data) {
                *h = b;
                have += 1;
            }
            expect = a.seq.wrapping_add(a.data.len() as u32);
        }
        looks_like_dns(head.get(..have).unwrap_or(&[]))
    }

    /// Give up on a gap that will not fill: restart at the earliest buffered segment.
    fn skip_gap(&mut self, st: &mut TcpStats, emit: &mut Emit) {
        st.gaps += 1;
        let Some(base) = self.next_seq else { return };
        let Some(first) = self.first_ahead(base) else {
            return;
        };
        if !self.buf.is_empty() || self.unaligned {
            st.unframed_bytes += self.buf.len() as u64;
            self.buf.clear();
            self.starts.clear();
        } else {
            // Framing was on a message boundary at the gap: what fills it later can be
            // framed on its own.
            let keep = MAX_HOLES - 1;
            if self.holes.len() > keep {
                self.holes.drain(..self.holes.len() - keep);
            }
            self.holes.push((base, first));
        }
        self.next_seq = Some(first);
        self.unaligned = true;
        self.drain_ahead(st, None, emit);
    }

    fn frame(&mut self, st: &mut TcpStats, frame: u64, time: Time, emit: &mut Emit) {
        let buf = &self.buf;
        let n = buf.len();
        let mut start = 0;
        while n - start >= 2 {
            let Some(length) = be16(buf, start) else {
                break;
            };
            if length == 0 {
                st.empty_messages += 1;
                start += 2;
                continue;
            }
            if n - start - 2 < length {
                break;
            }
            let Some(msg) = buf.get(start + 2..start + 2 + length) else {
                break;
            };
            emit(msg.to_vec(), frame, time);
            start += 2 + length;
        }
        if start != 0 {
            self.buf.drain(..start);
        }
    }

    /// The connection ended: frame what waits beyond gaps, count what stays partial.
    fn close(&mut self, st: &mut TcpStats, emit: &mut Emit) {
        while !self.ahead.is_empty() {
            let before = self.ahead.len();
            self.skip_gap(st, emit);
            if self.ahead.len() >= before {
                break; // cannot happen: skipping a gap takes its first segment
            }
        }
        if !self.buf.is_empty() {
            st.incomplete_messages += 1;
        }
    }

    /// What this direction holds now, as counted against the budget.
    fn holding(&self) -> usize {
        let mut held = self.buf.len();
        for a in &self.ahead {
            held += a.data.len() + SEGMENT_OVERHEAD;
        }
        held
    }
}

/// Turns TCP segments on DNS ports into whole DNS messages, per direction.
#[derive(Debug)]
pub struct TcpReassembler {
    /// Directions by key, least recently active first.
    flows: OrderedMap<FlowKey, Direction>,
    pub stats: TcpStats,
    /// Budget for the bytes held by all directions together.
    pub max_bytes: usize,
    /// Bytes held now: partial messages, and segments waiting beyond gaps.
    pub buffered: usize,
}

impl TcpReassembler {
    pub fn new(max_bytes: usize) -> Self {
        TcpReassembler {
            flows: OrderedMap::new(),
            stats: TcpStats::default(),
            max_bytes,
            buffered: 0,
        }
    }

    /// Directions followed now.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Feed one segment; `emit` receives every DNS message it completes (without the
    /// length prefix), with the frame and time of the segment that completed it.
    ///
    /// `ack` is the segment's acknowledgment number (used when the ACK flag is set): it
    /// tells the other direction which of its bytes arrived.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        key: FlowKey,
        seq: u32,
        flags: u8,
        payload: &[u8],
        frame: u64,
        time: Time,
        ack: u32,
        emit: &mut Emit,
    ) {
        if flags & ACK != 0 {
            if let Some(p) = self.flows.find(&key.reversed()) {
                self.flows.get_mut(p).acked = Some(ack);
            }
        }
        let slot = match self.flows.find(&key) {
            Some(i) => {
                self.flows.move_to_back(i);
                i
            }
            None => {
                if flags & (RST | FIN) != 0 && payload.is_empty() {
                    return;
                }
                if self.flows.len() >= MAX_FLOWS {
                    self.expire(time, true);
                }
                self.flows.push_back(key, Direction::default())
            }
        };
        let d = self.flows.get_mut(slot);
        d.last_time = time;
        if d.segment(&mut self.stats, seq, flags, payload, frame, time, emit) {
            let (_, d) = self.flows.remove(slot);
            self.buffered -= d.held;
        } else {
            let d = self.flows.get_mut(slot);
            let held = d.holding();
            self.buffered = self.buffered - d.held + held;
            d.held = held;
        }
        if self.buffered > self.max_bytes {
            self.evict();
        }
    }

    /// Over budget: drop the least recently active directions (the one just fed last of
    /// all) until the rest fits. What they held is counted, not decoded.
    fn evict(&mut self) {
        while self.buffered > self.max_bytes {
            let Some(i) = self.flows.first() else { break };
            self.stats.evicted_flows += 1;
            self.stats.evicted_bytes += self.flows.get(i).held as u64;
            self.drop_flow(i);
        }
    }

    /// Forget a direction; its messages still waiting beyond a gap are counted.
    fn drop_flow(&mut self, slot: usize) {
        let (_, mut d) = self.flows.remove(slot);
        self.stats.incomplete_messages += d.ahead.len() as u64;
        d.ahead.clear();
        // With nothing waiting, closing frames nothing: it only counts a partial message.
        d.close(&mut self.stats, &mut |_, _, _| {});
        self.buffered -= d.held;
    }

    /// Forget connections idle for longer than IDLE_SECONDS (or, when `force`d because too
    /// many are open, the oldest half).
    ///
    /// Messages still waiting beyond a gap in an idle connection are counted, not
    /// decoded: their time would be long past.
    pub fn expire(&mut self, now: Time, force: bool) {
        let order = self.flows.slots_in_order();
        let victims: Vec<usize> = if force {
            let mut ordered = order;
            // A stable sort by last activity, as Python's sorted(); -0.0 equals 0.0.
            ordered.sort_by(|&a, &b| {
                let (x, y) = (self.flows.get(a).last_time, self.flows.get(b).last_time);
                (x + 0.0).total_cmp(&(y + 0.0))
            });
            let n = (ordered.len() / 2).max(1).min(ordered.len());
            ordered.truncate(n);
            ordered
        } else {
            order
                .into_iter()
                .filter(|&i| now - self.flows.get(i).last_time > IDLE_SECONDS)
                .collect()
        };
        for i in victims {
            self.drop_flow(i);
        }
    }

    /// End of capture: frame what waits beyond gaps, count what is still incomplete.
    /// `emit` receives each message with its direction.
    pub fn finish(&mut self, emit: &mut EmitFlow) {
        for slot in self.flows.slots_in_order() {
            let (key, mut d) = self.flows.remove(slot);
            d.close(&mut self.stats, &mut |m, f, t| emit(&key, m, f, t));
            self.buffered -= d.held;
        }
    }
}

/// Whether a segment plausibly starts with a length-prefixed DNS message.
///
/// Used only to find framing in a stream whose start was not captured: the length must
/// cover at least a header, and the header must announce at most one question (RFC 9619)
/// and a known opcode; a query carries no response code (RFC 1035 4.1.1: RCODE is set as
/// part of responses), which rules out much of the text of names and records.
pub fn looks_like_dns(segment: &[u8]) -> bool {
    if segment.len() < 14 {
        return false;
    }
    let length = u16::from_be_bytes([segment[0], segment[1]]);
    let flags = u16::from_be_bytes([segment[4], segment[5]]);
    let qdcount = u16::from_be_bytes([segment[6], segment[7]]);
    let opcode = (flags >> 11) & 0xF;
    if flags & 0x8000 == 0 && flags & 0xF != 0 {
        return false;
    }
    length >= 12 && qdcount <= 1 && matches!(opcode, 0 | 1 | 2 | 4 | 5 | 6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(i: usize) -> FlowKey {
        FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
            sport: 1000 + (i % 60000) as u16,
            dst: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
            dport: 53,
        }
    }

    #[test]
    fn too_many_directions_drop_the_least_recently_active_half() {
        // Times out of order, so that the oldest half by time is not the first half fed;
        // the figures are those of the Python stage on the same segments.
        let mut r = TcpReassembler::new(MAX_BYTES);
        let mut none = |_: Vec<u8>, _: u64, _: Time| panic!("nothing to frame");
        for i in 0..MAX_FLOWS {
            let t = ((i * 7919) % 1000) as f64;
            r.segment(key(i), 5000, 0x18, b"abc", i as u64 + 1, t, 0, &mut none);
        }
        assert_eq!((r.flows(), r.buffered), (65536, 196608));
        r.segment(key(MAX_FLOWS), 5000, 0x18, b"abc", 0, 500.0, 0, &mut none);
        assert_eq!(
            (r.flows(), r.stats.incomplete_messages, r.buffered),
            (32769, 32768, 98307)
        );
        let kept: Vec<usize> = [0, 1, 2, 999, 1000, 919, 65535]
            .into_iter()
            .filter(|&i| r.flows.find(&key(i)).is_some())
            .collect();
        assert_eq!(kept, vec![1, 2, 919, 65535]);
    }

    /// A query for `svc.example.com`, type A, with its length prefix.
    fn framed_query(ident: u16) -> Vec<u8> {
        let mut m = Vec::new();
        for v in [ident, 0x0100, 1, 0, 0, 0] {
            m.extend_from_slice(&v.to_be_bytes());
        }
        m.extend_from_slice(b"\x03svc\x07example\x03com\x00\x00\x01\x00\x01");
        let mut out = (m.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&m);
        out
    }

    /// Feed a client data segment (PSH, ACK); return the DNS IDs and frames it completes.
    fn data(r: &mut TcpReassembler, seq: u32, payload: &[u8], frame: u64) -> Vec<(u8, u64)> {
        let mut out = Vec::new();
        let mut emit = |m: Vec<u8>, f: u64, _: Time| out.push((m[1], f));
        r.segment(key(0), seq, 0x18, payload, frame, 0.0, 0, &mut emit);
        out
    }

    /// A query, then a gap of `size` bytes skipped at once (a query starts beyond it);
    /// returns where the gap begins.
    fn skipped_gap(r: &mut TcpReassembler, size: u32) -> u32 {
        r.segment(key(0), 1000, SYN, b"", 1, 0.0, 0, &mut |_, _, _| {});
        let m1 = framed_query(1);
        assert_eq!(data(r, 1001, &m1, 2), vec![(1, 2)]);
        let start = 1001 + m1.len() as u32;
        assert_eq!(data(r, start + size, &framed_query(2), 3), vec![(2, 3)]);
        assert_eq!(holes(r), vec![(start, start + size)]);
        start
    }

    fn holes(r: &TcpReassembler) -> Vec<(u32, u32)> {
        let slot = r.flows.find(&key(0)).expect("the direction");
        r.flows.get(slot).holes.clone()
    }

    #[test]
    fn late_segments_splitting_a_gap_keep_at_most_max_hole_pieces() {
        // One-byte segments inside a skipped gap, one byte apart and in order: each splits
        // the last piece. The list scanned for each stays within MAX_HOLE_PIECES.
        let n = 40_000u32;
        let mut r = TcpReassembler::new(MAX_BYTES);
        let start = skipped_gap(&mut r, 2 * n + 2);
        for i in 0..n {
            assert_eq!(data(&mut r, start + 1 + 2 * i, b"\x00", 4), vec![]);
            let pieces = holes(&r).len();
            assert!(pieces <= MAX_HOLE_PIECES, "segment {i}: {pieces} pieces");
        }
        // The newest pieces are kept: the last 15 bytes between late segments, and the rest
        // of the gap after the last one.
        let mut kept: Vec<(u32, u32)> = (n - 15..n)
            .map(|i| (start + 2 * i, start + 2 * i + 1))
            .collect();
        kept.push((start + 2 * n, start + 2 * n + 2));
        assert_eq!(holes(&r), kept);
        assert_eq!((r.stats.gaps, r.stats.unframed_bytes), (1, n as u64));
    }

    #[test]
    fn late_message_inside_a_forgotten_piece_is_taken_for_a_retransmission() {
        let mut r = TcpReassembler::new(MAX_BYTES);
        let start = skipped_gap(&mut r, 1_000);
        // 16 one-byte segments split the gap 16 times: 17 pieces, the first one forgotten.
        for i in 0..MAX_HOLE_PIECES as u32 {
            assert_eq!(data(&mut r, start + 100 + 2 * i, b"\x00", 4), vec![]);
        }
        let h = holes(&r);
        assert_eq!(h.len(), MAX_HOLE_PIECES);
        assert_eq!(h[0], (start + 101, start + 102));

        // A query late in the forgotten first piece is ignored, like a copy of bytes taken,
        // and counted nowhere; one late in the last piece is framed on its own.
        assert_eq!(data(&mut r, start, &framed_query(3), 30), vec![]);
        let late = framed_query(4);
        let at = start + 1_000 - late.len() as u32;
        assert_eq!(data(&mut r, at, &late, 31), vec![(4, 31)]);
        let s = &r.stats;
        let counted = (s.gaps, s.unframed_bytes, s.incomplete_messages);
        assert_eq!(counted, (1, MAX_HOLE_PIECES as u64, 0));
    }

    #[test]
    fn looks_like_dns_wants_a_header_worth_of_plausible_fields() {
        let q = b"\x00\x1d\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00";
        assert!(looks_like_dns(q));
        assert!(!looks_like_dns(&q[..13]));
        let mut rcode_in_query = *q;
        rcode_in_query[5] = 0x03;
        assert!(!looks_like_dns(&rcode_in_query));
        let mut two_questions = *q;
        two_questions[7] = 2;
        assert!(!looks_like_dns(&two_questions));
        let mut short = *q;
        short[1] = 11;
        assert!(!looks_like_dns(&short));
        let mut opcode3 = *q;
        opcode3[4] = 0x18;
        assert!(!looks_like_dns(&opcode3));
    }
}
