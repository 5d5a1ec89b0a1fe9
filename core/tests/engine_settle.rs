//! The engine leaves to the caller's policy (pcapdns/policy.py) what the end of a capture
//! leaves open, and counts and tallies such a lookup only with that decision.

use std::path::Path;

use pcapdns_core::config::Config;
use pcapdns_core::engine::Engine;
use pcapdns_core::matcher::{Event, Lookup, Settlement};
use pcapdns_core::tally::breakdown::ServerTally;

/// A column of the per-server table, summed.
fn server_sum(e: &Engine, column: impl Fn(&ServerTally) -> u64) -> u64 {
    e.tallies
        .breakdown
        .servers
        .rows()
        .iter()
        .map(|(_, s)| column(s))
        .sum()
}

/// The sample whose musl lookup fails two seconds before the capture stopped.
fn run(policy: impl Fn(&Lookup) -> Settlement) -> (Engine, usize) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample_pcaps/musl-failed-near-end.pcap");
    let paths = vec![path.to_string_lossy().into_owned()];
    let mut engine = Engine::open(&paths, Config::default(), false).expect("the sample opens");
    let mut out = Vec::new();
    while engine.step(1024, &mut out).expect("readable") {}
    assert!(
        out.iter()
            .all(|e| !matches!(e, Event::Lookup(l) if l.needs_policy())),
        "only finish emits lookups that need the policy"
    );
    out.clear();
    engine.finish(None, &mut out).expect("readable");
    let undecided = out
        .iter()
        .filter(|e| matches!(e, Event::Lookup(l) if l.needs_policy()))
        .count();
    assert_eq!(
        server_sum(&engine, |s| s.lookups),
        engine.matcher.stats.lookups - undecided as u64,
        "undecided lookups wait untallied"
    );
    engine.settle_all(&mut out, policy);
    (engine, undecided)
}

#[test]
fn the_policy_decides_what_the_end_of_the_capture_leaves_open() {
    let (failed, n) = run(|_| Settlement::default());
    assert!(n > 0, "the sample has a lookup in flight at its end");
    let (open, _) = run(|_| Settlement {
        open_at_end: true,
        races_undone: vec![],
    });
    let (f, o) = (&failed.matcher.stats, &open.matcher.stats);
    assert_eq!(
        (f.lookups_open_at_end, o.lookups_open_at_end),
        (0, n as u64)
    );
    assert_eq!(f.lookups_failed, o.lookups_failed + n as u64);
    assert_eq!(
        server_sum(&failed, |s| s.failed),
        server_sum(&open, |s| s.failed) + n as u64
    );
    assert_eq!(
        server_sum(&failed, |s| s.lookups),
        f.lookups,
        "every lookup tallied once settled"
    );
}
