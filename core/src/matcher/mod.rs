//! DNS messages -> transactions and lookups, with a bounded state machine.
//!
//! Messages arrive in capture-time order. The matcher keeps only what is in flight:
//!
//! * `pending`: unmatched queries by (transport, client IP, client port, ID, question), in
//!   the order sent (an ordered set per key: O(1) removal);
//! * `pending_to`: the same, by server address too, for the preferred match (only the
//!   queries of keys that hold several: a key's only query is its own preferred match);
//! * `groups`: the newest query of each (transport, client, server, question), to chain
//!   retransmissions into lookups;
//! * the fan-out windows: recent queries by (transport, client, port, ID, question), to see
//!   one query sent to several servers (a window with a count per server: O(1) a query),
//!   kept in `pending` beside the queries of the same key;
//! * `a_waiting` / `aaaa_recent`: recent A and AAAA queries per socket, to pair them;
//! * `tc_waiting`: TC=1 responses waiting for the client's next query for that question;
//! * `tc_seen`: when each (client, name) last got a TC=1 answer over UDP, so that the TCP
//!   queries that follow join the UDP lookups they re-ask;
//! * `by_id`: the newest query per (client, port, ID), to attach ICMP errors;
//! * `unanswered`: queries not yet answered, in time order;
//! * `answered` / `answered_tc`: answered queries waiting out their last window;
//! * `xfr`: zone transfers (AXFR/IXFR over TCP) whose answer is still arriving.
//!
//! A query is closed when nothing can change what it says any more:
//!
//! * unanswered: `max_wait` after it was sent (a later response is unsolicited);
//! * answered: `answer_linger` (1 s) after its response, which covers the A/AAAA pairing
//!   window (0.5 s) and the ICMP error a closed client port sends right after a late
//!   answer;
//! * answered with TC=1 over UDP: `tc_fallback_window` after the response, to see the TCP
//!   retry.
//!
//! Memory therefore grows with the unanswered queries of the last `max_wait` seconds and
//! the answered ones of the last second, never with the length of the capture;
//! `max_in_flight` and `max_in_flight_bytes` cap it even for a flood.
//!
//! Closing a query makes its `Transaction`; when every attempt of a lookup is closed, the
//! `Lookup` is emitted. Cross-query facts are decided by whichever query closes second: the
//! A/AAAA pair's concurrency and race are set on the pair member that closes last. The end
//! of the capture closes everything still open (`finish`).
//!
//! Queries are shared (`Rc`) by the indexes; a lookup's attempts live in a slab slot that
//! the queries name by index, so the only reference cycle is an open A/AAAA pair, which the
//! second close (or dropping the matcher) breaks.

mod close;
pub mod records;
pub mod state;

use std::collections::VecDeque;
use std::rc::Rc;

use crate::config::Config;
use crate::hash::Seeded;
use crate::legs::DnatPairs;
use crate::types::{addr_text, IcmpQuote, Msg, Time, Transport, QR, TC};
use close::close_early;
pub use close::Settlement;
pub use records::{Attempts, Event, Lookup, Orphan, OrphanKind, RetransmissionKind, Transaction};
pub use state::MatchStats;
use state::{
    answer_only, drop_held, enqueue, fan_out, put, slot_counts, take, take_newest, Answered, Group,
    GroupKey, IdKey, Map, Name, PendingKey, PendingToKey, Put, QTable, Query, SeenKey, Slot,
    Socket, TcKey, Waiting, Xfr, XfrKey, NONE,
};

/// Estimated memory of one query in flight beyond its DNS bytes: the message record, its
/// state, the index entries and the lookup it starts (the Python side's measurement; the
/// caps mean the same in both).
pub const QUERY_BYTES: i64 = 1700;
/// ... and of the response matched to it.
pub const RESPONSE_BYTES: i64 = 400;

const A: u16 = 1;
const AAAA: u16 = 28;
const AXFR: u16 = 252;
const IXFR: u16 = 251;

