//! The DNS stage against what the former Python stage made of the same bytes (the frozen
//! fixtures of tests/fixtures/dns/, see its README), and against random bytes.
//!
//! `PCAPDNS_DNS_FIXTURES=DIR` also checks every file of that form in DIR (a corpus check).

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pcapdns_core::dns::names::{qclass_name, qtype_name, rcode_name};
use pcapdns_core::dns::wire::{quote, RdataReader};
use pcapdns_core::dns::{key_name, parse, read_name, DnsError, ErrorKind};
use pcapdns_core::types::{Payload, Transport};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dns")
}

fn lines(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn payload(v: &Value) -> Payload {
    Payload {
        frame: int(&v["frame"]),
        time: v["time"].as_str().expect("time").parse().expect("time"),
        iface: int(&v["iface"]) as u32,
        transport: match v["transport"].as_str() {
            Some("udp") => Transport::Udp,
            Some("tcp") => Transport::Tcp,
            t => panic!("transport {t:?}"),
        },
        src: v["src"].as_str().unwrap().parse::<IpAddr>().unwrap(),
        sport: int(&v["sport"]) as u16,
        dst: v["dst"].as_str().unwrap().parse::<IpAddr>().unwrap(),
        dport: int(&v["dport"]) as u16,
        data: unhex(v["data"].as_str().unwrap()),
        tunnel: None,
    }
}

/// The error as the fixtures write it: {"kind", "text"}.
fn error_json(e: &DnsError) -> Value {
    let kind = match e.kind {
        ErrorKind::Truncated => "truncated",
        ErrorKind::Malformed => "malformed",
    };
    serde_json::json!({"kind": kind, "text": e.to_string()})
}

/// Check one payload line; return a description of the difference, if any.
fn check_payload(line: &Value) -> Option<String> {
    let p = payload(line);
    let got = match parse(p.clone()) {
        Err(e) => serde_json::json!({"error": error_json(&e)}),
        Ok(m) => {
            let same_payload = (
                m.frame,
                m.time.to_bits(),
                m.iface,
                m.transport,
                m.src,
                m.sport,
                m.dst,
                m.dport,
                &*m.data,
            ) == (
                p.frame,
                p.time.to_bits(),
                p.iface,
                p.transport,
                p.src,
                p.sport,
                p.dst,
                p.dport,
                &p.data[..],
            );
            if !same_payload {
                return Some(format!("payload fields not carried over: {m:?}"));
            }
            serde_json::json!({"message": {
                "id": m.id, "flags": m.flags, "qdcount": m.qdcount, "ancount": m.ancount,
                "qname": m.qname.as_deref(), "key": m.qname.as_deref().map(|q| key_name(q)),
                "qtype": m.qtype, "qclass": m.qclass,
            }})
        }
    };
    let want = match (line.get("error"), line.get("message")) {
        (Some(e), _) => serde_json::json!({"error": e}),
        (_, Some(m)) => serde_json::json!({"message": m}),
        _ => panic!("line without a result: {line}"),
    };
    (got != want).then(|| {
        format!(
            "frame {} data {}: want {want}, got {got}",
            line["frame"], line["data"]
        )
    })
}

fn check_payload_file(path: &Path) -> (usize, Vec<String>) {
    let all = lines(path);
    let diffs: Vec<String> = all
        .iter()
        .filter_map(check_payload)
        .map(|d| format!("{}: {d}", path.display()))
        .collect();
    (all.len(), diffs)
}

fn assert_no_diffs(diffs: &[String]) {
    assert!(
        diffs.is_empty(),
        "{} differences, the first:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn sample_captures_parse_as_in_python() {
    let mut files = 0;
    let mut payloads = 0;
    let mut diffs = Vec::new();
    for entry in fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains(".pcap") {
            let (n, d) = check_payload_file(&path);
            files += 1;
            payloads += n;
            diffs.extend(d);
        }
    }
    assert_no_diffs(&diffs);
    assert!(
        files >= 15 && payloads >= 190,
        "{files} files, {payloads} payloads"
    );
}

#[test]
fn crafted_messages_parse_as_in_python() {
    let (n, diffs) = check_payload_file(&fixtures().join("crafted.jsonl"));
    assert_no_diffs(&diffs);
    assert!(n > 40);
}

#[test]
fn random_messages_parse_as_in_python() {
    let (n, diffs) = check_payload_file(&fixtures().join("random.jsonl"));
    assert_no_diffs(&diffs);
    assert!(n >= 1200);
}

#[test]
fn read_name_at_any_offset_as_in_python() {
    let mut diffs = Vec::new();
    for line in lines(&fixtures().join("read_name.jsonl")) {
        let data = unhex(line["data"].as_str().unwrap());
        let got = match read_name(&data, int(&line["pos"]) as usize) {
            Ok((name, after)) => serde_json::json!({"name": name, "after": after}),
            Err(e) => serde_json::json!({"error": error_json(&e)}),
        };
        let want = match line.get("error") {
            Some(e) => serde_json::json!({"error": e}),
            None => serde_json::json!({"name": line["name"], "after": line["after"]}),
        };
        if got != want {
            diffs.push(format!("{line}: got {got}"));
        }
    }
    assert_no_diffs(&diffs);
}

#[test]
fn rdata_reader_names_and_quoting_as_in_python() {
    let mut diffs = Vec::new();
    for line in lines(&fixtures().join("wire.jsonl")) {
        match line["op"].as_str() {
            Some("quote") => {
                let got = quote(&unhex(line["raw"].as_str().unwrap()));
                if line["out"] != got.as_str() {
                    diffs.push(format!("{line}: got {got}"));
                }
            }
            Some("name") => {
                let data = unhex(line["data"].as_str().unwrap());
                let mut r = RdataReader::new(
                    &data,
                    int(&line["pos"]) as usize,
                    int(&line["end"]) as usize,
                );
                let got = match r.name(line["what"].as_str().unwrap()) {
                    Ok(name) => serde_json::json!({"name": name, "after": r.pos}),
                    Err(e) => serde_json::json!({"error": error_json(&e)}),
                };
                let want = match line.get("error") {
                    Some(e) => serde_json::json!({"error": e}),
                    None => serde_json::json!({"name": line["name"], "after": line["after"]}),
                };
                if got != want {
                    diffs.push(format!("{line}: got {got}"));
                }
            }
            op => panic!("op {op:?}"),
        }
    }
    assert_no_diffs(&diffs);
}

#[test]
fn names_of_numbers_as_in_python() {
    for line in lines(&fixtures().join("names.jsonl")) {
        let (got, n) = if let Some(n) = line.get("qtype") {
            (qtype_name(int(n) as u16), n)
        } else if let Some(n) = line.get("rcode") {
            (rcode_name(int(n) as u16), n)
        } else {
            (qclass_name(int(&line["qclass"]) as u16), &line["qclass"])
        };
        assert_eq!(line["name"], &*got, "{n}");
    }
}

/// Captures given by PCAPDNS_DNS_FIXTURES (files of the form of tests/fixtures/dns/).
#[test]
fn extra_captures_parse_as_in_python() {
    let Some(dir) = std::env::var_os("PCAPDNS_DNS_FIXTURES") else {
        eprintln!("skipped: PCAPDNS_DNS_FIXTURES is not set");
        return;
    };
    let (mut files, mut same_files, mut payloads) = (0, 0, 0);
    let mut diffs = Vec::new();
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let (n, d) = check_payload_file(&path);
        files += 1;
        payloads += n;
        same_files += d.is_empty() as usize;
        diffs.extend(d);
    }
    eprintln!(
        "{files} captures, {same_files} identical; {payloads} payloads, {} differ",
        diffs.len()
    );
    assert_no_diffs(&diffs);
}

