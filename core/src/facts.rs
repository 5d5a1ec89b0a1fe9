//! The facts the window detectors need about every lookup, kept without the lookup itself.
//!
//! Most lookups of a capture are healthy: answered at their one attempt, quickly, with no
//! error. No stateless detector (pcapdns/detect/`DETECTORS`) flags one, so the per-lookup
//! path need not build it as a Python object (`may_be_flagged` says which ones it must).
//! The two window detectors also learn from the healthy lookups in between, but only a few
//! facts:
//!
//! * `stale_port`: when each (client, port, server) was last answered, and per client the
//!   port of its last answer and the last answer from another port (the *answer memory*,
//!   swept of old entries and capped); and a clock, the latest query time of any lookup
//!   (`latest_query`).
//! * `search_expansion`: a clock, the latest first-query time of any answered lookup with a
//!   question name (`latest_answered_query`).
//!
//! `Facts` keeps those facts for every closed lookup (`lookup_closed`), and says which
//! lookups the window detectors must see all the same: those they asked to watch
//! (`watch_client`, `watch_port`, `watch_name`) and the one whose clock reaches the time they
//! asked to be woken at (`wake_at`). The detectors read the facts back through
//! `answered_at`, `other_answer`, `forgotten` and the clocks; the Python detectors and the
//! engine share one `Facts` (core/src/py/facts.rs).
//!
//! The per-lookup path that gives the same findings as handing the detectors every lookup
//! (tests/detect/filtered.py is its reference), for each closed lookup and orphan in the
//! order the matcher emits them:
//!
//! ```text
//! match facts.decide(&lookup, cfg.slow) {      // lookup_closed, then may_be_flagged
//!     FLAGGED | WATCHED => collector.detect(lookup),
//!     TICK => collector.tick(),
//!     _ => {}                                  // QUIET
//! }
//! collector.orphan(orphan)                     // in its place among the lookups
//! collector.finish()                           // after the last; it calls facts.finish()
//! ```
//!
//! The next lookup's `lookup_closed` comes only after the detectors were given this one:
//! what they ask to watch while given a lookup decides what is handed over next.
//!
//! Addresses are keys as the core has them (`IpAddr`); the Python side's text addresses
//! (`addr_text`) parse back to the same ones.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::config::Config;
use crate::hash::Seeded;
use crate::matcher::Lookup;
use crate::types::{addr_text, Time, Transport, TC};

/// The tables below are keyed by capture addresses and names: the core's keyed hasher.
type Map<K, V> = HashMap<K, V, Seeded>;
type Set<K> = HashSet<K, Seeded>;

/// What `lookup_closed` asks of the caller: nothing; ...
pub const QUIET: u8 = 0;
/// ... only to let time pass in the window detectors (`FindingCollector.tick`), when the
/// lookup is not handed over anyway; ...
pub const TICK: u8 = 1;
/// ... to hand the lookup to the detectors (`FindingCollector.detect`).
pub const WATCHED: u8 = 2;
/// `decide` only: to hand the lookup to the detectors, as a stateless detector may flag it
/// (whatever the facts said).
pub const FLAGGED: u8 = 3;

/// Seconds after a stale-port run's first failed lookup during which its port must get no
/// answer (the stale-port detector's `WINDOW`; here because the answer memory is kept that
/// long).
pub const STALE_WINDOW: Time = 60.0;
/// Caps on the answer memory, for floods of ports or clients.
pub const MAX_ANSWERED: usize = 200_000;
pub const MAX_CLIENTS: usize = 50_000;
/// The answer memory is swept of old entries when it reaches a size that doubles after each
/// sweep, from this one (amortized: one map store per answer).
pub const SWEEP_MIN: usize = 4096;

const NXDOMAIN: u16 = 3;
const RCODE: u16 = 0x000F;

/// Seconds after which every answer from a time has reached the detectors.
///
/// An answered lookup closes at most max_wait after its answer (an unanswered earlier
/// attempt waits that long), plus tc_fallback_window (a TC answer waits for the TCP retry),
/// answer_linger, and the matcher's once-a-second closing.
pub fn settle_time(cfg: &Config) -> Time {
    cfg.max_wait + cfg.tc_fallback_window + cfg.answer_linger + 2.0
}