/// Feed messages in time order with `message`; closed records queue up for `drain`.
pub struct Matcher {
    cfg: Config,
    pub stats: MatchStats,
    /// Capture time so far (the newest message or ICMP error).
    pub now: Time,
    /// A response exactly max_wait late still matches; close a little after that.
    unanswered_close: Time,
    seed: Seeded,
    /// The queries waiting for an answer, and the fan-out window, by key.
    pending: Map<PendingKey, Slot>,
    pending_to: Map<PendingToKey, Slot>,
    groups: QTable<Rc<Query>>,
    a_waiting: QTable<Waiting>,
    aaaa_recent: QTable<Waiting>,
    tc_waiting: Map<TcKey, Vec<Rc<Query>>>,
    tc_seen: Map<SeenKey, Time>,
    by_id: QTable<Rc<Query>>,
    /// Unanswered queries in the order sent; a slot is emptied when its query is answered
    /// or closed. `unanswered_base` is the absolute position of the front slot.
    unanswered: VecDeque<Option<Rc<Query>>>,
    unanswered_base: u64,
    answered: VecDeque<(Time, Rc<Query>)>,
    answered_tc: VecDeque<(Time, Rc<Query>)>,
    /// Queries not yet closed, and what they hold in memory (estimated, bytes).
    pub open: usize,
    pub bytes: i64,
    /// Zone transfers in progress.
    xfr: Map<XfrKey, Xfr>,
    next_lookup: u64,
    last_close: Time,
    /// End of the capture, known once `finish` is called.
    at_end: Option<Time>,
    /// Time of the capture's first packet, set by the caller before the first message: a
    /// response without a query soon after it answers a query sent before the capture.
    pub capture_start: Option<Time>,
    /// Lookups in flight; queries name their slot by index.
    slab: Vec<Group>,
    free: Vec<u32>,
    /// Lookups and orphans decided so far, in order, until the caller drains them.
    pub out: Vec<Event>,
    /// (Service address, DNAT target) pairs shown by the legs of the queries closed so far
    /// (`crate::legs`).
    pub dnat: DnatPairs,
}

impl Matcher {
    pub fn new(cfg: &Config) -> Matcher {
        let seed = Seeded::new();
        Matcher {
            cfg: cfg.clone(),
            stats: MatchStats::default(),
            now: f64::NEG_INFINITY,
            unanswered_close: cfg.max_wait + 0.5,
            pending: Map::with_hasher(seed),
            pending_to: Map::with_hasher(seed),
            groups: QTable::new(),
            a_waiting: QTable::new(),
            aaaa_recent: QTable::new(),
            tc_waiting: Map::with_hasher(seed),
            tc_seen: Map::with_hasher(seed),
            by_id: QTable::new(),
            unanswered: VecDeque::new(),
            unanswered_base: 0,
            answered: VecDeque::new(),
            answered_tc: VecDeque::new(),
            open: 0,
            bytes: 0,
            xfr: Map::with_hasher(seed),
            seed,
            next_lookup: 1,
            last_close: f64::NEG_INFINITY,
            at_end: None,
            capture_start: None,
            slab: Vec::new(),
            free: Vec::new(),
            out: Vec::new(),
            dnat: DnatPairs::default(),
        }
    }

    /// Move the lookups and orphans decided so far to `out`, in the order decided.
    pub fn drain(&mut self, out: &mut Vec<Event>) {
        if out.is_empty() {
            // The usual case (the caller empties `out` between steps): hand the events
            // over without copying them, and keep the caller's vector for the next ones.
            std::mem::swap(out, &mut self.out);
        } else {
            out.append(&mut self.out);
        }
    }

    // -- input ---------------------------------------------------------------------------

    pub fn message(&mut self, m: Msg) {
        self.advance(m.time);
        if m.flags & QR != 0 {
            self.response(m);
        } else {
            self.query(m);
        }
    }

    /// Capture time moved on to `t`: close what can no longer change (once a second).
    fn advance(&mut self, t: Time) {
        if t > self.now {
            self.now = t;
            if self.now - self.last_close >= 1.0 {
                self.close_due();
            }
        }
    }

    /// An ICMP error quoting a DNS datagram: evidence for the query it concerns.
    pub fn icmp(&mut self, e: &IcmpQuote) {
        // Time moves on for ICMP too: an error long after a query was closed must not be
        // pinned on it because no DNS message came in between.
        self.advance(e.time);
        self.stats.icmp_errors += 1;
        let (Some(&b0), Some(&b1)) = (e.data.first(), e.data.get(1)) else {
            self.icmp_orphan(e, "quotes too little of the DNS message to identify it");
            return;
        };
        let ident = u16::from_be_bytes([b0, b1]);
        let is_response = e.data.get(2).is_some_and(|b| b & 0x80 != 0);
        // A server -> client datagram bounced by the client, or a client -> server query
        // bounced by the server's host.
        let key = if is_response {
            IdKey {
                client: e.dst,
                port: e.dport,
                id: ident,
            }
        } else {
            IdKey {
                client: e.src,
                port: e.sport,
                id: ident,
            }
        };
        let q = match self.by_id.query(key.hash(&self.seed), |q| key.of(q)) {
            Some(q) if !q.is_closed() => q.clone(),
            _ => {
                self.icmp_orphan(e, "matches no query in flight");
                return;
            }
        };
        // An error quoting an answer the client was sent says its port was closed, the
        // answer late; an error quoting the query, that the server's port was closed.
        q.add_icmp(e.frame, is_response && q.answered());
    }

