//! The matcher's in-flight state, its index keys and its counters (see `super`).

use std::cell::{Cell, OnceCell, RefCell, RefMut};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::rc::Rc;

use super::records::{Attempts, RetransmissionKind, Transaction};
use crate::hash::{lower8, name_hash, Seeded};
use crate::types::{Msg, QName, Time, Transport};

/// Every index of the matcher is a hash map with this (seeded) hasher.
pub(crate) type Map<K, V> = HashMap<K, V, Seeded>;

/// "No group" and "no position": the slots use u32 indices.
pub(crate) const NONE: u32 = u32::MAX;

/// A message's question name as a key: compared and hashed ignoring ASCII case (DNS 0x20;
/// names are in presentation form, escapes included, so they are ASCII). A message
/// without a question has the empty name. The hash of the lower-cased name comes with the
/// name (`QName::lower_hash`).
#[derive(Clone)]
pub(crate) struct Name {
    text: Option<QName>,
    hash: u64,
}

impl Name {
    pub(crate) fn new(msg: &Msg) -> Name {
        Name {
            text: msg.qname.clone(),
            hash: match &msg.qname {
                Some(q) => q.lower_hash(),
                None => name_hash(&[]),
            },
        }
    }

    fn bytes(&self) -> &[u8] {
        self.text.as_deref().map_or(&[][..], str::as_bytes)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        // Messages in memory share one copy of each name (dns::Names): a query and its
        // answer, and a query removing its own index entries, need not read the bytes.
        let same = match (&self.text, &other.text) {
            (Some(a), Some(b)) => QName::same(a, b),
            (None, None) => true,
            _ => false,
        };
        same || (self.hash == other.hash && eq_lower(self.bytes(), other.bytes()))
    }
}

/// `eq_ignore_ascii_case`, eight bytes at a time.
fn eq_lower(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut x = a.chunks_exact(8);
    let mut y = b.chunks_exact(8);
    for (p, q) in (&mut x).zip(&mut y) {
        let p = u64::from_le_bytes(p.try_into().unwrap_or([0; 8]));
        let q = u64::from_le_bytes(q.try_into().unwrap_or([0; 8]));
        if p != q && lower8(p) != lower8(q) {
            return false;
        }
    }
    x.remainder().eq_ignore_ascii_case(y.remainder())
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// An address as one 128-bit word for the hasher (one folded multiply): IPv4 and IPv6
/// addresses may share a word (`::a.b.c.d`), which only costs a comparison.
#[inline]
fn addr_word(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(v.to_bits()),
        IpAddr::V6(v) => v.to_bits(),
    }
}

/// The small fields of a key and its name's hash as one 128-bit word.
#[inline]
fn with_name(small: u64, name: &Name) -> u128 {
    u128::from(small) | (u128::from(name.hash) << 64)
}

fn transport_bit(t: Transport) -> u64 {
    matches!(t, Transport::Tcp) as u64
}

// The keys below are hashed by hand: their small fields packed into few words, so that a
// key costs one folded multiply per address and one for the rest.

/// (transport, client IP, client port, ID, question): the queries a response may answer.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PendingKey {
    pub transport: Transport,
    pub client: IpAddr,
    pub port: u16,
    pub id: u16,
    pub qtype: u16,
    pub qclass: u16,
    pub name: Name,
}

impl PendingKey {
    #[inline]
    fn words(&self) -> (u128, u128) {
        let small = u64::from(self.port)
            | u64::from(self.id) << 16
            | u64::from(self.qtype) << 32
            | u64::from(self.qclass) << 48;
        let name = with_name(small, &self.name) ^ (u128::from(transport_bit(self.transport)) << 64);
        (addr_word(&self.client), name)
    }
}

impl Hash for PendingKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (a, b) = self.words();
        state.write_u128(a);
        state.write_u128(b);
    }
}

/// The same, with the server address: the preferred match.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PendingToKey {
    pub key: PendingKey,
    pub server: IpAddr,
}

impl Hash for PendingToKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (a, b) = self.key.words();
        state.write_u128(a);
        state.write_u128(b);
        state.write_u128(addr_word(&self.server));
    }
}

/// (transport, client IP, server IP, question): the queries of one lookup and its
/// retransmissions. `groups` keeps only its hash: it is read from the query held.
pub(crate) struct GroupKey<'a> {
    pub transport: Transport,
    pub client: IpAddr,
    pub server: IpAddr,
    pub qtype: u16,
    pub qclass: u16,
    pub name: &'a Name,
}