/// Seconds an answer is remembered: a failed lookup closes max_wait after its last attempt,
/// which its retries put up to about retransmission_window after the first.
pub fn answer_memory(cfg: &Config) -> Time {
    cfg.max_wait + cfg.retransmission_window + 2.0
}

/// The caps of the answer memory (`SWEEP_MIN`, `MAX_ANSWERED`, `MAX_CLIENTS` unless a test
/// wants them small).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub sweep_min: usize,
    pub max_answered: usize,
    pub max_clients: usize,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            sweep_min: SWEEP_MIN,
            max_answered: MAX_ANSWERED,
            max_clients: MAX_CLIENTS,
        }
    }
}

/// The facts of one closed lookup, as `lookup_closed` takes them (`closed` derives them
/// from a lookup).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Closed<'a> {
    /// The addresses of its queries (every attempt of a lookup has the same two).
    pub client: IpAddr,
    pub server: IpAddr,
    /// Its first and last attempt's query time.
    pub first_time: Time,
    pub last_time: Time,
    /// Its first query's question (None: no question).
    pub qname: Option<&'a str>,
    pub qtype: u16,
    pub qclass: u16,
    /// No attempt answered, the client's wait was over before the capture ended (not
    /// `open_at_end`), and the first attempt went over UDP.
    pub failed_udp: bool,
    /// An attempt answered (the lookup's `answer`, with its response); then the next four
    /// are that attempt's transport, client port, response time and response code (the
    /// flags' low 4 bits); else false, 0, 0.0, 0.
    pub answered: bool,
    pub answer_udp: bool,
    pub answer_port: u16,
    pub answer_time: Time,
    pub rcode: u16,
}

/// The answering attempt of a lookup, as `Outline` holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnswerOutline {
    pub udp: bool,
    /// The client port of its query.
    pub port: u16,
    /// Its response's time and flags (None: no response, which a lookup's answer always
    /// has; kept for the Python records, which do not promise it).
    pub response: Option<(Time, u16)>,
}

/// What `closed` and `may_be_flagged` read of a closed lookup. Built from the core's
/// `Lookup` (`outline`) or from a Python lookup record (core/src/py/facts.rs), so that both
/// go through the same derivations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outline<'a> {
    /// The first query's addresses, time and question, and its transport.
    pub client: IpAddr,
    pub server: IpAddr,
    pub first_time: Time,
    pub qname: Option<&'a str>,
    pub qtype: u16,
    pub qclass: u16,
    pub first_udp: bool,
    /// The last attempt's query time.
    pub last_time: Time,
    /// How many attempts.
    pub attempts: usize,
    pub open_at_end: bool,
    /// The answering attempt, if any.
    pub answer: Option<AnswerOutline>,
    /// The first attempt is a retransmission, part of a fan-out, lost an A/AAAA race, has
    /// ICMP errors about it or a fault in its legs (`Transaction::leg_fault`) (read by `may_be_flagged` only, and only of a lookup
    /// answered at its one attempt).
    pub first_marked: bool,
}

/// What `closed` and `may_be_flagged` read of `lookup`.
pub fn outline(lookup: &Lookup) -> Outline<'_> {
    let first = &lookup.attempts[0];
    let q = &first.query;
    let last = lookup.attempts.last().map_or(q.time, |t| t.query.time);
    let answer = lookup.answer_tx().map(|a| AnswerOutline {
        udp: a.query.transport == Transport::Udp,
        port: a.query.sport,
        response: a.response.as_ref().map(|r| (r.time, r.flags)),
    });
    Outline {
        client: q.src,
        server: q.dst,
        first_time: q.time,
        qname: q.qname.as_deref(),
        qtype: q.qtype,
        qclass: q.qclass,
        first_udp: q.transport == Transport::Udp,
        last_time: last,
        attempts: lookup.attempts.len(),
        open_at_end: lookup.open_at_end,
        answer,
        first_marked: first.retransmission.is_some()
            || first.fanout_of.is_some()
            || first.pair_race_lost
            || !first.icmp_frames.is_empty()
            || first.leg_fault.is_some(),
    }
}

