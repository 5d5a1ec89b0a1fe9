//! The per-packet path of pcapdns.
//!
//! A one-way pipeline of small stages, each a module:
//!
//! ```text
//! files -> records (read) -> payloads (decode) -> messages (dns) -> duplicates dropped
//!       (dedupe) -> transactions and lookups (matcher) -> tallies (tally)
//! ```
//!
//! The core states facts; Python's detectors decide what they mean. Nothing here reads a
//! length from a capture without checking it, and no code that reads capture bytes is
//! `unsafe`.
#![forbid(unsafe_code)]

pub mod config;
pub mod decode;
pub mod dedupe;
pub mod dns;
pub mod engine;
pub mod facts;
pub mod front;
pub mod hash;
pub mod legs;
pub mod matcher;
pub mod read;
pub mod replicas;
pub mod tally;
pub mod types;
pub mod upstream;

#[cfg(feature = "python")]
mod py;

/// Many small allocations (a message, its name, its transaction) live a second or two and
/// die in bursts; mimalloc handles that pattern at about a third of glibc malloc's cost.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