impl GroupKey<'_> {
    #[inline]
    pub(crate) fn hash(&self, seed: &Seeded) -> u64 {
        let mut h = seed.build_hasher();
        h.write_u128(addr_word(&self.client));
        h.write_u128(addr_word(&self.server));
        let small = u64::from(self.qtype)
            | u64::from(self.qclass) << 16
            | transport_bit(self.transport) << 32;
        h.write_u128(with_name(small, self.name));
        h.finish()
    }

    /// Whether `q` asked this question of this server over this transport.
    #[inline]
    pub(crate) fn of(&self, q: &Query) -> bool {
        let m = &q.msg;
        m.qtype == self.qtype
            && m.src == self.client
            && m.dst == self.server
            && m.transport == self.transport
            && m.qclass == self.qclass
            && q.name == *self.name
    }
}

/// (client IP, client port, server IP, name): one socket's queries for a name, to pair A
/// with AAAA. The pairing tables keep only its hash (`QTable`): it is read from the
/// queries they hold.
pub(crate) struct Socket<'a> {
    pub client: IpAddr,
    pub port: u16,
    pub server: IpAddr,
    pub name: &'a Name,
}

impl Socket<'_> {
    #[inline]
    pub(crate) fn hash(&self, seed: &Seeded) -> u64 {
        let mut h = seed.build_hasher();
        h.write_u128(addr_word(&self.client));
        h.write_u128(addr_word(&self.server));
        h.write_u128(with_name(u64::from(self.port), self.name));
        h.finish()
    }

    /// Whether `q` was sent from this socket for this name.
    #[inline]
    fn of(&self, q: &Query) -> bool {
        let m = &q.msg;
        m.sport == self.port && m.src == self.client && m.dst == self.server && q.name == *self.name
    }
}

/// (client IP, name, type): TC=1 answers waiting for the client's next query.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TcKey {
    pub client: IpAddr,
    pub qtype: u16,
    pub name: Name,
}

impl Hash for TcKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(addr_word(&self.client));
        state.write_u128(with_name(u64::from(self.qtype), &self.name));
    }
}

/// (client IP, name): when the client last got a TC=1 answer for the name.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SeenKey {
    pub client: IpAddr,
    pub name: Name,
}

impl Hash for SeenKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(addr_word(&self.client));
        state.write_u64(self.name.hash);
    }
}

/// (client IP, client port, ID): the newest query, for ICMP errors and questionless
/// answers. `by_id` keeps only its hash: it is read from the query held.
#[derive(Clone, Copy)]
pub(crate) struct IdKey {
    pub client: IpAddr,
    pub port: u16,
    pub id: u16,
}

impl IdKey {
    #[inline]
    pub(crate) fn hash(&self, seed: &Seeded) -> u64 {
        let mut h = seed.build_hasher();
        h.write_u128(addr_word(&self.client));
        h.write_u64(u64::from(self.port) | u64::from(self.id) << 16);
        h.finish()
    }

    /// Whether `q` was sent from this client port with this ID.
    #[inline]
    pub(crate) fn of(&self, q: &Query) -> bool {
        let m = &q.msg;
        m.id == self.id && m.sport == self.port && m.src == self.client
    }
}

/// One DNS ID on one TCP connection: client IP and port, server IP and port, ID.
pub(crate) type XfrKey = (IpAddr, u16, IpAddr, u16, u16);

/// A zone transfer in progress: its question (name, type) and its last message's time.
pub(crate) struct Xfr {
    pub name: Name,
    pub qtype: u16,
    pub last: Time,
}

/// Mutable state of one query while it is in flight (frozen into a `Transaction`).
///
/// Shared (`Rc`) by the indexes that point at it; fields change through cells, as the
/// Python object's attributes do. Kept to two cache lines with its reference counts: a
/// query is written when it is made and read again a second or more later, when it closes,
/// long out of the cache; what few queries need (TC fallback, ICMP errors, fan-out) lives
/// apart (`Rare`).
pub(crate) struct Query {
    pub msg: Msg,
    /// The question name as a key (the lower-cased name of the Python side).
    pub name: Name,
    /// The matched response: set once.
    response: OnceCell<Msg>,
    /// Index of its lookup in the matcher's group slab (read only while the query is open:
    /// the slot is reused once the lookup is emitted).
    pub group: Cell<u32>,
    pub attempt: Cell<u32>,
    pub retransmission: Cell<Option<RetransmissionKind>>,
    /// Decided once, for a TC=1 UDP response.
    pub tc_followed: Cell<Option<bool>>,
    pub pair: RefCell<Option<Rc<Query>>>,
    pub is_a: Cell<bool>,
    rare: RefCell<Option<Box<Rare>>>,
    /// Its transaction, once closed.
    closed: OnceCell<Rc<Transaction>>,
    /// Absolute position in the unanswered queue (emptied when answered or closed).
    pub cell: Cell<u64>,
    /// Position in the ordered sets of `pending` and `pending_to` holding it, when the key
    /// holds several queries (`Held::Many`); NONE otherwise.
    pub slot: [Cell<u32>; 2],
    /// Its slot in `groups` and `by_id` while it is held there (`QTable::forget`).
    pub index: [Cell<u32>; 2],
    /// True while it waits in `pending` (not yet answered or closed).
    pub pended: Cell<bool>,
    /// True while it waits in `pending_to` too: its key in `pending` held several queries
    /// when it was put there or since.
    pub pended_to: Cell<bool>,
    /// True once a retransmission of this query was sent.
    pub retried: Cell<bool>,
    /// True for a TCP query that re-asks the question of an open UDP lookup after a TC=1
    /// answer to that client.
    pub tcp_fallback: Cell<bool>,
}

