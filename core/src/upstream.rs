//! The forwarder's two legs: which query a DNS server sent upstream for which query it was
//! asked, and a tally of the upstream leg per upstream server.
//!
//! A capture on the node of a forwarder (CoreDNS, NodeLocal DNSCache, dnsmasq) holds the
//! downstream leg (clients to the server) and the upstream leg (the server to its upstream
//! resolvers) of each forwarded lookup. A forwarder asks its upstream the question it was
//! asked while the client waits, so a query is taken as the **upstream leg** of a
//! downstream query when, as it is seen:
//!
//! * a query for the same question (name ignoring ASCII case, type, class) is in flight:
//!   sent no more than `max_wait` before and not answered yet (the forwarder is waiting);
//! * that query came from another client, and was sent to the address the new query
//!   comes from: the forwarder asks from the address it was asked at (CoreDNS from its pod
//!   IP, dnsmasq from its own address).
//!
//! Of several such queries, the newest wins. Only the newest `MAX_WALK` of a question are
//! looked at, so a query costs O(1).
//!
//! A forwarder that asks from another address than the one it was asked at (NodeLocal
//! DNSCache answers at 169.254.20.10 and asks from the node's address; two-homed
//! forwarders) is linked only once it is **learned**: on a node's capture, a pod that asks
//! the same name of another server at the same moment as another pod looks exactly like
//! it (the bench capture, pods asking both NodeLocal DNSCache and the cluster DNS, would
//! link 43,000 of its 100,000 lookups that way), and a wrong link would blame an upstream
//! for what it did not do. What tells them apart is the share: a forwarder forwards its
//! cache misses while its client waits, so nearly all of its queries would match a waiting
//! downstream query, and at once, while a pod's queries match now and then, any time
//! within `max_wait`. So for each pair of a downstream server S and another address F,
//! the queries of F that would match a query waiting at S (as above, but from F instead of
//! S, and to another server than S) within `LEARN_PROMPT` of it are counted, and so are all
//! of F's queries from its first such match on. Once a pair has
//! `LEARN_MATCHES` matches and they are at least `LEARN_SHARE_PCT` percent of F's queries,
//! F is a forwarder of S from then on (from that query on: the earlier ones stay unlinked)
//! and its matching queries are linked as the same address's are. The tables are bounded
//! (`MAX_PAIRS`, `MAX_SENDERS`, `LEARN_BYTES`; what they forget is counted in
//! `learn_evicted`). docs/analysis.md says so.
//!
//! The index holds the queries in flight by question, each question's list bounded
//! (`MAX_PER_QUESTION`), all of them bounded (`MAX_ENTRIES`, which with the fixed size of
//! an entry bounds its bytes too, `MAX_BYTES`); a query leaves when it is answered or
//! `max_wait` after it was sent, or early at a cap (counted in `evicted`). The links wait
//! in two maps for the lookups of their queries to close (`annotate` moves them onto the
//! transactions), also bounded (`MAX_LINKS`, counted in `links_evicted`).

use std::net::IpAddr;
use std::rc::Rc;

use crate::config::Config;
use crate::hash::FastMap;
use crate::matcher::{Lookup, Transaction};
use crate::tally::latency::LatencyHistogram;
use crate::types::{addr_text, Message, QName, Time, Transport, QR};

/// Queries in flight kept in the index at most.
pub const MAX_ENTRIES: usize = 100_000;
/// ... of one question (a flood of one name), the oldest forgotten first.
pub const MAX_PER_QUESTION: u32 = 64;
/// Queries of a question looked at to link a new one (the newest first).
pub const MAX_WALK: usize = 16;
/// Links waiting for their transaction to close, each way.
pub const MAX_LINKS: usize = 200_000;
/// Seconds a link waits for its transaction before a full map may drop it: a lookup
/// closes within `max_wait` of its last attempt, and its attempts within a few
/// retransmission windows of each other.
pub const LINK_KEEP: Time = 300.0;
/// Upstream servers tallied at most (each further one is counted in `servers_untallied`).
pub const MAX_SERVERS: usize = 4096;
/// Bytes of the index at its caps: an entry and up to four questions' heads (see
/// `query`'s sweep of the heads) for each.
pub const MAX_BYTES: usize =
    MAX_ENTRIES * (std::mem::size_of::<Entry>() + 4 * std::mem::size_of::<(u64, Head)>());

// docs/analysis.md states this bound.
const _: () = assert!(MAX_BYTES < 18 << 20);

