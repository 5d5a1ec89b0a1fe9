//! Question names shared between the messages that ask and answer them.
//!
//! A capture asks for the same few names over and over (a query and its answer, A and
//! AAAA, every retry, every pod asking for the same Service). Each message used to own a
//! copy of its name; here the messages in memory share one copy per distinct name, found
//! by its wire form when the question's name is not compressed (nearly always: nothing
//! comes before it to point to): a name already in memory costs neither an allocation nor
//! reading it out, and the matcher sees the same pointer in a query and its answer. Any
//! other name is read out as before and its text looked up.
//!
//! Memory: a name is forgotten once no message holds it. The table is swept when it has
//! doubled since the last sweep (at least `SWEEP_MIN` entries), so a capture of ever new
//! names costs O(1) amortized per message and at most twice the names in memory.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use super::name::{read_qname_into, NameBuf, MAX_NAME};
use super::DnsError;
use crate::hash::Seeded;
use crate::types::QName;

/// Size of the table below which it is never swept.
const SWEEP_MIN: usize = 4096;

/// Slots of the cache of recent wire names (`Names::recent`): 8 KB.
const RECENT_BITS: u32 = 10;

/// A shared name under a key of bytes (its wire form, or its text), hashed and compared by
/// them so that the table can be probed with the bytes of a message.
struct Shared {
    name: QName,
    /// Keyed by the wire form the name keeps (else by its text).
    by_wire: bool,
}

impl Borrow<[u8]> for Shared {
    fn borrow(&self) -> &[u8] {
        if self.by_wire {
            self.name.wire()
        } else {
            self.name.as_bytes()
        }
    }
}

impl Hash for Shared {
    fn hash<H: Hasher>(&self, state: &mut H) {
        <Shared as Borrow<[u8]>>::borrow(self).hash(state);
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Shared) -> bool {
        <Shared as Borrow<[u8]>>::borrow(self) == <Shared as Borrow<[u8]>>::borrow(other)
    }
}

impl Eq for Shared {}

/// The names of the messages in memory, one copy each.
pub struct Names {
    /// Uncompressed names by wire form.
    wire: Table,
    /// The others by text (read out): a name reached through a compression pointer.
    text: Table,
    /// The wire names found lately, by a cheap unkeyed hash of their bytes: most messages
    /// ask a name asked just before (a query and its answer, A and AAAA, the pods of one
    /// Service), found here without hashing the name with the keyed hasher. A miss only
    /// costs the table's probe, so a capture that makes its names collide here gains
    /// nothing; the names only the cache and the table hold go at the table's sweep.
    recent: Box<[Option<QName>]>,
    /// Scratch space for the name being read.
    buf: NameBuf,
}

struct Table {
    set: HashSet<Shared, Seeded>,
    sweep_at: usize,
}

impl Table {
    fn new() -> Table {
        Table {
            set: HashSet::with_hasher(Seeded::new()),
            sweep_at: SWEEP_MIN,
        }
    }

    fn get(&self, key: &[u8]) -> Option<QName> {
        self.set.get(key).map(|s| s.name.clone())
    }

    /// Whether the next insertion sweeps the table.
    fn sweep_due(&self) -> bool {
        self.set.len() >= self.sweep_at
    }

    fn insert(&mut self, name: &QName, by_wire: bool) {
        if self.sweep_due() {
            // Names no message holds any more (only the table does).
            self.set.retain(|s| s.name.holders() > 1);
            self.sweep_at = SWEEP_MIN.max(2 * self.set.len());
        }
        self.set.insert(Shared {
            name: name.clone(),
            by_wire,
        });
    }
}

impl Default for Names {
    fn default() -> Self {
        Names::new()
    }
}

impl Names {
    pub fn new() -> Names {
        Names {
            wire: Table::new(),
            text: Table::new(),
            recent: vec![None; 1 << RECENT_BITS].into_boxed_slice(),
            buf: NameBuf::new(),
        }
    }

