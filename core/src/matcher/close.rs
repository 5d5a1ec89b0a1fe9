//! Closing queries: by time (once a second), by count and memory (the caps), and at the
//! end of the capture. A close makes the query's transaction; the close of a lookup's last
//! attempt emits the lookup.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::mem;
use std::rc::Rc;

use super::records::{Event, Lookup, Transaction};
use super::state::{
    clear_fans, drop_held, expire_fans, waiting_newest, Map, MatchStats, PendingToKey, Query,
    TcKey, NONE,
};
use super::{pending_key, Matcher, QUERY_BYTES, RESPONSE_BYTES};
use crate::legs::{answer_fault, LegFault};
use crate::types::Msg;
use crate::types::{Time, Transport, TC};

impl Matcher {
    // The negated comparisons keep what the Python side keeps, NaN included.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub(super) fn close_due(&mut self) {
        let now = self.now;
        self.last_close = now;
        for tc in [false, true] {
            let mut until_warm = 0;
            loop {
                let queue = if tc {
                    &mut self.answered_tc
                } else {
                    &mut self.answered
                };
                match queue.front() {
                    Some((due, _)) if *due < now => {}
                    _ => break,
                }
                if until_warm == 0 {
                    warm(queue.iter().take(WARM).map(|(_, q)| q));
                    until_warm = WARM;
                }
                until_warm -= 1;
                let (_, q) = queue.pop_front().expect("front was there");
                if !q.is_closed() {
                    self.close(&q);
                }
            }
        }
        let limit = now - self.unanswered_close;
        while let Some(front) = self.unanswered.front() {
            match front {
                Some(q) if !q.is_closed() => {
                    if q.msg.time < limit {
                        let q = q.clone();
                        self.pop_unanswered();
                        self.close(&q);
                    } else {
                        break;
                    }
                }
                _ => {
                    self.pop_unanswered();
                }
            }
        }
        self.sweep(now);
        if !self.tc_seen.is_empty() {
            let window = self.cfg.tc_fallback_window;
            self.tc_seen.retain(|_, v| !(now - *v > window));
        }
        // A transfer silent for max_wait is over (its connection is long closed).
        let wait = self.cfg.max_wait;
        self.xfr.retain(|_, x| !(now - x.last > wait));
    }

    fn pop_unanswered(&mut self) -> Option<Option<Rc<Query>>> {
        let q = self.unanswered.pop_front();
        if q.is_some() {
            self.unanswered_base += 1;
        }
        q
    }

    pub(super) fn clear_cell(&mut self, q: &Query) {
        let pos = q.cell.get();
        if pos >= self.unanswered_base {
            if let Some(slot) = self
                .unanswered
                .get_mut((pos - self.unanswered_base) as usize)
            {
                if slot
                    .as_ref()
                    .is_some_and(|x| std::ptr::eq(Rc::as_ptr(x), q))
                {
                    *slot = None;
                }
            }
        }
    }

    /// Over `max_in_flight` or `max_in_flight_bytes`: close answered queries before their
    /// linger is over (they only wait for a late pair or ICMP error), oldest first; then
    /// the oldest unanswered queries (evicted: an answer after it is unsolicited).
    pub(super) fn make_room(&mut self) {
        while self.over_cap() {
            if !(close_early(self, false) || close_early(self, true) || self.evict_oldest()) {
                return;
            }
        }
    }

    /// Close the oldest unanswered query now.
    fn evict_oldest(&mut self) -> bool {
        while let Some(slot) = self.pop_unanswered() {
            if let Some(q) = slot {
                if !q.is_closed() {
                    self.stats.evicted += 1;
                    self.close(&q);
                    return true;
                }
            }
        }
        false
    }

    /// Remove `q` from the queries waiting for a response (O(1)).
    pub(super) fn unpend(&mut self, q: &Rc<Query>) {
        if !q.pended.replace(false) {
            return; // answered already: in neither table
        }
        let m = &q.msg;
        let key = pending_key(m, m.src, m.sport, &q.name);
        if q.pended_to.replace(false) {
            drop_held(&mut self.pending, key.clone(), q, 0);
            drop_held(
                &mut self.pending_to,
                PendingToKey { key, server: m.dst },
                q,
                1,
            );
        } else {
            drop_held(&mut self.pending, key, q, 0);
        }
    }

    /// Forget fan-out and pairing windows that went quiet (once a second: each key was
    /// created by a query of the last second or so, so this is O(1) a query).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn sweep(&mut self, now: Time) {
        let limit = now - self.cfg.fanout_window;
        expire_fans(&mut self.pending, limit);
        let limit = now - self.cfg.pair_after.max(self.cfg.pair_before);
        for table in [&mut self.a_waiting, &mut self.aaaa_recent] {
            table.retain(|v| !(waiting_newest(v).unwrap_or(limit - 1.0) < limit));
            if table.capacity() > 64 * table.len() + 4096 {
                table.shrink_to_fit(|_, _| {});
            }
        }
        shrink(&mut self.pending);
        shrink(&mut self.tc_seen);
        shrink(&mut self.xfr);
    }

    /// Remove a closing query from every index that may still point at it.
    fn forget(&mut self, q: &Rc<Query>) {
        let m = &q.msg;
        self.unpend(q);
        // The fan-out and pairing windows drop closed queries as they expire (a query
        // closes long after those windows), and sweep forgets keys that went quiet.
        // It leaves groups and by_id at the slots it kept there: no key is hashed again.
        self.groups.forget(q, 0);
        self.by_id.forget(q, 1);
        let tc = q.response().is_some_and(|r| r.flags & TC != 0);
        if tc && m.transport == Transport::Udp {
            let tkey = TcKey {
                client: m.src,
                qtype: m.qtype,
                name: q.name.clone(),
            };
            if let Some(waiting) = self.tc_waiting.get_mut(&tkey) {
                if let Some(i) = waiting.iter().position(|x| Rc::ptr_eq(x, q)) {
                    waiting.remove(i);
                    if waiting.is_empty() {
                        self.tc_waiting.remove(&tkey);
                    }
                }
            }
            self.resolve_tc(q);
        }
    }

    fn close(&mut self, q: &Rc<Query>) {
        let m = &q.msg;
        self.open -= 1;
        self.bytes -= QUERY_BYTES + m.data.len() as i64;
        let response = q.response().cloned();
        if let Some(r) = &response {
            self.bytes -= RESPONSE_BYTES + r.data.len() as i64;
        }
        self.clear_cell(q);
        self.forget(q);
        if response.is_none() {
            self.stats.unanswered_queries += 1;
        }
        let mut concurrent = false;
        let mut race = false;
        let mut lost_retried = false;
        let mut pair_answered = None;
        let mut pair_response_frame = None;
        let mut pair_transaction = None;
        let other = q.pair.borrow().clone();
        if let Some(other) = &other {
            let other_tx = other.transaction().cloned();
            if let Some(other_tx) = other_tx {
                // Both members are final now: decide the pair here, on the one closing last.
                let other_resp = other.response_time();
                pair_answered = Some(other_resp.is_some());
                pair_response_frame = other.response().map(|r| r.frame);
                let (a, aaaa) = if q.is_a.get() { (q, other) } else { (other, q) };
                let a_resp = a.response_time();
                concurrent = a_resp.is_none_or(|rt| aaaa.msg.time < rt);
                if concurrent {
                    self.stats.a_aaaa_same_port_concurrent += 1;
                    race = a_resp.is_none() == aaaa.answered();
                    if race {
                        let lost = if a_resp.is_none() { a } else { aaaa };
                        lost_retried = lost.retried.get();
                        // A race cut by the end of the capture, its lost query not retried,
                        // is counted once the policy has decided it (`settle`).
                        if lost_retried || self.at_end.is_none() {
                            self.stats.a_aaaa_race_lost += 1;
                        }
                    }
                }
                *other.pair.borrow_mut() = None; // break the cycle; both are closed
                pair_transaction = Some(other_tx);
            }
        }
        let gi = q.group.get();
        let (icmp_frames, late_icmp_frames) = q.take_icmp();
        let leg_fault = self.leg_fault(m, response.as_ref());
        let tx = Rc::new(Transaction {
            query: m.clone(),
            response,
            lookup_id: if gi == NONE {
                0
            } else {
                self.slab[gi as usize].id
            },
            attempt: q.attempt.get(),
            retransmission: q.retransmission.get(),
            fanout_of: q.fanout_of(),
            tc_followed_by_tcp: q.tc_followed.get(),
            tc_next_query_frame: q.tc_next_frame(),
            pair_frame: other.as_ref().map(|o| o.msg.frame),
            pair_concurrent: concurrent,
            pair_race_lost: race,
            pair_lost_retried: lost_retried,
            pair_answered,
            icmp_frames,
            late_icmp_frames,
            pair_response_frame,
            pair_transaction,
            tcp_fallback: q.tcp_fallback.get(),
            leg_fault,
            upstream_of: None,
            forwarded_as: None,
        });
        q.set_closed(tx.clone());
        if gi == NONE {
            return;
        }
        let g = &mut self.slab[gi as usize];
        g.closed.push(tx);
        if g.closed.len() == g.members {
            self.emit(gi);
        }
    }

    /// What the legs of query `m` and its answer `response` say (`Transaction::leg_fault`),
    /// after learning the DNAT pairs they show.
    fn leg_fault(&mut self, m: &Msg, response: Option<&Msg>) -> Option<LegFault> {
        let queried = m.dst;
        if response.is_some_and(|r| r.src == queried) && !m.legs.any() {
            return None; // the usual case: answered from the address asked, one copy
        }
        if let Some(l) = m.legs.find(|l| l.addr != queried) {
            self.dnat.add(queried, l.addr);
        }
        match response {
            Some(r) => {
                if r.src != queried && r.legs.find(|l| l.addr == queried).is_some() {
                    self.dnat.add(queried, r.src);
                }
                let dnat = &self.dnat;
                answer_fault(queried, &m.legs, r.src, &r.legs, |a| {
                    dnat.is_target_of(queried, a)
                })
            }
            // No copy of the query left the node, while other queries to its address did
            // go on to a DNAT target.
            None if !m.legs.any() && self.dnat.is_service(queried) => Some(LegFault::LostInNode),
            None => None,
        }
    }

    fn emit(&mut self, gi: u32) {
        let g = &mut self.slab[gi as usize];
        let mut attempts = mem::take(&mut g.closed);
        let answer = if attempts.len() == 1 {
            // Most lookups: one query, nothing to order.
            attempts[0].response.is_some().then_some(0)
        } else {
            attempts.sort_by(|a, b| {
                cmp_time(a.query.time, b.query.time).then(a.query.frame.cmp(&b.query.frame))
            });
            usable_answer(&attempts)
        };
        // The slot goes back to the free list (its closed queries never read it again).
        let id = g.id;
        self.free.push(gi);
        let st = &mut self.stats;
        st.lookups += 1;
        if answer.is_none() {
            st.failed_lookups += 1;
        }
        let lookup = Lookup {
            id,
            attempts,
            answer,
            end: self.at_end,
            open_at_end: false,
        };
        if !lookup.needs_policy() {
            count_failed(st, &lookup);
        }
        self.out.push(Event::Lookup(lookup));
    }

    /// The capture ended at `end` (None: at the newest message): close everything still
    /// in flight.
    pub fn finish(&mut self, end: Option<Time>) {
        self.at_end = Some(end.unwrap_or(self.now));
        let mut seen = HashSet::new();
        let mut still_open: Vec<Rc<Query>> = Vec::new();
        let answered = self
            .answered
            .iter()
            .chain(self.answered_tc.iter())
            .map(|(_, q)| q);
        for q in answered
            .filter(|q| !q.is_closed())
            .chain(self.unanswered.iter().flatten())
        {
            if seen.insert(Rc::as_ptr(q)) {
                still_open.push(q.clone());
            }
        }
        still_open
            .sort_by(|a, b| cmp_time(a.msg.time, b.msg.time).then(a.msg.frame.cmp(&b.msg.frame)));
        for q in &still_open {
            if !q.is_closed() {
                self.close(q);
            }
        }
        self.unanswered_base += self.unanswered.len() as u64;
        self.unanswered.clear();
        self.answered.clear();
        self.answered_tc.clear();
        self.tc_waiting.clear();
        self.xfr.clear();
        clear_fans(&mut self.pending);
        self.a_waiting.clear();
        self.aaaa_recent.clear();
    }
}

