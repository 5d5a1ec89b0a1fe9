//! Records -> numbered records in time order, through a bounded reorder window.
//!
//! Capture tools do not always write records in time order. dumpcap recording several
//! interfaces into one pcapng writes each interface's packets when its capture buffer hands
//! them over, up to its 250 ms read timeout after they were stamped; `tcpdump -i any` on a
//! multi-CPU node writes packets stamped on different CPUs, whose times go backwards by
//! microseconds to milliseconds. The stages after this one decide by time order, so each
//! record is held until a record `window` seconds newer has been read, and records are
//! passed on in (time, frame) order: records with equal times keep their file order.
//!
//! Frame numbers are given in file order, before the buffer, so they stay tshark's numbers
//! (evidence cites them) whatever order the records are passed on in.
//!
//! The buffer is bounded by time (`window`) and by size (`MAX_HELD` records and
//! `MAX_HELD_BYTES` bytes of packet data): when a burst fills it, the oldest records are
//! passed on before their window is up (counted in `released_early`).
//!
//! A record older than one already passed on is **late**: its place in time order is gone.
//! It is counted in `late` and passed on at once, with its own time (times are evidence).
//!
//! Cost: a record read in time order is appended to a queue and popped from it, O(1); only
//! records read out of order go through a heap, O(log n). The held records' byte vectors
//! are recycled, so a steady stream allocates nothing.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use super::merge::py_cmp;
use super::pyfmt;
use crate::types::Record;

/// At most this many records are held. At the 4,000 packets/s of a busy node's DNS traffic
/// a 0.5 s window holds 2,000; 20,000 covers 40,000 packets/s before the window narrows.
pub const MAX_HELD: usize = 20_000;
/// At most this many bytes of packet data are held (about 5,600 full-size Ethernet frames).
pub const MAX_HELD_BYTES: usize = 8 << 20;
/// Byte vectors kept for reuse hold at most this much in all (so the buffer's memory stays
/// within about twice MAX_HELD_BYTES plus this, whatever sizes records come in), and one
/// larger than POOL_ONE is freed instead.
const POOL_BYTES: usize = 4 << 20;
const POOL_ONE: usize = 64 * 1024;
/// Spare vectors of at most this capacity are kept apart from larger ones and given only
/// to records that fit them. A vector grows to the largest record it ever carried and
/// keeps that capacity, so with one pool for all, a rare large record (a TCP segment, a
/// big answer: 0.08% of the bench capture's records, 1 to 1.5 KB) left its size to every
/// small one carried after it: the bench capture's held vectors grew from 1.5 MB after
/// 1M records to 3.5 MB after 5M. Apart, the small ones stay small.
const SMALL: usize = 512;
/// Records warmed at a time (see `TimeOrder::warm`).
const WARM: usize = 16;

/// A record held in the buffer.
struct Held {
    time: f64,
    frame: u64,
    link_type: u32,
    iface: u32,
    data: Vec<u8>,
}

/// Ordered for the heap of records read out of order: reversed (time, frame), so the
/// max-heap gives the earliest.
struct Late(Held);

impl PartialEq for Late {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Late {}
impl PartialOrd for Late {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Late {
    fn cmp(&self, other: &Self) -> Ordering {
        before(&other.0, &self.0)
    }
}

/// (time, frame) order, with Python's tuple comparison of the times.
fn before(a: &Held, b: &Held) -> Ordering {
    py_cmp(a.time, b.time).then(a.frame.cmp(&b.frame))
}

/// Numbers records in the order read and passes them on in time order.
pub struct TimeOrder {
    /// Seconds a record is held for records read after it that are older.
    window: f64,
    /// Records read (the last frame number given).
    pub records: u64,
    /// Records read after a newer record had been passed on; passed on out of order.
    pub late: u64,
    /// The largest gap, in seconds, between a late record's time and the newest record
    /// read before it.
    pub most_behind: f64,
    /// Records passed on before their window was up because the buffer was full.
    pub released_early: u64,
    /// Time of the newest record read.
    pub newest: f64,
    /// Time of the last record passed on from the buffer.
    passed: f64,
    held_bytes: usize,
    /// Records read in time order, so sorted.
    run: VecDeque<Held>,
    /// Records read out of order.
    heap: BinaryHeap<Late>,
    /// Byte vectors to reuse, of at most `SMALL` bytes and larger, and their capacity in
    /// all.
    pool: [Vec<Vec<u8>>; 2],
    pool_bytes: usize,
    /// The input has ended: everything held goes out in order.
    ended: bool,
    /// Records passed on until the next ones are warmed.
    until_warm: usize,
}

impl TimeOrder {
    pub fn new(window: f64) -> Self {
        TimeOrder {
            window,
            records: 0,
            late: 0,
            most_behind: 0.0,
            released_early: 0,
            newest: f64::NEG_INFINITY,
            passed: f64::NEG_INFINITY,
            held_bytes: 0,
            run: VecDeque::new(),
            heap: BinaryHeap::new(),
            pool: [Vec::new(), Vec::new()],
            pool_bytes: 0,
            ended: false,
            until_warm: 0,
        }
    }