/// Matches a pair (downstream server, another address asking upstream) needs before the
/// other address is taken as the server's forwarder (see the module's text).
pub const LEARN_MATCHES: u32 = 20;
/// ... and the share of the other address's queries they must be, in percent.
pub const LEARN_SHARE_PCT: u32 = 80;
/// Seconds within which a match must follow the query it matches to count towards
/// learning: a forwarder asks upstream as soon as it misses its cache, while a pod's query
/// that matches by chance may come any time within `max_wait` (docs/analysis.md has the
/// figures).
pub const LEARN_PROMPT: Time = 1.0;
/// Pairs counted at most; when full, the pairs not learned are forgotten.
pub const MAX_PAIRS: usize = 4096;
/// Addresses whose queries are counted at most; when full, the counts and the pairs not
/// learned are forgotten (the learned pairs need no count).
pub const MAX_SENDERS: usize = 16_384;
/// Bytes of the learning tables at their caps (a hash table holds at most twice its
/// entries' room, and a control byte each).
pub const LEARN_BYTES: usize =
    2 * MAX_PAIRS * (std::mem::size_of::<((IpAddr, IpAddr), Pair)>() + 1)
        + 2 * MAX_SENDERS * (std::mem::size_of::<(IpAddr, u32)>() + 1);

// docs/analysis.md states this bound.
const _: () = assert!(LEARN_BYTES < 2 << 20);

/// Distinct downstream servers a query's walk keeps as candidates of a learned forwarder.
const MAX_CANDIDATES: usize = 4;

const NIL: u32 = u32::MAX;
const RCODE: u16 = 0x000F;

/// A question's key: its name's hash ignoring ASCII case (secretly seeded, computed once
/// per name) mixed with its type and class, in one word so that a table operation hashes
/// one word. The entries keep no name: two names are taken as one when their keyed 64-bit
/// hashes agree (a chance of 2^-64 a pair, which a capture cannot aim at without the
/// seed); their type and class are compared.
fn qkey(name: &QName, qtype: u16, qclass: u16) -> u64 {
    let tc = (u64::from(qtype) << 16) | u64::from(qclass);
    name.lower_hash() ^ tc.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// What a walk of a question's list found for a new query `m`.
struct Found {
    /// The downstream query `m` is the upstream leg of, sent to the address `m` comes from
    /// (its frame and that address).
    same: Option<(u64, IpAddr)>,
    /// Else the slots of the newest query waiting at each of up to `MAX_CANDIDATES` other
    /// servers that `m` would be the upstream leg of were its source a forwarder of that
    /// server (`NIL` past the last).
    others: [u32; MAX_CANDIDATES],
}

/// The downstream query `m` is the upstream leg of, walking the question's list from
/// `first` (see the module's text); and the queries it would be were its source a learned
/// forwarder of their server.
///
/// Other servers' queries are candidates within `reach` (`max_wait` once a pair is learned,
/// else only the prompt ones that count towards learning).
fn downstream_of(slab: &[Entry], max_wait: Time, reach: Time, m: &Message, first: u32) -> Found {
    let mut found = Found {
        same: None,
        others: [NIL; MAX_CANDIDATES],
    };
    let mut i = first;
    for _ in 0..MAX_WALK {
        let Some(e) = slab.get(i as usize) else {
            break;
        };
        let slot = i;
        i = e.next;
        // Most queries of a question were sent to the server the new one goes to.
        if e.dst == m.dst
            || e.src == m.src
            || e.src == m.dst
            || m.time - e.time > max_wait
            || e.qtype != m.qtype
            || e.qclass != m.qclass
        {
            continue;
        }
        // The forwarder asks from the address it was asked at.
        if e.dst == m.src {
            found.same = Some((e.frame, e.dst));
            return found;
        }
        if m.time - e.time > reach {
            continue;
        }
        for o in found.others.iter_mut() {
            if *o == NIL {
                *o = slot;
                break;
            }
            if slab[*o as usize].dst == e.dst {
                break;
            }
        }
    }
    found
}

/// A pair's count of matches, and whether it is learned.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pair {
    matches: u32,
    learned: bool,
}

/// One query in flight, in its question's list (newest first).
#[derive(Clone, Debug)]
struct Entry {
    /// False for a free slot.
    live: bool,
    key: u64,
    qtype: u16,
    qclass: u16,
    frame: u64,
    time: Time,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    id: u16,
    udp: bool,
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy, Debug)]
struct Head {
    first: u32,
    last: u32,
    len: u32,
}

/// The index of queries in flight, and the links found.
pub struct Links {
    max_wait: Time,
    heads: FastMap<u64, Head>,
    slab: Vec<Entry>,
    free: Vec<u32>,
    /// When the index was last swept of queries older than `max_wait`.
    swept: Time,
    live: usize,
    /// Frame of an upstream query -> (frame of the downstream query it was sent for, time).
    upstream_of: FastMap<u64, (u64, Time)>,
    /// Frame of a downstream query -> (frame of the first upstream query sent for it, time).
    forwarded_as: FastMap<u64, (u64, Time)>,
    now: Time,
    /// The addresses a linked downstream query was sent to (the forwarders), up to
    /// `MAX_SERVERS`.
    forwarders: FastMap<IpAddr, ()>,
    /// (downstream server, another address) -> its matches (see the module's text).
    pairs: FastMap<(IpAddr, IpAddr), Pair>,
    /// Address -> its queries since its first match, for the pairs' shares.
    senders: FastMap<IpAddr, u32>,
    /// Pairs learned: an address that asks from another address than the server's own
    /// taken as the server's forwarder.
    pub learned: u64,
    /// Pairs and counts forgotten at `MAX_PAIRS` and `MAX_SENDERS` before they were
    /// learned (a forwarder among them is learned later, from its count anew).
    pub learn_evicted: u64,
    /// Upstream queries linked to a downstream query.
    pub linked: u64,
    /// Queries the index forgot before `max_wait` was over, at its caps: an upstream query
    /// sent for one of them is not linked.
    pub evicted: u64,
    /// Links dropped at `MAX_LINKS` before their transaction closed.
    pub links_evicted: u64,
}

