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
//! Memory: at most `max_entries` messages are remembered (each kept once, shared with the
//! matcher); past that the oldest is forgotten and counted in `evicted`.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::rc::Rc;

use crate::hash::Seeded;
use crate::types::{addr_text, Message, Msg, Time, Transport, QR};

/// Server addresses remembered as DNAT'd: a cluster has a few DNS addresses, a hostile
/// capture could show any number.
pub const MAX_DNAT_SERVERS: usize = 64;

/// Size of the direction table below which it is never swept.
const TURN_SWEEP_MIN: usize = 4096;

/// The copies kept of one (transport, client port, payload): never empty, oldest first.
/// A copy is the message itself (shared with the matcher: its time, interface, addresses
/// and frame are read there). The first lives inline: almost every message has one copy
/// kept.
#[derive(Debug)]
struct Slot {
    first: Msg,
    // Boxed on purpose: a second copy is rare, and the slot stays 16 bytes (an empty
    // VecDeque would add 32 to every one).
    #[allow(clippy::box_collection)]
    more: Option<Box<VecDeque<Msg>>>,
}

impl Slot {
    fn new(m: &Msg) -> Slot {
        Slot {
            first: m.clone(),
            more: None,
        }
    }

    fn front(&self) -> &Msg {
        &self.first
    }

    fn push_back(&mut self, m: &Msg) {
        self.more
            .get_or_insert_with(Box::default)
            .push_back(m.clone());
    }

    /// Drop the oldest copy; false when none is left (the slot must then go).
    fn pop_front(&mut self) -> bool {
        match self.more.as_mut().and_then(|more| more.pop_front()) {
            Some(next) => {
                self.first = next;
                true
            }
            None => false,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Msg> {
        std::iter::once(&self.first).chain(self.more.iter().flat_map(|more| more.iter()))
    }
}

// -- keys hashed once ----------------------------------------------------------------------
//
// A message's key is hashed once, with the core's randomly keyed hasher (the payload is
// the capture's, so the hash must not be predictable), and the tables below reuse that
// hash for every lookup, insertion and removal.

/// What a message's copies share: transport and client port (`tag`), and the payload: the
/// kept message's bytes, read in the message itself (held for the table and the time
/// order, never copied).
#[derive(Clone, Debug)]
struct Key {
    hash: u64,
    tag: u32,
    msg: Msg,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        // The time order holds the table's own keys: the same bytes, not compared.
        self.hash == other.hash
            && self.tag == other.tag
            && (Rc::ptr_eq(&self.msg, &other.msg) || *self.msg.data == *other.msg.data)
    }
}

impl Eq for Key {}

/// The hasher of tables whose keys carry their hash already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by the keys here, which write one u64.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

type PrehashedMap<K, V> = HashMap<K, V, BuildHasherDefault<Prehashed>>;

/// (transport, client port, ID, is response) in one integer.
fn turn_key(transport: Transport, client_port: u16, id: u16, is_response: bool) -> u64 {
    let tcp = matches!(transport, Transport::Tcp) as u64;
    (tcp << 33) | (u64::from(client_port) << 17) | (u64::from(id) << 1) | is_response as u64
}

/// When a message last went each way, with the order in which each direction was first
/// seen (an entry updated keeps its place), so that a sweep in a burst keeps the same
/// entries a Python dict would.
///
/// Keys are scrambled with a secret seed by a bijection (the MurmurHash3 finalizer), so
/// distinct keys stay distinct and need no second hash, while a capture cannot choose
/// ports and IDs that crowd one part of the table.
#[derive(Debug)]
struct Turns {
    seed: u64,
    /// Scrambled key -> (time, rank of first insertion).
    map: PrehashedMap<u64, (Time, u64)>,
    next_rank: u64,
}

impl Turns {
    fn new(seed: u64) -> Self {
        Turns {
            seed,
            map: PrehashedMap::default(),
            next_rank: 0,
        }
    }

    fn scramble(&self, key: u64) -> u64 {
        let mut h = key ^ self.seed;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn get(&self, key: u64) -> Option<Time> {
        self.map.get(&self.scramble(key)).map(|e| e.0)
    }

    fn set(&mut self, key: u64, t: Time) {
        let key = self.scramble(key);
        match self.map.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().0 = t,
            Entry::Vacant(e) => {
                e.insert((t, self.next_rank));
                self.next_rank += 1;
            }
        }
    }