impl<'a> Outline<'a> {
    /// The arguments of `Facts::lookup_closed` (see `Closed` for what each means).
    pub fn closed(&self) -> Closed<'a> {
        let mut c = Closed {
            client: self.client,
            server: self.server,
            first_time: self.first_time,
            last_time: self.last_time,
            qname: self.qname,
            qtype: self.qtype,
            qclass: self.qclass,
            failed_udp: false,
            answered: false,
            answer_udp: false,
            answer_port: 0,
            answer_time: 0.0,
            rcode: 0,
        };
        match self.answer {
            Some(AnswerOutline {
                udp,
                port,
                response: Some((time, flags)),
            }) => {
                c.answered = true;
                c.answer_udp = udp;
                c.answer_port = port;
                c.answer_time = time;
                c.rcode = flags & RCODE;
            }
            _ => c.failed_udp = self.answer.is_none() && !self.open_at_end && self.first_udp,
        }
        c
    }

    /// Whether a stateless detector may find something in the lookup: false only for a
    /// lookup answered at its one attempt, with response code 0, no TC bit, within `slow`,
    /// not a retransmission or part of a fan-out, no A/AAAA race lost, and no ICMP error
    /// about it. Such a lookup gets no finding from any of them.
    pub fn may_be_flagged(&self, slow: Time) -> bool {
        let Some(answer) = self.answer else {
            return true; // failed or open at the end
        };
        if self.attempts != 1 {
            return true; // retried or retried over TCP
        }
        let Some((time, flags)) = answer.response else {
            return true;
        };
        if flags & (TC | RCODE) != 0 {
            return true;
        }
        time - self.first_time > slow || self.first_marked
    }
}

/// The arguments of `Facts::lookup_closed` for `lookup`.
pub fn closed(lookup: &Lookup) -> Closed<'_> {
    outline(lookup).closed()
}

/// Whether a stateless detector may find something in `lookup` (`Outline::may_be_flagged`
/// with `cfg.slow`).
pub fn may_be_flagged(lookup: &Lookup, cfg: &Config) -> bool {
    outline(lookup).may_be_flagged(cfg.slow)
}

/// The first label of a name as the search-expansion detector compares names: lower case
/// (names are ASCII in presentation form), any final dots stripped, up to the first dot
/// ("" for the root). Written into `out`.
pub fn first_label_into(qname: &str, out: &mut String) {
    out.clear();
    if qname.is_ascii() {
        let label = qname.trim_end_matches('.').split('.').next().unwrap_or("");
        out.push_str(label);
        out.make_ascii_lowercase();
    } else {
        let lower = qname.to_lowercase();
        out.push_str(lower.trim_end_matches('.').split('.').next().unwrap_or(""));
    }
}

/// `first_label_into`, as a new string.
pub fn first_label(qname: &str) -> String {
    let mut out = String::new();
    first_label_into(qname, &mut out);
    out
}

/// (client, client port, server)
type PortKey = (IpAddr, u16, IpAddr);

/// The time of the last UDP answer on each (client, port, server). A busy node's clients
/// ask from a new port for every lookup and the answers are kept for tens of seconds, so
/// this holds some 100,000 entries: IPv4 ones are kept as 16-byte keys (both addresses in
/// one word) instead of 40, which halves its memory.
#[derive(Debug, Default)]
struct Answered {
    v4: Map<(u64, u16), Time>,
    other: Map<PortKey, Time>,
}

/// Where one (client, port, server) lives in `Answered`.
enum Place {
    V4((u64, u16)),
    Other(PortKey),
}

fn place(client: IpAddr, port: u16, server: IpAddr) -> Place {
    match (client, server) {
        (IpAddr::V4(c), IpAddr::V4(s)) => Place::V4((
            (u64::from(c.to_bits()) << 32) | u64::from(s.to_bits()),
            port,
        )),
        _ => Place::Other((client, port, server)),
    }
}

impl Answered {
    fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    fn get(&self, client: IpAddr, port: u16, server: IpAddr) -> Option<Time> {
        match place(client, port, server) {
            Place::V4(k) => self.v4.get(&k).copied(),
            Place::Other(k) => self.other.get(&k).copied(),
        }
    }

    /// Remember `t` for the key unless a later time is remembered (a new key only for a
    /// time above -inf).
    fn set_latest(&mut self, client: IpAddr, port: u16, server: IpAddr, t: Time) {
        fn latest<K: std::hash::Hash + Eq>(map: &mut Map<K, Time>, k: K, t: Time) {
            match map.entry(k) {
                Entry::Occupied(mut e) => {
                    if *e.get() < t {
                        e.insert(t);
                    }
                }
                Entry::Vacant(e) => {
                    if Time::NEG_INFINITY < t {
                        e.insert(t);
                    }
                }
            }
        }
        match place(client, port, server) {
            Place::V4(k) => latest(&mut self.v4, k, t),
            Place::Other(k) => latest(&mut self.other, k, t),
        }
    }