impl Links {
    pub fn new(cfg: &Config) -> Links {
        Links {
            max_wait: cfg.max_wait,
            heads: FastMap::default(),
            slab: Vec::new(),
            free: Vec::new(),
            swept: f64::NEG_INFINITY,
            live: 0,
            upstream_of: FastMap::default(),
            forwarded_as: FastMap::default(),
            now: f64::NEG_INFINITY,
            forwarders: FastMap::default(),
            pairs: FastMap::default(),
            senders: FastMap::default(),
            learned: 0,
            learn_evicted: 0,
            linked: 0,
            evicted: 0,
            links_evicted: 0,
        }
    }

    /// Queries in flight in the index.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// A message as the matcher gets it (duplicates dropped), in time order.
    pub fn message(&mut self, m: &Message) {
        let Some(name) = &m.qname else {
            return;
        };
        if m.time > self.now {
            self.now = m.time;
        }
        let key = qkey(name, m.qtype, m.qclass);
        if m.flags & QR != 0 {
            self.answered(m, key);
        } else {
            self.expire();
            self.query(m, key);
        }
    }

    /// A query: link it to the downstream query it is the upstream leg of, if any, and
    /// keep it as one that may be forwarded in turn.
    fn query(&mut self, m: &Message, key: u64) {
        if self.live >= MAX_ENTRIES {
            self.sweep();
            if self.live >= MAX_ENTRIES {
                // A flood of unanswered queries: this one is not kept (it cannot be linked
                // to), rather than finding the oldest at every query.
                self.evicted += 1;
                return self.link_only(m, key);
            }
        }
        if self.heads.len() > 4 * self.live + 4096 {
            // Questions whose queries all left keep their head (the same names come back,
            // and a head taken out and put back costs two more hashes); swept here,
            // amortized O(1) a query.
            self.heads.retain(|_, h| h.len > 0);
        }
        let reach = self.reach();
        let head = self.heads.entry(key).or_insert(Head {
            first: NIL,
            last: NIL,
            len: 0,
        });
        let found = downstream_of(&self.slab, self.max_wait, reach, m, head.first);
        let e = Entry {
            live: true,
            key,
            qtype: m.qtype,
            qclass: m.qclass,
            frame: m.frame,
            time: m.time,
            src: m.src,
            dst: m.dst,
            sport: m.sport,
            id: m.id,
            udp: m.transport == Transport::Udp,
            prev: NIL,
            next: head.first,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = e;
                s
            }
            None => {
                self.slab.push(e);
                (self.slab.len() - 1) as u32
            }
        };
        self.live += 1;
        if let Some(f) = self.slab.get_mut(head.first as usize) {
            f.prev = slot;
        }
        if head.len == 0 {
            head.last = slot;
        }
        head.first = slot;
        head.len += 1;
        if head.len > MAX_PER_QUESTION {
            let last = head.last;
            unlink(&mut self.slab, head, last);
            self.free.push(last);
            self.live -= 1;
            self.evicted += 1;
        }
        self.found(m, &found);
    }

    /// How long before a query another server's query may be to be its candidate (see
    /// `downstream_of`).
    fn reach(&self) -> Time {
        if self.learned > 0 {
            self.max_wait
        } else {
            LEARN_PROMPT.min(self.max_wait)
        }
    }

    /// Link `m` as `found` says: to the query of its own address, or to one of a server it
    /// is a learned forwarder of; and count its matches and queries towards learning. The
    /// slots of `found` hold their queries still: a slot freed since (the question's oldest
    /// query, at `MAX_PER_QUESTION`) keeps its entry until a later query reuses it.
    fn found(&mut self, m: &Message, found: &Found) {
        if !self.senders.is_empty() {
            if let Some(n) = self.senders.get_mut(&m.src) {
                *n = n.saturating_add(1);
            }
        }
        let down = match found.same {
            Some(d) => Some(d),
            None if found.others[0] != NIL => self.learn(m.src, &found.others, m.time),
            None => None,
        };
        if let Some((down, server)) = down {
            self.link(m.frame, down, m.time);
            if self.forwarders.len() < MAX_SERVERS {
                self.forwarders.insert(server, ());
            }
        }
    }

    /// Count a prompt match of `from` for each server of `others`, learning the pairs
    /// that pass; the newest query of a learned pair's server, if any.
    fn learn(
        &mut self,
        from: IpAddr,
        others: &[u32; MAX_CANDIDATES],
        now: Time,
    ) -> Option<(u64, IpAddr)> {
        let mut down = None;
        let mut queries = None;
        for &slot in others.iter().take_while(|&&o| o != NIL) {
            let e = &self.slab[slot as usize];
            let (server, frame, sent) = (e.dst, e.frame, e.time);
            let key = (server, from);
            if self.pairs.get(&key).is_some_and(|p| p.learned) {
                down = down.or(Some((frame, server)));
                continue;
            }
            if now - sent > LEARN_PROMPT {
                continue;
            }
            let n = *queries.get_or_insert_with(|| self.sender(from));
            if !self.pairs.contains_key(&key) && self.pairs.len() >= MAX_PAIRS {
                let before = self.pairs.len();
                self.pairs.retain(|_, p| p.learned);
                self.learn_evicted += (before - self.pairs.len()) as u64;
                if self.pairs.len() >= MAX_PAIRS {
                    self.learn_evicted += 1;
                    continue;
                }
            }
            let p = self.pairs.entry(key).or_default();
            p.matches += 1;
            if p.matches >= LEARN_MATCHES
                && u64::from(p.matches) * 100 >= u64::from(n) * u64::from(LEARN_SHARE_PCT)
            {
                p.learned = true;
                self.learned += 1;
                down = down.or(Some((frame, server)));
            }
        }
        down
    }

    /// The queries `from` sent since its first prompt match, counting it in from this one
    /// when it is new.
    fn sender(&mut self, from: IpAddr) -> u32 {
        if let Some(&n) = self.senders.get(&from) {
            return n;
        }
        if self.senders.len() >= MAX_SENDERS {
            // Amortized O(1): once per MAX_SENDERS addresses that matched.
            self.learn_evicted += self.senders.len() as u64;
            self.senders.clear();
            let before = self.pairs.len();
            self.pairs.retain(|_, p| p.learned);
            self.learn_evicted += (before - self.pairs.len()) as u64;
        }
        self.senders.insert(from, 1);
        1
    }

    /// Whether a query sent to `addr` was linked to its upstream leg (a forwarder seen
    /// forwarding so far).
    pub fn is_forwarder(&self, addr: &IpAddr) -> bool {
        self.forwarders.contains_key(addr)
    }

    fn link(&mut self, up: u64, down: u64, t: Time) {
        self.linked += 1;
        if room(&mut self.upstream_of, t, &mut self.links_evicted) {
            self.upstream_of.insert(up, (down, t));
        }
        if !self.forwarded_as.contains_key(&down)
            && room(&mut self.forwarded_as, t, &mut self.links_evicted)
        {
            self.forwarded_as.insert(down, (up, t));
        }
    }

    /// A response: the query it answers is no longer in flight.
    fn answered(&mut self, r: &Message, key: u64) {
        let Some(head) = self.heads.get_mut(&key) else {
            return;
        };
        let udp = r.transport == Transport::Udp;
        let mut i = head.first;
        while let Some(e) = self.slab.get(i as usize) {
            if e.src == r.dst
                && e.dst == r.src
                && e.sport == r.dport
                && e.id == r.id
                && e.udp == udp
                && e.qtype == r.qtype
                && e.qclass == r.qclass
            {
                unlink(&mut self.slab, head, i);
                self.free.push(i);
                self.live -= 1;
                return;
            }
            i = e.next;
        }
    }

    /// Let go of the queries sent more than `max_wait` ago, once a second of capture time
    /// (the slab holds only the queries in flight: O(1) a query, amortized).
    fn expire(&mut self) {
        if self.now - self.swept >= 1.0 {
            self.sweep();
        }
    }

    fn sweep(&mut self) {
        self.swept = self.now;
        for slot in 0..self.slab.len() as u32 {
            let e = &self.slab[slot as usize];
            let old = e.live && self.now - e.time > self.max_wait;
            if old {
                self.remove(slot);
            }
        }
        if self.slab.len() > 1024 && self.live * 4 < self.slab.len() {
            self.compact();
        }
    }

    /// Move the queries in flight to the front of a slab their size, so that a sweep costs
    /// what is in flight, not the most that ever was (a burst long past).
    fn compact(&mut self) {
        let mut map = vec![NIL; self.slab.len()];
        let mut kept: Vec<Entry> = Vec::with_capacity(self.live);
        for (i, e) in self.slab.iter().enumerate() {
            if e.live {
                map[i] = kept.len() as u32;
                kept.push(e.clone());
            }
        }
        let remap = |x: u32| map.get(x as usize).copied().unwrap_or(NIL);
        for e in &mut kept {
            e.prev = remap(e.prev);
            e.next = remap(e.next);
        }
        self.heads.retain(|_, h| h.len > 0);
        for h in self.heads.values_mut() {
            h.first = remap(h.first);
            h.last = remap(h.last);
        }
        self.slab = kept;
        self.free.clear();
    }

    /// Link `m` without keeping it (the index is full).
    fn link_only(&mut self, m: &Message, key: u64) {
        let first = self.heads.get(&key).map_or(NIL, |h| h.first);
        let found = downstream_of(&self.slab, self.max_wait, self.reach(), m, first);
        self.found(m, &found);
    }

    /// Take the query at `slot` (which holds one) out of the index.
    fn remove(&mut self, slot: u32) {
        let Some(key) = self
            .slab
            .get(slot as usize)
            .and_then(|e| e.live.then_some(e.key))
        else {
            return;
        };
        if let Some(h) = self.heads.get_mut(&key) {
            unlink(&mut self.slab, h, slot);
            self.free.push(slot);
            self.live -= 1;
        }
    }

    /// Move the links of `lookup`'s queries onto its transactions (`upstream_of`,
    /// `forwarded_as`), as its lookup closes.
    pub fn annotate(&mut self, lookup: &mut Lookup) {
        if self.upstream_of.is_empty() && self.forwarded_as.is_empty() {
            return;
        }
        for t in lookup.attempts.iter_mut() {
            let frame = t.query.frame;
            let up = self.upstream_of.remove(&frame).map(|(f, _)| f);
            let fw = self.forwarded_as.remove(&frame).map(|(f, _)| f);
            if up.is_some() || fw.is_some() {
                let tx: &mut Transaction = Rc::make_mut(t);
                tx.upstream_of = up;
                tx.forwarded_as = fw;
            }
        }
    }
}

