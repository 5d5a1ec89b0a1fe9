//! Question names shared between the messages that ask and answer them.
//!
//! A capture asks for the same few names over and over (a query and its answer, A and
//! AAAA, every retry, every pod asking for the same Service). Each message used to own a
//! copy of its name; here the messages in memory share one copy per distinct text, found
//! by hashing the name's presentation form in a stack buffer: a name already in memory
//! costs no allocation, and the matcher sees the same pointer in a query and its answer.
//!
//! Memory: a name is forgotten once no message holds it. The table is swept when it has
//! doubled since the last sweep (at least `SWEEP_MIN` entries), so a capture of ever new
//! names costs O(1) amortized per message and at most twice the names in memory.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use super::name::NameBuf;
use crate::hash::Seeded;

/// Size of the table below which it is never swept.
const SWEEP_MIN: usize = 4096;

/// A shared name, hashed and compared by its bytes so that the table can be probed with
/// the bytes of a name not yet made a `str`.
#[derive(Clone)]
struct Shared(Rc<str>);

impl Borrow<[u8]> for Shared {
    fn borrow(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Hash for Shared {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_bytes().hash(state);
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Shared) -> bool {
        self.0 == other.0
    }
}

impl Eq for Shared {}

/// The names of the messages in memory, one copy each.
pub struct Names {
    table: Table,
    /// Scratch space for the name being read.
    pub(crate) buf: NameBuf,
}

struct Table {
    set: HashSet<Shared, Seeded>,
    sweep_at: usize,
}

impl Default for Names {
    fn default() -> Self {
        Names::new()
    }
}

impl Names {
    pub fn new() -> Names {
        Names {
            table: Table {
                set: HashSet::with_hasher(Seeded::new()),
                sweep_at: SWEEP_MIN,
            },
            buf: NameBuf::new(),
        }
    }

    /// Distinct names held now (for tests of the memory bound).
    pub fn len(&self) -> usize {
        self.table.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.set.is_empty()
    }

    /// The scratch buffer, emptied, and the table that shares what it will hold.
    pub(crate) fn parts(&mut self) -> (&mut NameBuf, impl FnOnce(&NameBuf) -> Rc<str> + '_) {
        self.buf.clear();
        let table = &mut self.table;
        (&mut self.buf, move |name: &NameBuf| table.take(name))
    }
}

impl Table {
    /// The shared copy of `name`.
    fn take(&mut self, name: &NameBuf) -> Rc<str> {
        if let Some(found) = self.set.get(name.as_bytes()) {
            return found.0.clone();
        }
        let text = name.to_rc_str();
        if self.set.len() >= self.sweep_at {
            // Names no message holds any more (only the table does).
            self.set.retain(|s| Rc::strong_count(&s.0) > 1);
            self.sweep_at = SWEEP_MIN.max(2 * self.set.len());
        }
        self.set.insert(Shared(text.clone()));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(names: &mut Names, wire: &[u8]) -> Rc<str> {
        let (buf, share) = names.parts();
        super::super::name::read_qname_into(wire, 0, buf).unwrap();
        share(buf)
    }

    #[test]
    fn one_copy_per_name_while_held() {
        let mut names = Names::new();
        let a = take(&mut names, b"\x03www\x07example\x03com\x00");
        let b = take(&mut names, b"\x03www\x07example\x03com\x00");
        let c = take(&mut names, b"\x03WWW\x07example\x03com\x00");
        assert!(Rc::ptr_eq(&a, &b));
        assert_eq!(&*c, "WWW.example.com");
        assert!(!Rc::ptr_eq(&a, &c));
        assert_eq!(&*take(&mut names, b"\x00"), ".");
        assert_eq!(&*take(&mut names, b"\x01.\x00"), "\\.");
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
        assert!(Rc::ptr_eq(&kept, &take(&mut names, b"\x04kept\x00")));
    }
}
