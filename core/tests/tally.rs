//! The tallies reproduce the Python ones (fixtures/tally/, written by make_tally.py) to
//! the bit: over every sample capture's lookups, synthetic streams that hit the caps,
//! hostile time spans, and the number formatting the documents use.
//!
//! `PCAPDNS_TALLY_EXTRA=a.jsonl:b.jsonl cargo test --test tally` also checks capture lines
//! written by `make_tally.py --inputs ... --out a.jsonl` (the public corpus, say).

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use pcapdns_core::tally::breakdown::{Breakdown, OTHER};
use pcapdns_core::tally::timeline::{duration, when, Timeline};
use pcapdns_core::tally::{round3, LatencyHistogram, LookupFacts, Tallies};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tally")
}

fn lines(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn fixture(name: &str) -> Vec<Value> {
    lines(&fixtures().join(name))
}

/// A float written as its Python repr, or null.
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.parse().unwrap_or_else(|_| panic!("not a float: {s}"))),
        _ => panic!("not a float: {v}"),
    }
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not text: {v}"))
}

fn same(ctx: &str, want: &Value, got: Option<f64>) {
    let w = num(want);
    assert_eq!(
        w.map(f64::to_bits),
        got.map(f64::to_bits),
        "{ctx}: want {w:?}, got {got:?}"
    );
}

fn same_int(ctx: &str, want: &Value, got: u64) {
    assert_eq!(int(want), got, "{ctx}");
}

// -- facts ------------------------------------------------------------------------------

struct Facts {
    client: IpAddr,
    server: IpAddr,
    times: Vec<f64>,
    retransmissions: u32,
    race_lost: u32,
    failed: bool,
    latency: Option<f64>,
    rcode: Option<u16>,
}

impl Facts {
    fn of(v: &Value) -> Facts {
        let a = v.as_array().expect("facts");
        Facts {
            client: text(&a[0]).parse().expect("client address"),
            server: text(&a[1]).parse().expect("server address"),
            times: a[2]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| num(t).unwrap())
                .collect(),
            retransmissions: int(&a[3]) as u32,
            race_lost: int(&a[4]) as u32,
            failed: a[5].as_bool().unwrap(),
            latency: num(&a[6]),
            rcode: a[7].as_u64().map(|r| r as u16),
        }
    }

    fn view(&self) -> LookupFacts<'_> {
        LookupFacts {
            client: self.client,
            server: self.server,
            attempt_times: &self.times,
            retransmissions: self.retransmissions,
            race_lost: self.race_lost,
            failed: self.failed,
            latency: self.latency,
            rcode: self.rcode,
        }
    }
}

/// The tallies of a line's caps and timeline size, empty.
fn tallies_for(line: &Value) -> Tallies {
    let caps = line["caps"].as_array().unwrap();
    Tallies {
        breakdown: Breakdown::with_caps(int(&caps[0]) as usize, int(&caps[1]) as usize),
        latency: LatencyHistogram::new(),
        timeline: Timeline::new(int(&line["max_buckets"]) as usize).unwrap(),
    }
}

// -- the tallies against the Python dump --------------------------------------------------

fn check_hist(ctx: &str, want: &Value, h: &LatencyHistogram) {
    same_int(&format!("{ctx} n"), &want["n"], h.n);
    same(&format!("{ctx} max"), &want["max"], Some(h.max));
    let raw = want["raw"].as_array().unwrap();
    let got = h.raw();
    assert_eq!(raw.len(), got.len(), "{ctx}: buckets");
    for (w, (b, n, sum)) in raw.iter().zip(&got) {
        assert_eq!(w[0].as_i64(), Some(*b), "{ctx}: bucket number");
        same_int(&format!("{ctx} bucket {b} count"), &w[1], *n);
        same(&format!("{ctx} bucket {b} sum"), &w[2], Some(*sum));
    }
    let buckets = want["buckets"].as_array().unwrap();
    for (w, (lo, hi, n)) in buckets.iter().zip(h.buckets()) {
        same(&format!("{ctx} buckets() lower"), &w[0], Some(lo));
        same(&format!("{ctx} buckets() upper"), &w[1], Some(hi));
        same_int(&format!("{ctx} buckets() count"), &w[2], n);
    }
    check_summary(&format!("{ctx} summary_ms"), &want["summary_ms"], h);
    for p in want["percentiles"].as_array().unwrap() {
        let pct = num(&p[0]).unwrap();
        same(
            &format!("{ctx} percentile({pct})"),
            &p[1],
            h.percentile(pct),
        );
    }
}