/// What only a few queries have.
#[derive(Default)]
struct Rare {
    /// Frame of the first query of the fan-out it belongs to.
    fanout_of: Option<u64>,
    /// The client's next query for the name and type after a TC=1 answer.
    tc_next: Option<Msg>,
    icmp_frames: Vec<u64>,
    /// The subset of `icmp_frames` quoting the matched response.
    late_icmp_frames: Vec<u64>,
}

impl Query {
    pub(crate) fn new(msg: Msg, name: Name) -> Query {
        Query {
            msg,
            name,
            response: OnceCell::new(),
            group: Cell::new(NONE),
            attempt: Cell::new(1),
            retransmission: Cell::new(None),
            tc_followed: Cell::new(None),
            pair: RefCell::new(None),
            is_a: Cell::new(false),
            rare: RefCell::new(None),
            closed: OnceCell::new(),
            cell: Cell::new(0),
            slot: [Cell::new(NONE), Cell::new(NONE)],
            index: [Cell::new(NONE), Cell::new(NONE)],
            pended: Cell::new(true),
            pended_to: Cell::new(false),
            retried: Cell::new(false),
            tcp_fallback: Cell::new(false),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get().is_some()
    }

    /// Its transaction, once closed.
    pub(crate) fn transaction(&self) -> Option<&Rc<Transaction>> {
        self.closed.get()
    }

    /// Closed, as `tx`. A query closes once (every close checks `is_closed` first).
    pub(crate) fn set_closed(&self, tx: Rc<Transaction>) {
        let _ = self.closed.set(tx);
    }

    pub(crate) fn answered(&self) -> bool {
        self.response.get().is_some()
    }

    pub(crate) fn response(&self) -> Option<&Msg> {
        self.response.get()
    }

    /// Answered by `m`. A query is answered once: an answered query is in no table a
    /// response looks in (`pending`, and `by_id` only while unanswered).
    /// The response it holds is returned, to be read on without a copy of the handle.
    pub(crate) fn set_response(&self, m: Msg) -> &Msg {
        self.response.get_or_init(|| m)
    }

    pub(crate) fn response_time(&self) -> Option<Time> {
        self.response.get().map(|r| r.time)
    }

    fn rare_mut(&self) -> RefMut<'_, Rare> {
        RefMut::map(self.rare.borrow_mut(), |r| {
            &mut **r.get_or_insert_with(Box::default)
        })
    }

    fn rare<T>(&self, f: impl FnOnce(&Rare) -> T) -> Option<T> {
        self.rare.borrow().as_deref().map(f)
    }

    pub(crate) fn fanout_of(&self) -> Option<u64> {
        self.rare(|r| r.fanout_of).flatten()
    }

    pub(crate) fn set_fanout_of(&self, first: Option<u64>) {
        if first.is_some() || self.rare.borrow().is_some() {
            self.rare_mut().fanout_of = first;
        }
    }

    pub(crate) fn tc_next_frame(&self) -> Option<u64> {
        self.rare(|r| r.tc_next.as_ref().map(|n| n.frame)).flatten()
    }

    /// (transport, time) of the client's next query after a TC=1 answer, if one came.
    pub(crate) fn tc_next(&self) -> Option<(Transport, Time)> {
        self.rare(|r| r.tc_next.as_ref().map(|n| (n.transport, n.time)))
            .flatten()
    }

    pub(crate) fn set_tc_next(&self, m: Msg) {
        self.rare_mut().tc_next = Some(m);
    }

    pub(crate) fn add_icmp(&self, frame: u64, late: bool) {
        let mut r = self.rare_mut();
        r.icmp_frames.push(frame);
        if late {
            r.late_icmp_frames.push(frame);
        }
    }

    /// The ICMP frames and the late ones, taken (for the transaction).
    pub(crate) fn take_icmp(&self) -> (Vec<u64>, Vec<u64>) {
        match self.rare.borrow_mut().as_deref_mut() {
            Some(r) => (
                std::mem::take(&mut r.icmp_frames),
                std::mem::take(&mut r.late_icmp_frames),
            ),
            None => (Vec::new(), Vec::new()),
        }
    }
}

