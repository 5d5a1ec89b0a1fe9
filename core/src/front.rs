//! The front of the per-packet path, reading and decoding, run on a thread of its own when
//! the machine has a second core.
//!
//! Parsing, duplicates, the matcher and the tallies share their messages by `Rc` and stay on
//! the caller's thread. What crosses to it is what the decoder hands on, owned, in batches:
//! a mark for each record read, each payload's addresses and ports with its bytes copied
//! into one buffer per batch, and each ICMP quote. The caller plays the batches into its
//! sink in the order the decoder found things, as many records per `Front::take` as asked,
//! so everything after the decoder runs in the same order, between the same steps, as when
//! the front runs on the caller's thread: the output is the same byte for byte. The reader
//! and the decoder travel back with the last batch, so their counters, the per-file
//! descriptions and the error that stopped reading are read where they always were.
//!
//! `PCAPDNS_CORE_THREADS=1` in the environment keeps everything on the caller's thread.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::decode::tunnel::Tunnel;
use crate::decode::{FrameDecoder, PayloadRef, Sink};
use crate::read::{InputError, Reader};
use crate::types::{IcmpQuote, Record, Time, Transport};

/// Where the front hands what it finds: the decoder's sink, told the time of the capture's
/// first record before anything that record decodes to.
pub trait Feed: Sink {
    fn first_record(&mut self, time: Time);
}

/// Batch sizes and the channel's depth.
///
/// The memory bound: a batch is sent at the end of the record that filled it to `items`
/// marks, payloads and quotes or to `bytes` bytes of them, or in the middle of a record
/// once it holds twice either (one TCP segment can complete every message held for
/// reassembly, and the end of the input flushes them all). A batch so holds at most
/// 2 x `items` items of `ITEM_BYTES`, and less than 2 x `bytes` bytes plus one payload or
/// quote, which is at most one record's bytes (`read::capture::MAX_RECORD`, 256 KiB). At
/// most `depth` batches wait in the channel, one more waits to be sent and one is played;
/// played batches go back to be filled again, and a new one is made only when none has
/// come back, so at most `depth` + 3 exist. With `LIMITS` that is 7 x 128 KiB = 0.9 MiB
/// for ordinary DNS traffic, and at most 7 x (136 KiB of items + 544 KiB of bytes, as
/// vectors grow by doubling) = 4.7 MiB.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub items: usize,
    pub bytes: usize,
    pub depth: usize,
}

/// About half a millisecond of the caller's work per batch (512 DNS records): the thread
/// wakes the caller (and is woken) once a batch, not once a record, and a batch is still in
/// the cache when it is played.
pub const LIMITS: Limits = Limits {
    items: 1024,
    bytes: 64 << 10,
    depth: 4,
};

/// Bytes of one item of a batch (checked by a test).
pub const ITEM_BYTES: usize = 64;

/// Whether to read and decode on a thread of their own: when a second core is there to run
/// it (`available_parallelism` counts the cores this process may use), unless
/// `PCAPDNS_CORE_THREADS=1` says otherwise.
pub fn second_core() -> Option<Limits> {
    let asked_one = std::env::var_os("PCAPDNS_CORE_THREADS").is_some_and(|v| v == "1");
    let two = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    (two && !asked_one).then_some(LIMITS)
}

/// The reader and the decoder, with the record buffer they share.
pub struct Stages {
    pub reader: Reader,
    pub decoder: FrameDecoder,
    record: Record,
}

/// Reading and decoding, here or on their own thread.
pub struct Front {
    at: At,
    marks: Marks,
    total_bytes: u64,
}

enum At {
    Here(Box<Stages>),
    Away(Away),
}

impl Front {
    /// The front of `reader` and `decoder`: on a thread of its own, batched by `thread`'s
    /// limits, when it is given (and a thread can be started), else on the caller's.
    pub fn new(reader: Reader, decoder: FrameDecoder, thread: Option<Limits>) -> Front {
        Self::with(reader, decoder, thread, |_| {})
    }