    fn retain(&mut self, keep: impl Fn(Time) -> bool) {
        retain(&mut self.v4, &keep);
        retain(&mut self.other, &keep);
    }

    fn times(&self) -> impl Iterator<Item = Time> + '_ {
        self.v4.values().chain(self.other.values()).copied()
    }

    /// Room for `total` entries in all, no more.
    fn shrink_to(&mut self, total: usize) {
        self.other.shrink_to(self.other.len());
        self.v4.shrink_to(total.saturating_sub(self.other.len()));
    }
}

/// Keep the entries of `map` whose time `keep` accepts, in the table it has.
///
/// `HashMap::retain` leaves most removed slots as tombstones, which take room as entries
/// do until the table is rebuilt, and `shrink_to` rebuilds it only for fewer buckets: a
/// table swept from 90,000 answers to 45,000 kept its tombstones, ran out of room before
/// the next sweep and doubled (131,072 to 262,144 buckets, 3.3 MB to 6.6 MB with both held
/// at once), to be shrunk back at that sweep. Emptied by `drain`, which keeps the table and
/// marks every slot free, the table takes the kept entries back and fills up to its
/// capacity as it should; the copy of the kept entries lives only meanwhile (24 bytes
/// each, a third of the table's size). Keys are only looked up, so the order does not matter.
fn retain<K: std::hash::Hash + Eq, V: Copy>(map: &mut Map<K, V>, keep: impl Fn(V) -> bool) {
    let kept = map.values().filter(|t| keep(**t)).count();
    if kept == map.len() {
        return;
    }
    let mut entries = Vec::with_capacity(kept);
    entries.extend(map.drain().filter(|(_, t)| keep(*t)));
    map.extend(entries);
}

/// A client's last answer and its last answer from any other port: enough to tell whether
/// some other port was answered.
#[derive(Clone, Copy, Debug)]
struct ClientAnswers {
    /// Port and time of the client's last answer.
    port: u16,
    at: Time,
    /// Time of the last answer from any other port.
    other: Time,
}

/// Floats in Python's order (-0.0 equal to 0.0), made total for sorting (NaN, which no
/// capture time is, last).
fn order(a: Time, b: Time) -> Ordering {
    let z = |x: Time| if x == 0.0 { 0.0 } else { x };
    z(a).total_cmp(&z(b))
}

/// The answer memory and the clocks, fed every closed lookup in the order they close.
///
/// Bounded like the detectors it serves: answers older than `answer_memory` and clients
/// without an answer for `STALE_WINDOW + settle_time` are swept; over `max_answered` or
/// `max_clients` the oldest are dropped and counted in `answers_evicted`.
#[derive(Debug)]
pub struct Facts {
    memory: Time,
    client_memory: Time,
    caps: Caps,
    /// Latest query time of any lookup closed so far (its last attempt's).
    latest_query: Time,
    /// Latest first-query time of any answered lookup with a question name.
    latest_answered_query: Time,
    /// (client, port, server) -> time of its last answer over UDP.
    answered: Answered,
    sweep_at: usize,
    clients: Map<IpAddr, ClientAnswers>,
    /// Answers up to this time may have been dropped under the cap.
    forgotten: Time,
    /// Answer memory entries dropped under the caps.
    answers_evicted: u64,
    /// Sweeps of the answer memory so far.
    sweeps: u64,
    /// What the detectors asked to see: clients with stale-port runs waiting for another
    /// port's answer, (client, port, server) with a run, (client, qtype, qclass) -> first
    /// labels of search-suffix tries, and the `latest_query` time to wake them at.
    clients_watched: Set<IpAddr>,
    ports_watched: Set<PortKey>,
    names_watched: Map<(IpAddr, u16, u16), Set<Box<str>>>,
    wake: Time,
    /// A first label being compared (kept to spare an allocation per lookup).
    label: String,
}

impl Facts {
    /// The facts for an analysis with `cfg`'s windows, at the real caps.
    pub fn new(cfg: &Config) -> Facts {
        Facts::build(cfg, Caps::default())
    }

