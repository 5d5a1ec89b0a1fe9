//! The hasher of the matcher's indexes.
//!
//! Keys come from capture bytes, so the hash is seeded per matcher (a crafted capture
//! cannot aim its names at one bucket without knowing the seed).

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::BuildHasher;

#[derive(Clone, Default)]
pub(crate) struct Seeded(RandomState);

impl Seeded {
    pub(crate) fn new() -> Seeded {
        Seeded(RandomState::new())
    }
}

impl BuildHasher for Seeded {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        self.0.build_hasher()
    }
}