fn check_summary(ctx: &str, want: &Value, h: &LatencyHistogram) {
    let obj = want.as_object().unwrap();
    let items = h.summary_ms().items();
    // (serde_json's maps are sorted: the dict's order, p50 p90 p99 max, is not seen here.)
    let mut keys: Vec<&str> = items.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    assert_eq!(
        obj.keys().map(String::as_str).collect::<Vec<_>>(),
        keys,
        "{ctx}: keys"
    );
    for (k, v) in items {
        same(&format!("{ctx} {k}"), &want[k], v);
    }
}

fn check_timeline(ctx: &str, want: &Value, tl: &Timeline) {
    let (start, step, queries, failed) = tl.series();
    let s = &want["series"];
    same(&format!("{ctx} start"), &s[0], Some(start));
    same(&format!("{ctx} step"), &s[1], Some(step));
    let counts = |v: &Value| v.as_array().unwrap().iter().map(int).collect::<Vec<u64>>();
    assert_eq!(counts(&s[2]), queries, "{ctx}: queries");
    assert_eq!(counts(&s[3]), failed, "{ctx}: failed");
    same(&format!("{ctx} first"), &want["first"], tl.first);
    same(&format!("{ctx} last"), &want["last"], tl.last);
    assert_eq!(
        text(&want["step_ms"]),
        tl.step_ms().to_string(),
        "{ctx}: step_ms"
    );
    same_int(
        &format!("{ctx} level"),
        &want["level"],
        u64::from(tl.level()),
    );
    let bound = |v: &Value| v.as_str().map(str::to_string);
    assert_eq!(
        bound(&want["lo"]),
        tl.span().map(|s| s.0.to_string()),
        "{ctx}: lo"
    );
    assert_eq!(
        bound(&want["hi"]),
        tl.span().map(|s| s.1.to_string()),
        "{ctx}: hi"
    );
    assert!(
        queries.len() <= tl.max_buckets,
        "{ctx}: {} buckets",
        queries.len()
    );
}

const SERVER_FIELDS: [&str; 7] = [
    "lookups",
    "answered",
    "failed",
    "retransmissions",
    "servfail",
    "nxdomain",
    "refused",
];

fn server_counts(t: &pcapdns_core::tally::ServerTally) -> [u64; 7] {
    [
        t.lookups,
        t.answered,
        t.failed,
        t.retransmissions,
        t.servfail,
        t.nxdomain,
        t.refused,
    ]
}

const CLIENT_FIELDS: [&str; 8] = [
    "lookups",
    "answered",
    "failed",
    "retransmissions",
    "race_lost",
    "servfail",
    "nxdomain",
    "refused",
];

fn client_counts(t: &pcapdns_core::tally::ClientTally) -> [u64; 8] {
    [
        t.lookups,
        t.answered,
        t.failed,
        t.retransmissions,
        t.race_lost,
        t.servfail,
        t.nxdomain,
        t.refused,
    ]
}

fn check_server(ctx: &str, want: &Value, t: &pcapdns_core::tally::ServerTally) {
    for (k, v) in SERVER_FIELDS.iter().zip(server_counts(t)) {
        same_int(&format!("{ctx} {k}"), &want[k], v);
    }
    check_hist(&format!("{ctx} latency"), &want["latency"], &t.latency);
}

fn check_client(ctx: &str, want: &Value, t: &pcapdns_core::tally::ClientTally) {
    for (k, v) in CLIENT_FIELDS.iter().zip(client_counts(t)) {
        same_int(&format!("{ctx} {k}"), &want[k], v);
    }
    same(
        &format!("{ctx} max_latency"),
        &want["max_latency"],
        Some(t.max_latency),
    );
}