    /// `new`, with `tap` called on the thread with each record read (the tests' way to
    /// make the thread panic, or see it end).
    fn with(
        reader: Reader,
        decoder: FrameDecoder,
        thread: Option<Limits>,
        tap: impl FnMut(&Record) + Send + 'static,
    ) -> Front {
        let (bytes_read, newest, total_bytes) =
            (reader.bytes_read(), reader.newest(), reader.total_bytes());
        let stages = Box::new(Stages {
            reader,
            decoder,
            record: Record {
                frame: 0,
                time: 0.0,
                link_type: 0,
                iface: 0,
                data: Vec::new(),
            },
        });
        let at = match thread {
            Some(limits) => match Away::spawn(stages, limits, tap) {
                Ok(away) => At::Away(away),
                Err(stages) => At::Here(stages),
            },
            None => At::Here(stages),
        };
        Front {
            at,
            marks: Marks {
                started: false,
                bytes_read,
                newest,
            },
            total_bytes,
        }
    }

    /// Take up to `max` records through the decoder into `feed`: true when `max` were
    /// taken; false when the input ended first, once the decoder has handed on what it
    /// still held; the error that stopped reading, if one did (then the records still held
    /// for time order are not passed on, and every later call returns the error again).
    pub fn take<F: Feed>(&mut self, max: usize, feed: &mut F) -> Result<bool, InputError> {
        match &mut self.at {
            At::Here(s) => {
                let s = &mut **s;
                for _ in 0..max {
                    if !s.reader.next_record_into(&mut s.record) {
                        if let Some(e) = s.reader.error() {
                            return Err(e.clone());
                        }
                        s.decoder.finish(feed);
                        return Ok(false);
                    }
                    if !self.marks.started {
                        feed.first_record(s.record.time);
                        self.marks.started = true;
                    }
                    s.decoder.decode(&s.record, feed);
                }
                Ok(true)
            }
            At::Away(_) if max == 0 => Ok(true),
            At::Away(away) => match away.take(max, feed, &mut self.marks) {
                None => Ok(true),
                Some(done) => {
                    let Done { stages, error } = *done;
                    // Dropping `Away` joins the thread, which has sent its last batch.
                    self.at = At::Here(stages);
                    match error {
                        Some(e) => Err(e),
                        None => Ok(false),
                    }
                }
            },
        }
    }

    /// Whether the reader and the decoder are on a thread of their own.
    pub fn away(&self) -> bool {
        matches!(self.at, At::Away(_))
    }

    /// The reader and the decoder: always when they run here, else once the input has
    /// been read (or reading stopped on an error).
    pub fn stages(&self) -> Option<&Stages> {
        match &self.at {
            At::Here(s) => Some(s),
            At::Away(_) => None,
        }
    }

    /// The reader's `bytes_read` as of the last record taken (for progress).
    pub fn bytes_read(&self) -> u64 {
        match &self.at {
            At::Here(s) => s.reader.bytes_read(),
            At::Away(_) => self.marks.bytes_read,
        }
    }

    /// The reader's `newest` as of the last record taken.
    pub fn newest(&self) -> f64 {
        match &self.at {
            At::Here(s) => s.reader.newest(),
            At::Away(_) => self.marks.newest,
        }
    }