/// Take the entry at `slot` out of its question's list `head` and empty it.
fn unlink(slab: &mut [Entry], head: &mut Head, slot: u32) {
    let Some(e) = slab.get_mut(slot as usize) else {
        return;
    };
    e.live = false;
    let (prev, next) = (e.prev, e.next);
    if let Some(p) = slab.get_mut(prev as usize) {
        p.next = next;
    }
    if let Some(n) = slab.get_mut(next as usize) {
        n.prev = prev;
    }
    head.len -= 1;
    if head.first == slot {
        head.first = next;
    }
    if head.last == slot {
        head.last = prev;
    }
}

/// Whether `map` has room for one more link at time `now`: when full, the links older than
/// `LINK_KEEP` go (counted), and if none did, the new one is dropped (counted).
fn room(map: &mut FastMap<u64, (u64, Time)>, now: Time, evicted: &mut u64) -> bool {
    if map.len() < MAX_LINKS {
        return true;
    }
    let before = map.len();
    map.retain(|_, (_, t)| now - *t <= LINK_KEEP);
    *evicted += (before - map.len()) as u64;
    if map.len() < MAX_LINKS {
        return true;
    }
    *evicted += 1;
    false
}

/// A lookup of the upstream leg: one of its queries was sent for a downstream query.
pub fn is_upstream_leg(lookup: &Lookup) -> bool {
    lookup.attempts.iter().any(|t| t.upstream_of.is_some())
}

