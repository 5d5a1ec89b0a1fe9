//! What the matcher emits: transactions (one query and its response) and lookups (a first
//! query, its retransmissions and its TCP fallback), and the orphans that belong to none.
//!
//! Definitions (docs/analysis.md has the full text):
//!
//! * A **transaction** is one query and the response matched to it, if any.
//! * A **lookup** is a first query and its retransmissions: the same transport, client IP,
//!   server IP and question, each sent no more than `retransmission_window` after the
//!   previous one while that one was still unanswered, plus the TCP query that re-asks its
//!   question after a TC=1 answer. Latency counts from the FIRST attempt.

use std::rc::Rc;

use crate::legs::LegFault;
use crate::types::{Msg, Time, Transport, TC};

/// For a retransmission: whether the DNS ID and the client port changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetransmissionKind {
    SameIdSamePort,
    SameIdNewPort,
    NewIdSamePort,
    NewIdNewPort,
}

impl RetransmissionKind {
    /// The kind by (same ID, same client port).
    pub fn of(same_id: bool, same_port: bool) -> Self {
        match (same_id, same_port) {
            (true, true) => RetransmissionKind::SameIdSamePort,
            (true, false) => RetransmissionKind::SameIdNewPort,
            (false, true) => RetransmissionKind::NewIdSamePort,
            (false, false) => RetransmissionKind::NewIdNewPort,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RetransmissionKind::SameIdSamePort => "same_id_same_port",
            RetransmissionKind::SameIdNewPort => "same_id_new_port",
            RetransmissionKind::NewIdSamePort => "new_id_same_port",
            RetransmissionKind::NewIdNewPort => "new_id_new_port",
        }
    }
}

/// One query and, when one was matched, its response.
#[derive(Clone, Debug)]
pub struct Transaction {
    /// The query as captured.
    pub query: Msg,
    /// The matched response, or None when none came within `max_wait`.
    pub response: Option<Msg>,
    /// Id of the lookup this query belongs to (sequential from 1 in order of first query).
    pub lookup_id: u64,
    /// 1 for the first query of the lookup, 2 for the first retransmission, ...
    pub attempt: u32,
    /// For a retransmission: whether the DNS ID and the client port changed; else None.
    pub retransmission: Option<RetransmissionKind>,
    /// Frame of the first query of the fan-out this query belongs to (same client IP,
    /// port, ID and question sent to several servers at once), or None.
    pub fanout_of: Option<u64>,
    /// For a TC=1 UDP response: whether the client's next query for the name and type went
    /// over TCP within `tc_fallback_window` (None when the response is not TC=1 UDP, or
    /// when the capture ended before that could be known).
    pub tc_followed_by_tcp: Option<bool>,
    /// Frame of the client's next query for the same name and type after a TC response.
    pub tc_next_query_frame: Option<u64>,
    /// Frame of the query this one is paired with (A with AAAA from the same socket).
    pub pair_frame: Option<u64>,
    /// True when the pair is concurrent: the AAAA was sent before the A's response arrived
    /// (or the A was never answered). Set on the member of the pair closed last, since only
    /// then are both outcomes known; false on the other member.
    pub pair_concurrent: bool,
    /// On the member closed last of a concurrent pair: true when exactly one of the two was
    /// unanswered (the conntrack race). When the capture ended before the client could
    /// have given up on the lost query, whether it stands is the policy's to decide
    /// (`Lookup::needs_policy`).
    pub pair_race_lost: bool,
    /// With `pair_race_lost`: whether the client sent the lost query again (then it had
    /// given up on it: the race stands whenever the capture ended).
    pub pair_lost_retried: bool,
    /// On the member closed last: whether the other query of the pair was answered.
    pub pair_answered: Option<bool>,
    /// Frames of ICMP destination-unreachable errors quoting this query or its response.
    pub icmp_frames: Vec<u64>,
    /// Of `icmp_frames`, those quoting the matched response: the client's port was closed
    /// when the answer came (a late answer).
    pub late_icmp_frames: Vec<u64>,
    /// Frame of the paired query's response, when the pair was decided on this member and
    /// the paired query was answered.
    pub pair_response_frame: Option<u64>,
    /// The paired query's own transaction, when the pair was decided on this member (it
    /// closed first): the evidence of a race shows both queries of the socket.
    pub pair_transaction: Option<Rc<Transaction>>,
    /// True for a TCP query that re-asked the question of its lookup after the client got
    /// a TC=1 answer over UDP. An attempt of the same lookup, not a retransmission.
    pub tcp_fallback: bool,
    /// What the legs of the query and its answer inside the node say went wrong
    /// (`crate::legs`): the query died in the node, or the answer never reached the client
    /// or came from an address it never asked. None when nothing did, or nothing shows.
    pub leg_fault: Option<LegFault>,
    /// For a query of a forwarder's upstream leg: frame of the downstream query it was sent
    /// for (set as its lookup closes, see crate::upstream).
    pub upstream_of: Option<u64>,
    /// For a downstream query a forwarder asked upstream: frame of the first upstream query
    /// sent for it.
    pub forwarded_as: Option<u64>,
}