// -- hostile bytes ---------------------------------------------------------------------------

/// xorshift64*: enough randomness to shake a parser, and the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// A message that is mostly a DNS message: a header, labels, pointers anywhere, bytes
/// flipped, cut short.
fn hostile(rng: &mut Rng) -> Vec<u8> {
    let mut d: Vec<u8> = (0..12).map(|_| rng.byte()).collect();
    d[4] = 0;
    d[5] = rng.below(3) as u8;
    for _ in 0..rng.below(8) {
        match rng.below(4) {
            0 => d.extend([0xC0 | rng.below(64) as u8, rng.byte()]),
            1 => d.extend([0xC0, 12 + rng.below(24) as u8]),
            2 => d.push(0),
            _ => {
                let n = rng.below(70);
                d.push(n as u8);
                d.extend((0..n).map(|_| rng.byte()));
            }
        }
    }
    d.extend((0..rng.below(8)).map(|_| rng.byte()));
    for _ in 0..rng.below(3) {
        let i = rng.below(d.len());
        d[i] = rng.byte();
    }
    if rng.below(4) == 0 {
        d.truncate(rng.below(d.len() + 1));
    }
    d
}

fn udp(data: Vec<u8>) -> Payload {
    Payload {
        frame: 1,
        time: 0.0,
        iface: 0,
        transport: Transport::Udp,
        src: "10.0.0.1".parse().unwrap(),
        sport: 1,
        dst: "10.0.0.2".parse().unwrap(),
        dport: 53,
        data,
        tunnel: None,
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut bad) = (0, 0);
    for i in 0..200_000 {
        let data = if i % 4 == 0 {
            (0..rng.below(80)).map(|_| rng.byte()).collect()
        } else {
            hostile(&mut rng)
        };
        let pos = rng.below(data.len() + 3);
        let _ = read_name(&data, pos);
        let end = rng.below(data.len() + 3);
        let mut r = RdataReader::new(&data, pos, end);
        let _ = r.name("name");
        let _ = r.strings();
        let _ = r.u32("x");
        let _ = quote(&data);
        match parse(udp(data)) {
            Ok(m) => {
                ok += 1;
                let q = m.qname.as_deref().unwrap_or(".");
                // Presentation form is printable ASCII, whatever the bytes were.
                assert!(q.bytes().all(|b| (0x21..0x7F).contains(&b)), "{q:?}");
                assert_eq!(key_name(q), q.to_lowercase());
            }
            Err(e) => {
                bad += 1;
                assert!(!e.text().is_empty());
            }
        }
    }
    assert!(ok > 10_000 && bad > 10_000, "{ok} parsed, {bad} rejected");
}

