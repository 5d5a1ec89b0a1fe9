//! The hasher of the core's tables.
//!
//! Keys come from capture bytes (addresses, ports, IDs, names, whole DNS payloads), so a
//! crafted capture must not be able to aim its keys at one bucket: the hasher is keyed
//! with a secret random seed per table owner. SipHash, the standard library's keyed hash,
//! took a fifth of the core's instructions (a DNS payload is hashed once per message, and
//! the matcher makes about twenty table operations a query), so this is the cheaper design
//! of foldhash and aHash's fallback: each 64-bit word (or 16-byte block) is mixed into the
//! state by a *folded multiply* (the high and low halves of a 128-bit product XORed) with
//! seed-derived operands. A multiply's high half depends on every bit of both operands, so
//! unlike a plain multiply-and-rotate hash no flip of input bits is known to collide
//! whatever the seed. The result ends with a full avalanche (hashbrown takes its control
//! bits from the top of the hash and the bucket from the bottom).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// Digits of pi: the fixed part of the operands, so that a seed of 0 still mixes.
const PI: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

/// A table keyed by capture bytes.
pub type FastMap<K, V> = HashMap<K, V, Seeded>;

/// The hash of a question name ignoring ASCII case, with a secret seed drawn once per
/// process: every name carries it (`types::QName`), so that the tables of the matcher
/// need not hash the name's text again, and names made anywhere agree.
pub fn name_hash(text: &[u8]) -> u64 {
    static SEED: OnceLock<Seeded> = OnceLock::new();
    SEED.get_or_init(Seeded::new).hash_lower(text)
}

#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// murmur3's fmix64: every input bit reaches every output bit.
#[inline(always)]
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The seed of one table (or of a group of tables that share hashed keys).
#[derive(Clone, Copy, Debug)]
pub struct Seeded {
    k: [u64; 3],
}

impl Seeded {
    /// A fresh random seed, taken from the standard library's per-process keys.
    pub fn new() -> Seeded {
        let r = RandomState::new();
        let s0 = r.hash_one(0x5eed_u64);
        let s1 = r.hash_one(0x5eed_0001_u64);
        Seeded {
            k: [s0 ^ PI[0], s1 ^ PI[1], (s0.rotate_left(32) ^ s1) ^ PI[2]],
        }
    }

    /// Hash a byte string (the whole of it) with this seed, as `write` would.
    #[inline]
    pub fn hash_bytes(&self, tag: u64, bytes: &[u8]) -> u64 {
        let mut h = self.build_hasher();
        h.write_u64(tag);
        h.write(bytes);
        h.finish()
    }
}

impl Seeded {
    /// Hash a name ignoring ASCII case: equal for two names that `eq_ignore_ascii_case`
    /// calls equal (each byte as `to_ascii_lowercase` makes it).
    #[inline]
    pub fn hash_lower(&self, bytes: &[u8]) -> u64 {
        let mut h = self.build_hasher();
        h.write_blocks(bytes, lower8);
        h.finish()
    }
}

/// `to_ascii_lowercase` of the eight bytes of a word at once.
#[inline(always)]
pub(crate) fn lower8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte, with the top bit cleared so that the additions do not carry across bytes:
    // top bit set when the byte is >= 'A', and when it is > 'Z'.
    let low7 = x & !HIGH;
    let ge_a = low7.wrapping_add(ONES * (0x80 - u64::from(b'A')));
    let gt_z = low7.wrapping_add(ONES * (0x80 - u64::from(b'Z') - 1));
    // Upper case: in 'A'..='Z' and an ASCII byte (its own top bit clear).
    let upper = ge_a & !gt_z & !x & HIGH;
    x | (upper >> 2)
}

impl Default for Seeded {
    fn default() -> Seeded {
        Seeded::new()
    }
}

impl BuildHasher for Seeded {
    type Hasher = Fold;

    #[inline]
    fn build_hasher(&self) -> Fold {
        Fold {
            acc: self.k[0],
            k1: self.k[1],
            k2: self.k[2],
        }
    }
}

pub struct Fold {
    acc: u64,
    k1: u64,
    k2: u64,
}

impl Fold {
    #[inline(always)]
    fn add(&mut self, x: u64) {
        self.acc = folded_multiply(self.acc ^ x, self.k1 ^ PI[3]);
    }
}