    fn icmp_orphan(&mut self, e: &IcmpQuote, reason: &str) {
        self.out.push(Event::Orphan(Box::new(Orphan {
            kind: OrphanKind::IcmpUnmatched,
            message: None,
            frame: e.frame,
            time: e.time,
            client: addr_text(&e.dst),
            server: addr_text(&e.src),
            qname: String::new(),
            qtype: 0,
            reason: format!(
                "ICMP type {} code {} from {} {}",
                e.icmp_type,
                e.icmp_code,
                addr_text(&e.reporter),
                reason
            ),
        })));
    }

    // -- queries -------------------------------------------------------------------------

    fn query(&mut self, m: Msg) {
        let st = &mut self.stats;
        st.queries += 1;
        match m.transport {
            Transport::Udp => st.queries_udp += 1,
            Transport::Tcp => st.queries_tcp += 1,
        }
        let name = Name::new(&m);
        let q = Rc::new(Query::new(m, name.clone()));
        // The query holds the message from here on.
        let m = &q.msg;
        let t = m.time;
        let (put, slot) = put(
            &mut self.pending,
            pending_key(m, m.src, m.sport, &name),
            &q,
            0,
        );
        fan_out(
            &mut slot.fan,
            &q,
            self.cfg.fanout_window,
            &self.seed,
            &mut self.stats,
        );
        // The key again only for the few keys that hold several queries.
        match put {
            Put::First => {}
            Put::Second(first) => {
                let pkey = pending_key(m, m.src, m.sport, &name);
                self.pend_to(&pkey, &first);
                self.pend_to(&pkey, &q);
            }
            Put::More => self.pend_to(&pending_key(m, m.src, m.sport, &name), &q),
        }
        let ikey = IdKey {
            client: m.src,
            port: m.sport,
            id: m.id,
        };
        self.by_id
            .replace(ikey.hash(&self.seed), |p| ikey.of(p), q.clone(), 1);

        // Retransmission: same transport, client, server and question as the previous
        // query of the group, while that one is unanswered, within the window.
        let gkey = group_key(m, m.transport, &name);
        // The new query is the group's newest from now on (the TCP fallback below looks at
        // the UDP group of the question, never at this key).
        let prev = self
            .groups
            .replace(gkey.hash(&self.seed), |p| gkey.of(p), q.clone(), 0);
        let fallback = if m.transport == Transport::Tcp {
            self.tcp_fallback_of(m, &name)
        } else {
            None
        };
        let cfg = &self.cfg;
        let open_prev = prev
            .as_ref()
            .filter(|p| !p.answered() && p.group.get() != NONE);
        let gi = match (open_prev, &fallback) {
            (Some(p), _)
                if t - p.msg.time <= cfg.retransmission_window
                    // A new ID right after the previous query is a second lookup asked in
                    // parallel (browsers, phones), not a resolver's retry.
                    && (p.msg.id == m.id || t - p.msg.time >= cfg.retransmission_min_gap) =>
            {
                q.attempt.set(p.attempt.get() + 1);
                q.retransmission.set(Some(RetransmissionKind::of(
                    p.msg.id == m.id,
                    p.msg.sport == m.sport,
                )));
                p.retried.set(true);
                self.stats.retransmissions += 1;
                p.group.get()
            }
            (_, Some(f)) => {
                // The TCP retry after a truncated answer is the same lookup asked again,
                // not a retransmission (that definition keeps the transport in its key).
                let gi = f.group.get();
                q.attempt.set(self.slab[gi as usize].max_attempt + 1);
                q.tcp_fallback.set(true);
                self.stats.tcp_fallback_queries += 1;
                gi
            }
            (p, None) => {
                if p.is_some_and(|p| t - p.msg.time < cfg.retransmission_min_gap) {
                    self.stats.parallel_lookups += 1;
                }
                self.new_group()
            }
        };
        q.group.set(gi);
        let g = &mut self.slab[gi as usize];
        g.members += 1;
        g.max_attempt = g.max_attempt.max(q.attempt.get());
        g.has_fallback |= q.tcp_fallback.get();

        // TC fallback: this is the client's next query for a truncated question. Several
        // TC answers can wait for the same retry (musl asks every nameserver).
        let waiting = if self.tc_waiting.is_empty() {
            None
        } else {
            self.tc_waiting.remove(&TcKey {
                client: m.src,
                qtype: m.qtype,
                name: name.clone(),
            })
        };
        if let Some(waiting) = waiting {
            for tq in waiting {
                // A query after the window is not the fallback: that is "nothing within 5 s".
                if tq
                    .response_time()
                    .is_some_and(|rt| t - rt <= self.cfg.tc_fallback_window)
                {
                    tq.set_tc_next(m.clone());
                }
                self.resolve_tc(&tq);
            }
        }

        if m.transport == Transport::Udp && (m.qtype == A || m.qtype == AAAA) {
            self.pair(&q);
        }
        self.open += 1;
        self.bytes += QUERY_BYTES + m.data.len() as i64;
        q.cell
            .set(self.unanswered_base + self.unanswered.len() as u64);
        self.unanswered.push_back(Some(q));
        if self.over_cap() {
            self.make_room();
        }
    }

