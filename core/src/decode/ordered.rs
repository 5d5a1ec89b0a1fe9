//! An insertion-ordered map with "move to the end": the shape of Python's `OrderedDict`
//! as the reassemblers use it (oldest first for eviction, least recently active first for
//! TCP directions).
//!
//! Entries live in a slab linked in order; a hash map finds a key's slot. Every operation
//! is O(1) except iteration, which is O(n) in the entries.

use std::hash::Hash;

use crate::hash::FastMap;

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Slot<K, V> {
    key: K,
    val: V,
    prev: usize,
    next: usize,
}

#[derive(Debug)]
pub struct OrderedMap<K, V> {
    /// Keys come from capture bytes: the core's keyed hasher.
    index: FastMap<K, usize>,
    slots: Vec<Option<Slot<K, V>>>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
}

impl<K: Hash + Eq + Clone, V> Default for OrderedMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, V> OrderedMap<K, V> {
    pub fn new() -> Self {
        OrderedMap {
            index: FastMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The slot of `key`, if present.
    pub fn find(&self, key: &K) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// Add `key` (which must not be present) at the end; return its slot.
    pub fn push_back(&mut self, key: K, val: V) -> usize {
        let slot = Slot {
            key: key.clone(),
            val,
            prev: self.tail,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        if self.tail != NIL {
            self.link_mut(self.tail).next = i;
        } else {
            self.head = i;
        }
        self.tail = i;
        self.index.insert(key, i);
        i
    }

    /// Move the entry in slot `i` to the end (most recent).
    pub fn move_to_back(&mut self, i: usize) {
        if self.tail == i {
            return;
        }
        self.unlink(i);
        let tail = self.tail;
        {
            let s = self.link_mut(i);
            s.prev = tail;
            s.next = NIL;
        }
        if tail != NIL {
            self.link_mut(tail).next = i;
        } else {
            self.head = i;
        }
        self.tail = i;
    }

    /// Remove the entry in slot `i`; return its key and value.
    pub fn remove(&mut self, i: usize) -> (K, V) {
        self.unlink(i);
        let slot = self.slots[i].take().expect("occupied slot");
        self.free.push(i);
        self.index.remove(&slot.key);
        (slot.key, slot.val)
    }

    /// The first (oldest) entry's slot.
    pub fn first(&self) -> Option<usize> {
        (self.head != NIL).then_some(self.head)
    }

    pub fn get(&self, i: usize) -> &V {
        &self.slots[i].as_ref().expect("occupied slot").val
    }

    pub fn get_mut(&mut self, i: usize) -> &mut V {
        &mut self.link_mut(i).val
    }

    #[cfg(test)]
    pub fn key(&self, i: usize) -> &K {
        &self.slots[i].as_ref().expect("occupied slot").key
    }

    /// The slots in order, oldest first.
    pub fn slots_in_order(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.len());
        let mut i = self.head;
        while i != NIL {
            out.push(i);
            i = self.slots[i].as_ref().expect("occupied slot").next;
        }
        out
    }

    /// Drop every entry.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    fn link_mut(&mut self, i: usize) -> &mut Slot<K, V> {
        self.slots[i].as_mut().expect("occupied slot")
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = {
            let s = self.link_mut(i);
            (s.prev, s.next)
        };
        if prev != NIL {
            self.link_mut(prev).next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.link_mut(next).prev = prev;
        } else {
            self.tail = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(m: &OrderedMap<u32, u32>) -> Vec<u32> {
        m.slots_in_order().into_iter().map(|i| *m.key(i)).collect()
    }

    #[test]
    fn keeps_insertion_order_and_moves_to_the_end() {
        let mut m = OrderedMap::new();
        for k in 0..5 {
            m.push_back(k, k * 10);
        }
        let i = m.find(&2).unwrap();
        m.move_to_back(i);
        assert_eq!(keys(&m), vec![0, 1, 3, 4, 2]);
        let first = m.first().unwrap();
        assert_eq!(m.remove(first), (0, 0));
        let i = m.find(&4).unwrap();
        m.remove(i);
        m.push_back(9, 90);
        assert_eq!(keys(&m), vec![1, 3, 2, 9]);
        assert_eq!(*m.get(m.find(&9).unwrap()), 90);
        assert_eq!(m.len(), 4);
        m.clear();
        assert!(m.len() == 0 && m.first().is_none());
    }
}
