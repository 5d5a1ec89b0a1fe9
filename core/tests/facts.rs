//! The lookup facts reproduce the Python ones (fixtures/facts/, see its README):
//! every call the per-lookup path made on them, replayed in order, returns the same, and
//! over the sample captures the engine's own lookups give the same `lookup_closed`
//! arguments and the same `may_be_flagged`, lookup by lookup.
//!
//! `PCAPDNS_FACTS_EXTRA=a.jsonl.gz:b.jsonl cargo test --test facts` also checks capture
//! lines in the fixtures' format from elsewhere (the public corpus, say).

use std::fs;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use pcapdns_core::config::Config;
use pcapdns_core::engine::Engine;
use pcapdns_core::facts::{self, Caps, Closed, Facts};
use pcapdns_core::matcher::{Event, Lookup};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn lines(path: &Path) -> Vec<Value> {
    let raw = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .expect("gzip");
        s
    } else {
        String::from_utf8(raw).expect("UTF-8")
    };
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn fixture(name: &str) -> Vec<Value> {
    lines(&root().join("core/tests/fixtures/facts").join(name))
}

/// A float written as its Python repr.
fn num(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a float: {v}"));
    s.parse().unwrap_or_else(|_| panic!("not a float: {s}"))
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn u16_(v: &Value) -> u16 {
    u16::try_from(int(v)).expect("a 16-bit number")
}

fn addr(v: &Value) -> IpAddr {
    let s = v.as_str().unwrap_or_else(|| panic!("not an address: {v}"));
    s.parse().unwrap_or_else(|_| panic!("not an address: {s}"))
}

fn flag(v: &Value) -> bool {
    int(v) != 0
}

fn same(ctx: &str, want: f64, got: f64) {
    assert_eq!(
        want.to_bits(),
        got.to_bits(),
        "{ctx}: want {want:?}, got {got:?}"
    );
}

/// The `lookup_closed` arguments of a "c" op.
fn closed_of(op: &[Value]) -> Closed<'_> {
    Closed {
        client: addr(&op[3]),
        server: addr(&op[4]),
        first_time: num(&op[5]),
        last_time: num(&op[6]),
        qname: op[7].as_str(),
        qtype: u16_(&op[8]),
        qclass: u16_(&op[9]),
        failed_udp: flag(&op[10]),
        answered: flag(&op[11]),
        answer_udp: flag(&op[12]),
        answer_port: u16_(&op[13]),
        answer_time: num(&op[14]),
        rcode: u16_(&op[15]),
    }
}

fn same_closed(ctx: &str, want: &Closed<'_>, got: &Closed<'_>) {
    assert_eq!(
        (
            want.client,
            want.server,
            want.qname,
            want.qtype,
            want.qclass
        ),
        (got.client, got.server, got.qname, got.qtype, got.qclass),
        "{ctx}"
    );
    assert_eq!(
        (
            want.failed_udp,
            want.answered,
            want.answer_udp,
            want.answer_port,
            want.rcode
        ),
        (
            got.failed_udp,
            got.answered,
            got.answer_udp,
            got.answer_port,
            got.rcode
        ),
        "{ctx}"
    );
    same(
        &format!("{ctx}: first_time"),
        want.first_time,
        got.first_time,
    );
    same(&format!("{ctx}: last_time"), want.last_time, got.last_time);
    same(
        &format!("{ctx}: answer_time"),
        want.answer_time,
        got.answer_time,
    );
}

fn facts_for(line: &Value) -> Facts {
    let mut cfg = Config::default();
    if let Some(w) = line.get("max_wait") {
        cfg.max_wait = num(w);
    }
    let c = line["caps"].as_array().expect("caps");
    let caps = Caps {
        sweep_min: int(&c[0]) as usize,
        max_answered: int(&c[1]) as usize,
        max_clients: int(&c[2]) as usize,
    };
    Facts::with_caps(&cfg, caps).expect("caps")
}

/// What a replay went through.
#[derive(Default, Debug)]
struct Replayed {
    closed: usize,
    codes: [usize; 3],
    reads: usize,
    sweeps: u64,
    evicted: u64,
}

/// Replay a line's calls on fresh facts; every result must be the recorded one.
fn replay(line: &Value) -> Replayed {
    let name = line["name"].as_str().unwrap_or("?");
    let mut f = facts_for(line);
    let mut seen = Replayed::default();
    for (i, op) in line["ops"].as_array().expect("ops").iter().enumerate() {
        let op = op.as_array().expect("an op");
        let ctx = format!("{name}: op {i} {op:?}");
        match op[0].as_str().expect("an op name") {
            "c" => {
                let code = f.lookup_closed(&closed_of(op));
                assert_eq!(u64::from(code), int(&op[16]), "{ctx}");
                seen.closed += 1;
                seen.codes[code as usize] += 1;
            }
            "s" => {
                assert_eq!(f.sweeps(), int(&op[1]), "{ctx}: sweeps");
                same(&format!("{ctx}: forgotten"), num(&op[2]), f.forgotten());
                assert_eq!(f.answers_evicted(), int(&op[3]), "{ctx}: evicted");
                assert_eq!(f.answers_kept() as u64, int(&op[4]), "{ctx}: answers kept");
                assert_eq!(f.clients_kept() as u64, int(&op[5]), "{ctx}: clients kept");
            }
            "f" => f.finish(),
            "wc" => f.watch_client(addr(&op[1])),
            "uc" => f.unwatch_client(addr(&op[1])),
            "wp" => f.watch_port(addr(&op[1]), u16_(&op[2]), addr(&op[3])),
            "up" => f.unwatch_port(addr(&op[1]), u16_(&op[2]), addr(&op[3])),
            "wn" => f.watch_name(
                addr(&op[1]),
                u16_(&op[2]),
                u16_(&op[3]),
                op[4].as_str().unwrap(),
            ),
            "un" => f.unwatch_name(
                addr(&op[1]),
                u16_(&op[2]),
                u16_(&op[3]),
                op[4].as_str().unwrap(),
            ),
            "wake" => f.wake_at(num(&op[1])),
            "at" => {
                let t = f.answered_at(addr(&op[1]), u16_(&op[2]), addr(&op[3]));
                same(&ctx, num(&op[4]), t);
                seen.reads += 1;
            }
            "oa" => {
                same(
                    &ctx,
                    num(&op[3]),
                    f.other_answer(addr(&op[1]), u16_(&op[2])),
                );
                seen.reads += 1;
            }
            "r" => {
                match op[1].as_str().unwrap() {
                    "latest_query" => same(&ctx, num(&op[2]), f.latest_query()),
                    "latest_answered_query" => same(&ctx, num(&op[2]), f.latest_answered_query()),
                    "forgotten" => same(&ctx, num(&op[2]), f.forgotten()),
                    "answers_evicted" => assert_eq!(f.answers_evicted(), int(&op[2]), "{ctx}"),
                    other => panic!("{ctx}: unknown read {other}"),
                }
                seen.reads += 1;
            }
            other => panic!("{ctx}: unknown op {other}"),
        }
    }
    seen.sweeps = f.sweeps();
    seen.evicted = f.answers_evicted();
    seen
}