// -- speed -----------------------------------------------------------------------------------

/// `cargo test --release --test dns -- --ignored --nocapture speed`
#[test]
#[ignore]
fn speed() {
    let mut samples = Vec::new();
    for entry in fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains(".pcap") {
            samples.extend(lines(&path).iter().map(payload));
        }
    }
    // Each round copies each payload (as the frame decoder makes it), then either drops the
    // copy or parses it and drops the message: the difference is what parsing costs. The
    // best of several runs, as the machine is shared.
    let rounds = 1000;
    let n = samples.len() * rounds;
    let (mut base, mut best) = (f64::MAX, f64::MAX);
    let mut names = 0usize;
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..rounds {
            for p in &samples {
                drop(std::hint::black_box(p.clone()));
            }
        }
        base = base.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        names = 0;
        for _ in 0..rounds {
            for p in &samples {
                if let Ok(m) = parse(std::hint::black_box(p.clone())) {
                    names += m.qname.map_or(0, |q| q.len());
                }
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let secs = best - base;
    eprintln!(
        "parse: {n} payloads of the sample captures ({names} name bytes): {:.1} M/s, {:.0} ns \
         each (beyond {:.0} ns to copy and free the payload)",
        n as f64 / secs / 1e6,
        secs * 1e9 / n as f64,
        base * 1e9 / n as f64
    );
}