/// Queries closed in a row whose memory is loaded at once (see `warm`).
const WARM: usize = 16;

/// Queries close a second or more after they were made, long out of the cache; closing one
/// reads it, its message and its answer. Load those of the next few in one tight loop, so
/// that they wait for memory together instead of one after the other.
fn warm<'a>(queries: impl Iterator<Item = &'a Rc<Query>>) {
    for q in queries {
        let response = q.response().map(|r| r.time);
        std::hint::black_box((q.msg.time, q.msg.data.len(), response));
    }
}

/// Close the oldest query still open in an answered queue before its time.
pub(super) fn close_early(m: &mut Matcher, tc: bool) -> bool {
    loop {
        let queue = if tc {
            &mut m.answered_tc
        } else {
            &mut m.answered
        };
        let Some((_, q)) = queue.pop_front() else {
            return false;
        };
        if !q.is_closed() {
            m.stats.closed_early += 1;
            m.close(&q);
            return true;
        }
    }
}

/// Python's order of floats (equal when ==), total for the sort.
fn cmp_time(a: Time, b: Time) -> Ordering {
    if a == b {
        Ordering::Equal
    } else {
        a.total_cmp(&b)
    }
}

/// Let a hash map give memory back after a burst (not after each sweep of a window that
/// refills within the second: regrowing it would cost more than the memory is worth).
fn shrink<K: std::hash::Hash + Eq, V>(t: &mut Map<K, V>) {
    if t.capacity() > 64 * t.len() + 4096 {
        t.shrink_to_fit();
    }
}