impl Fold {
    /// Mix in `bytes`, 16 at a time, each 8-byte word through `map`, and their length.
    /// A part of a block at the end is read as the last 16 bytes (or, for a short input,
    /// as overlapping smaller words): with the length mixed in, the words still say what
    /// the bytes are, and no copy is needed.
    #[inline(always)]
    fn write_blocks(&mut self, bytes: &[u8], map: impl Fn(u64) -> u64) {
        let len = bytes.len();
        let mut acc = self.acc ^ (len as u64).wrapping_mul(PI[3]);
        let word = |at: usize| map(u64::from_le_bytes(read::<8>(bytes, at)));
        if len <= 16 {
            let (lo, hi) = if len >= 8 {
                (word(0), word(len - 8))
            } else if len >= 4 {
                let half = |at: usize| u64::from(u32::from_le_bytes(read::<4>(bytes, at)));
                (map(half(0) | half(len - 4) << 32), 0)
            } else if len > 0 {
                let b = |at: usize| u64::from(bytes.get(at).copied().unwrap_or(0));
                (map(b(0) | b(len / 2) << 8 | b(len - 1) << 16), 0)
            } else {
                (0, 0)
            };
            acc = folded_multiply(lo ^ acc ^ self.k1, hi ^ self.k2);
        } else {
            let mut at = 0;
            while at + 16 <= len {
                acc = folded_multiply(word(at) ^ acc ^ self.k1, word(at + 8) ^ self.k2);
                at += 16;
            }
            if at < len {
                acc = folded_multiply(word(len - 16) ^ acc ^ self.k1, word(len - 8) ^ self.k2);
            }
        }
        self.acc = acc;
    }
}

/// The `N` bytes at `at` (zeros where `bytes` ends first: never, as called).
#[inline(always)]
fn read<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    match bytes.get(at..at + N) {
        Some(b) => b.try_into().unwrap_or([0; N]),
        None => [0; N],
    }
}

impl Hasher for Fold {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.write_blocks(bytes, |w| w);
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
    fn write_u128(&mut self, i: u128) {
        self.acc = folded_multiply(
            self.acc ^ (i as u64) ^ self.k1,
            ((i >> 64) as u64) ^ self.k2,
        );
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        fmix64(self.acc)
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
    fn byte_strings_that_differ_in_one_bit_spread_over_the_buckets() {
        let s = Seeded::new();
        let base = [0x41u8; 100];
        let mut low = HashSet::new();
        for bit in 0..800 {
            let mut b = base;
            b[bit / 8] ^= 1 << (bit % 8);
            low.insert(s.hash_bytes(0, &b) & 0x3FF);
        }
        // 800 keys into 1024 buckets: about 540 distinct when the hash is uniform.
        assert!(low.len() > 450, "{} distinct buckets", low.len());
    }

    #[test]
    fn length_and_padding_count() {
        let s = Seeded::new();
        assert_ne!(s.hash_bytes(0, b"ab"), s.hash_bytes(0, b"ab\0"));
        assert_ne!(s.hash_bytes(0, b""), s.hash_bytes(0, b"\0"));
        assert_ne!(s.hash_bytes(0, b"x"), s.hash_bytes(1, b"x"));
    }

    #[test]
    fn names_hash_alike_in_any_case() {
        let s = Seeded::new();
        let all: Vec<u8> = (0..=255u8).collect();
        let lower: Vec<u8> = all.iter().map(u8::to_ascii_lowercase).collect();
        for n in 0..all.len() {
            assert_eq!(s.hash_lower(&all[..n]), s.hash_lower(&lower[..n]));
            assert_eq!(s.hash_lower(&all[n..]), s.hash_bytes_plain(&lower[n..]));
        }
        for w in [0u64, u64::MAX, 0x4041_5a5b_6061_7a7b, 0xc1da_415a_c0db_8f9a] {
            let b = w.to_le_bytes().map(|c| c.to_ascii_lowercase());
            assert_eq!(lower8(w), u64::from_le_bytes(b), "{w:x}");
        }
    }

    impl Seeded {
        fn hash_bytes_plain(&self, bytes: &[u8]) -> u64 {
            let mut h = self.build_hasher();
            h.write(bytes);
            h.finish()
        }
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(Seeded::new().hash_one(1u64), Seeded::new().hash_one(1u64));
    }
}