    /// Take the next record read. A late record is passed on at once, into `out` (true);
    /// any other is held (false) until `pop` releases it.
    pub fn push(
        &mut self,
        time: f64,
        link_type: u32,
        iface: u32,
        data: &[u8],
        out: &mut Record,
    ) -> bool {
        self.records += 1;
        let frame = self.records;
        if time < self.passed {
            self.late += 1;
            let behind = self.newest - time;
            if behind > self.most_behind {
                self.most_behind = behind;
            }
            out.frame = frame;
            out.time = time;
            out.link_type = link_type;
            out.iface = iface;
            out.data.clear();
            out.data.extend_from_slice(data);
            return true;
        }
        let mut bytes = match self.pool[usize::from(data.len() > SMALL)].pop() {
            Some(v) => {
                self.pool_bytes -= v.capacity();
                v
            }
            None => Vec::new(),
        };
        bytes.clear();
        bytes.extend_from_slice(data);
        let held = Held {
            time,
            frame,
            link_type,
            iface,
            data: bytes,
        };
        if time >= self.newest {
            self.newest = time;
            self.run.push_back(held);
        } else {
            self.heap.push(Late(held));
        }
        self.held_bytes += data.len();
        false
    }

    /// The input has ended: what is held is passed on in time order.
    pub fn finish(&mut self) {
        self.ended = true;
    }

    /// Pass on the earliest held record into `out` if its window is up (or the buffer is
    /// over its caps, or the input has ended).
    pub fn pop(&mut self, out: &mut Record) -> bool {
        let from_heap = match (self.run.front(), self.heap.peek()) {
            (None, None) => return false,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (Some(r), Some(h)) => before(&h.0, r) == Ordering::Less,
        };
        let time = if from_heap {
            self.heap.peek().map_or(0.0, |h| h.0.time)
        } else {
            self.run.front().map_or(0.0, |r| r.time)
        };
        if !self.ended {
            let horizon = self.newest - self.window;
            if time > horizon {
                let held = self.run.len() + self.heap.len();
                if held <= MAX_HELD && self.held_bytes <= MAX_HELD_BYTES {
                    return false;
                }
                self.released_early += 1;
            }
        }
        let head = if from_heap {
            self.heap.pop().map(|l| l.0)
        } else {
            self.run.pop_front()
        };
        let Some(mut head) = head else { return false };
        self.held_bytes -= head.data.len();
        self.passed = head.time;
        out.frame = head.frame;
        out.time = head.time;
        out.link_type = head.link_type;
        out.iface = head.iface;
        std::mem::swap(&mut out.data, &mut head.data);
        // `head.data` is now the caller's previous vector: keep it for the next record.
        let capacity = head.data.capacity();
        if capacity <= POOL_ONE && self.pool_bytes + capacity <= POOL_BYTES {
            self.pool_bytes += capacity;
            self.pool[usize::from(capacity > SMALL)].push(head.data);
        }
        self.warm();
        true
    }

    /// The records in line were read half a second ago and have left the cache, each on
    /// its own. Every `WARM` records, load the first bytes of the next `WARM` after those
    /// in one tight loop: the loads wait for memory together instead of one at a time when
    /// each record is decoded.
    fn warm(&mut self) {
        self.until_warm = self.until_warm.saturating_sub(1);
        if self.until_warm > 0 {
            return;
        }
        self.until_warm = WARM;
        for h in self
            .run
            .range(WARM.min(self.run.len())..(2 * WARM).min(self.run.len()))
        {
            std::hint::black_box((h.data.first().copied(), h.data.get(64).copied()));
        }
    }

