//! The answer-section decoder (`--transactions`): any DNS message in, records or one error
//! out, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pcapdns_core::dns::records::{answer_section, MAX_RECORDS};

fuzz_target!(|data: &[u8]| {
    let section = answer_section(data);
    assert!(section.records.len() <= MAX_RECORDS);
});