/// Whether an upstream-leg lookup must reach the detectors even when no stateless detector
/// would flag it: answered after more than half of `slow`, so that it may be why a
/// downstream lookup was slow (a downstream answer that took more than `slow` with an
/// upstream leg of more than half of it is the upstream's; see docs/analysis.md,
/// `upstream_slow`). Failed and error lookups are flagged anyway.
pub fn hand_over(lookup: &Lookup, slow: Time) -> bool {
    is_upstream_leg(lookup) && lookup.latency().is_some_and(|l| l > slow / 2.0)
}

/// One upstream server's lookups of the upstream leg.
#[derive(Clone, Debug, Default)]
pub struct UpstreamRow {
    /// Upstream-leg lookups (a first query and its retransmissions count once).
    pub queries: u64,
    /// Their retransmissions.
    pub retransmissions: u64,
    pub answered: u64,
    /// Not answered, and the forwarder's wait was over before the capture ended.
    pub timeouts: u64,
    /// Not answered when the capture ended, within the wait.
    pub open: u64,
    /// Answers by response code (flags' low 4 bits).
    pub rcodes: [u64; 16],
    /// Latencies of the answered lookups.
    pub latency: LatencyHistogram,
}

/// The upstream leg per upstream server, every upstream-leg lookup tallied as it closes.
#[derive(Clone, Debug, Default)]
pub struct UpstreamTally {
    /// Rows in the order their server was first tallied.
    pub rows: Vec<(IpAddr, UpstreamRow)>,
    index: FastMap<IpAddr, usize>,
    /// Lookups not tallied because `MAX_SERVERS` servers already were.
    pub servers_untallied: u64,
}

