//! Drop capture artifacts: the same DNS message recorded more than once.
//!
//! `tcpdump -i any` on a node records each packet on several interfaces (the pod's veth,
//! the bridge, the uplink), before and after kube-proxy's DNAT, so addresses differ between
//! copies while the DNS payload stays identical. A copy is a **duplicate** when, within
//! `window` of the first copy, it has the same transport, identical DNS payload bytes and
//! the same client port, and either it was seen on a different capture interface or its
//! addresses and ports are identical (a real duplicate datagram).
//!
//! Over TCP only the different-interface case applies: reassembly already removed segments
//! captured twice on one interface, so identical messages on one connection are real.
//!
//! An identical query sent to two servers on the same interface is NOT a duplicate: musl
//! does that on purpose (fan-out), and the copies differ in destination address. Nor is a
//! query sent again after a response to it was captured: a copy of one packet cannot come
//! after the answer to it, while glibc does send the same query again, same ID and port,
//! within microseconds of a REFUSED answer (and the server answers it again, byte for
//! byte). So a message is a copy only while nothing went the other way between the client
//! port and the server under that ID since the first copy.
//!
//! A dropped copy is not forgotten: it is recorded on the message kept as one of its legs
//! (`crate::legs`), and a copy whose server address differs from the kept one's gives a
//! (Service address, DNAT target) pair. The counts stay as they are: a leg is no second
//! lookup.
//!
//! Memory: at most `max_entries` messages are remembered (each kept once, shared with the
//! matcher); past that the oldest is forgotten and counted in `evicted`.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::rc::Rc;

use crate::hash::Seeded;
use crate::legs::{DnatPairs, Leg};
use crate::types::{addr_text, Message, Msg, Time, Transport, QR};

/// Server addresses remembered as DNAT'd: a cluster has a few DNS addresses, a hostile
/// capture could show any number.
pub const MAX_DNAT_SERVERS: usize = 64;

/// Size of the direction table below which it is never swept.
const TURN_SWEEP_MIN: usize = 4096;

/// One message remembered: the message itself (shared with the matcher: its payload,
/// time, interface, addresses and frame are read there), with its key's hash, in the
/// window's ring (`Window`).
#[derive(Debug)]
struct Kept {
    time: Time,
    /// Hash of the key: transport and client port (`tag`) and the payload.
    hash: u64,
    /// The entry before it (absolute position) whose hash falls in the same bucket, or NIL.
    prev: u64,
    tag: u32,
    /// Still one of its key's copies (those a later message may copy). A key's copies are
    /// its newest entries. Entries leave the ring in the order kept, each forgetting its
    /// key's oldest copy: itself, unless time went backwards (an expiry forgets every copy
    /// of the key older than the window at once, so an entry can be forgotten before it
    /// leaves; it then forgets the oldest copy left, as the window always did).
    copy: bool,
    /// Entries of the same key came after it while it was a copy (then expiring it must
    /// look for them).
    followed: bool,
    msg: Msg,
}

impl Kept {
    fn same_key(&self, hash: u64, tag: u32, data: &[u8]) -> bool {
        self.hash == hash && self.tag == tag && *self.msg.data == *data
    }
}

/// Payload bytes hashed whole; of a longer payload, the first `HASHED - 16` and the last
/// 16 (and its length).
const HASHED: usize = 64;

/// The hash of a message's key: its transport and client port (`tag`) and its payload, of
/// which a long one (an answer) is sampled: its header, question and first records and its
/// last bytes (`HASHED`). The hash only picks the chain: copies are compared whole.
#[inline]
fn key_hash(hasher: &Seeded, tag: u32, data: &[u8]) -> u64 {
    let n = data.len();
    match (data.get(..HASHED - 16), data.get(n.saturating_sub(16)..)) {
        (Some(head), Some(tail)) if n > HASHED => {
            let mut h = hasher.build_hasher();
            h.write_u64(u64::from(tag) | (n as u64) << 32);
            h.write(head);
            h.write(tail);
            h.finish()
        }
        _ => hasher.hash_bytes(u64::from(tag), data),
    }
}

/// No entry.
const NIL: u64 = u64::MAX;