    /// `q` waits under `key` with other queries: index it by server too, for the preferred
    /// match (a key with one query needs no second index to prefer its server).
    fn pend_to(&mut self, key: &PendingKey, q: &Rc<Query>) {
        q.pended_to.set(true);
        let tkey = PendingToKey {
            key: key.clone(),
            server: q.msg.dst,
        };
        put(&mut self.pending_to, tkey, q, 1);
    }

    fn over_cap(&self) -> bool {
        self.open > self.cfg.max_in_flight || self.bytes > self.cfg.max_in_flight_bytes as i64
    }

    fn new_group(&mut self) -> u32 {
        let id = self.next_lookup;
        self.next_lookup += 1;
        let gi = match self.free.pop() {
            Some(gi) => gi,
            None => {
                self.slab.push(Group::default());
                (self.slab.len() - 1) as u32
            }
        };
        let g = &mut self.slab[gi as usize];
        g.id = id;
        g.members = 0;
        g.max_attempt = 0;
        g.has_fallback = false;
        gi
    }

    /// The open UDP query whose lookup this TCP query re-asks, if any.
    ///
    /// After a TC=1 answer a resolver asks again over TCP (RFC 7766 section 5); glibc
    /// closes its UDP socket and re-asks both A and AAAA, so the query for the other type
    /// follows too, although its own UDP answer was not truncated.
    fn tcp_fallback_of(&self, m: &Msg, name: &Name) -> Option<Rc<Query>> {
        let seen = *self.tc_seen.get(&SeenKey {
            client: m.src,
            name: name.clone(),
        })?;
        if m.time - seen > self.cfg.tc_fallback_window {
            return None;
        }
        let key = group_key(m, Transport::Udp, name);
        let udp = self.groups.query(key.hash(&self.seed), |q| key.of(q))?;
        let gi = udp.group.get();
        if gi == NONE || udp.is_closed() {
            return None;
        }
        if self.slab[gi as usize].has_fallback {
            return None; // already re-asked; a second TCP query is that one's business
        }
        Some(udp.clone())
    }

    /// Pair each A query with the earliest unpaired AAAA from the same socket.
    fn pair(&mut self, q: &Rc<Query>) {
        let m = &q.msg;
        let socket = Socket {
            client: m.src,
            port: m.sport,
            server: m.dst,
            name: &q.name,
        };
        let hash = socket.hash(&self.seed);
        if m.qtype == A {
            q.is_a.set(true);
            let since = m.time - self.cfg.pair_before;
            match take(&mut self.aaaa_recent, hash, &socket, since) {
                Some(partner) => self.link(q, &partner),
                None => enqueue(&mut self.a_waiting, hash, &socket, q),
            }
        } else {
            let since = m.time - self.cfg.pair_after;
            match take(&mut self.a_waiting, hash, &socket, since) {
                Some(partner) => self.link(&partner, q),
                None => enqueue(&mut self.aaaa_recent, hash, &socket, q),
            }
        }
    }