    /// The facts at other caps (small ones, for tests). Refuses caps under which the
    /// eviction would keep nothing: `max_answered` under 2, `max_clients` under 1.
    pub fn with_caps(cfg: &Config, caps: Caps) -> Result<Facts, String> {
        if caps.max_answered < 2 || caps.max_clients < 1 {
            return Err(format!(
                "caps too small: max_answered {} (at least 2), max_clients {} (at least 1)",
                caps.max_answered, caps.max_clients
            ));
        }
        Ok(Facts::build(cfg, caps))
    }

    fn build(cfg: &Config, caps: Caps) -> Facts {
        Facts {
            memory: answer_memory(cfg),
            client_memory: STALE_WINDOW + settle_time(cfg),
            caps,
            latest_query: Time::NEG_INFINITY,
            latest_answered_query: Time::NEG_INFINITY,
            answered: Answered::default(),
            sweep_at: caps.sweep_min,
            clients: Map::default(),
            forgotten: Time::NEG_INFINITY,
            answers_evicted: 0,
            sweeps: 0,
            clients_watched: Set::default(),
            ports_watched: Set::default(),
            names_watched: Map::default(),
            wake: Time::INFINITY,
            label: String::new(),
        }
    }

    // -- every closed lookup ---------------------------------------------------------------

    /// Take the facts of one closed lookup; say what the caller must do with it (`QUIET`,
    /// `TICK` or `WATCHED`).
    ///
    /// Called for every lookup in the order they close, each after the detectors were given
    /// the one before (when it was handed over): the answer depends on what they asked to
    /// watch then.
    pub fn lookup_closed(&mut self, c: &Closed<'_>) -> u8 {
        // The sweep that the previous answer made due runs now, not when the answer was
        // added, so that the detectors saw the memory with that answer before the sweep
        // (they read it only while given the lookup, and the sweep reads only the facts).
        if self.answered.len() >= self.sweep_at {
            self.sweep();
        }
        if c.last_time > self.latest_query {
            self.latest_query = c.last_time;
        }
        let mut watched = c.failed_udp; // the stale-port detector starts and grows runs
        if c.answered {
            if c.answer_udp {
                self.answer(c.client, c.answer_port, c.server, c.answer_time);
                if self.clients_watched.contains(&c.client)
                    || self
                        .ports_watched
                        .contains(&(c.client, c.answer_port, c.server))
                {
                    watched = true;
                }
            }
            if let Some(qname) = c.qname {
                if c.first_time > self.latest_answered_query {
                    self.latest_answered_query = c.first_time;
                }
                if c.rcode == NXDOMAIN {
                    watched = true; // maybe a search-suffix try of a later name
                } else if self.name_watched(c.client, c.qtype, c.qclass, qname) {
                    watched = true; // maybe the name its tries were for
                }
            }
        }
        if watched {
            WATCHED
        } else if self.latest_query >= self.wake {
            TICK
        } else {
            QUIET
        }
    }

    /// `lookup_closed` with `lookup`'s facts, then whether it must be handed over:
    /// `FLAGGED` when a stateless detector may flag it (`may_be_flagged` with `slow`), else
    /// what the facts said.
    pub fn decide(&mut self, lookup: &Lookup, slow: Time) -> u8 {
        let o = outline(lookup);
        let code = self.lookup_closed(&o.closed());
        if o.may_be_flagged(slow) {
            FLAGGED
        } else {
            code
        }
    }

    fn name_watched(&mut self, client: IpAddr, qtype: u16, qclass: u16, qname: &str) -> bool {
        if self.names_watched.is_empty() {
            return false;
        }
        let Some(labels) = self.names_watched.get(&(client, qtype, qclass)) else {
            return false;
        };
        first_label_into(qname, &mut self.label);
        labels.contains(self.label.as_str())
    }

    fn answer(&mut self, client: IpAddr, port: u16, server: IpAddr, t: Time) {
        self.answered.set_latest(client, port, server, t);
        match self.clients.get_mut(&client) {
            None => {
                self.clients.insert(
                    client,
                    ClientAnswers {
                        port,
                        at: t,
                        other: Time::NEG_INFINITY,
                    },
                );
            }
            Some(c) if c.port == port => {
                if t > c.at {
                    c.at = t;
                }
            }
            Some(c) if t >= c.at => {
                c.other = c.at;
                c.port = port;
                c.at = t;
            }
            Some(c) => {
                if t > c.other {
                    c.other = t;
                }
            }
        }
    }