/// Buckets of the smallest chain table.
const MIN_BUCKETS: usize = 256;

/// The messages remembered, oldest first, with the copies of a key found through hash
/// chains: each bucket names its newest entry, and each entry the one before it in the
/// same bucket, so that a chain is walked newest first until it leaves the ring. Nothing
/// is ever removed from the chains: an entry leaves them when it leaves the ring, and a
/// key's copies are read from the entries themselves (`Kept::copy`). The buckets are at
/// least twice the entries (rebuilt when the ring doubles or shrinks to an eighth), so a
/// chain holds about one other entry; the hash is keyed with a secret seed, so a capture
/// cannot aim its messages at one bucket.
#[derive(Debug)]
struct Window {
    ring: VecDeque<Kept>,
    /// Absolute position of the ring's front.
    base: u64,
    /// Newest entry of each bucket (absolute position), or NIL or a position that left
    /// the ring.
    heads: Vec<u64>,
    /// Scratch list of positions (no allocation per message).
    scratch: Vec<u64>,
}

impl Window {
    fn new() -> Window {
        Window {
            ring: VecDeque::new(),
            base: 0,
            heads: vec![NIL; MIN_BUCKETS],
            scratch: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.ring.len()
    }

    #[inline]
    fn bucket(&self, hash: u64) -> usize {
        (hash as usize) & (self.heads.len() - 1)
    }

    #[inline]
    fn at(&self, pos: u64) -> Option<&Kept> {
        if pos == NIL || pos < self.base {
            return None;
        }
        self.ring.get((pos - self.base) as usize)
    }

    #[inline]
    fn at_mut(&mut self, pos: u64) -> Option<&mut Kept> {
        if pos == NIL || pos < self.base {
            return None;
        }
        self.ring.get_mut((pos - self.base) as usize)
    }

    /// The positions of the chain of `hash`'s bucket, newest first, into `scratch`, that
    /// hold a copy of the key (hash, tag, data).
    fn copies_of(&mut self, hash: u64, tag: u32, data: &[u8]) {
        let mut found = std::mem::take(&mut self.scratch);
        found.clear();
        let mut pos = self.heads[self.bucket(hash)];
        while let Some(k) = self.at(pos) {
            if k.copy && k.same_key(hash, tag, data) {
                found.push(pos);
            }
            pos = k.prev;
        }
        self.scratch = found;
    }

    /// Remember `msg` under its key as its newest copy.
    fn push(&mut self, time: Time, hash: u64, tag: u32, msg: &Msg) {
        if 2 * (self.ring.len() + 1) > self.heads.len() {
            self.rebuild(2 * self.heads.len());
        }
        let pos = self.base + self.ring.len() as u64;
        let b = self.bucket(hash);
        let prev = std::mem::replace(&mut self.heads[b], pos);
        self.ring.push_back(Kept {
            time,
            hash,
            prev,
            tag,
            copy: true,
            followed: false,
            msg: msg.clone(),
        });
    }

    /// Take the oldest entry out of the ring.
    fn pop_front(&mut self) -> Option<Kept> {
        let k = self.ring.pop_front()?;
        self.base += 1;
        if self.heads.len() > MIN_BUCKETS && 8 * self.ring.len() < self.heads.len() {
            self.rebuild(self.heads.len() / 2);
        }
        Some(k)
    }

    /// Forget the oldest copy of `k`'s key, if any is left (`k` has just left the ring:
    /// when it was a copy, it was that one).
    fn forget_oldest(&mut self, k: &Kept) {
        if k.copy {
            return;
        }
        self.copies_of(k.hash, k.tag, &k.msg.data);
        if let Some(&oldest) = self.scratch.last() {
            if let Some(c) = self.at_mut(oldest) {
                c.copy = false;
            }
        }
    }

    /// Forget the copies of `k`'s key older than `limit`, oldest first, up to the first
    /// that is not (`k`, just out of the ring, is older than `limit`).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn expire_key(&mut self, k: &Kept, limit: Time) {
        if k.copy && !k.followed {
            return; // the key's only copy
        }
        self.copies_of(k.hash, k.tag, &k.msg.data);
        for i in (0..self.scratch.len()).rev() {
            let pos = self.scratch[i];
            match self.at_mut(pos) {
                Some(c) if c.time < limit => c.copy = false,
                _ => break,
            }
        }
    }

