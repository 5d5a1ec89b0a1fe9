//! The whole per-packet path, wired: records -> payloads -> messages -> (duplicates
//! dropped) -> matcher -> lookups and orphans, with every lookup tallied.
//!
//! The engine runs in steps so that its caller (Python) can show progress, answer Ctrl-C
//! and hand the lookups that matter to its detectors between steps; nothing holds the
//! capture in memory, and each step's output is bounded by its record count.
//!
//! Reading and decoding run on a thread of their own when the machine has a second core
//! (`front`); the rest runs on the caller's thread, with the same result.

use crate::config::Config;
use crate::decode::{FrameDecoder, PayloadRef, Sink};
use crate::dedupe::Deduplicator;
use crate::dns;
use crate::front::{self, Feed, Front, Limits};
use crate::matcher::{Event, Lookup, Matcher, Settlement};
use crate::read::{open_inputs, InputError, Reader};
use crate::replicas::Replicas;
use crate::tally::{LookupFacts, Tallies};
use crate::types::{IcmpQuote, Time};
use crate::upstream::{Links, UpstreamTally};

/// The first this many malformed messages keep their frame and reason.
pub const MAX_MALFORMED_EXAMPLES: usize = 20;

/// Records a caller should step at a time before taking the events out. A lookup's
/// records are freshly in the cache when it is emitted; handled within a thousand records
/// they are still there, and the memory they free is reused while it is warm. Held for
/// 65,536 records, the events of a busy capture (about 30,000 lookups) had gone cold, cost
/// a cache miss at every turn, and held 40 MB.
pub const CHUNK_RECORDS: usize = 1024;

pub struct Engine {
    pub cfg: Config,
    /// The reader and the decoder (`reader`, `decoder`).
    front: Front,
    pub dedupe: Deduplicator,
    pub matcher: Matcher,
    pub tallies: Tallies,
    /// Per DNAT target: queries, failures, latency (`crate::replicas`).
    pub replicas: Replicas,
    /// The forwarder's upstream leg: its links to the downstream queries, and its tally.
    pub links: Links,
    pub upstream: UpstreamTally,
    /// Frames on a DNS port whose DNS message did not decode, and the first few reasons.
    pub malformed: u64,
    pub malformed_examples: Vec<(u64, String)>,
    exhausted: bool,
    finished: bool,
    /// The question names of the messages in memory, one copy each.
    names: dns::Names,
}

/// What the decoder finds, parsed where it lies, rid of duplicates and matched.
struct Parse<'a> {
    names: &'a mut dns::Names,
    dedupe: &'a mut Deduplicator,
    matcher: &'a mut Matcher,
    links: &'a mut Links,
    malformed: &'a mut u64,
    examples: &'a mut Vec<(u64, String)>,
}

impl Sink for Parse<'_> {
    fn payload(&mut self, p: &PayloadRef<'_>) {
        match dns::parse_shared(p, self.names) {
            Ok(m) => {
                if !self.dedupe.is_duplicate_msg(&m) {
                    self.links.message(&m);
                    self.matcher.message(m);
                }
            }
            Err(e) => {
                *self.malformed += 1;
                if self.examples.len() < MAX_MALFORMED_EXAMPLES {
                    self.examples.push((p.frame, e.to_string()));
                }
            }
        }
    }

    fn icmp(&mut self, q: IcmpQuote) {
        self.matcher.icmp(&q);
    }
}

impl Feed for Parse<'_> {
    fn first_record(&mut self, time: Time) {
        self.matcher.capture_start = Some(time);
    }
}

impl Engine {
    /// Open the capture made of `paths` (files and directories), reading and decoding on
    /// a thread of their own when there is a second core (`front::second_core`).
    pub fn open(paths: &[String], cfg: Config, keep_copies: bool) -> Result<Engine, InputError> {
        Self::open_with(paths, cfg, keep_copies, front::second_core())
    }

    /// `open`, reading and decoding on a thread of their own with batches of `thread`'s
    /// limits, or on the caller's thread when it is None.
    pub fn open_with(
        paths: &[String],
        cfg: Config,
        keep_copies: bool,
        thread: Option<Limits>,
    ) -> Result<Engine, InputError> {
        let reader = open_inputs(paths, cfg.reorder_window)?;
        let decoder = FrameDecoder::new(&cfg);
        let front = Front::new(reader, decoder, thread);
        let dedupe = Deduplicator::new(cfg.duplicate_window, keep_copies, cfg.max_dedupe_entries);
        let matcher = Matcher::new(&cfg);
        let links = Links::new(&cfg);
        Ok(Engine {
            cfg,
            front,
            dedupe,
            matcher,
            tallies: Tallies::default(),
            replicas: Replicas::default(),
            links,
            upstream: UpstreamTally::default(),
            malformed: 0,
            malformed_examples: Vec::new(),
            exhausted: false,
            finished: false,
            names: dns::Names::new(),
        })
    }