    /// Drop answers too old to matter; over a cap, the oldest ones, remembering how far
    /// back answers may be missing.
    fn sweep(&mut self) {
        self.sweeps += 1;
        let now = self.latest_query;
        let floor = now - self.memory;
        self.answered.retain(|t| t >= floor);
        if self.answered.len() > self.caps.max_answered {
            let mut times: Vec<Time> = self.answered.times().collect();
            let k = times.len() - self.caps.max_answered / 2;
            let (_, cut, _) = times.select_nth_unstable_by(k, |a, b| order(*a, *b));
            let cut = *cut;
            if cut > self.forgotten {
                self.forgotten = cut;
            }
            let before = self.answered.len();
            self.answered.retain(|t| t > cut);
            self.answers_evicted += (before - self.answered.len()) as u64;
        }
        self.sweep_at = self.caps.sweep_min.max(2 * self.answered.len());
        // The map fills up to `sweep_at` again before the next sweep; beyond that its room
        // would hold the peak of a burst long gone.
        self.answered.shrink_to(self.sweep_at);
        let limit = now - self.client_memory;
        self.clients.retain(|_, c| c.at >= limit);
        if self.clients.len() > self.caps.max_clients {
            // Keep the clients answered last; a run of a dropped one is not reported. Ties
            // go by address text, so that which are kept does not depend on the map's order.
            let mut recent: Vec<(Time, String, IpAddr)> = self
                .clients
                .iter()
                .map(|(k, c)| (c.at, addr_text(k), *k))
                .collect();
            recent.sort_unstable_by(|a, b| order(a.0, b.0).then_with(|| a.1.cmp(&b.1)));
            let keep = self.caps.max_clients.div_ceil(2);
            let drop = recent.len() - keep;
            for (_, _, k) in &recent[..drop] {
                self.clients.remove(k);
            }
            self.answers_evicted += drop as u64;
        }
        self.clients.shrink_to(2 * self.clients.len());
    }

    /// The capture ended (after the detectors' own `finish`): forget everything but the
    /// clocks and the counts, what the detectors watch included.
    pub fn finish(&mut self) {
        if self.answered.len() >= self.sweep_at {
            self.sweep(); // the last answer's, so that the count is the same
        }
        self.answered = Answered::default();
        self.clients = Map::default();
        self.clients_watched = Set::default();
        self.ports_watched = Set::default();
        self.names_watched = Map::default();
        self.wake = Time::INFINITY;
    }

    // -- what the detectors read -----------------------------------------------------------

    /// Time of the last UDP answer on (client, port, server) remembered, else -inf.
    pub fn answered_at(&self, client: IpAddr, port: u16, server: IpAddr) -> Time {
        self.answered
            .get(client, port, server)
            .unwrap_or(Time::NEG_INFINITY)
    }

    /// Time of the last answer to `client` on a port other than `port` (the last answer,
    /// when that was not on `port`; else the last one before that port's), else -inf.
    pub fn other_answer(&self, client: IpAddr, port: u16) -> Time {
        match self.clients.get(&client) {
            None => Time::NEG_INFINITY,
            Some(c) if c.port == port => c.other,
            Some(c) => c.at,
        }
    }

    /// Latest query time of any lookup closed so far (its last attempt's).
    pub fn latest_query(&self) -> Time {
        self.latest_query
    }

    /// Latest first-query time of any answered lookup with a question name.
    pub fn latest_answered_query(&self) -> Time {
        self.latest_answered_query
    }

    /// Answers up to this time may have been dropped under the cap.
    pub fn forgotten(&self) -> Time {
        self.forgotten
    }

    /// Answer memory entries (client ports and clients) dropped under the caps.
    pub fn answers_evicted(&self) -> u64 {
        self.answers_evicted
    }

    /// (client, port, server) answers and clients held now, and the sweeps so far.
    pub fn answers_kept(&self) -> usize {
        self.answered.len()
    }

    pub fn clients_kept(&self) -> usize {
        self.clients.len()
    }