/// The queries under one key: the query itself, or an ordered set once there are two
/// (most keys hold one). The set removes in O(1) by the position each query keeps, leaving
/// a hole; holes at the end are dropped at once and the rest when they outnumber the
/// queries.
pub(crate) enum Held {
    One(Rc<Query>),
    Many(Box<Many>),
}

pub(crate) struct Many {
    v: Vec<Option<Rc<Query>>>,
    live: usize,
}

/// What a key of `pending` (or `pending_to`) holds: the queries waiting under it, and (in
/// `pending` only) the fan-out window of the queries sent under it lately. One table for
/// both, as they share their key: a query costs one probe for the two.
#[derive(Default)]
pub(crate) struct Slot {
    pub held: Option<Held>,
    pub fan: Option<Fan>,
}

impl Slot {
    /// Nothing left: the key goes.
    fn vacant(&self) -> bool {
        self.held.is_none() && self.fan.is_none()
    }
}

/// What `put` found under the key.
pub(crate) enum Put {
    /// Nothing: `q` is the key's only query.
    First,
    /// One query, now joined by `q` (the key holds an ordered set from now on).
    Second(Rc<Query>),
    /// An ordered set, which `q` joins.
    More,
}

/// Add `q` under `key` (`which` names the table: the query keeps its position per table);
/// the key's slot, for what else it holds.
pub(crate) fn put<'a, K: Hash + Eq>(
    table: &'a mut Map<K, Slot>,
    key: K,
    q: &Rc<Query>,
    which: usize,
) -> (Put, &'a mut Slot) {
    let slot = match table.entry(key) {
        Entry::Vacant(e) => {
            return (
                Put::First,
                e.insert(Slot {
                    held: Some(Held::One(q.clone())),
                    fan: None,
                }),
            );
        }
        Entry::Occupied(e) => e.into_mut(),
    };
    let put = match &mut slot.held {
        None => {
            slot.held = Some(Held::One(q.clone()));
            Put::First
        }
        Some(held @ Held::One(_)) => {
            let Held::One(one) = held else { unreachable!() };
            let first = one.clone();
            one.slot[which].set(0);
            q.slot[which].set(1);
            let v = vec![Some(first.clone()), Some(q.clone())];
            *held = Held::Many(Box::new(Many { v, live: 2 }));
            Put::Second(first)
        }
        Some(Held::Many(set)) => {
            q.slot[which].set(set.v.len() as u32);
            set.v.push(Some(q.clone()));
            set.live += 1;
            Put::More
        }
    };
    (put, slot)
}

/// Remove `q` from the queries of `slot`, if it is there; whether the slot is vacant now.
fn unhold(slot: &mut Slot, q: &Rc<Query>, which: usize) -> bool {
    if let Some(held) = &mut slot.held {
        if remove_held(held, q, which) {
            slot.held = None;
        }
    }
    slot.vacant()
}

/// Remove `q` from under `key`, if it is there (O(1) amortized).
pub(crate) fn drop_held<K: Hash + Eq>(
    table: &mut Map<K, Slot>,
    key: K,
    q: &Rc<Query>,
    which: usize,
) {
    if let Entry::Occupied(mut e) = table.entry(key) {
        if unhold(e.get_mut(), q, which) {
            e.remove();
        }
    }
}

/// Remove and return the query `newest` picks under `key` (one hash for both).
pub(crate) fn take_newest<K: Hash + Eq>(
    table: &mut Map<K, Slot>,
    key: K,
    t: Time,
    oldest: Time,
    which: usize,
) -> Option<Rc<Query>> {
    let Entry::Occupied(mut e) = table.entry(key) else {
        return None;
    };
    let q = newest(e.get().held.as_ref(), t, oldest)?;
    if unhold(e.get_mut(), &q, which) {
        e.remove();
    }
    Some(q)
}

/// What the answer to a question found under its key in `pending`.
pub(crate) enum Answered {
    /// The key's only query (it is no longer under the key): it was sent at or before the
    /// answer and not before `oldest`.
    Only(Rc<Query>),
    /// Nothing that the answer can match.
    Nothing,
    /// Several queries: `pending_to` chooses.
    Several,
}

/// The answer to the queries under `key` (in `pending`, position `which`): take the only
/// query there if it can be answered, else say whether `pending_to` must choose.
pub(crate) fn answer_only<K: Hash + Eq>(
    table: &mut Map<K, Slot>,
    key: K,
    t: Time,
    oldest: Time,
) -> Answered {
    let Entry::Occupied(mut e) = table.entry(key) else {
        return Answered::Nothing;
    };
    let slot = e.get_mut();
    match &slot.held {
        None => Answered::Nothing,
        Some(Held::One(q)) => {
            let qt = q.msg.time;
            if oldest <= qt && qt <= t {
                let Some(Held::One(q)) = slot.held.take() else {
                    unreachable!()
                };
                if slot.vacant() {
                    e.remove();
                }
                Answered::Only(q)
            } else {
                Answered::Nothing
            }
        }
        Some(Held::Many(_)) => Answered::Several,
    }
}