/// The document's tables (output/document.py `_servers`, `_clients`): sorted, 100 rows.
fn check_document_tables(ctx: &str, want: &Value, b: &Breakdown) {
    let rows = want["doc_servers"].as_array().unwrap();
    let got = b.servers_by_lookups();
    assert_eq!(
        rows.len(),
        got.len().min(100),
        "{ctx}: document server rows"
    );
    for (w, (key, t)) in rows.iter().zip(&got) {
        let ctx = format!("{ctx} document server {key}");
        assert_eq!(text(&w["server"]), key, "{ctx}");
        for (k, v) in SERVER_FIELDS.iter().zip(server_counts(t)) {
            same_int(&format!("{ctx} {k}"), &w[k], v);
        }
        check_summary(&format!("{ctx} latency_ms"), &w["latency_ms"], &t.latency);
    }
    let rows = want["doc_clients"].as_array().unwrap();
    let got = b.clients_by_failures();
    assert_eq!(
        rows.len(),
        got.len().min(100),
        "{ctx}: document client rows"
    );
    for (w, (key, t)) in rows.iter().zip(&got) {
        let ctx = format!("{ctx} document client {key}");
        assert_eq!(text(&w["client"]), key, "{ctx}");
        for (k, v) in CLIENT_FIELDS.iter().zip(client_counts(t)) {
            same_int(&format!("{ctx} {k}"), &w[k], v);
        }
        let max_ms = (t.answered > 0).then(|| round3(t.max_latency * 1000.0));
        same(
            &format!("{ctx} max_latency_ms"),
            &w["max_latency_ms"],
            max_ms,
        );
    }
}

fn check_breakdown(ctx: &str, want: &Value, b: &Breakdown) {
    assert_eq!(
        int(&want["servers_total"]) as usize,
        b.servers.len(),
        "{ctx}: servers"
    );
    assert_eq!(
        int(&want["clients_total"]) as usize,
        b.clients.len(),
        "{ctx}: clients"
    );
    check_document_tables(ctx, want, b);
    if let Some(rows) = want["servers"].as_array() {
        let got = b.servers.items();
        assert_eq!(rows.len(), got.len());
        for (w, (key, t)) in rows.iter().zip(&got) {
            assert_eq!(text(&w[0]), key, "{ctx}: server order");
            check_server(&format!("{ctx} server {key}"), &w[1], t);
        }
        let rows = want["clients"].as_array().unwrap();
        let got = b.clients.items();
        assert_eq!(rows.len(), got.len());
        for (w, (key, t)) in rows.iter().zip(&got) {
            assert_eq!(text(&w[0]), key, "{ctx}: client order");
            check_client(&format!("{ctx} client {key}"), &w[1], t);
        }
        return;
    }
    // Long tables: their ends and the row of the addresses past the cap.
    let keys = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| text(k).to_string())
            .collect::<Vec<String>>()
    };
    let servers: Vec<String> = b.servers.items().into_iter().map(|(k, _)| k).collect();
    let clients: Vec<String> = b.clients.items().into_iter().map(|(k, _)| k).collect();
    let head = |v: &[String]| v[..v.len().min(5)].to_vec();
    let tail = |v: &[String]| v[v.len().saturating_sub(5)..].to_vec();
    assert_eq!(keys(&want["servers_keys_head"]), head(&servers), "{ctx}");
    assert_eq!(keys(&want["servers_keys_tail"]), tail(&servers), "{ctx}");
    assert_eq!(keys(&want["clients_keys_head"]), head(&clients), "{ctx}");
    assert_eq!(keys(&want["clients_keys_tail"]), tail(&clients), "{ctx}");
    let other = pcapdns_core::tally::RowKey::Other;
    match b.servers.get(&other) {
        Some(t) => check_server(&format!("{ctx} server {OTHER}"), &want["servers_other"], t),
        None => assert!(
            want["servers_other"].is_null(),
            "{ctx}: no other server row"
        ),
    }
    match b.clients.get(&other) {
        Some(t) => check_client(&format!("{ctx} client {OTHER}"), &want["clients_other"], t),
        None => assert!(
            want["clients_other"].is_null(),
            "{ctx}: no other client row"
        ),
    }
}