    /// Size of the input files on disk.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

/// The copy of a payload's fields that crosses; its bytes are the next `len` bytes of the
/// batch's buffer.
#[derive(Clone, Copy)]
struct Meta {
    frame: u64,
    time: Time,
    iface: u32,
    len: u32,
    transport: Transport,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    /// Found in a tunnel: the tunnel is the batch's next (tunnels are rare, and would make
    /// an item larger; the flag fits in its padding).
    tunneled: bool,
}

#[derive(Clone, Copy)]
enum Item {
    /// A record was read: what it decoded to follows, up to the next mark. With the
    /// reader's `bytes_read` and `newest` just after it.
    Record {
        time: Time,
        bytes_read: u64,
        newest: f64,
    },
    /// The input ended: what follows is what the decoder still held.
    Finish,
    Payload(Meta),
    /// The batch's next quote (quotes are rare, and carry their own bytes).
    Icmp,
}

/// The reader and the decoder coming back, and the error that stopped reading.
struct Done {
    stages: Box<Stages>,
    error: Option<InputError>,
}

/// Batches go back to the thread once played, to be filled again: the allocator is not
/// asked for (and does not return to the system) two buffers a millisecond.
struct Batch {
    /// Items own nothing, so that clearing a played batch costs nothing.
    items: Vec<Item>,
    data: Vec<u8>,
    quotes: VecDeque<IcmpQuote>,
    tunnels: VecDeque<Tunnel>,
    /// Bytes of the quotes' data, counted against the byte limit.
    quoted: usize,
    /// The last record's items go on in the next batch.
    split: bool,
    /// On the last batch.
    done: Option<Box<Done>>,
}

impl Batch {
    fn new(limits: Limits) -> Batch {
        Batch {
            items: Vec::with_capacity(limits.items + 64),
            data: Vec::with_capacity(limits.bytes + 4096),
            quotes: VecDeque::new(),
            tunnels: VecDeque::new(),
            quoted: 0,
            split: false,
            done: None,
        }
    }

    /// Whether the batch holds `times` its limits.
    fn full(&self, limits: Limits, times: usize) -> bool {
        self.items.len() >= times * limits.items
            || self.data.len() + self.quoted >= times * limits.bytes
    }
}

/// The thread's end: it fills batches and sends them.
struct Fill {
    tx: SyncSender<Batch>,
    /// Played batches, back from the caller.
    spare: Receiver<Batch>,
    limits: Limits,
    batch: Batch,
    /// The caller hung up (the engine was dropped): stop.
    gone: bool,
}

impl Fill {
    fn send(&mut self, split: bool) {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Batch::new(self.limits));
        let mut batch = std::mem::replace(&mut self.batch, next);
        batch.split = split;
        if self.gone || self.tx.send(batch).is_err() {
            self.gone = true;
        }
    }

    /// Mid-record: send only a batch that grew to twice its limits.
    fn check(&mut self) {
        if self.batch.full(self.limits, 2) {
            self.send(true);
        }
    }
}

impl Sink for Fill {
    fn payload(&mut self, p: &PayloadRef<'_>) {
        let meta = Meta {
            frame: p.frame,
            time: p.time,
            iface: p.iface,
            // At most a record's bytes (256 KiB), or a 64 KiB DNS message.
            len: u32::try_from(p.data.len()).unwrap_or(u32::MAX),
            transport: p.transport,
            src: p.src,
            sport: p.sport,
            dst: p.dst,
            dport: p.dport,
            tunneled: p.tunnel.is_some(),
        };
        if let Some(&t) = p.tunnel {
            self.batch.tunnels.push_back(t);
        }
        self.batch.items.push(Item::Payload(meta));
        self.batch.data.extend_from_slice(p.data);
        self.check();
    }

    fn icmp(&mut self, q: IcmpQuote) {
        self.batch.quoted += q.data.len();
        self.batch.quotes.push_back(q);
        self.batch.items.push(Item::Icmp);
        self.check();
    }
}

/// Read and decode everything, sending batches, until the input ends, reading stops on an
/// error, or the caller hangs up.
fn produce(mut stages: Box<Stages>, mut fill: Fill, mut tap: impl FnMut(&Record)) {
    let s = &mut *stages;
    while s.reader.next_record_into(&mut s.record) {
        tap(&s.record);
        fill.batch.items.push(Item::Record {
            time: s.record.time,
            bytes_read: s.reader.bytes_read(),
            newest: s.reader.newest(),
        });
        s.decoder.decode(&s.record, &mut fill);
        if fill.batch.full(fill.limits, 1) {
            fill.send(false);
        }
        if fill.gone {
            return;
        }
    }
    let error = s.reader.error().cloned();
    if error.is_none() {
        fill.batch.items.push(Item::Finish);
        s.decoder.finish(&mut fill);
    }
    fill.batch.done = Some(Box::new(Done { stages, error }));
    fill.send(false);
}

/// What the caller knows of the records taken.
#[derive(Clone, Copy)]
struct Marks {
    /// The first record has been taken.
    started: bool,
    /// The reader's `bytes_read` and `newest` just after the last record taken, while the
    /// reader is away.
    bytes_read: u64,
    newest: f64,
}