    /// Keep the entries at or after `limit`, and of those at most the newest half of
    /// `max_entries` (by first insertion); return how many were dropped for that cap.
    fn retain(&mut self, limit: Time, max_entries: usize) -> u64 {
        self.map.retain(|_, e| e.0 >= limit);
        // A burst: keep the newest half of the cap (all of them when that half is 0, as a
        // slice from -0 keeps everything).
        let half = max_entries / 2;
        if self.map.len() <= max_entries || half == 0 {
            return 0;
        }
        let mut ranks: Vec<u64> = self.map.values().map(|e| e.1).collect();
        let cut = ranks.len() - half;
        let (_, &mut first_kept, _) = ranks.select_nth_unstable(cut);
        self.map.retain(|_, e| e.1 >= first_kept);
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
    hasher: Seeded,
    seen: PrehashedMap<Key, Slot>,
    /// Each kept message's time and key, in the order kept.
    order: VecDeque<(Time, Key)>,
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
            hasher,
            seen: PrehashedMap::default(),
            order: VecDeque::new(),
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
        self.order.len()
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
        // The message itself, shared: the key costs no copy, and one probe of the
        // table finds the kept copies or makes room for this one.
        let probe = Key {
            hash: self.hasher.hash_bytes(u64::from(tag), &m.data),
            tag,
            msg: m.clone(),
        };
        // On one TCP connection, reassembly already dropped segments captured twice; two
        // identical messages there are two messages (a client may repeat a query).
        let udp = m.transport == Transport::Udp;
        let key = match self.seen.entry(probe) {
            Entry::Occupied(mut e) => {
                let other_way = self
                    .turns
                    .get(turn_key(m.transport, client_port, m.id, !is_response))
                    .unwrap_or(-1.0);
                let first = e.get().iter().find(|s| {
                    t - s.time <= self.window
                        && other_way < s.time
                        && (s.iface != m.iface
                            || (udp
                                && s.src == m.src
                                && s.sport == m.sport
                                && s.dst == m.dst
                                && s.dport == m.dport))
                });
                if let Some(s) = first {
                    let (server, was) = if is_response {
                        (m.src, s.src)
                    } else {
                        (m.dst, s.dst)
                    };
                    let kept_frame = s.frame;
                    self.duplicates += 1;
                    if server != was && self.dnat_servers.len() < MAX_DNAT_SERVERS - 1 {
                        for a in [server, was] {
                            if !self.dnat_servers.contains(&a) {
                                self.dnat_servers.push(a);
                            }
                        }
                    }
                    if let Some(copies) = &mut self.copies {
                        copies.insert(m.frame, kept_frame);
                    }
                    return true;
                }
                e.get_mut().push_back(m);
                // The bytes of the copy kept first, shared.
                e.key().clone()
            }
            Entry::Vacant(e) => {
                let key = e.key().clone();
                e.insert(Slot::new(m));
                key
            }
        };
        self.order.push_back((t, key));
        if self.order.len() > self.max_entries {
            // Nothing expires by time in a burst with one time stamp: forget by count too.
            if let Some((_, old)) = self.order.pop_front() {
                self.forget_oldest(old);
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
        while self.order.front().is_some_and(|&(first, _)| first < limit) {
            let Some((_, old)) = self.order.pop_front() else {
                break;
            };
            if let Entry::Occupied(mut e) = self.seen.entry(old) {
                let slot = e.get_mut();
                while slot.front().time < limit {
                    if !slot.pop_front() {
                        e.remove();
                        break;
                    }
                }
            }
        }
    }

    /// Forget the oldest copy kept under `key`, if any is left.
    fn forget_oldest(&mut self, key: Key) {
        if let Entry::Occupied(mut e) = self.seen.entry(key) {
            if !e.get_mut().pop_front() {
                e.remove();
            }
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
        assert!(d.seen.values().map(|s| s.iter().count()).sum::<usize>() <= 6);
        assert!(d.turns_remembered() <= TURN_SWEEP_MIN);
    }
}
