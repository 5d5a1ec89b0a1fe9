//! The lookup facts on a capture's lookups: nanoseconds per lookup of `Facts::decide`
//! (derive the facts, `lookup_closed`, `may_be_flagged`) and of `lookup_closed` alone, and
//! how many lookups would be handed over when no detector watches anything.
//!
//!     cargo run --release --example facts_bench -- CAPTURE...
//!
//! The engine runs as usual; only the facts' calls are timed, a step's lookups at a time.

use std::time::{Duration, Instant};

use pcapdns_core::config::Config;
use pcapdns_core::engine::Engine;
use pcapdns_core::facts::{self, Closed, Facts, FLAGGED, QUIET, TICK, WATCHED};
use pcapdns_core::matcher::Event;

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let cfg = Config::default();
    let mut engine = match Engine::open(&paths, cfg.clone(), false) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (mut decided, mut alone) = (Facts::new(&cfg), Facts::new(&cfg));
    let (mut t_decide, mut t_closed) = (Duration::ZERO, Duration::ZERO);
    let mut codes = [0usize; 4];
    let mut lookups = 0usize;
    let mut out = Vec::new();
    let mut more = true;
    while more {
        more = engine.step(1 << 16, &mut out).expect("readable input");
        if !more {
            engine.finish(None, &mut out).expect("readable input");
        }
        let step: Vec<_> = out
            .drain(..)
            .filter_map(|e| match e {
                Event::Lookup(l) => Some(l),
                Event::Orphan(_) => None,
            })
            .collect();
        lookups += step.len();
        let started = Instant::now();
        for l in &step {
            codes[decided.decide(l, cfg.slow) as usize] += 1;
        }
        t_decide += started.elapsed();
        let closed: Vec<Closed<'_>> = step.iter().map(facts::closed).collect();
        let started = Instant::now();
        let mut sum = 0usize;
        for c in &closed {
            sum += alone.lookup_closed(c) as usize;
        }
        t_closed += started.elapsed();
        std::hint::black_box(sum);
    }
    decided.finish();
    let per = |d: Duration| d.as_nanos() as f64 / lookups.max(1) as f64;
    println!("lookups: {lookups}");
    println!(
        "decide: {:.0} ns/lookup; lookup_closed alone: {:.0} ns/lookup",
        per(t_decide),
        per(t_closed)
    );
    println!(
        "flagged {} ({:.1}%), watched {}, tick {}, quiet {}; sweeps {}, evicted {}",
        codes[FLAGGED as usize],
        100.0 * codes[FLAGGED as usize] as f64 / lookups.max(1) as f64,
        codes[WATCHED as usize],
        codes[TICK as usize],
        codes[QUIET as usize],
        decided.sweeps(),
        decided.answers_evicted()
    );
}
