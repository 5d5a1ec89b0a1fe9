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

/// A shared name under a key of bytes (its wire form, or its text), hashed and compared by
/// them so that the table can be probed with the bytes of a message.
struct Shared {
    key: Box<[u8]>,
    name: QName,
}

impl Borrow<[u8]> for Shared {
    fn borrow(&self) -> &[u8] {
        &self.key
    }
}

impl Hash for Shared {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Shared) -> bool {
        self.key == other.key
    }
}

impl Eq for Shared {}

/// The names of the messages in memory, one copy each.
pub struct Names {
    /// Uncompressed names by wire form.
    wire: Table,
    /// The others by text (read out): a name reached through a compression pointer.
    text: Table,
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

    fn insert(&mut self, key: &[u8], name: &QName) {
        if self.set.len() >= self.sweep_at {
            // Names no message holds any more (only the table does).
            self.set.retain(|s| s.name.holders() > 1);
            self.sweep_at = SWEEP_MIN.max(2 * self.set.len());
        }
        self.set.insert(Shared {
            key: key.into(),
            name: name.clone(),
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
            if let Some(name) = self.wire.get(wire) {
                return Ok((name, end));
            }
            self.buf.clear();
            let after = read_qname_into(data, pos, &mut self.buf)?;
            let name = QName::from(self.buf.to_boxed_str());
            self.wire.insert(wire, &name);
            return Ok((name, after));
        }
        self.buf.clear();
        let after = read_qname_into(data, pos, &mut self.buf)?;
        if let Some(name) = self.text.get(self.buf.as_bytes()) {
            return Ok((name, after));
        }
        let name = QName::from(self.buf.to_boxed_str());
        self.text.insert(name.as_bytes(), &name);
        Ok((name, after))
    }
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