    fn link(&mut self, a: &Rc<Query>, aaaa: &Rc<Query>) {
        *a.pair.borrow_mut() = Some(aaaa.clone());
        *aaaa.pair.borrow_mut() = Some(a.clone());
        self.stats.a_aaaa_pairs += 1;
    }

    // -- responses -----------------------------------------------------------------------

    fn response(&mut self, m: Msg) {
        self.stats.responses += 1;
        let name = Name::new(&m);
        let pkey = || pending_key(&m, m.dst, m.dport, &name);
        let oldest = m.time - self.cfg.max_wait;
        // The newest query sent to the response's source, else the newest to any server
        // (kube-proxy DNAT rewrote the address). A key with one query is its own answer
        // either way.
        let mut q = match answer_only(&mut self.pending, pkey(), m.time, oldest) {
            Answered::Only(q) => Some(q),
            Answered::Nothing => None,
            Answered::Several => self.answer_several(pkey(), m.src, m.time, oldest),
        };
        if let Some(q) = &q {
            q.pended.set(false);
            q.pended_to.set(false);
        }
        if q.is_none() && m.qname.is_none() {
            q = self.questionless_match(&m);
        }
        let Some(q) = q else {
            if m.transport == Transport::Tcp && self.continues_xfr(&m, &name) {
                self.stats.continuation_responses += 1;
                return;
            }
            if self
                .capture_start
                .is_some_and(|start| m.time - start <= self.cfg.max_wait)
            {
                // Its query may well have gone out before the capture started (or sits in
                // an overwritten file of a ring): not the server's fault.
                self.stats.responses_before_capture += 1;
                return;
            }
            self.stats.unsolicited_responses += 1;
            self.out.push(Event::Orphan(Box::new(Orphan {
                kind: OrphanKind::UnsolicitedResponse,
                message: Some(m.clone()),
                frame: m.frame,
                time: m.time,
                client: addr_text(&m.dst),
                server: addr_text(&m.src),
                qname: m.qname.as_deref().unwrap_or("").to_string(),
                qtype: m.qtype,
                reason: "no query in flight with this client port, ID and question".to_string(),
            })));
            return;
        };
        let m = q.set_response(m);
        self.clear_cell(&q);
        self.bytes += RESPONSE_BYTES + m.data.len() as i64;
        let tc_udp = m.flags & TC != 0 && m.transport == Transport::Udp;
        if tc_udp {
            self.answered_tc
                .push_back((m.time + self.cfg.tc_fallback_window + 0.5, q.clone()));
        } else {
            self.answered
                .push_back((m.time + self.cfg.answer_linger, q.clone()));
            if self.answered.len() > self.cfg.max_lingering {
                // A burst (often with one time stamp: nothing closes by time) must not
                // hold every answered query: close the oldest by count too.
                close_early(self, false);
            }
        }
        if self.bytes > self.cfg.max_in_flight_bytes as i64 {
            self.make_room();
        }
        self.stats.answered_queries += 1;
        self.stats.count_rcode(m.rcode());
        if m.transport == Transport::Tcp && (m.qtype == AXFR || m.qtype == IXFR) {
            let x = Xfr {
                name: name.clone(),
                qtype: m.qtype,
                last: m.time,
            };
            self.xfr.insert((m.dst, m.dport, m.src, m.sport, m.id), x);
        }
        if tc_udp {
            self.stats.tc_responses += 1;
            let tkey = TcKey {
                client: m.dst,
                qtype: m.qtype,
                name: q.name.clone(),
            };
            self.tc_waiting.entry(tkey).or_default().push(q.clone());
            self.tc_seen.insert(
                SeenKey {
                    client: m.dst,
                    name: q.name.clone(),
                },
                m.time,
            );
        }
    }

    /// The query a response from `server` answers among several under `pkey` (every one
    /// is in `pending_to` too): the newest sent to `server`, else the newest to any.
    fn answer_several(
        &mut self,
        pkey: PendingKey,
        server: std::net::IpAddr,
        t: Time,
        oldest: Time,
    ) -> Option<Rc<Query>> {
        let tkey = PendingToKey {
            key: pkey.clone(),
            server,
        };
        if let Some(q) = take_newest(&mut self.pending_to, tkey, t, oldest, 1) {
            drop_held(&mut self.pending, pkey, &q, 0);
            return Some(q);
        }
        let q = take_newest(&mut self.pending, pkey.clone(), t, oldest, 0)?;
        let tkey = PendingToKey {
            key: pkey,
            server: q.msg.dst,
        };
        drop_held(&mut self.pending_to, tkey, &q, 1);
        Some(q)
    }