/// The caller's end of the thread.
struct Away {
    /// None once the caller hangs up.
    rx: Option<Receiver<Batch>>,
    spare: SyncSender<Batch>,
    thread: Option<JoinHandle<()>>,
    /// The batch being played, the next item and where the next payload's bytes start.
    batch: Batch,
    at: usize,
    pos: usize,
}

impl Away {
    /// Start the thread, and hand it the stages once it runs (so that they are still here,
    /// given back, if it cannot be started).
    fn spawn(
        stages: Box<Stages>,
        limits: Limits,
        tap: impl FnMut(&Record) + Send + 'static,
    ) -> Result<Away, Box<Stages>> {
        let (tx, rx) = sync_channel(limits.depth);
        let (spare_tx, spare_rx) = sync_channel(limits.depth + 2);
        let (give, take) = sync_channel::<Box<Stages>>(1);
        let spawned = std::thread::Builder::new()
            .name("pcapdns-read".into())
            .spawn(move || {
                if let Ok(stages) = take.recv() {
                    let fill = Fill {
                        tx,
                        spare: spare_rx,
                        limits,
                        batch: Batch::new(limits),
                        gone: false,
                    };
                    produce(stages, fill, tap);
                }
            });
        let Ok(thread) = spawned else {
            return Err(stages);
        };
        if let Err(back) = give.send(stages) {
            let _ = thread.join();
            return Err(back.0);
        }
        Ok(Away {
            rx: Some(rx),
            spare: spare_tx,
            thread: Some(thread),
            batch: Batch {
                items: Vec::new(),
                data: Vec::new(),
                quotes: VecDeque::new(),
                tunnels: VecDeque::new(),
                quoted: 0,
                split: false,
                done: None,
            },
            at: 0,
            pos: 0,
        })
    }

    /// Play up to `max` (at least one) records' items into `feed`, waiting for the thread
    /// when they are not here yet; or, when the input ends first, what the decoder still
    /// held, and then the end itself.
    fn take<F: Feed>(&mut self, max: usize, feed: &mut F, marks: &mut Marks) -> Option<Box<Done>> {
        let mut taken = 0;
        loop {
            let Some(&item) = self.batch.items.get(self.at) else {
                // The batch is played. Unless the record (or the end's flush) goes on in
                // the next, this is the end of a record.
                if !self.batch.split {
                    if taken == max {
                        return None;
                    }
                    if let Some(done) = self.batch.done.take() {
                        return Some(done);
                    }
                }
                self.recv();
                continue;
            };
            match item {
                Item::Record { .. } | Item::Finish if taken == max => return None,
                Item::Record {
                    time,
                    bytes_read,
                    newest,
                } => {
                    taken += 1;
                    if !marks.started {
                        feed.first_record(time);
                        marks.started = true;
                    }
                    marks.bytes_read = bytes_read;
                    marks.newest = newest;
                }
                Item::Payload(m) => {
                    let tunnel = if m.tunneled {
                        self.batch.tunnels.pop_front()
                    } else {
                        None
                    };
                    let end = self.pos + m.len as usize;
                    let data = self.batch.data.get(self.pos..end).unwrap_or_default();
                    self.pos = end;
                    feed.payload(&PayloadRef {
                        frame: m.frame,
                        time: m.time,
                        iface: m.iface,
                        transport: m.transport,
                        src: m.src,
                        sport: m.sport,
                        dst: m.dst,
                        dport: m.dport,
                        data,
                        tunnel: tunnel.as_ref(),
                    });
                }
                Item::Icmp => {
                    if let Some(q) = self.batch.quotes.pop_front() {
                        feed.icmp(q);
                    }
                }
                // What follows is played up to the last batch (`taken` stays below `max`).
                Item::Finish => {}
            }
            self.at += 1;
        }
    }