/// The engine's lookups over a capture line's files, in the order they closed.
fn engine_lookups(line: &Value) -> Vec<Lookup> {
    let paths: Vec<String> = line["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| {
            let p = Path::new(p.as_str().unwrap());
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                root().join(p)
            };
            p.to_string_lossy().into_owned()
        })
        .collect();
    let end = if line["end"].is_null() {
        None
    } else {
        Some(num(&line["end"]))
    };
    let mut engine = Engine::open(&paths, Config::default(), false).expect("the capture opens");
    let mut events = Vec::new();
    while engine
        .step(1 << 16, &mut events)
        .expect("the capture reads")
    {}
    engine
        .finish(end, &mut events)
        .expect("the capture finishes");
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Lookup(l) => Some(l),
            Event::Orphan(_) => None,
        })
        .collect()
}

/// The engine's lookups derive the recorded arguments and flags; `decide` over them
/// answers as the recorded path did. Returns the lookups compared.
fn check_capture(line: &Value) -> usize {
    let name = line["name"].as_str().unwrap_or("?");
    let lookups = engine_lookups(line);
    let ops = line["ops"].as_array().expect("ops");
    let closed: Vec<&Vec<Value>> = ops
        .iter()
        .map(|op| op.as_array().expect("an op"))
        .filter(|op| op[0] == "c")
        .collect();
    assert_eq!(lookups.len(), closed.len(), "{name}: lookups");
    let cfg = Config::default();
    for (lookup, op) in lookups.iter().zip(&closed) {
        let ctx = format!("{name}: lookup {}", lookup.id);
        assert_eq!(lookup.id, int(&op[1]), "{ctx}: order");
        same_closed(&ctx, &closed_of(op), &facts::closed(lookup));
        assert_eq!(
            facts::may_be_flagged(lookup, &cfg),
            flag(&op[2]),
            "{ctx}: flagged"
        );
    }
    replay(line);
    closed.len()
}

#[test]
fn the_samples_derive_the_same_facts_and_replay_the_same() {
    let lines = fixture("samples.jsonl");
    assert!(lines.len() > 10, "the samples and their merge");
    let (mut lookups, mut flagged) = (0, 0);
    for line in &lines {
        lookups += check_capture(line);
        flagged += line["ops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|op| op[0] == "c" && op[2] == 1)
            .count();
    }
    assert!(
        lookups > 150 && flagged > 50,
        "{lookups} lookups, {flagged} flagged"
    );
}

#[test]
fn the_crafted_streams_replay_the_same() {
    let mut total = Replayed::default();
    for line in fixture("streams.jsonl.gz") {
        let r = replay(&line);
        total.closed += r.closed;
        for k in 0..3 {
            total.codes[k] += r.codes[k];
        }
        total.reads += r.reads;
        total.sweeps += r.sweeps;
        total.evicted += r.evicted;
    }
    // Worth something only if every answer and the caps were reached.
    assert!(total.codes.iter().all(|&n| n > 100), "{total:?}");
    assert!(
        total.sweeps > 10 && total.evicted > 0 && total.reads > 10_000,
        "{total:?}"
    );
}

#[test]
fn random_direct_calls_replay_the_same() {
    let mut forgotten = 0;
    for line in fixture("direct.jsonl.gz") {
        let r = replay(&line);
        assert!(r.codes.iter().all(|&n| n > 100), "{}: {r:?}", line["name"]);
        let last = line["ops"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|op| op[0] == "s");
        if last.is_some_and(|op| op[2] != "-inf") {
            forgotten += 1;
        }
    }
    assert!(
        forgotten >= 2,
        "the answer cap was reached in {forgotten} lines"
    );
}

#[test]
fn extra_captures_derive_the_same_facts() {
    let Ok(paths) = std::env::var("PCAPDNS_FACTS_EXTRA") else {
        eprintln!("PCAPDNS_FACTS_EXTRA not set: no extra captures checked");
        return;
    };
    let (mut captures, mut lookups) = (0, 0);
    for path in paths.split(':').filter(|p| !p.is_empty()) {
        for line in lines(Path::new(path)) {
            lookups += check_capture(&line);
            captures += 1;
        }
    }
    eprintln!("extra: {captures} captures, {lookups} lookups identical");
}
