//! The core's entry point, bytes of a capture in, facts out: any input must be read as
//! far as it goes, counted and described, never a panic.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use pcapdns_core::config::Config;
use pcapdns_core::engine::Engine;
use pcapdns_core::matcher::Settlement;

fuzz_target!(|data: &[u8]| {
    // The reader takes paths (it streams files of any size); each input becomes a file in
    // memory-backed storage, one per fuzzing process.
    let dir = std::env::temp_dir();
    let path = dir.join(format!("pcapdns-fuzz-{}.pcap", std::process::id()));
    {
        let mut f = std::fs::File::create(&path).expect("a scratch file");
        f.write_all(data).expect("the input written");
    }
    let paths = vec![path.to_string_lossy().into_owned()];
    let mut out = Vec::new();
    if let Ok(mut engine) = Engine::open(&paths, Config::default(), true) {
        let mut steps = 0;
        loop {
            match engine.step(4096, &mut out) {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
            out.clear();
            steps += 1;
            assert!(steps < 1_000_000, "the input ends");
        }
        if engine.finish(None, &mut out).is_ok() {
            // Both ends of what the policy may decide.
            let open = |l: &pcapdns_core::matcher::Lookup| Settlement {
                open_at_end: true,
                races_undone: (0..l.attempts.len()).collect(),
            };
            engine.settle_all(&mut out, open);
            // The counters agree with each other whatever the input.
            let m = &engine.matcher.stats;
            assert!(m.lookups_failed <= m.lookups && m.failed_lookups <= m.lookups);
            assert!(m.lookups_open_at_end <= m.failed_lookups);
            assert!(m.a_aaaa_race_lost <= m.a_aaaa_same_port_concurrent);
            assert!(engine.tallies.latency.n <= m.lookups);
        }
    }
    let _ = std::fs::remove_file(&path);
});