    /// Chains again over `buckets` buckets (a power of two).
    fn rebuild(&mut self, buckets: usize) {
        self.heads.clear();
        self.heads.resize(buckets, NIL);
        let mask = buckets - 1;
        for (pos, k) in (self.base..).zip(self.ring.iter_mut()) {
            let b = (k.hash as usize) & mask;
            k.prev = std::mem::replace(&mut self.heads[b], pos);
        }
    }
}

// -- the direction table ---------------------------------------------------------------------

/// (transport, client port, ID, is response) in one integer.
fn turn_key(transport: Transport, client_port: u16, id: u16, is_response: bool) -> u64 {
    let tcp = matches!(transport, Transport::Tcp) as u64;
    (tcp << 33) | (u64::from(client_port) << 17) | (u64::from(id) << 1) | is_response as u64
}

/// One direction's entry: its scrambled key, when a message last went that way, and the
/// rank of its first insertion (`FREE` for an empty slot).
#[derive(Clone, Copy, Debug)]
struct Turn {
    key: u64,
    time: Time,
    rank: u64,
}

/// The rank of an empty slot.
const FREE: u64 = u64::MAX;

const EMPTY_TURN: Turn = Turn {
    key: 0,
    time: 0.0,
    rank: FREE,
};

/// Slots of the smallest direction table.
const MIN_TURN_SLOTS: usize = 64;

/// When a message last went each way, with the order in which each direction was first
/// seen (an entry updated keeps its place), so that a sweep in a burst keeps the same
/// entries a Python dict would.
///
/// Keys are scrambled with a secret seed by a bijection (the MurmurHash3 finalizer), so
/// distinct keys stay distinct and are their own hash, while a capture cannot choose
/// ports and IDs that crowd one part of the table. The table is open addressing with
/// linear probing, at most half full: a message costs one probe of one or two slots, and
/// a sweep rebuilds it.
#[derive(Debug)]
struct Turns {
    seed: u64,
    /// A power of two of slots (or none yet).
    slots: Vec<Turn>,
    len: usize,
    next_rank: u64,
}

impl Turns {
    fn new(seed: u64) -> Self {
        Turns {
            seed,
            slots: Vec::new(),
            len: 0,
            next_rank: 0,
        }
    }

    fn scramble(&self, key: u64) -> u64 {
        crate::hash::fmix64(key ^ self.seed)
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The slot holding `key`, or the empty slot where it would go (the table has slots).
    #[inline]
    fn probe(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = key as usize & mask;
        while let Some(s) = self.slots.get(i) {
            if s.rank == FREE || s.key == key {
                break;
            }
            i = (i + 1) & mask;
        }
        i
    }

    fn get(&self, key: u64) -> Option<Time> {
        if self.slots.is_empty() {
            return None;
        }
        let key = self.scramble(key);
        self.slots
            .get(self.probe(key))
            .filter(|s| s.rank != FREE)
            .map(|s| s.time)
    }

    fn set(&mut self, key: u64, t: Time) {
        if 2 * (self.len + 1) > self.slots.len() {
            self.rebuild(MIN_TURN_SLOTS.max(2 * self.slots.len()), |_| true);
        }
        let key = self.scramble(key);
        let i = self.probe(key);
        if let Some(s) = self.slots.get_mut(i) {
            if s.rank == FREE {
                *s = Turn {
                    key,
                    time: t,
                    rank: self.next_rank,
                };
                self.next_rank += 1;
                self.len += 1;
            } else {
                s.time = t;
            }
        }
    }

    /// The table again with `slots` slots and the entries `keep` keeps.
    fn rebuild(&mut self, slots: usize, keep: impl Fn(&Turn) -> bool) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY_TURN; slots]);
        self.len = 0;
        for t in old.into_iter().filter(|t| t.rank != FREE && keep(t)) {
            let i = self.probe(t.key);
            if let Some(s) = self.slots.get_mut(i) {
                *s = t;
                self.len += 1;
            }
        }
    }

    /// Keep the entries at or after `limit`, and of those at most the newest half of
    /// `max_entries` (by first insertion); return how many were dropped for that cap.
    fn retain(&mut self, limit: Time, max_entries: usize) -> u64 {
        let slots = self.slots.len();
        self.rebuild(slots, |t| t.time >= limit);
        // A burst: keep the newest half of the cap (all of them when that half is 0, as a
        // slice from -0 keeps everything).
        let half = max_entries / 2;
        if self.len <= max_entries || half == 0 {
            return 0;
        }
        let mut ranks: Vec<u64> = self
            .slots
            .iter()
            .filter(|t| t.rank != FREE)
            .map(|t| t.rank)
            .collect();
        let cut = ranks.len() - half;
        let (_, &mut first_kept, _) = ranks.select_nth_unstable(cut);
        self.rebuild(slots, |t| t.rank >= first_kept);
        cut as u64
    }
}