fn check_tallies(ctx: &str, want: &Value, t: &Tallies) {
    check_breakdown(ctx, &want["breakdown"], &t.breakdown);
    check_hist(&format!("{ctx} latency"), &want["latency"], &t.latency);
    check_timeline(&format!("{ctx} timeline"), &want["timeline"], &t.timeline);
}

fn check_span_warnings(ctx: &str, cases: &Value, tl: &Timeline) {
    for case in cases.as_array().unwrap() {
        let files: Vec<(Option<f64>, Option<f64>)> = case[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (num(&f[0]), num(&f[1])))
            .collect();
        let limit = num(&case[1]).unwrap();
        let want: Vec<String> = case[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| text(w).to_string())
            .collect();
        assert_eq!(
            want,
            tl.span_warnings(&files, limit),
            "{ctx}: limit {limit}, {files:?}"
        );
    }
}

/// One line of lookups: feed them, compare everything.
fn check_lookup_line(line: &Value) -> usize {
    let ctx = text(&line["name"]);
    let facts: Vec<Facts> = line["lookups"]
        .as_array()
        .unwrap()
        .iter()
        .map(Facts::of)
        .collect();
    let mut t = tallies_for(line);
    for f in &facts {
        t.lookup(&f.view());
    }
    // The row keys compare as text: the Python side's address text survives IpAddr.
    check_tallies(ctx, &line["expect"], &t);
    check_span_warnings(ctx, &line["span_warnings"], &t.timeline);
    facts.len()
}

#[test]
fn sample_captures() {
    let lines = fixture("samples.jsonl");
    let lookups: usize = lines.iter().map(check_lookup_line).sum();
    assert!(
        lines.len() >= 20 && lookups > 150,
        "{} captures, {lookups} lookups",
        lines.len()
    );
}

#[test]
fn synthetic_streams() {
    let mut seen = 0;
    for line in fixture("synthetic.jsonl") {
        if line["generated"].is_null() {
            check_lookup_line(&line);
        } else {
            check_generated(&line);
        }
        seen += 1;
    }
    assert_eq!(seen, 6);
}

/// make_tally.py `generated_facts`: lookup i of a stream past both real caps.
fn generated(i: u64) -> Facts {
    let j = i * 7 % 1200;
    let start = 1.7e9 + i as f64 * 0.01;
    let latency = (!i.is_multiple_of(17)).then_some((i % 997) as f64 * 1e-4 + 1e-5);
    Facts {
        client: format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
            .parse()
            .unwrap(),
        server: format!("172.16.{}.{}", j >> 8, j & 255).parse().unwrap(),
        times: if i.is_multiple_of(5) {
            vec![start, start + 1.0]
        } else {
            vec![start]
        },
        retransmissions: u32::from(i.is_multiple_of(5)),
        race_lost: u32::from(i.is_multiple_of(11)),
        failed: i.is_multiple_of(13),
        latency,
        rcode: latency.map(|_| (i % 6) as u16),
    }
}

fn check_generated(line: &Value) {
    let mut t = Tallies::new();
    for i in 0..int(&line["generated"]) {
        t.lookup(&generated(i).view());
    }
    assert_eq!(t.breakdown.servers.len(), 1001);
    assert_eq!(t.breakdown.clients.len(), 20001);
    check_tallies(text(&line["name"]), &line["expect"], &t);
}

#[test]
fn timeline_streams() {
    for line in fixture("timeline.jsonl") {
        let ctx = text(&line["name"]);
        let mut tl = Timeline::new(int(&line["max_buckets"]) as usize).unwrap();
        for op in line["ops"].as_array().unwrap() {
            let t = num(&op[1]).unwrap();
            match text(&op[0]) {
                "q" => tl.add_query(t),
                _ => tl.add_failure(t),
            }
            let (_, _, q, _) = tl.series();
            assert!(q.len() <= tl.max_buckets, "{ctx}: {} buckets", q.len());
        }
        check_timeline(ctx, &line["expect"], &tl);
        check_span_warnings(ctx, &line["span_warnings"], &tl);
    }
}