    pub fn sweeps(&self) -> u64 {
        self.sweeps
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    // -- what the detectors ask to see -----------------------------------------------------

    /// Hand over every lookup answered over UDP to `client`.
    pub fn watch_client(&mut self, client: IpAddr) {
        self.clients_watched.insert(client);
    }

    pub fn unwatch_client(&mut self, client: IpAddr) {
        self.clients_watched.remove(&client);
    }

    /// Hand over every lookup answered over UDP on (client, port, server).
    pub fn watch_port(&mut self, client: IpAddr, port: u16, server: IpAddr) {
        self.ports_watched.insert((client, port, server));
    }

    pub fn unwatch_port(&mut self, client: IpAddr, port: u16, server: IpAddr) {
        self.ports_watched.remove(&(client, port, server));
    }

    /// Hand over every answered lookup from `client` for `qtype` and `qclass` whose name's
    /// `first_label` is `label`.
    pub fn watch_name(&mut self, client: IpAddr, qtype: u16, qclass: u16, label: &str) {
        let labels = self
            .names_watched
            .entry((client, qtype, qclass))
            .or_default();
        if !labels.contains(label) {
            labels.insert(label.into());
        }
    }

    pub fn unwatch_name(&mut self, client: IpAddr, qtype: u16, qclass: u16, label: &str) {
        let key = (client, qtype, qclass);
        if let Some(labels) = self.names_watched.get_mut(&key) {
            labels.remove(label);
            if labels.is_empty() {
                self.names_watched.remove(&key);
            }
        }
    }

    /// Ask for a `TICK` (at least) once `latest_query` reaches `t` (inf: never); replaces
    /// the time asked before.
    pub fn wake_at(&mut self, t: Time) {
        self.wake = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn healthy() -> Closed<'static> {
        Closed {
            client: ip("10.0.3.7"),
            server: ip("10.96.0.10"),
            first_time: 10.0,
            last_time: 10.0,
            qname: Some("API.example.com"),
            qtype: 1,
            qclass: 1,
            failed_udp: false,
            answered: true,
            answer_udp: true,
            answer_port: 40000,
            answer_time: 10.001,
            rcode: 0,
        }
    }

    #[test]
    fn a_swept_table_fills_up_to_its_capacity_again() {
        // Half the answers swept, then as many new ones as were swept: the table has room
        // for them without growing (std's retain left tombstones that made it double).
        let mut a = Answered::default();
        let (c, s) = (ip("10.0.3.7"), ip("10.96.0.10"));
        let n = 90_000usize;
        for i in 0..n {
            a.set_latest(
                c,
                (i % 65_536) as u16,
                ip(&format!("10.96.{}.10", i / 65_536)),
                i as f64,
            );
        }
        let capacity = a.v4.capacity();
        a.retain(|t| t >= (n / 2) as f64);
        assert_eq!(a.len(), n / 2);
        // `capacity` counts the free slots: tombstones would take some.
        assert_eq!(a.v4.capacity(), capacity, "swept slots are not free again");
        for i in 0..n / 2 {
            a.set_latest(ip(&format!("10.1.{}.{}", i / 256, i % 256)), 53, s, 1e6);
        }
        assert_eq!(a.len(), n);
        assert_eq!(
            a.v4.capacity(),
            capacity,
            "the table grew to take back as many answers as were swept"
        );
        assert_eq!(a.get(c, 44_999, ip("10.96.0.10")), None);
        assert_eq!(a.get(c, 45_000, ip("10.96.0.10")), Some(45_000.0));
    }

    #[test]
    fn what_the_facts_ask_for() {
        let mut f = Facts::new(&Config::default());
        let args = healthy();
        let (c, s) = (args.client, args.server);
        assert_eq!(f.lookup_closed(&args), QUIET);
        assert_eq!(f.answered_at(c, 40000, s), 10.001);
        assert_eq!(f.lookup_closed(&Closed { rcode: 3, ..args }), WATCHED);
        assert_eq!(
            f.lookup_closed(&Closed {
                answered: false,
                failed_udp: true,
                ..args
            }),
            WATCHED
        );
        f.watch_port(c, 40000, s);
        assert_eq!(f.lookup_closed(&args), WATCHED);
        f.unwatch_port(c, 40000, s);
        f.watch_client(c);
        assert_eq!(
            f.lookup_closed(&Closed {
                answer_port: 40001,
                ..args
            }),
            WATCHED
        );
        assert_eq!(f.other_answer(c, 40000), 10.001);
        f.unwatch_client(c);
        f.watch_name(c, 1, 1, "api");
        assert_eq!(f.lookup_closed(&args), WATCHED);
        assert_eq!(
            f.lookup_closed(&Closed {
                qname: Some("www.example.com"),
                ..args
            }),
            QUIET
        );
        assert_eq!(f.lookup_closed(&Closed { qtype: 28, ..args }), QUIET);
        f.wake_at(20.0);
        assert_eq!(
            f.lookup_closed(&Closed {
                qtype: 28,
                last_time: 19.9,
                ..args
            }),
            QUIET
        );
        assert_eq!(
            f.lookup_closed(&Closed {
                qtype: 28,
                last_time: 20.0,
                ..args
            }),
            TICK
        );
        assert_eq!((f.latest_query(), f.latest_answered_query()), (20.0, 10.0));
        f.unwatch_name(c, 1, 1, "api");
        assert!(f.names_watched.is_empty());
    }

    #[test]
    fn first_labels_as_the_detector_compares_names() {
        assert_eq!(first_label("API.Example.com."), "api");
        assert_eq!(first_label("."), "");
        assert_eq!(first_label(""), "");
        assert_eq!(first_label("a..b"), "a");
        assert_eq!(first_label("..."), "");
        assert_eq!(first_label("Über.example"), "über");
        assert_eq!(first_label("a\\.b.example"), "a\\");
    }

    #[test]
    fn the_client_cap_keeps_the_latest_with_ties_by_address_text() {
        let cfg = Config::default();
        let caps = Caps {
            sweep_min: 4,
            max_answered: 1000,
            max_clients: 3,
        };
        let mut f = Facts::with_caps(&cfg, caps).unwrap();
        // Same answer time: "10.0.0.10" < "10.0.0.9" < "10.0.0.99" as text.
        for (i, last) in [(9u8, 5.0), (10, 5.0), (99, 5.0), (11, 4.0)] {
            let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, i));
            f.lookup_closed(&Closed {
                client,
                answer_time: last,
                ..healthy()
            });
        }
        f.lookup_closed(&healthy()); // sweeps (4 answers held)
        assert_eq!(f.sweeps(), 1);
        let kept: Vec<u8> = [9u8, 10, 11, 99]
            .into_iter()
            .filter(|i| {
                f.clients
                    .contains_key(&IpAddr::V4(Ipv4Addr::new(10, 0, 0, *i)))
            })
            .collect();
        assert_eq!(kept, vec![9, 99]); // ceil(3 / 2) kept: the latest two by (time, text)
        assert_eq!(f.answers_evicted(), 2);
    }

    #[test]
    fn caps_that_would_keep_nothing_are_refused() {
        let cfg = Config::default();
        assert!(Facts::with_caps(
            &cfg,
            Caps {
                max_answered: 1,
                ..Caps::default()
            }
        )
        .is_err());
        assert!(Facts::with_caps(
            &cfg,
            Caps {
                max_clients: 0,
                ..Caps::default()
            }
        )
        .is_err());
        assert!(Facts::with_caps(
            &cfg,
            Caps {
                sweep_min: 0,
                ..Caps::default()
            }
        )
        .is_ok());
    }

    #[test]
    fn address_text_parses_back_to_the_same_key() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&x.to_be_bytes());
            b[8..].copy_from_slice(&x.rotate_left(29).to_be_bytes());
            // Zero runs of every length and place, mapped and compatible IPv4.
            let zeros = (i % 9) as usize;
            let at = ((i / 9) % 8) as usize;
            for g in at..(at + zeros).min(8) {
                b[2 * g] = 0;
                b[2 * g + 1] = 0;
            }
            if i % 17 == 0 {
                b[..10].fill(0);
                b[10] = 0xff;
                b[11] = 0xff;
            }
            let a = IpAddr::V6(Ipv6Addr::from(b));
            assert_eq!(
                addr_text(&a).parse::<IpAddr>().unwrap(),
                a,
                "{}",
                addr_text(&a)
            );
            let v4 = IpAddr::V4(Ipv4Addr::from(x as u32));
            assert_eq!(addr_text(&v4).parse::<IpAddr>().unwrap(), v4);
        }
    }
}