/// Remembers each kept message for `window` seconds and recognises its copies.
#[derive(Debug)]
pub struct Deduplicator {
    pub window: Time,
    /// Frame of each dropped copy -> frame of the copy that was kept (when recording).
    pub copies: Option<HashMap<u64, u64>>,
    /// Copies dropped.
    pub duplicates: u64,
    /// Messages forgotten before their window was over because `max_entries` were
    /// remembered (a burst, often with one time stamp): a copy of one is kept.
    pub evicted: u64,
    pub max_entries: usize,
    /// Server addresses on either side of a DNAT, each once, in the order seen: a copy
    /// whose server address differs from the first copy's (a Service address and the pod
    /// behind it). At most `MAX_DNAT_SERVERS`.
    pub dnat_servers: Vec<IpAddr>,
    /// (Service address, DNAT target) pairs seen in copies, each once (`legs::MAX_PAIRS`).
    pub dnat_pairs: DnatPairs,
    /// Copies past `legs::MAX_LEGS` of one message: counted, not remembered as legs.
    pub legs_overflow: u64,
    hasher: Seeded,
    /// Each kept message, in the order kept.
    kept: Window,
    turns: Turns,
    /// Size of `turns` that triggers the next sweep of entries older than the window
    /// (amortized: the per-message cost stays one table store).
    turn_sweep_at: usize,
}

impl Deduplicator {
    pub fn new(window: Time, record_copies: bool, max_entries: usize) -> Self {
        let hasher = Seeded::new();
        let seed = RandomState::new().hash_one(0x5eed_u64);
        Deduplicator {
            window,
            copies: if record_copies {
                Some(HashMap::new())
            } else {
                None
            },
            duplicates: 0,
            evicted: 0,
            max_entries,
            dnat_servers: Vec::new(),
            dnat_pairs: DnatPairs::default(),
            legs_overflow: 0,
            hasher,
            kept: Window::new(),
            turns: Turns::new(seed),
            turn_sweep_at: TURN_SWEEP_MIN,
        }
    }

    /// The DNAT'd server addresses in text form, sorted as text.
    pub fn dnat_server_texts(&self) -> Vec<String> {
        let mut out: Vec<String> = self.dnat_servers.iter().map(addr_text).collect();
        out.sort();
        out
    }

    /// Messages remembered now (for tests of the memory bound).
    pub fn remembered(&self) -> usize {
        self.kept.len()
    }

    /// Entries of the direction table now (for tests of the memory bound).
    pub fn turns_remembered(&self) -> usize {
        self.turns.len()
    }

    /// True when `m` is a copy of a message kept earlier; else remember `m` (a copy of it:
    /// `is_duplicate_msg` keeps the message itself).
    pub fn is_duplicate(&mut self, m: &Message) -> bool {
        self.is_duplicate_msg(&Rc::new(m.clone()))
    }

