//! The hasher of the matcher's indexes.
//!
//! The keys are small (addresses, ports, IDs, and a name hashed once per message), and the
//! matcher makes about twenty index operations a query; SipHash took an eighth of its time
//! (measured with `examples/matcher_bench.rs`). This is a multiply-and-fold hash in the
//! manner of rustc's FxHash and foldhash, finished with a full avalanche, and seeded at
//! random per matcher: keys come from capture bytes, and a crafted capture cannot aim its
//! keys at one bucket without knowing the seed.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

const K: u64 = 0xf135_7aea_2e62_a9c5;

#[derive(Clone)]
pub(crate) struct Seeded(u64);

impl Seeded {
    pub(crate) fn new() -> Seeded {
        // A fresh random seed, taken from the standard library's per-process keys.
        Seeded(RandomState::new().hash_one(0x5eed_u64) | 1)
    }
}

impl Default for Seeded {
    fn default() -> Seeded {
        Seeded::new()
    }
}

impl BuildHasher for Seeded {
    type Hasher = Fold;

    fn build_hasher(&self) -> Fold {
        Fold(self.0)
    }
}

pub(crate) struct Fold(u64);

impl Fold {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(26) ^ x).wrapping_mul(K);
    }
}

impl Hasher for Fold {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64: every input bit reaches every output bit (hashbrown takes its
        // control bits from the top of the hash and its bucket from the bottom).
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn keys_that_differ_in_one_field_spread_over_the_buckets() {
        let s = Seeded::new();
        let mut low = HashSet::new();
        for port in 0..4096u16 {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
            low.insert(s.hash_one((ip, port, 7u16)) & 0xFFF);
        }
        // 4096 keys into 4096 buckets: about 63% distinct when the hash is uniform.
        assert!(low.len() > 2400, "{} distinct buckets", low.len());
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(Seeded::new().hash_one(1u64), Seeded::new().hash_one(1u64));
    }
}
