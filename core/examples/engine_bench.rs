//! The core alone on a capture: records/s without the interpreter or any output. It steps
//! the engine as the Python binding does, `CHUNK_RECORDS` at a time.
//!
//!     cargo run --release --example engine_bench -- CAPTURE...

use std::time::Instant;

use pcapdns_core::config::Config;
use pcapdns_core::engine::{Engine, CHUNK_RECORDS};
use pcapdns_core::matcher::Settlement;

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    let mut engine = match Engine::open(&paths, Config::default(), false) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut out = Vec::new();
    let mut lookups = 0usize;
    loop {
        let more = engine
            .step(CHUNK_RECORDS, &mut out)
            .expect("readable input");
        lookups += out.len();
        out.clear();
        if !more {
            break;
        }
    }
    engine.finish(None, &mut out).expect("readable input");
    engine.settle_all(&mut out, |_| Settlement::default());
    lookups += out.len();
    let secs = started.elapsed().as_secs_f64();
    let records = engine.reader.records();
    println!(
        "{records} records, {lookups} lookups and orphans in {secs:.3} s: {:.0} records/s",
        records as f64 / secs
    );
}