    /// Whether every record has been read (then `finish` closes what is in flight).
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    /// Read and process up to `max_records` records; closed lookups and orphans are
    /// appended to `out` (each lookup already tallied; only `finish` emits lookups that
    /// need the policy's decisions, see `settle`). Returns false once the input is
    /// exhausted (the decoder's buffers are flushed then), and the error that stopped
    /// reading, if one did (a file that became unreadable, an unsupported link type met
    /// after a file's first packet).
    pub fn step(&mut self, max_records: usize, out: &mut Vec<Event>) -> Result<bool, InputError> {
        if self.exhausted {
            return Ok(false);
        }
        let mut sink = Parse {
            names: &mut self.names,
            dedupe: &mut self.dedupe,
            matcher: &mut self.matcher,
            links: &mut self.links,
            malformed: &mut self.malformed,
            examples: &mut self.malformed_examples,
        };
        if !self.front.take(max_records, &mut sink)? {
            self.exhausted = true;
        }
        self.drain(out);
        Ok(!self.exhausted)
    }

    /// The capture ended at `end` (its last packet, or the capture agent's stop time):
    /// close everything still in flight.
    pub fn finish(&mut self, end: Option<f64>, out: &mut Vec<Event>) -> Result<(), InputError> {
        while self.step(usize::MAX, out)? {}
        if !self.finished {
            self.matcher.finish(end);
            self.finished = true;
        }
        self.drain(out);
        Ok(())
    }

    /// Whether `finish` has run (the counters are final).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The reader: always when it runs on the caller's thread, else once the input is
    /// read (`step` returned false) or reading stopped on an error.
    pub fn reader(&self) -> Option<&Reader> {
        self.front.stages().map(|s| &s.reader)
    }

    /// The decoder, when the reader is here (`reader`).
    pub fn decoder(&self) -> Option<&FrameDecoder> {
        self.front.stages().map(|s| &s.decoder)
    }

    /// Bytes of the input files consumed as of the last record taken (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.front.bytes_read()
    }

    /// Size of the input files on disk.
    pub fn total_bytes(&self) -> u64 {
        self.front.total_bytes()
    }

    /// The newest record time read as of the last record taken (-inf before any).
    pub fn newest(&self) -> f64 {
        self.front.newest()
    }

    /// Whether reading and decoding run on a thread of their own (until the input is read).
    pub fn threaded(&self) -> bool {
        self.front.away()
    }

    fn drain(&mut self, out: &mut Vec<Event>) {
        let start = out.len();
        self.matcher.drain(out);
        let mut times: Vec<f64> = Vec::new();
        for ev in &mut out[start..] {
            if let Event::Lookup(lookup) = ev {
                self.links.annotate(lookup);
                if lookup.needs_policy() {
                    continue; // tallied by `settle`
                }
                times.clear();
                times.extend(lookup.attempts.iter().map(|t| t.query.time));
                self.tallies.lookup(&facts(lookup, &times));
                // A query has a DNAT target only where the duplicate filter saw a pair.
                if !self.dedupe.dnat_pairs.pairs.is_empty() {
                    self.replicas.lookup(lookup);
                }
                self.upstream.lookup(lookup);
            }
        }
    }

    /// Record the policy's decisions about `lookup`, one the end of the capture left open
    /// (`Lookup::needs_policy`; `finish` emits them untallied), then count and tally it.
    /// The core decides nothing that `--timeout` governs: pcapdns/policy.py does, from
    /// the lookup's facts.
    pub fn settle(&mut self, lookup: &mut Lookup, s: &Settlement) {
        self.matcher.settle(lookup, s);
        let times: Vec<f64> = lookup.attempts.iter().map(|t| t.query.time).collect();
        self.tallies.lookup(&facts(lookup, &times));
        if !self.dedupe.dnat_pairs.pairs.is_empty() {
            self.replicas.lookup(lookup);
        }
        self.upstream.lookup(lookup);
    }

    /// `settle` every lookup of `events` that needs it, with the decisions `policy` makes
    /// (for callers without the Python policy: tools, benchmarks, the fuzz target and tests;
    /// `Settlement::default()` takes the facts as stated: nothing still open, every race
    /// lost).
    pub fn settle_all(&mut self, events: &mut [Event], policy: impl Fn(&Lookup) -> Settlement) {
        for ev in events {
            if let Event::Lookup(lookup) = ev {
                if lookup.needs_policy() {
                    let s = policy(lookup);
                    self.settle(lookup, &s);
                }
            }
        }
    }
}

/// What the tallies read from one closed lookup.
pub fn facts<'a>(lookup: &Lookup, times: &'a [f64]) -> LookupFacts<'a> {
    let first = lookup.first();
    let answer = lookup.answer_tx().and_then(|t| t.response.as_ref());
    LookupFacts {
        client: first.src,
        server: first.dst,
        attempt_times: times,
        retransmissions: lookup.retransmissions() as u32,
        race_lost: lookup.attempts.iter().filter(|t| t.pair_race_lost).count() as u32,
        failed: lookup.failed(),
        latency: lookup.latency(),
        rcode: answer.map(|r| r.rcode()),
    }
}