/// Forget the fan-out windows that went quiet before `limit` (and the keys left vacant).
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub(crate) fn expire_fans<K>(table: &mut Map<K, Slot>, limit: Time) {
    table.retain(|_, slot| {
        if slot.fan.as_ref().is_some_and(|f| !(f.newest() >= limit)) {
            slot.fan = None;
        }
        !slot.vacant()
    });
}

/// Forget every fan-out window (the end of the capture).
pub(crate) fn clear_fans<K>(table: &mut Map<K, Slot>) {
    table.retain(|_, slot| {
        slot.fan = None;
        !slot.vacant()
    });
}

/// (keys holding queries, keys holding a fan-out window), for tests of bounded memory.
pub(crate) fn slot_counts<K>(table: &Map<K, Slot>) -> (usize, usize) {
    let held = table.values().filter(|s| s.held.is_some()).count();
    let fans = table.values().filter(|s| s.fan.is_some()).count();
    (held, fans)
}

/// Remove `q` from `held` if it is there; whether `held` is empty now.
fn remove_held(held: &mut Held, q: &Rc<Query>, which: usize) -> bool {
    match held {
        Held::One(one) => Rc::ptr_eq(one, q),
        Held::Many(set) => {
            let pos = q.slot[which].get() as usize;
            if !set
                .v
                .get(pos)
                .is_some_and(|s| s.as_ref().is_some_and(|x| Rc::ptr_eq(x, q)))
            {
                return false;
            }
            set.v[pos] = None;
            q.slot[which].set(NONE);
            set.live -= 1;
            while matches!(set.v.last(), Some(None)) {
                set.v.pop();
            }
            if set.live > 0 && set.v.len() > 3 * set.live + 8 {
                set.v.retain(Option::is_some);
                for (i, x) in set.v.iter().enumerate() {
                    if let Some(x) = x {
                        x.slot[which].set(i as u32);
                    }
                }
            }
            set.live == 0
        }
    }
}

/// The newest query in `held` (in the order sent) sent at or before `t` and not before
/// `oldest`. Usually the last one; a record read out of time order may be newer.
pub(crate) fn newest(held: Option<&Held>, t: Time, oldest: Time) -> Option<Rc<Query>> {
    match held? {
        Held::One(q) => {
            let qt = q.msg.time;
            (oldest <= qt && qt <= t).then(|| q.clone())
        }
        Held::Many(set) => {
            for q in set.v.iter().rev().flatten() {
                let qt = q.msg.time;
                if qt <= t {
                    return (qt >= oldest).then(|| q.clone());
                }
            }
            None
        }
    }
}

/// One socket's A (or AAAA) queries waiting for a partner: the query, or a queue once
/// there are two.
pub(crate) enum Waiting {
    /// The query, and its time (kept here so that the sweep need not read the query).
    One(Rc<Query>, Time),
    Many(VecDeque<Rc<Query>>),
}

impl Waiting {
    /// The query it holds first (a queue in a table is never empty).
    fn front(&self) -> Option<&Rc<Query>> {
        match self {
            Waiting::One(q, _) => Some(q),
            Waiting::Many(lst) => lst.front(),
        }
    }
}

/// Append `q` under `socket` (of hash `hash`).
pub(crate) fn enqueue(table: &mut QTable<Waiting>, hash: u64, socket: &Socket, q: &Rc<Query>) {
    let Some(i) = table.find(hash, |w| w.front().is_some_and(|f| socket.of(f))) else {
        table.insert(hash, Waiting::One(q.clone(), q.msg.time));
        return;
    };
    if let Some(held) = table.get_mut(i) {
        match held {
            Waiting::One(first, _) => {
                *held = Waiting::Many(VecDeque::from([first.clone(), q.clone()]));
            }
            Waiting::Many(lst) => lst.push_back(q.clone()),
        }
    }
}