    /// What the late records mean for the analysis, or None when there were none.
    pub fn warning(&self) -> Option<String> {
        if self.late == 0 {
            return None;
        }
        let late = records(self.late);
        let mut text = if self.released_early > 0 {
            // A full buffer passed records on early, so a late record may be less than the
            // window out of order.
            format!(
                "{late} arrived out of time order after the reorder buffer, full at {} records \
                 or {} MiB, had passed {} on before their {} window was up (the furthest {} \
                 out of order)",
                pyfmt::thousands(MAX_HELD as u64),
                MAX_HELD_BYTES >> 20,
                records(self.released_early),
                ms(self.window),
                ms(self.most_behind)
            )
        } else {
            format!(
                "{late} arrived more than {} out of time order (the furthest {})",
                ms(self.window),
                ms(self.most_behind)
            )
        };
        text.push_str(
            "; each was analyzed where it was read, so a copy of a packet among them may be \
             counted twice and an answer read before its query taken for unsolicited",
        );
        Some(text)
    }
}

fn records(n: u64) -> String {
    format!("{n} record{}", if n != 1 { "s" } else { "" })
}

fn ms(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{} ms", pyfmt::g6(pyfmt::round(seconds * 1000.0, 3)))
    } else {
        format!("{seconds:.3} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: f64 = 1_795_602_000.0;

    fn empty() -> Record {
        Record {
            frame: 0,
            time: 0.0,
            link_type: 0,
            iface: 0,
            data: Vec::new(),
        }
    }

    /// (time, frame) of each record in the order passed on.
    fn run(times: &[f64], window: f64, size: usize) -> (Vec<(f64, u64)>, TimeOrder) {
        let mut order = TimeOrder::new(window);
        let mut out = Vec::new();
        let mut rec = empty();
        for (i, &t) in times.iter().enumerate() {
            let data = (i as u32).to_be_bytes().repeat(size / 4);
            if order.push(t, 1, 0, &data, &mut rec) {
                out.push((rec.time, rec.frame));
            }
            while order.pop(&mut rec) {
                out.push((rec.time, rec.frame));
            }
        }
        order.finish();
        while order.pop(&mut rec) {
            out.push((rec.time, rec.frame));
        }
        (out, order)
    }

    #[test]
    fn a_record_written_after_newer_ones_is_put_back_in_place() {
        let (out, order) = run(&[T, T + 0.0004, T + 0.0001, T + 0.0005], 0.5, 60);
        assert_eq!(
            out,
            [(T, 1), (T + 0.0001, 3), (T + 0.0004, 2), (T + 0.0005, 4)]
        );
        assert_eq!(order.late, 0);
    }

    #[test]
    fn equal_times_keep_file_order() {
        let (out, _) = run(&[T + 0.2, T + 0.1, T + 0.1, T + 0.2, T + 0.1], 0.5, 60);
        assert_eq!(
            out,
            [
                (T + 0.1, 2),
                (T + 0.1, 3),
                (T + 0.1, 5),
                (T + 0.2, 1),
                (T + 0.2, 4)
            ]
        );
    }

    #[test]
    fn a_record_later_than_the_window_is_counted_and_passed_on_at_once() {
        let (out, order) = run(&[T, T + 1.0, T + 2.5, T + 0.5, T + 2.6], 0.5, 60);
        assert_eq!(
            out,
            [
                (T, 1),
                (T + 1.0, 2),
                (T + 0.5, 4),
                (T + 2.5, 3),
                (T + 2.6, 5)
            ]
        );
        assert_eq!(order.late, 1);
        assert_eq!(
            order.warning().as_deref(),
            Some(
                "1 record arrived more than 500 ms out of time order (the furthest 2.000 s); \
                 each was analyzed where it was read, so a copy of a packet among them may be \
                 counted twice and an answer read before its query taken for unsolicited"
            )
        );
    }

    #[test]
    fn window_zero_keeps_file_order() {
        let (out, order) = run(&[T, T + 0.0004, T + 0.0001, T + 0.0005], 0.0, 60);
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(order.late, 1);
    }

    #[test]
    fn a_burst_with_one_timestamp_is_not_held_whole() {
        let n = 100_000;
        let (out, order) = run(&vec![T; n], 0.5, 60);
        assert_eq!(out.len(), n);
        assert!(out.iter().enumerate().all(|(i, o)| o.1 == i as u64 + 1));
        assert_eq!(order.released_early, (n - MAX_HELD) as u64);
    }

    #[test]
    fn a_full_buffer_makes_lateness_possible_within_the_window_and_says_so() {
        let mut times = vec![T; MAX_HELD + 1];
        times.push(T - 0.01);
        let (out, order) = run(&times, 0.5, 60);
        assert_eq!((order.released_early, order.late), (1, 1));
        assert_eq!(out[0], (T, 1));
        assert_eq!(out[1], (T - 0.01, MAX_HELD as u64 + 2));
        assert!(order.warning().unwrap().starts_with(
            "1 record arrived out of time order after the reorder buffer, full at 20,000 \
             records or 8 MiB, had passed 1 record on before their 500 ms window was up (the \
             furthest 10 ms out of order)"
        ));
    }

    #[test]
    fn large_records_are_capped_by_bytes() {
        let size = 200_000;
        let times: Vec<f64> = (0..200).map(|i| T + i as f64 * 1e-6).collect();
        let (out, order) = run(&times, 0.5, size);
        assert_eq!(out.len(), 200);
        assert!(order.released_early > 0);
    }

    #[test]
    fn a_rare_large_record_leaves_the_small_vectors_small() {
        // One record in 50 is a 1,400-byte segment among 100-byte datagrams, 10 held at a
        // time: the small records are carried in small vectors all along.
        let mut order = TimeOrder::new(10e-6);
        let mut rec = empty();
        let mut most = 0;
        for i in 0..2_000u32 {
            let size = if i % 50 == 7 { 1_400 } else { 100 };
            assert!(!order.push(T + f64::from(i) * 1e-6, 1, 0, &vec![0; size], &mut rec));
            while order.pop(&mut rec) {
                if rec.data.len() == 100 {
                    most = most.max(rec.data.capacity());
                }
            }
        }
        assert!(most <= 512, "a 100-byte record was carried in {most} bytes");
        assert!(order.pool[0].len() + order.pool[1].len() <= 12);
    }
}