#[test]
fn latency_streams() {
    for line in fixture("latency.jsonl") {
        let mut h = LatencyHistogram::new();
        for v in line["values"].as_array().unwrap() {
            h.add(num(v).unwrap());
        }
        check_hist(text(&line["name"]), &line["expect"], &h);
    }
}

#[test]
fn number_formatting() {
    let mut checked = 0;
    for line in fixture("format.jsonl") {
        let name = text(&line["name"]);
        for case in line["cases"].as_array().unwrap() {
            let x = num(&case[0]).unwrap();
            match name {
                "round3" => same(&format!("round({x:?}, 3)"), &case[1], Some(round3(x))),
                "duration" => assert_eq!(text(&case[1]), duration(x), "_duration({x:?})"),
                "when" => assert_eq!(text(&case[1]), when(x), "_when({x:?})"),
                _ => panic!("unknown case {name}"),
            }
            checked += 1;
        }
    }
    assert!(checked > 10_000, "{checked} cases");
}

/// Capture lines written by `make_tally.py --inputs ... --out FILE`, when asked for.
#[test]
fn extra_captures() {
    let Ok(paths) = std::env::var("PCAPDNS_TALLY_EXTRA") else {
        eprintln!("PCAPDNS_TALLY_EXTRA not set: no extra captures checked");
        return;
    };
    let (mut captures, mut lookups) = (0, 0);
    for path in paths.split(':').filter(|p| !p.is_empty()) {
        for line in lines(Path::new(path)) {
            lookups += check_lookup_line(&line);
            captures += 1;
        }
    }
    eprintln!("extra: {captures} captures, {lookups} lookups identical");
}

/// A busy node's stream: 3 servers, 500 clients, latencies of a few milliseconds.
fn typical(i: u64) -> Facts {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    let start = 1.7e9 + i as f64 * 0.0001;
    let latency = (!x.is_multiple_of(50)).then_some(0.0005 + (x % 4096) as f64 * 1e-6);
    Facts {
        client: format!("10.0.{}.{}", (x % 500) >> 8, (x % 500) & 255)
            .parse()
            .unwrap(),
        server: format!("10.96.0.{}", 10 + x % 3).parse().unwrap(),
        times: if x.is_multiple_of(50) {
            vec![start, start + 5.0]
        } else {
            vec![start]
        },
        retransmissions: u32::from(x.is_multiple_of(50)),
        race_lost: 0,
        failed: x.is_multiple_of(50),
        latency,
        rcode: latency.map(|_| if x.is_multiple_of(10) { 3 } else { 0 }),
    }
}

/// Seconds this thread has run on a CPU (Linux), else wall time: the machine is shared,
/// and time spent waiting for a CPU is not the tallies' cost.
fn cpu_seconds(wall: std::time::Instant) -> f64 {
    match fs::read_to_string("/proc/thread-self/schedstat") {
        Ok(s) => {
            s.split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1e9
        }
        Err(_) => wall.elapsed().as_secs_f64(),
    }
}

/// The best of five runs.
fn time_tallies(what: &str, facts: &[Facts]) {
    let mut best = f64::INFINITY;
    let wall = std::time::Instant::now();
    for _ in 0..5 {
        let start = cpu_seconds(wall);
        let mut t = Tallies::new();
        for f in facts {
            t.lookup(&f.view());
        }
        best = best.min(cpu_seconds(wall) - start);
        let attempts: u64 = facts.iter().map(|f| f.times.len() as u64).sum();
        assert_eq!(t.timeline.series().2.iter().sum::<u64>(), attempts);
    }
    let n = facts.len() as f64;
    eprintln!(
        "{what}: {n} lookups in {best:.3} s: {:.0} lookups/s",
        n / best
    );
}

/// Lookups per second through the three tallies (`cargo test --release --test tally --
/// --ignored --nocapture`).
#[test]
#[ignore]
fn speed() {
    let typical: Vec<Facts> = (0..2_000_000).map(typical).collect();
    time_tallies("typical (3 servers, 500 clients)", &typical);
    // Past both caps, every server with its own thousand latencies: cache-bound.
    let wide: Vec<Facts> = (0..2_000_000).map(|i| generated(i % 400_000)).collect();
    time_tallies("wide (1001 server rows, 20001 client rows)", &wide);
}