/// Remove and return the earliest unpaired open query under `socket` (of hash `hash`) sent
/// at or after `since`; forget entries that are too old to pair (amortized O(1)).
pub(crate) fn take(
    table: &mut QTable<Waiting>,
    hash: u64,
    socket: &Socket,
    since: Time,
) -> Option<Rc<Query>> {
    let i = table.find(hash, |w| w.front().is_some_and(|f| socket.of(f)))?;
    if let Some(Waiting::Many(lst)) = table.get_mut(i) {
        while let Some(f) = lst.front() {
            if f.pair.borrow().is_some() || f.is_closed() || f.msg.time < since {
                lst.pop_front();
            } else {
                break;
            }
        }
        let q = lst.pop_front();
        if lst.is_empty() {
            table.remove_at(i);
        }
        return q;
    }
    match table.remove_at(i)? {
        Waiting::One(h, _) => {
            let ok = h.pair.borrow().is_none() && !h.is_closed() && h.msg.time >= since;
            ok.then_some(h)
        }
        Waiting::Many(_) => None,
    }
}

/// The time a pairing entry went quiet at (its newest query); None for an empty queue.
pub(crate) fn waiting_newest(w: &Waiting) -> Option<Time> {
    match w {
        Waiting::One(_, t) => Some(*t),
        Waiting::Many(lst) => lst.back().map(|q| q.msg.time),
    }
}

/// A matcher index whose keys are read from what it holds (the fields of a query it
/// holds): the table keeps only each key's 64-bit hash, and a probe compares the hash and
/// then asks whether the value holds the key. Open addressing with linear probing over an
/// array of (hash, value) at most half full (removed slots counted until the next
/// rehash); std's HashMap, moving the compound key in and out and comparing it field by
/// field, cost up to twice as much here. The hashes are keyed with the matcher's secret
/// seed, so a capture cannot aim its keys at one run of slots; equal hashes of different
/// keys are told apart by the value.
pub(crate) struct QTable<V> {
    /// A power of two of slots, or none before the first insertion.
    slots: Vec<Bucket<V>>,
    len: usize,
    /// Slots marked removed (`Bucket::Gone`).
    gone: usize,
}

enum Bucket<V> {
    Empty,
    /// Removed: a probe goes on past it, an insertion may take it.
    Gone,
    Full(u64, V),
}

/// Slots of the smallest table.
const MIN_SLOTS: usize = 16;

