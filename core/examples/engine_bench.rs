//! The core alone on a capture: records/s without the interpreter or any output. It steps
//! the engine as the Python binding does, `CHUNK_RECORDS` at a time.
//!
//!     cargo run --release --example engine_bench -- CAPTURE...
//!
//! Besides the wall clock it prints the CPU time of the calling thread (parsing, matching,
//! tallies; reading and decoding too when they run on it) and of the whole process (Linux),
//! since on a shared machine the wall clock of two threads says little: the calling
//! thread's time is what the wall clock comes to when a second core is free for the reading
//! thread. `PCAPDNS_CORE_THREADS=1` keeps everything on the calling thread.

use std::time::Instant;

use pcapdns_core::config::Config;
use pcapdns_core::engine::{Engine, CHUNK_RECORDS};
use pcapdns_core::matcher::Settlement;

/// CPU seconds of the calling thread (/proc/thread-self/schedstat, in nanoseconds).
fn thread_cpu() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// CPU seconds of the whole process, user and system (/proc/self/stat, in clock ticks of
/// 1/100 s).
fn process_cpu() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = text.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    let cpu0 = thread_cpu();
    let mut engine = match Engine::open(&paths, Config::default(), false) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let threaded = engine.threaded();
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
    let records = engine.reader().map_or(0, |r| r.records());
    println!(
        "{records} records, {lookups} lookups and orphans in {secs:.3} s: {:.0} records/s",
        records as f64 / secs
    );
    if let (Some(a), Some(b), Some(all)) = (cpu0, thread_cpu(), process_cpu()) {
        println!(
            "CPU: {:.3} s on the calling thread, {all:.2} s in all; reading and decoding on {}",
            b - a,
            if threaded {
                "a thread of their own"
            } else {
                "the calling thread"
            }
        );
    }
}