impl UpstreamTally {
    /// Tally `lookup` when it is of the upstream leg (policy decisions already recorded).
    pub fn lookup(&mut self, lookup: &Lookup) {
        if !is_upstream_leg(lookup) {
            return;
        }
        let server = lookup.first().dst;
        let i = match self.index.get(&server) {
            Some(&i) => i,
            None => {
                if self.rows.len() >= MAX_SERVERS {
                    self.servers_untallied += 1;
                    return;
                }
                self.rows.push((server, UpstreamRow::default()));
                self.index.insert(server, self.rows.len() - 1);
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[i].1;
        row.queries += 1;
        row.retransmissions += lookup.retransmissions() as u64;
        match lookup.answer_tx().and_then(|t| t.response.as_ref()) {
            Some(r) => {
                row.answered += 1;
                row.rcodes[usize::from(r.flags & RCODE)] += 1;
                if let Some(l) = lookup.latency() {
                    row.latency.add(l);
                }
            }
            None if lookup.open_at_end => row.open += 1,
            None => row.timeouts += 1,
        }
    }

    /// The rows sorted by server address text, for the documents.
    pub fn sorted(&self) -> Vec<(String, &UpstreamRow)> {
        let mut out: Vec<(String, &UpstreamRow)> =
            self.rows.iter().map(|(a, r)| (addr_text(a), r)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::rc::Rc;

    use super::*;
    use crate::matcher::{Event, Matcher, Settlement};
    use crate::types::{Msg, Transport};

    const CLIENT: &str = "10.0.0.1";
    const OTHER: &str = "10.0.0.9";
    const FWD: &str = "10.0.0.2";
    const UP: &str = "10.0.0.3";

    #[allow(clippy::too_many_arguments)]
    fn msg(
        frame: u64,
        t: f64,
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        id: u16,
        name: &str,
        rcode: Option<u16>,
    ) -> Msg {
        let flags = match rcode {
            Some(rc) => 0x8180 | rc,
            None => 0x0100,
        };
        Rc::new(Message {
            frame,
            time: t,
            iface: 0,
            transport: Transport::Udp,
            src: src.parse::<IpAddr>().unwrap(),
            sport,
            dst: dst.parse::<IpAddr>().unwrap(),
            dport,
            id,
            flags,
            qdcount: 1,
            ancount: 0,
            qname: Some(name.into()),
            qtype: 1,
            qclass: 1,
            data: Box::<[u8]>::from(&b"\0\0"[..]).into(),
            legs: Default::default(),
        })
    }

    fn query(frame: u64, t: f64, src: &str, dst: &str, id: u16, name: &str) -> Msg {
        msg(frame, t, src, 40000 + id, dst, 53, id, name, None)
    }

    fn answer(frame: u64, t: f64, q: &Msg, rcode: u16) -> Msg {
        let name = q.qname.as_deref().unwrap();
        let (src, dst) = (q.dst.to_string(), q.src.to_string());
        msg(frame, t, &src, 53, &dst, q.sport, q.id, name, Some(rcode))
    }

    /// The messages through the index and the matcher, as the engine runs them; the
    /// lookups closed, annotated, and tallied.
    fn run(msgs: &[Msg]) -> (Links, Vec<Lookup>, UpstreamTally) {
        let cfg = Config::default();
        let mut links = Links::new(&cfg);
        let mut m = Matcher::new(&cfg);
        for x in msgs {
            links.message(x);
            m.message(x.clone());
        }
        m.finish(Some(msgs.last().unwrap().time + 100.0));
        let mut ev = Vec::new();
        m.drain(&mut ev);
        let mut tally = UpstreamTally::default();
        let mut out = Vec::new();
        for e in ev {
            if let Event::Lookup(mut l) = e {
                links.annotate(&mut l);
                if l.needs_policy() {
                    m.settle(&mut l, &Settlement::default());
                }
                tally.lookup(&l);
                out.push(l);
            }
        }
        (links, out, tally)
    }

    fn by_frame(lookups: &[Lookup], frame: u64) -> &Transaction {
        lookups
            .iter()
            .flat_map(|l| l.attempts.iter())
            .find(|t| t.query.frame == frame)
            .unwrap()
    }

    #[test]
    fn the_forwarders_query_is_linked_to_the_clients_ignoring_case() {
        let down = query(1, 0.0, CLIENT, FWD, 7, "www.example.com");
        let up = query(2, 0.001, FWD, UP, 99, "WWW.Example.COM");
        let msgs = [
            down.clone(),
            up.clone(),
            answer(3, 0.050, &up, 0),
            answer(4, 0.051, &down, 0),
        ];
        let (links, lookups, tally) = run(&msgs);
        assert_eq!(links.linked, 1);
        assert_eq!(by_frame(&lookups, 2).upstream_of, Some(1));
        assert_eq!(by_frame(&lookups, 1).forwarded_as, Some(2));
        assert_eq!(by_frame(&lookups, 1).upstream_of, None);
        assert!(links.is_empty(), "answered queries leave the index");
        assert_eq!(tally.rows.len(), 1);
        let (server, row) = &tally.rows[0];
        assert_eq!(server.to_string(), UP);
        assert_eq!((row.queries, row.answered, row.timeouts), (1, 1, 0));
        assert_eq!(row.rcodes[0], 1);
        assert_eq!(row.latency.n, 1);
    }

    #[test]
    fn no_link_once_the_client_was_answered_or_for_another_question() {
        let down = query(1, 0.0, CLIENT, FWD, 7, "a.example");
        let msgs = [
            down.clone(),
            answer(2, 0.001, &down, 0),
            query(3, 0.002, FWD, UP, 9, "a.example"),
            query(4, 0.003, CLIENT, FWD, 8, "b.example"),
            msg(5, 0.004, FWD, 5353, UP, 53, 10, "c.example", None),
        ];
        let (links, lookups, tally) = run(&msgs);
        assert_eq!(links.linked, 0);
        assert!(lookups
            .iter()
            .flat_map(|l| l.attempts.iter())
            .all(|t| t.upstream_of.is_none()));
        assert!(tally.rows.is_empty());
    }

    #[test]
    fn no_link_from_another_address_or_after_max_wait() {
        // A pod asking another server the same name at the same moment is not the
        // forwarder's upstream leg; nor is a query sent when the client has given up.
        let msgs = [
            query(1, 0.0, CLIENT, FWD, 7, "a.example"),
            query(2, 0.001, OTHER, UP, 9, "a.example"),
            query(3, 31.0, FWD, UP, 10, "a.example"),
        ];
        let (links, _, _) = run(&msgs);
        assert_eq!(links.linked, 0);
    }

    #[test]
    fn the_newest_waiting_query_wins_and_each_retry_is_linked() {
        let first = query(1, 0.0, CLIENT, FWD, 7, "a.example");
        let second = query(2, 0.1, OTHER, FWD, 8, "a.example");
        let up1 = query(3, 0.101, FWD, UP, 50, "a.example");
        let retry = msg(4, 5.0, CLIENT, first.sport, FWD, 53, 7, "a.example", None);
        let up2 = query(5, 5.001, FWD, UP, 50, "a.example");
        let (links, lookups, tally) = run(&[first, second, up1, retry, up2]);
        assert_eq!(links.linked, 2);
        assert_eq!(by_frame(&lookups, 3).upstream_of, Some(2));
        assert_eq!(by_frame(&lookups, 5).upstream_of, Some(4));
        assert_eq!(by_frame(&lookups, 4).forwarded_as, Some(5));
        let row = &tally.rows[0].1;
        assert_eq!((row.queries, row.retransmissions, row.timeouts), (1, 1, 1));
    }

    #[test]
    fn an_error_from_upstream_is_tallied_by_rcode() {
        let down = query(1, 0.0, CLIENT, FWD, 7, "a.example");
        let up = query(2, 0.001, FWD, UP, 99, "a.example");
        let msgs = [
            down.clone(),
            up.clone(),
            answer(3, 0.010, &up, 2),
            answer(4, 0.011, &down, 2),
        ];
        let (_, _, tally) = run(&msgs);
        let row = &tally.rows[0].1;
        assert_eq!((row.answered, row.rcodes[2]), (1, 1));
    }

    #[test]
    fn a_flood_of_one_question_is_capped_and_counted() {
        let mut msgs = Vec::new();
        for i in 0..(u64::from(MAX_PER_QUESTION) + 10) {
            let src = format!("10.1.{}.{}", i / 250, i % 250 + 1);
            msgs.push(query(i + 1, i as f64 * 0.001, &src, FWD, 1, "a.example"));
        }
        let (links, _, _) = run(&msgs);
        assert_eq!(links.evicted, 10);
    }

    #[test]
    fn the_index_lets_go_of_unanswered_queries_after_max_wait() {
        let cfg = Config::default();
        let mut links = Links::new(&cfg);
        for i in 0..1000u64 {
            let src = format!("10.1.{}.{}", i / 250, i % 250 + 1);
            links.message(&query(
                i + 1,
                i as f64,
                &src,
                FWD,
                1,
                &format!("n{i}.example"),
            ));
        }
        assert!(links.len() <= 33, "{} queries kept", links.len());
        assert!(links.heads.len() <= 4 * links.len() + 4097);
    }

    #[test]
    fn after_a_burst_the_index_shrinks_and_still_links() {
        let cfg = Config::default();
        let mut links = Links::new(&cfg);
        for i in 0..5000u64 {
            let src = format!("10.1.{}.{}", i / 250, i % 250 + 1);
            links.message(&query(i + 1, 0.0, &src, FWD, 1, &format!("n{i}.example")));
        }
        links.message(&query(9000, 20.0, CLIENT, FWD, 7, "a.example"));
        links.message(&query(9001, 40.5, CLIENT, FWD, 8, "b.example"));
        assert_eq!(links.len(), 2);
        assert!(links.slab.len() <= 1024, "{} slots", links.slab.len());
        links.message(&query(9002, 40.6, FWD, UP, 9, "B.example"));
        assert_eq!(links.linked, 1);
        assert_eq!(links.upstream_of.get(&9002).map(|l| l.0), Some(9001));
    }

    const FWD_OUT: &str = "10.0.1.2";

    /// `n` client lookups of distinct names asked of FWD, each forwarded from `from` to UP
    /// `gap` seconds later, a second apart, from frame `frame` on.
    fn forwarded(frame: u64, n: u64, from: &str, gap: f64) -> Vec<Msg> {
        let mut out = Vec::new();
        for i in 0..n {
            let t = 100.0 + i as f64;
            let name = format!("n{i}.example");
            out.push(query(frame + 2 * i, t, CLIENT, FWD, i as u16, &name));
            out.push(query(
                frame + 2 * i + 1,
                t + gap,
                from,
                UP,
                900 + i as u16,
                &name,
            ));
        }
        out
    }

    #[test]
    fn a_forwarder_asking_from_another_address_is_linked_once_learned() {
        let n = u64::from(LEARN_MATCHES) + 5;
        let msgs = forwarded(1, n, FWD_OUT, 0.002);
        let (links, lookups, tally) = run(&msgs);
        assert_eq!(links.learned, 1);
        // The queries before the pair was learned stay unlinked; the one that made it and
        // the later ones are linked.
        assert_eq!(links.linked, 6);
        let first = 2 * u64::from(LEARN_MATCHES - 1);
        assert_eq!(by_frame(&lookups, first).upstream_of, None);
        assert_eq!(by_frame(&lookups, first + 2).upstream_of, Some(first + 1));
        assert_eq!(by_frame(&lookups, first + 1).forwarded_as, Some(first + 2));
        assert!(links.is_forwarder(&FWD.parse().unwrap()));
        assert!(!links.is_forwarder(&FWD_OUT.parse().unwrap()));
        assert_eq!(tally.rows.len(), 1);
        assert_eq!(tally.rows[0].1.queries, 6);
    }

    #[test]
    fn once_learned_a_late_retry_is_linked_within_max_wait() {
        let mut msgs = forwarded(1, u64::from(LEARN_MATCHES), FWD_OUT, 0.002);
        msgs.push(query(500, 200.0, CLIENT, FWD, 7, "late.example"));
        msgs.push(query(501, 205.0, FWD_OUT, UP, 8, "late.example"));
        let (links, lookups, _) = run(&msgs);
        assert_eq!((links.learned, links.linked), (1, 2));
        assert_eq!(by_frame(&lookups, 501).upstream_of, Some(500));
    }

    #[test]
    fn not_learned_below_the_share() {
        // F's matches are 25 of its 35 queries (71 %): it asks upstream on its own too.
        let mut msgs = forwarded(1, 1, FWD_OUT, 0.002);
        for i in 0..10u64 {
            let t = 100.5 + i as f64 * 0.01;
            msgs.push(query(
                100 + i,
                t,
                FWD_OUT,
                UP,
                300 + i as u16,
                &format!("own{i}.x"),
            ));
        }
        let mut rest = forwarded(1000, 24, FWD_OUT, 0.002);
        for m in &mut rest {
            let mut x = (**m).clone();
            x.time += 10.0;
            *m = Rc::new(x);
        }
        msgs.extend(rest);
        let (links, _, _) = run(&msgs);
        assert_eq!(links.pairs.values().map(|p| p.matches).max(), Some(25));
        assert_eq!((links.learned, links.linked), (0, 0));
    }

    #[test]
    fn a_pod_asking_the_same_names_by_chance_is_not_linked() {
        // Another pod asks another server each name a client is waiting for at FWD, but
        // seconds later, as pods do by chance: no prompt match, no link.
        let msgs = forwarded(1, 3 * u64::from(LEARN_MATCHES), OTHER, 2.0);
        let (links, _, tally) = run(&msgs);
        assert_eq!((links.learned, links.linked), (0, 0));
        assert!(links.pairs.is_empty() && links.senders.is_empty());
        assert!(tally.rows.is_empty());
        assert!(!links.is_forwarder(&FWD.parse().unwrap()));
    }

    #[test]
    fn the_learning_tables_are_capped_and_a_learned_pair_kept() {
        let cfg = Config::default();
        let mut links = Links::new(&cfg);
        for m in forwarded(1, u64::from(LEARN_MATCHES), FWD_OUT, 0.002) {
            links.message(&m);
        }
        assert_eq!(links.learned, 1);
        // Many addresses each asking one name a client of its own server waits for.
        let n = MAX_SENDERS as u64 + 10;
        for i in 0..n {
            let t = 200.0 + i as f64 * 0.0001;
            let name = format!("c{i}.example");
            let server = format!("10.2.{}.{}", (i / 250) % 250, i % 250 + 1);
            let pod = format!("10.3.{}.{}", (i / 250) % 250, i % 250 + 1);
            links.message(&query(10_000 + 2 * i, t, CLIENT, &server, 1, &name));
            links.message(&query(10_001 + 2 * i, t, &pod, UP, 2, &name));
        }
        assert!(
            links.pairs.len() <= MAX_PAIRS,
            "{} pairs",
            links.pairs.len()
        );
        assert!(
            links.senders.len() <= MAX_SENDERS,
            "{} senders",
            links.senders.len()
        );
        assert!(
            links.learn_evicted >= MAX_SENDERS as u64,
            "{}",
            links.learn_evicted
        );
        // The learned pair is kept: its next query is linked.
        let before = links.linked;
        links.message(&query(900_000, 300.0, CLIENT, FWD, 3, "again.example"));
        links.message(&query(900_001, 300.001, FWD_OUT, UP, 4, "again.example"));
        assert_eq!(links.linked, before + 1);
    }
}