    /// Whether `m` is a further message of a zone transfer on its connection.
    ///
    /// A transfer answers in many messages with the query's ID (RFC 5936 section 2.2) and
    /// may take far longer than the query stays open, so it is followed by connection, not
    /// by query. Later messages may leave the question out (section 2.2.1; BIND does).
    fn continues_xfr(&mut self, m: &Msg, name: &Name) -> bool {
        let key = (m.dst, m.dport, m.src, m.sport, m.id);
        let Some(x) = self.xfr.get_mut(&key) else {
            return false;
        };
        if m.time - x.last > self.cfg.max_wait {
            return false;
        }
        if m.qname.is_some() && (x.name != *name || x.qtype != m.qtype) {
            return false;
        }
        x.last = m.time;
        true
    }

    /// A response without a question section (allowed for FORMERR, NOTIMP and the like,
    /// RFC 1035 4.1.2 and RFC 6891 7) matches the newest unanswered query from the same
    /// client port with the same ID.
    fn questionless_match(&mut self, m: &Msg) -> Option<Rc<Query>> {
        let key = IdKey {
            client: m.dst,
            port: m.dport,
            id: m.id,
        };
        let q = self
            .by_id
            .query(key.hash(&self.seed), |q| key.of(q))?
            .clone();
        if q.answered()
            || q.is_closed()
            || q.msg.transport != m.transport
            || q.msg.time > m.time
            || q.msg.time < m.time - self.cfg.max_wait
        {
            return None;
        }
        self.unpend(&q);
        Some(q)
    }

    /// Decide, once, whether a TC=1 response was followed by a TCP query.
    fn resolve_tc(&mut self, q: &Query) {
        let Some(rt) = q.response_time() else { return };
        if q.tc_followed.get().is_some() {
            return;
        }
        let nxt = q.tc_next();
        let window = self.cfg.tc_fallback_window;
        if nxt.is_none() && self.at_end.is_some_and(|end| end - rt < window) {
            // The capture stopped before the client's time to retry was up: undecided.
            self.stats.tc_open_at_end += 1;
            return;
        }
        let followed =
            nxt.is_some_and(|(transport, time)| transport == Transport::Tcp && time - rt <= window);
        q.tc_followed.set(Some(followed));
        if followed {
            self.stats.tc_followed_by_tcp += 1;
        } else {
            self.stats.tc_without_tcp_retry += 1;
        }
    }

    /// Sizes of the indexes, for tests of bounded memory.
    pub fn table_sizes(&self) -> [(&'static str, usize); 11] {
        [
            ("pending", slot_counts(&self.pending).0),
            ("pending_to", slot_counts(&self.pending_to).0),
            ("groups", self.groups.len()),
            ("fanout", slot_counts(&self.pending).1),
            ("a_waiting", self.a_waiting.len()),
            ("aaaa_recent", self.aaaa_recent.len()),
            ("tc_waiting", self.tc_waiting.len()),
            ("by_id", self.by_id.len()),
            ("xfr", self.xfr.len()),
            ("open", self.open),
            ("lookups_in_flight", self.slab.len() - self.free.len()),
        ]
    }
}

impl Drop for Matcher {
    /// Break the A/AAAA cycles of queries still open (every open query is in the
    /// unanswered or an answered queue), so that dropping an unfinished matcher frees
    /// everything.
    fn drop(&mut self) {
        let answered = self
            .answered
            .iter()
            .chain(self.answered_tc.iter())
            .map(|(_, q)| q);
        for q in answered.chain(self.unanswered.iter().flatten()) {
            q.pair.borrow_mut().take();
        }
    }
}

fn pending_key(m: &Msg, client: std::net::IpAddr, port: u16, name: &Name) -> PendingKey {
    PendingKey {
        transport: m.transport,
        client,
        port,
        id: m.id,
        qtype: m.qtype,
        qclass: m.qclass,
        name: name.clone(),
    }
}

fn group_key<'a>(m: &Msg, transport: Transport, name: &'a Name) -> GroupKey<'a> {
    GroupKey {
        transport,
        client: m.src,
        server: m.dst,
        qtype: m.qtype,
        qclass: m.qclass,
        name,
    }
}

#[cfg(test)]
mod tests;