/// The attempt whose answer the client could use first.
///
/// A truncated UDP answer followed by the TCP retry, an answer the client's closed port
/// bounced (ICMP port unreachable) and one that never reached the client's socket
/// (`Transaction::leg_fault`) reached the wire but not the application: the
/// earliest other answer is the one that ended the wait. When there is none, the earliest
/// answer of any kind stands (the lookup was answered on the wire).
fn usable_answer(attempts: &[Rc<Transaction>]) -> Option<usize> {
    let fallback = attempts.iter().any(|t| t.tcp_fallback);
    let earliest = |usable_only: bool| {
        let mut best: Option<(usize, Time)> = None;
        for (i, t) in attempts.iter().enumerate() {
            let Some(r) = &t.response else { continue };
            if usable_only
                && (!t.late_icmp_frames.is_empty()
                    || (fallback && t.tc_over_udp())
                    || t.undelivered())
            {
                continue;
            }
            if best.is_none_or(|(_, bt)| r.time < bt) {
                best = Some((i, r.time));
            }
        }
        best.map(|(i, _)| i)
    };
    earliest(true).or_else(|| earliest(false))
}

/// Count `lookup` among the failed ones if it failed (its policy decisions made).
fn count_failed(st: &mut MatchStats, lookup: &Lookup) {
    if lookup.failed() {
        st.lookups_failed += 1;
        if lookup.answer_tx().is_some_and(|a| !a.undelivered()) {
            st.lookups_failed_late += 1;
        }
    }
}