    /// The next batch; the one played goes back to the thread. When the thread is gone
    /// without its last batch it panicked: its panic goes on here, on the caller's thread,
    /// where the Python binding turns it into an exception.
    fn recv(&mut self) {
        if let Some(Ok(batch)) = self.rx.as_ref().map(Receiver::recv) {
            let mut played = std::mem::replace(&mut self.batch, batch);
            played.items.clear();
            played.data.clear();
            played.quoted = 0;
            let _ = self.spare.try_send(played);
            self.at = 0;
            self.pos = 0;
            return;
        }
        self.rx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            _ => panic!("the reading thread ended before the end of the input"),
        }
    }
}

impl Drop for Away {
    /// Hang up first, so that a thread waiting for room in the channel wakes to a closed
    /// one and returns; then wait for it: no thread outlives its engine.
    fn drop(&mut self) {
        self.rx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::Config;
    use crate::read::open_inputs;
    use crate::types::Decoded;

    /// What the front hands on, collected.
    #[derive(Default)]
    struct Collect {
        first: Option<Time>,
        out: Vec<Decoded>,
    }

    impl Sink for Collect {
        fn payload(&mut self, p: &PayloadRef<'_>) {
            self.out.payload(p);
        }
        fn icmp(&mut self, q: IcmpQuote) {
            self.out.icmp(q);
        }
    }

    impl Feed for Collect {
        fn first_record(&mut self, time: Time) {
            self.first.get_or_insert(time);
        }
    }

    const SMALL: Limits = Limits {
        items: 2,
        bytes: 64,
        depth: 1,
    };

    fn sample(
        name: &str,
        thread: Option<Limits>,
        tap: impl FnMut(&Record) + Send + 'static,
    ) -> Front {
        let path = format!("{}/../sample_pcaps/{name}", env!("CARGO_MANIFEST_DIR"));
        let reader = open_inputs(&[path], 0.5).expect("the sample opens");
        Front::with(reader, FrameDecoder::new(&Config::default()), thread, tap)
    }

    #[test]
    fn an_item_is_as_large_as_the_memory_bound_says() {
        assert_eq!(std::mem::size_of::<Item>(), ITEM_BYTES);
    }

    #[test]
    fn the_same_payloads_in_the_same_order() {
        let mut here = Collect::default();
        let mut front = sample("tc-glibc-a-aaaa-tcp.pcap", None, |_| {});
        while front.take(3, &mut here) == Ok(true) {}
        let mut away = Collect::default();
        let mut front = sample("tc-glibc-a-aaaa-tcp.pcap", Some(SMALL), |_| {});
        assert!(front.away());
        while front.take(3, &mut away) == Ok(true) {}
        assert!(!front.away(), "the reader and decoder are back at the end");
        assert!(!here.out.is_empty());
        assert_eq!((here.first, here.out), (away.first, away.out));
    }

    /// A panic on the reading thread goes on on the caller's thread, with its message, the
    /// way the Python binding turns it into an exception; never an abort or a hang.
    #[test]
    fn a_panic_on_the_thread_reaches_the_caller() {
        let mut front = sample("tc-glibc-a-aaaa-tcp.pcap", Some(SMALL), |r| {
            assert!(r.frame < 5, "frame {} is one too many", r.frame);
        });
        let mut feed = Collect::default();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            while front.take(1, &mut feed) == Ok(true) {}
        }));
        let payload = caught.expect_err("the thread's panic reached the caller");
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("frame 5 is one too many"), "{text:?}");
        drop(front);
    }

    /// Dropping the front (an exception or Ctrl-C in Python drops the engine) stops the
    /// thread while it waits for room in the channel, and waits for it to end.
    #[test]
    fn dropping_the_front_stops_the_thread() {
        let alive = Arc::new(());
        let held = Arc::clone(&alive);
        let mut front = sample("tc-glibc-a-aaaa-tcp.pcap", Some(SMALL), move |_| {
            let _ = &held;
        });
        let mut feed = Collect::default();
        assert_eq!(front.take(1, &mut feed), Ok(true));
        // The thread fills the channel and waits (the sample has more batches than fit).
        assert_eq!(Arc::strong_count(&alive), 2, "the thread holds its tap");
        let started = Instant::now();
        drop(front);
        assert_eq!(
            Arc::strong_count(&alive),
            1,
            "the thread ended with the front"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