    /// `is_duplicate` of a shared message, which is kept (not copied) while remembered.
    pub fn is_duplicate_msg(&mut self, m: &Msg) -> bool {
        let t = m.time;
        self.expire(t);
        let is_response = m.flags & QR != 0;
        let client_port = if is_response { m.dport } else { m.sport };
        let tag = (u32::from(matches!(m.transport, Transport::Tcp)) << 16) | u32::from(client_port);
        let hash = key_hash(&self.hasher, tag, &m.data);
        // On one TCP connection, reassembly already dropped segments captured twice; two
        // identical messages there are two messages (a client may repeat a query).
        let udp = m.transport == Transport::Udp;
        // The key's copies, newest first: the oldest that `m` copies is the one it copies.
        let window = self.window;
        let w = &mut self.kept;
        let mut other_way = None;
        let mut first = None;
        let mut pos = w.heads[w.bucket(hash)];
        while let Some(s) = w.at_mut(pos) {
            if s.copy && s.same_key(hash, tag, &m.data) {
                let other_way = *other_way.get_or_insert_with(|| {
                    self.turns
                        .get(turn_key(m.transport, client_port, m.id, !is_response))
                        .unwrap_or(-1.0)
                });
                let c = &s.msg;
                if t - s.time <= window
                    && other_way < s.time
                    && (c.iface != m.iface
                        || (udp
                            && c.src == m.src
                            && c.sport == m.sport
                            && c.dst == m.dst
                            && c.dport == m.dport))
                {
                    first = Some(pos);
                }
                // When `m` is kept, this copy must look for it when it expires.
                s.followed = true;
            }
            pos = s.prev;
        }
        if let Some(s) = first.and_then(|pos| w.at(pos)) {
            let s = &s.msg;
            let (server, was) = if is_response {
                (m.src, s.src)
            } else {
                (m.dst, s.dst)
            };
            let kept_frame = s.frame;
            self.duplicates += 1;
            // The copy is a leg of the kept message: where it was seen, and where it went.
            let leg = Leg {
                frame: m.frame,
                time: m.time,
                iface: m.iface,
                addr: server,
            };
            if !s.legs.push(leg) {
                self.legs_overflow += 1;
            }
            if server != was {
                // A query's first copy is the pod's (before the DNAT); an answer's first
                // copy is the server's (before it is un-NAT'd).
                if is_response {
                    self.dnat_pairs.add(server, was);
                } else {
                    self.dnat_pairs.add(was, server);
                }
                if self.dnat_servers.len() < MAX_DNAT_SERVERS - 1 {
                    for a in [server, was] {
                        if !self.dnat_servers.contains(&a) {
                            self.dnat_servers.push(a);
                        }
                    }
                }
            }
            if let Some(copies) = &mut self.copies {
                copies.insert(m.frame, kept_frame);
            }
            return true;
        }
        w.push(t, hash, tag, m);
        if w.len() > self.max_entries {
            // Nothing expires by time in a burst with one time stamp: forget by count too.
            if let Some(old) = w.pop_front() {
                w.forget_oldest(&old);
            }
            self.evicted += 1;
        }
        self.turns
            .set(turn_key(m.transport, client_port, m.id, is_response), t);
        if self.turns.len() >= self.turn_sweep_at {
            self.evicted += self.turns.retain(t - self.window, self.max_entries);
            self.turn_sweep_at = TURN_SWEEP_MIN.max(2 * self.turns.len());
        }
        false
    }