impl<V> QTable<V> {
    pub(crate) fn new() -> Self {
        QTable {
            slots: Vec::new(),
            len: 0,
            gone: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries it holds room for.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len() / 2
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot holding a value of hash `hash` that `is` accepts.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut is: impl FnMut(&V) -> bool) -> Option<usize> {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            match self.slots.get(i)? {
                Bucket::Empty => return None,
                Bucket::Full(h, v) if *h == hash && is(v) => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&V> {
        match self.slots.get(i)? {
            Bucket::Full(_, v) => Some(v),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut V> {
        match self.slots.get_mut(i)? {
            Bucket::Full(_, v) => Some(v),
            _ => None,
        }
    }

    /// Add `value` (whose key is not in the table) under `hash`; its slot.
    #[inline]
    pub(crate) fn insert(&mut self, hash: u64, value: V) -> usize {
        self.insert_with(hash, value, |_, _| {})
    }

    /// `insert`, telling `placed` the slot of every value it puts somewhere (the new one,
    /// and all of them when the table is rehashed): a value may keep its slot, which stays
    /// its own until it is removed or placed again.
    #[inline]
    pub(crate) fn insert_with(
        &mut self,
        hash: u64,
        value: V,
        mut placed: impl FnMut(&V, usize),
    ) -> usize {
        if 2 * (self.len + self.gone + 1) > self.slots.len() {
            self.grow(&mut placed);
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while let Some(s) = self.slots.get_mut(i) {
            match s {
                Bucket::Full(..) => i = (i + 1) & mask,
                _ => {
                    if matches!(s, Bucket::Gone) {
                        self.gone -= 1;
                    }
                    placed(&value, i);
                    *s = Bucket::Full(hash, value);
                    self.len += 1;
                    return i;
                }
            }
        }
        i
    }

    /// Room for one more: the removed slots cleared, or twice the slots.
    #[cold]
    fn grow(&mut self, placed: impl FnMut(&V, usize)) {
        let slots = if 4 * (self.len + 1) <= self.slots.len() {
            self.slots.len()
        } else {
            MIN_SLOTS.max(2 * self.slots.len())
        };
        self.resize(slots, placed);
    }

    /// The table in `slots` slots (a power of two, more than twice the entries), without
    /// removed slots.
    fn resize(&mut self, slots: usize, mut placed: impl FnMut(&V, usize)) {
        let mut new = Vec::with_capacity(slots);
        new.resize_with(slots, || Bucket::Empty);
        let old = std::mem::replace(&mut self.slots, new);
        self.gone = 0;
        let mask = slots - 1;
        for b in old {
            if let Bucket::Full(hash, value) = b {
                let mut i = hash as usize & mask;
                while let Some(s) = self.slots.get_mut(i) {
                    if matches!(s, Bucket::Empty) {
                        placed(&value, i);
                        *s = Bucket::Full(hash, value);
                        break;
                    }
                    i = (i + 1) & mask;
                }
            }
        }
    }

    /// Empty slot `i` (marked removed unless the run ends after it).
    #[inline]
    fn vacate(&mut self, i: usize) -> Option<V> {
        let mask = self.mask();
        let end = matches!(self.slots.get((i + 1) & mask), Some(Bucket::Empty));
        let s = self.slots.get_mut(i)?;
        if !matches!(s, Bucket::Full(..)) {
            return None;
        }
        let b = std::mem::replace(s, if end { Bucket::Empty } else { Bucket::Gone });
        if !end {
            self.gone += 1;
        }
        self.len -= 1;
        match b {
            Bucket::Full(_, v) => Some(v),
            _ => None,
        }
    }

    /// Remove the value of slot `i`.
    #[inline]
    pub(crate) fn remove_at(&mut self, i: usize) -> Option<V> {
        self.vacate(i)
    }

    /// Keep the values `keep` keeps (it may change them), each seen once.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        if self.len == 0 {
            return;
        }
        for i in 0..self.slots.len() {
            let drop = match self.slots.get_mut(i) {
                Some(Bucket::Full(_, v)) => !keep(v),
                _ => false,
            };
            if drop {
                self.vacate(i);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = Bucket::Empty);
        self.len = 0;
        self.gone = 0;
    }

    /// Give back the memory of a burst (`placed` as in `insert_with`).
    pub(crate) fn shrink_to_fit(&mut self, placed: impl FnMut(&V, usize)) {
        let mut slots = MIN_SLOTS;
        while slots < 2 * (self.len + 1) {
            slots *= 2;
        }
        if slots < self.slots.len() {
            self.resize(slots, placed);
        }
    }
}

impl QTable<Rc<Query>> {
    /// The query held under the key of hash `hash` that `of` recognises.
    #[inline]
    pub(crate) fn query(&self, hash: u64, of: impl Fn(&Query) -> bool) -> Option<&Rc<Query>> {
        self.find(hash, |q| of(q)).and_then(|i| self.get(i))
    }

    /// Hold `q` under its key (of hash `hash`, which `of` recognises); the query held there
    /// before. Each query held keeps its slot (`Query::index[which]`).
    #[inline]
    pub(crate) fn replace(
        &mut self,
        hash: u64,
        of: impl Fn(&Query) -> bool,
        q: Rc<Query>,
        which: usize,
    ) -> Option<Rc<Query>> {
        match self.find(hash, |p| of(p)) {
            Some(i) => {
                q.index[which].set(i as u32);
                self.get_mut(i).map(|p| std::mem::replace(p, q))
            }
            None => {
                self.insert_with(hash, q, |p, i| p.index[which].set(i as u32));
                None
            }
        }
    }

    /// Let go of `q` if it is still held (at the slot it keeps): no hashing or probing.
    #[inline]
    pub(crate) fn forget(&mut self, q: &Rc<Query>, which: usize) {
        let i = q.index[which].get() as usize;
        if self.get(i).is_some_and(|p| Rc::ptr_eq(p, q)) {
            self.remove_at(i);
        }
    }
}

/// The queries of one (transport, client, port, ID, question) sent within the fan-out
/// window, with a count per server address, so that "sent to another server too" costs
/// O(1) however many copies there are.
pub(crate) struct FanOut {
    queries: VecDeque<Rc<Query>>,
    per_server: HashMap<IpAddr, u32, Seeded>,
    pub newest: Time,
}

impl FanOut {
    pub(crate) fn new(seed: &Seeded) -> FanOut {
        FanOut {
            queries: VecDeque::new(),
            per_server: HashMap::with_hasher(*seed),
            newest: f64::NEG_INFINITY,
        }
    }

    /// Drop the queries sent before `before`.
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // as the Python side, NaN included
    pub(crate) fn expire(&mut self, before: Time) {
        while let Some(q) = self.queries.front() {
            if !(q.msg.time < before) {
                break;
            }
            let dst = q.msg.dst;
            self.queries.pop_front();
            if let Entry::Occupied(mut e) = self.per_server.entry(dst) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
    }

    pub(crate) fn first(&self) -> Option<&Rc<Query>> {
        self.queries.front()
    }

    /// Whether a query in the window went to a server other than `dst`.
    pub(crate) fn other_server(&self, dst: &IpAddr) -> bool {
        let n = self.per_server.len();
        n > 1 || (n == 1 && !self.per_server.contains_key(dst))
    }

    pub(crate) fn add(&mut self, q: &Rc<Query>) {
        self.queries.push_back(q.clone());
        *self.per_server.entry(q.msg.dst).or_insert(0) += 1;
        if q.msg.time > self.newest {
            self.newest = q.msg.time;
        }
    }
}

/// Fan-out: the same query to another server within the window (`fan` is the window of
/// the query's key in `pending`).
pub(crate) fn fan_out(
    fan: &mut Option<Fan>,
    q: &Rc<Query>,
    window: Time,
    seed: &Seeded,
    stats: &mut MatchStats,
) {
    let fan = match fan {
        None => {
            *fan = Some(Fan::One(q.clone(), q.msg.time)); // one query: no window until a second
            return;
        }
        Some(f) => f,
    };
    if let Fan::One(one, _) = fan {
        let mut w = FanOut::new(seed);
        w.add(one);
        *fan = Fan::Many(Box::new(w));
    }
    let Fan::Many(w) = fan else { unreachable!() };
    w.expire(q.msg.time - window);
    if let Some(first) = w.first() {
        if w.other_server(&q.msg.dst) {
            if first.fanout_of().is_none() {
                first.set_fanout_of(Some(first.msg.frame));
                stats.fanout_groups += 1;
            }
            q.set_fanout_of(first.fanout_of());
        }
    }
    w.add(q);
}

/// A fan-out entry: one query (no window object until a second one comes), or the window.
pub(crate) enum Fan {
    /// The query, and its time (kept here so that the sweep need not read the query).
    One(Rc<Query>, Time),
    Many(Box<FanOut>),
}

impl Fan {
    pub(crate) fn newest(&self) -> Time {
        match self {
            Fan::One(_, t) => *t,
            Fan::Many(f) => f.newest,
        }
    }
}

/// Attempts of one lookup while it is in flight (a slot of the matcher's group slab).
#[derive(Default)]
pub(crate) struct Group {
    pub id: u64,
    /// Its queries (attempts) so far: the lookup is emitted when as many are closed. The
    /// queries name the slot by index and never read it once closed, so the slot needs no
    /// list of them (the Python side keeps one).
    pub members: usize,
    pub closed: Attempts,
    /// The highest attempt number of the members, and whether one is a TCP fallback (the
    /// Python side scans the members for both).
    pub max_attempt: u32,
    pub has_fallback: bool,
}

/// Counters the matcher keeps for the summary (the names of the Python `MatchStats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchStats {
    pub queries: u64,
    pub queries_udp: u64,
    pub queries_tcp: u64,
    pub responses: u64,
    pub answered_queries: u64,
    pub unanswered_queries: u64,
    pub unsolicited_responses: u64,
    /// Responses matching no query that came within `max_wait` of the capture's first
    /// packet: their query was most likely sent before the capture started.
    pub responses_before_capture: u64,
    /// Further messages of a multi-message TCP answer (AXFR/IXFR), not unsolicited.
    pub continuation_responses: u64,
    pub retransmissions: u64,
    /// TCP queries that joined a UDP lookup after a TC=1 answer (not retransmissions).
    pub tcp_fallback_queries: u64,
    /// Queries with a new ID that started a parallel lookup of a name already in flight.
    pub parallel_lookups: u64,
    pub lookups: u64,
    pub failed_lookups: u64,
    pub lookups_open_at_end: u64,
    /// Lookups the capture saw fail (`Lookup::failed`).
    pub lookups_failed: u64,
    /// Of those, the lookups whose every answer bounced off the client's closed port.
    pub lookups_failed_late: u64,
    pub tc_responses: u64,
    pub tc_followed_by_tcp: u64,
    pub tc_without_tcp_retry: u64,
    /// TC=1 responses less than the fallback window before the end of the capture with no
    /// query after them: whether TCP followed cannot be known.
    pub tc_open_at_end: u64,
    pub a_aaaa_pairs: u64,
    pub a_aaaa_same_port_concurrent: u64,
    pub a_aaaa_race_lost: u64,
    pub fanout_groups: u64,
    pub icmp_errors: u64,
    /// Unanswered queries closed before `max_wait` because `max_in_flight` or
    /// `max_in_flight_bytes` was reached.
    pub evicted: u64,
    /// Answered queries closed before their linger was over.
    pub closed_early: u64,
    /// Answers by rcode name, in the order each name was first seen.
    pub rcodes: Vec<(&'static str, u64)>,
}

const RCODE_NAMES: [&str; 16] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
];

impl MatchStats {
    pub(crate) fn count_rcode(&mut self, rcode: u16) {
        let name = RCODE_NAMES[(rcode & 0xF) as usize];
        // The names come from RCODE_NAMES: the same pointer, without comparing the text.
        match self
            .rcodes
            .iter_mut()
            .find(|(n, _)| std::ptr::eq(*n, name) || *n == name)
        {
            Some((_, c)) => *c += 1,
            None => self.rcodes.push((name, 1)),
        }
    }
}