impl Transaction {
    pub fn answered(&self) -> bool {
        self.response.is_some()
    }

    /// Seconds from this query to its response (not from the lookup's first attempt).
    pub fn latency(&self) -> Option<Time> {
        self.response.as_ref().map(|r| r.time - self.query.time)
    }

    /// The answer was captured but never reached the client's socket.
    pub fn undelivered(&self) -> bool {
        self.response.is_some() && self.leg_fault.is_some()
    }

    /// A truncated answer over UDP.
    pub(crate) fn tc_over_udp(&self) -> bool {
        self.query.transport == Transport::Udp
            && self.response.as_ref().is_some_and(|r| r.flags & TC != 0)
    }
}

/// A first query and its retransmissions, with the outcome.
#[derive(Clone, Debug)]
pub struct Lookup {
    /// Sequential id, in order of first query.
    pub id: u64,
    /// All attempts, in the order they were sent.
    pub attempts: Attempts,
    /// Index into `attempts` of the attempt whose answer the client could use first: the
    /// earliest response that is neither a truncated UDP answer followed by TCP nor one the
    /// client bounced (ICMP port unreachable); failing those, the earliest response; None
    /// when no attempt was answered.
    pub answer: Option<usize>,
    /// The capture's end, when the lookup was still in flight then (closed by the
    /// matcher's `finish`); None for a lookup closed while the capture went on.
    pub end: Option<Time>,
    /// What the policy (pcapdns/policy.py) decided: the lookup failed, but the capture
    /// ended before the client's wait after its last attempt was over, so it may still
    /// have been answered. The matcher states only the facts (`end`, the attempts); false
    /// until `Matcher::settle` records the decision.
    pub open_at_end: bool,
}

impl Lookup {
    pub fn first(&self) -> &Msg {
        &self.attempts[0].query
    }

    /// The answering attempt (see `answer`).
    pub fn answer_tx(&self) -> Option<&Rc<Transaction>> {
        self.answer.and_then(|i| self.attempts.get(i))
    }

    pub fn answered(&self) -> bool {
        self.answer.is_some()
    }

    /// Whether what the lookup means depends on the policy: the capture ended while it
    /// was in flight, and no attempt was answered (a timeout, or still open) or it holds
    /// an A/AAAA race whose lost query the client had not given up on yet. Such a lookup
    /// is neither counted nor tallied until `Engine::settle` (or `Matcher::settle`) is
    /// given the policy's decision.
    pub fn needs_policy(&self) -> bool {
        self.end.is_some() && (self.answer.is_none() || self.undecided_races() > 0)
    }