    /// Distinct names held now (for tests of the memory bound).
    pub fn len(&self) -> usize {
        self.wire.set.len() + self.text.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The question name at `pos` in `data`, shared, and the offset after it; errors as
    /// `read_name`.
    pub(crate) fn question(&mut self, data: &[u8], pos: usize) -> Result<(QName, usize), DnsError> {
        if let Some(end) = uncompressed(data, pos) {
            let wire = data.get(pos..end).unwrap_or_default();
            let slot = recent_slot(wire);
            if let Some(Some(name)) = self.recent.get(slot) {
                if name.wire() == wire {
                    return Ok((name.clone(), end));
                }
            }
            let name = match self.wire.get(wire) {
                Some(name) => name,
                None => {
                    self.buf.clear();
                    read_qname_into(data, pos, &mut self.buf)?;
                    let name = QName::with_wire(self.buf.to_boxed_str(), wire);
                    if self.wire.sweep_due() {
                        // The cache lets go of the names only it and the table hold, so
                        // that the sweep forgets them.
                        for r in self.recent.iter_mut() {
                            if r.as_ref().is_some_and(|n| n.holders() <= 2) {
                                *r = None;
                            }
                        }
                    }
                    self.wire.insert(&name, true);
                    name
                }
            };
            if let Some(r) = self.recent.get_mut(slot) {
                *r = Some(name.clone());
            }
            return Ok((name, end));
        }
        self.buf.clear();
        let after = read_qname_into(data, pos, &mut self.buf)?;
        if let Some(name) = self.text.get(self.buf.as_bytes()) {
            return Ok((name, after));
        }
        let name = QName::from(self.buf.to_boxed_str());
        self.text.insert(&name, false);
        Ok((name, after))
    }
}

/// The slot of `wire` in `Names::recent`: its length and its first and last eight bytes,
/// mixed by a multiply (names that share a suffix differ at the front, and the other way).
#[inline]
fn recent_slot(wire: &[u8]) -> usize {
    let n = wire.len();
    let word = |at: usize| {
        u64::from_le_bytes(
            wire.get(at..at + 8)
                .and_then(|w| w.try_into().ok())
                .unwrap_or([0; 8]),
        )
    };
    let (a, b) = if n >= 8 {
        (word(0), word(n - 8))
    } else {
        let byte = |at: usize| u64::from(wire.get(at).copied().unwrap_or(0));
        (
            byte(0) | byte(n / 2) << 8 | byte(n.saturating_sub(1)) << 16,
            0,
        )
    };
    let h = (a ^ b.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> (64 - RECENT_BITS)) as usize
}

/// The end of the name at `pos` when it is whole and uncompressed, and so valid: every
/// label within `data`, no pointer and no reserved label type, at most 255 bytes in wire
/// form with the final zero byte (RFC 1035 2.3.4). Its wire form then says what its text
/// is.
fn uncompressed(data: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    loop {
        let c = usize::from(*data.get(pos)?);
        if c == 0 {
            break;
        }
        if c > 63 {
            return None;
        }
        pos += 1 + c;
    }
    (pos + 1 - start <= MAX_NAME).then_some(pos + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(names: &mut Names, wire: &[u8]) -> QName {
        let (name, after) = names.question(wire, 0).unwrap();
        assert_eq!(after, wire.len());
        name
    }

    #[test]
    fn one_copy_per_name_while_held() {
        let mut names = Names::new();
        let a = take(&mut names, b"\x03www\x07example\x03com\x00");
        let b = take(&mut names, b"\x03www\x07example\x03com\x00");
        let c = take(&mut names, b"\x03WWW\x07example\x03com\x00");
        assert!(QName::same(&a, &b));
        assert_eq!(&*c, "WWW.example.com");
        assert!(!QName::same(&a, &c));
        assert_eq!(&*take(&mut names, b"\x00"), ".");
        assert_eq!(&*take(&mut names, b"\x01.\x00"), "\\.");
        // A compressed name is read out and shared by its text.
        let mut msg = b"\x03www\x00".to_vec();
        msg.extend_from_slice(b"\xc0\x00");
        let (d, after) = names.question(&msg, 5).unwrap();
        let (e, _) = names.question(&msg, 5).unwrap();
        assert_eq!((&*d, after), ("www", 7));
        assert!(QName::same(&d, &e));
    }

    #[test]
    fn names_that_share_a_recent_slot_stay_apart() {
        let wire = |i: u32| {
            let label = format!("name{i}");
            let mut w = vec![label.len() as u8];
            w.extend_from_slice(label.as_bytes());
            w.push(0);
            w
        };
        let first = wire(0);
        let other = (1..)
            .map(wire)
            .find(|w| recent_slot(w) == recent_slot(&first))
            .unwrap();
        let mut names = Names::new();
        let a = take(&mut names, &first);
        let b = take(&mut names, &other);
        for _ in 0..3 {
            assert!(QName::same(&a, &take(&mut names, &first)));
            assert!(QName::same(&b, &take(&mut names, &other)));
        }
        assert_eq!(&*a, "name0");
        assert_ne!(&*a, &*b);
    }

    #[test]
    fn names_no_message_holds_are_forgotten() {
        let mut names = Names::new();
        let kept = take(&mut names, b"\x04kept\x00");
        for i in 0..100_000u32 {
            let label = format!("n{i}");
            let mut wire = vec![label.len() as u8];
            wire.extend_from_slice(label.as_bytes());
            wire.push(0);
            take(&mut names, &wire);
        }
        assert!(names.len() <= 2 * SWEEP_MIN, "{}", names.len());
        assert!(QName::same(&kept, &take(&mut names, b"\x04kept\x00")));
    }
}
