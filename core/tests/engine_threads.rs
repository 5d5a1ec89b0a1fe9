//! Reading and decoding on a thread of their own give what they give on the caller's thread:
//! the same events, counters, warnings, progress after every step, and the same error at the
//! same step, whatever the batch sizes (down to one item, which splits every record that
//! yields anything) and the step sizes.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use pcapdns_core::config::Config;
use pcapdns_core::engine::Engine;
use pcapdns_core::front::{Limits, LIMITS};
use pcapdns_core::matcher::Settlement;

const TINY: Limits = Limits {
    items: 1,
    bytes: 1,
    depth: 0,
};
const SMALL: Limits = Limits {
    items: 3,
    bytes: 100,
    depth: 2,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Everything the engine says about `paths`, stepped `step` records at a time.
fn run(paths: &[String], thread: Option<Limits>, step: usize) -> String {
    let mut out = String::new();
    let mut engine = match Engine::open_with(paths, Config::default(), true, thread) {
        Ok(e) => e,
        Err(e) => return format!("open: {e:?}"),
    };
    let _ = writeln!(out, "total={}", engine.total_bytes());
    let mut events = Vec::new();
    let mut failed = false;
    loop {
        match engine.step(step, &mut events) {
            Ok(more) => {
                let _ = writeln!(
                    out,
                    "step {more} read={} newest={:x} {:?} malformed={}",
                    engine.bytes_read(),
                    engine.newest().to_bits(),
                    engine.matcher.stats,
                    engine.malformed
                );
                for ev in events.drain(..) {
                    let _ = writeln!(out, "{ev:?}");
                }
                if !more {
                    break;
                }
            }
            Err(e) => {
                let again = engine.step(step, &mut events);
                let _ = writeln!(out, "error {e:?}, then {again:?}");
                failed = true;
                break;
            }
        }
    }
    if !failed {
        engine
            .finish(None, &mut events)
            .expect("no error at the end");
        engine.settle_all(&mut events, |_| Settlement::default());
        for ev in events.drain(..) {
            let _ = writeln!(out, "{ev:?}");
        }
    }
    let r = engine.reader().expect("the reader is back");
    let d = engine.decoder().expect("the decoder is back");
    let _ = writeln!(
        out,
        "records={} late={} early={} behind={:x} newest={:x} read={} warnings={:?}",
        r.records(),
        r.late(),
        r.released_early(),
        r.most_behind().to_bits(),
        r.newest().to_bits(),
        r.bytes_read(),
        r.warnings()
    );
    let _ = writeln!(out, "files={:?}", r.files());
    let _ = writeln!(
        out,
        "decode={:?} tcp={:?} fragments={} {} {} {}",
        d.stats,
        d.tcp.stats,
        d.fragments.reassembled,
        d.fragments.dropped,
        d.fragments.evicted,
        d.fragments.evicted_bytes
    );
    let _ = writeln!(
        out,
        "malformed={} {:?}",
        engine.malformed, engine.malformed_examples
    );
    let _ = writeln!(out, "match={:?}", engine.matcher.stats);
    let dd = &engine.dedupe;
    let mut copies: Vec<(u64, u64)> = dd
        .copies
        .as_ref()
        .map(|c| c.iter().map(|(&a, &b)| (a, b)).collect())
        .unwrap_or_default();
    copies.sort_unstable();
    let _ = writeln!(
        out,
        "dedupe={} {} {:?} {copies:?}",
        dd.duplicates,
        dd.evicted,
        dd.dnat_server_texts()
    );
    let t = &engine.tallies;
    let _ = writeln!(
        out,
        "latency={:?} {} {:x}",
        t.latency.raw(),
        t.latency.n,
        t.latency.max.to_bits()
    );
    for (key, row) in t.breakdown.servers.items() {
        let _ = writeln!(
            out,
            "server {key} {} {} {} {} {} {} {} {:?} {:x}",
            row.lookups,
            row.answered,
            row.failed,
            row.retransmissions,
            row.servfail,
            row.nxdomain,
            row.refused,
            row.latency.raw(),
            row.latency.max.to_bits()
        );
    }
    for (key, row) in t.breakdown.clients.items() {
        let _ = writeln!(out, "client {key} {row:?}");
    }
    let _ = writeln!(out, "timeline {:?}", t.timeline.series());
    out
}

/// `paths` give the same on every path, batch size and step size.
fn same_everywhere(paths: &[String]) {
    for step in [1, 7, 4096] {
        let here = run(paths, None, step);
        for limits in [TINY, SMALL, LIMITS] {
            let away = run(paths, Some(limits), step);
            if away != here {
                let at = here
                    .lines()
                    .zip(away.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                panic!(
                    "{paths:?}, {step} records a step, {limits:?}: first difference at line {at}:\n\
                     here: {:?}\naway: {:?}",
                    here.lines().nth(at),
                    away.lines().nth(at)
                );
            }
        }
    }
}

fn listed(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("a fixture directory")
        .map(|e| e.expect("an entry").path().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn every_sample_alone_and_all_together() {
    let samples: Vec<String> = listed(&root().join("../sample_pcaps"))
        .into_iter()
        .filter(|p| p.ends_with(".pcap") || p.ends_with(".pcapng"))
        .collect();
    assert!(samples.len() >= 15, "{samples:?}");
    for s in &samples {
        same_everywhere(std::slice::from_ref(s));
    }
    same_everywhere(&samples);
}

/// The read stage's fixtures: damaged, cut, gzip, pcapng, merged rings, records out of time
/// order, and inputs that fail when opened or after their first packet.
#[test]
fn every_read_fixture() {
    let inputs = listed(&root().join("tests/fixtures/read/inputs"));
    assert!(inputs.len() > 100, "{}", inputs.len());
    for input in &inputs {
        same_everywhere(std::slice::from_ref(input));
    }
    let dir = root().join("tests/fixtures/read/inputs");
    let after_first = dir.join("unsupported-after-first-packet.pcapng");
    let mid_merge = [
        dir.join("pcap-le-us.pcap").to_string_lossy().into_owned(),
        after_first.to_string_lossy().into_owned(),
    ];
    let once = run(&mid_merge, None, 1);
    assert!(once.contains("error InputError"), "{once}");
    same_everywhere(&mid_merge);
}

/// A classic pcap (Ethernet) of `frames`, one a millisecond from `start` microseconds past
/// a moment of 2023.
fn pcap(frames: &[Vec<u8>], start: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        if w == 0x0004_0002 {
            v.extend_from_slice(&2u16.to_le_bytes());
            v.extend_from_slice(&4u16.to_le_bytes());
        } else {
            v.extend_from_slice(&w.to_le_bytes());
        }
    }
    for (i, f) in frames.iter().enumerate() {
        let usec = 1_700_000_000_000_000u64 + start + i as u64 * 1000;
        v.extend_from_slice(&((usec / 1_000_000) as u32).to_le_bytes());
        v.extend_from_slice(&((usec % 1_000_000) as u32).to_le_bytes());
        v.extend_from_slice(&(f.len() as u32).to_le_bytes());
        v.extend_from_slice(&(f.len() as u32).to_le_bytes());
        v.extend_from_slice(f);
    }
    v
}

/// An Ethernet frame of an IPv4 TCP segment from 10.0.3.7:40000 to 10.96.0.10:53.
fn tcp_frame(seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + 20 + data.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 3, 7, 10, 96, 0, 10]);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&53u16.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(data);
    f
}

/// Messages that wait beyond a gap in a TCP stream are handed on only at the end of the
/// input: after the last record's step, in the step that ends the input.
#[test]
fn what_the_decoder_holds_until_the_end() {
    // A query for example.com, length-prefixed. Each flow sends the start of one, loses
    // the rest of it, and sends a second: while the first waits for its bytes the second
    // waits beyond the gap, and only the end of the input gives up on the first and frames
    // the second.
    let query = b"\x00\x1d\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
                  \x07example\x03com\x00\x00\x01\x00\x01";
    let mut frames = Vec::new();
    for k in 0..3u16 {
        for (seq, flags, data) in [
            (1000, 0x02, &query[..0]),
            (1001, 0x18, &query[..5]),
            (1001 + query.len() as u32, 0x18, &query[..]),
        ] {
            let mut f = tcp_frame(seq, flags, data);
            f[34..36].copy_from_slice(&(40001 + k).to_be_bytes());
            frames.push(f);
        }
    }
    let tmp = std::env::temp_dir().join(format!("pcapdns-threads-gap-{}.pcap", std::process::id()));
    fs::write(&tmp, pcap(&frames, 0)).expect("a temporary capture");
    let paths = vec![tmp.to_string_lossy().into_owned()];
    let here = run(&paths, None, 1);
    let last_step = here
        .lines()
        .filter(|l| l.starts_with("step "))
        .nth(frames.len())
        .unwrap_or_default()
        .to_string();
    assert!(last_step.starts_with("step false"), "{here}");
    let before = here
        .lines()
        .filter(|l| l.starts_with("step "))
        .nth(frames.len() - 1)
        .unwrap_or_default();
    assert!(
        before.contains("queries: 0,") && last_step.contains("queries: 3,"),
        "the end hands on the messages held:\n{before}\n{last_step}"
    );
    same_everywhere(&paths);
    let _ = fs::remove_file(&tmp);
}

/// A file of a ring that is gone when the merge reaches it: the error comes at the same
/// step, after the same records. The reading thread reads ahead of the caller by as many
/// records as the channel's batches hold, so a file removed while the analysis runs may be
/// met earlier on it, or not at all if it was opened already; here the batches are small
/// and the files long enough that it is held back before the last file.
#[test]
fn a_file_gone_mid_capture() {
    let tmp = std::env::temp_dir().join(format!("pcapdns-threads-{}", std::process::id()));
    fs::create_dir_all(&tmp).expect("a temporary directory");
    // Three files of a ring, 300 queries a file, one a millisecond.
    let write = || -> Vec<String> {
        (0..3u64)
            .map(|n| {
                let frames: Vec<Vec<u8>> = (0..300u32)
                    .map(|i| tcp_frame(5000 + i * 40, 0x18, &[0; 8]))
                    .collect();
                let path = tmp.join(format!("dns.pcap{n}"));
                fs::write(&path, pcap(&frames, n * 1_000_000)).expect("a capture");
                path.to_string_lossy().into_owned()
            })
            .collect()
    };
    let mut outputs = Vec::new();
    for (thread, step) in [
        (None, 1),
        (Some(TINY), 1),
        (Some(SMALL), 1),
        (None, 4096),
        (Some(TINY), 4096),
        (Some(SMALL), 4096),
    ] {
        let paths = write();
        // Opened (each file probed), then the last one removed before the merge gets there.
        let mut engine = Engine::open_with(&paths, Config::default(), true, thread).expect("open");
        fs::remove_file(&paths[2]).expect("remove");
        let mut events = Vec::new();
        let mut out = String::new();
        loop {
            match engine.step(step, &mut events) {
                Ok(more) => {
                    let _ = writeln!(out, "step {more} {} {events:?}", engine.bytes_read());
                    events.clear();
                    assert!(more, "the input cannot end without the error");
                }
                Err(e) => {
                    let _ = writeln!(out, "error {}", e.message);
                    break;
                }
            }
        }
        let r = engine.reader().expect("the reader is back after the error");
        let _ = writeln!(out, "{} {:?}", r.records(), r.files());
        assert!(out.contains("error "), "{out}");
        outputs.push((step, out));
    }
    let _ = fs::remove_dir_all(&tmp);
    for (step, out) in &outputs {
        let first = outputs.iter().find(|o| o.0 == *step).expect("a first run");
        assert_eq!(out, &first.1, "{step} records a step");
    }
}