    /// Attempts holding a lost A/AAAA race that the end of the capture leaves open to the
    /// policy (see `Transaction::pair_lost_retried`).
    pub fn undecided_races(&self) -> u32 {
        if self.end.is_none() {
            return 0;
        }
        self.attempts
            .iter()
            .filter(|t| t.pair_race_lost && !t.pair_lost_retried)
            .count() as u32
    }

    /// The capture saw this lookup fail: no attempt was answered and the client's wait
    /// was over before the capture ended, or every answer came after the client had closed
    /// its port (not the other servers of a fan-out, whose answers bounce by design), or
    /// never reached the client's socket (`Transaction::leg_fault`).
    pub fn failed(&self) -> bool {
        match self.answer_tx() {
            None => !self.open_at_end,
            Some(a) => (!a.late_icmp_frames.is_empty() && a.fanout_of.is_none()) || a.undelivered(),
        }
    }

    /// Attempts that are retransmissions (not the first, not a TCP fallback).
    pub fn retransmissions(&self) -> usize {
        self.attempts
            .iter()
            .filter(|t| t.retransmission.is_some())
            .count()
    }

    /// Seconds from the FIRST attempt to the response of `answer`.
    pub fn latency(&self) -> Option<Time> {
        let a = self.answer_tx()?;
        let r = a.response.as_ref()?;
        Some(r.time - self.attempts[0].query.time)
    }
}

/// A lookup's attempts, read as a slice. Most lookups make one, which is kept without a
/// vector (one allocation less per lookup).
#[derive(Clone, Debug, Default)]
pub enum Attempts {
    #[default]
    None,
    One(Rc<Transaction>),
    Many(Vec<Rc<Transaction>>),
}

impl Attempts {
    pub fn push(&mut self, t: Rc<Transaction>) {
        *self = match std::mem::take(self) {
            Attempts::None => Attempts::One(t),
            Attempts::One(first) => Attempts::Many(vec![first, t]),
            Attempts::Many(mut v) => {
                v.push(t);
                Attempts::Many(v)
            }
        };
    }
}

impl From<Vec<Rc<Transaction>>> for Attempts {
    fn from(v: Vec<Rc<Transaction>>) -> Attempts {
        Attempts::Many(v)
    }
}

impl std::ops::Deref for Attempts {
    type Target = [Rc<Transaction>];
    fn deref(&self) -> &[Rc<Transaction>] {
        match self {
            Attempts::None => &[],
            Attempts::One(t) => std::slice::from_ref(t),
            Attempts::Many(v) => v,
        }
    }
}

impl std::ops::DerefMut for Attempts {
    fn deref_mut(&mut self) -> &mut [Rc<Transaction>] {
        match self {
            Attempts::None => &mut [],
            Attempts::One(t) => std::slice::from_mut(t),
            Attempts::Many(v) => v,
        }
    }
}

impl<'a> IntoIterator for &'a Attempts {
    type Item = &'a Rc<Transaction>;
    type IntoIter = std::slice::Iter<'a, Rc<Transaction>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrphanKind {
    UnsolicitedResponse,
    IcmpUnmatched,
}

impl OrphanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanKind::UnsolicitedResponse => "unsolicited_response",
            OrphanKind::IcmpUnmatched => "icmp_unmatched",
        }
    }
}

/// A message that belongs to no transaction: an unsolicited response or an ICMP error
/// quoting a DNS datagram that matched no query.
#[derive(Clone, Debug)]
pub struct Orphan {
    pub kind: OrphanKind,
    /// The response, for `UnsolicitedResponse`.
    pub message: Option<Msg>,
    /// Frame and time of the orphan.
    pub frame: u64,
    pub time: Time,
    /// Addresses in the documents' text form.
    pub client: String,
    pub server: String,
    pub qname: String,
    pub qtype: u16,
    /// Why it matched nothing, in words.
    pub reason: String,
}

/// What the matcher hands on, in the order it decided it.
#[derive(Clone, Debug)]
pub enum Event {
    Lookup(Lookup),
    /// Boxed: orphans are few and larger than a lookup, which every event would pay for.
    Orphan(Box<Orphan>),
}