    /// Forget the copies kept longer than the window before `t`.
    fn expire(&mut self, t: Time) {
        let limit = t - self.window;
        let w = &mut self.kept;
        while w.ring.front().is_some_and(|k| k.time < limit) {
            let Some(old) = w.pop_front() else {
                break;
            };
            w.expire_key(&old, limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn msg(frame: u64, time: Time, iface: u32, dst: [u8; 4], flags: u16, data: &[u8]) -> Message {
        let (client, server) = (
            IpAddr::V4(Ipv4Addr::new(10, 0, 3, 7)),
            IpAddr::V4(dst.into()),
        );
        let response = flags & QR != 0;
        Message {
            frame,
            time,
            iface,
            transport: Transport::Udp,
            src: if response { server } else { client },
            sport: if response { 53 } else { 40000 },
            dst: if response { client } else { server },
            dport: if response { 40000 } else { 53 },
            id: 0x1234,
            flags,
            qdcount: 1,
            ancount: 0,
            qname: None,
            qtype: 1,
            qclass: 1,
            data: data.into(),
            legs: Default::default(),
        }
    }

    #[test]
    fn copy_on_another_interface_after_dnat() {
        let mut d = Deduplicator::new(0.050, true, 100_000);
        assert!(!d.is_duplicate(&msg(1, 0.0, 12, [10, 96, 0, 10], 0x0100, b"q")));
        assert!(d.is_duplicate(&msg(2, 0.00002, 2, [10, 244, 2, 5], 0x0100, b"q")));
        assert!(!d.is_duplicate(&msg(3, 0.0011, 2, [10, 244, 2, 5], 0x8180, b"r")));
        assert!(d.is_duplicate(&msg(4, 0.00112, 12, [10, 96, 0, 10], 0x8180, b"r")));
        assert_eq!(d.duplicates, 2);
        assert_eq!(d.copies, Some(HashMap::from([(2, 1), (4, 3)])));
        assert_eq!(d.dnat_server_texts(), ["10.244.2.5", "10.96.0.10"]);
        assert_eq!(d.dnat_servers.len(), 2);
    }

    #[test]
    fn dropped_copies_are_legs_of_the_kept_message() {
        let mut d = Deduplicator::new(0.050, false, 100_000);
        let q = Rc::new(msg(1, 0.0, 12, [10, 96, 0, 10], 0x0100, b"q"));
        let r = Rc::new(msg(3, 0.0011, 2, [10, 244, 2, 5], 0x8180, b"r"));
        assert!(!d.is_duplicate_msg(&q));
        assert!(d.is_duplicate(&msg(2, 0.00002, 2, [10, 244, 2, 5], 0x0100, b"q")));
        assert!(!d.is_duplicate_msg(&r));
        assert!(d.is_duplicate(&msg(4, 0.00112, 12, [10, 96, 0, 10], 0x8180, b"r")));
        let leg = |frame, time, iface, a: [u8; 4]| Leg {
            frame,
            time,
            iface,
            addr: IpAddr::V4(a.into()),
        };
        assert_eq!(q.legs.get().legs, [leg(2, 0.00002, 2, [10, 244, 2, 5])]);
        assert_eq!(r.legs.get().legs, [leg(4, 0.00112, 12, [10, 96, 0, 10])]);
        // Both say the same pair: the Service address first.
        let s: IpAddr = "10.96.0.10".parse().unwrap();
        let t: IpAddr = "10.244.2.5".parse().unwrap();
        assert_eq!(d.dnat_pairs.pairs, [(s, t)]);
        assert_eq!(d.duplicates, 2);
        // Copies past the cap are counted.
        for i in 0..6 {
            let iface = 20 + i;
            assert!(d.is_duplicate(&msg(
                10 + u64::from(i),
                0.0012,
                iface,
                [10, 96, 0, 10],
                0x8180,
                b"r"
            )));
        }
        assert_eq!(r.legs.get().legs.len(), crate::legs::MAX_LEGS);
        assert_eq!(d.legs_overflow, 3);
    }

    #[test]
    fn query_sent_again_after_its_answer_is_kept() {
        let mut d = Deduplicator::new(0.050, false, 100_000);
        assert!(!d.is_duplicate(&msg(1, 1.0, 2, [10, 96, 0, 10], 0x0100, b"q")));
        assert!(!d.is_duplicate(&msg(2, 1.00005, 2, [10, 96, 0, 10], 0x8185, b"r")));
        assert!(!d.is_duplicate(&msg(3, 1.00012, 2, [10, 96, 0, 10], 0x0100, b"q")));
        assert_eq!(d.duplicates, 0);
    }

    #[test]
    fn memory_is_bounded_by_the_window() {
        let mut d = Deduplicator::new(0.050, false, 100_000);
        for i in 0..10_000u64 {
            let mut m = msg(i + 1, i as f64 * 0.01, 0, [10, 96, 0, 10], 0x0100, b"q");
            m.sport = 30000 + (i % 20000) as u16;
            assert!(!d.is_duplicate(&m));
        }
        assert!(d.remembered() <= 6);
        assert!(d.kept.ring.iter().filter(|k| k.copy).count() <= 6);
        assert!(d.turns_remembered() <= TURN_SWEEP_MIN);
    }
}