/// The policy's decisions about a lookup the end of the capture left open
/// (`Lookup::needs_policy`), made by pcapdns/policy.py from the lookup's facts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settlement {
    /// The lookup failed, but the client may still have been waiting when the capture
    /// ended.
    pub open_at_end: bool,
    /// Attempts (indexes) holding a race the policy found undecided too: the lost query's
    /// answer may have come after the capture stopped, so it is no race lost.
    pub races_undone: Vec<usize>,
}

impl Matcher {
    /// Record the policy's decisions about `lookup` (one that `needs_policy`) and count it:
    /// still open or failed, and its races lost.
    pub fn settle(&mut self, lookup: &mut Lookup, s: &Settlement) {
        lookup.open_at_end = s.open_at_end && lookup.answer.is_none();
        let mut undecided = lookup.undecided_races();
        for &i in &s.races_undone {
            if let Some(t) = lookup.attempts.get_mut(i) {
                if t.pair_race_lost && !t.pair_lost_retried && lookup.end.is_some() {
                    // Copied if shared: the record goes on as the policy decided it.
                    Rc::make_mut(t).pair_race_lost = false;
                    undecided -= 1;
                }
            }
        }
        let st = &mut self.stats;
        if lookup.open_at_end {
            st.lookups_open_at_end += 1;
        }
        st.a_aaaa_race_lost += u64::from(undecided);
        count_failed(st, lookup);
    }
}
