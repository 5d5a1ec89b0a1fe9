//! The frame decoder reproduces the former Python stage on every fixture: the same items
//! for each record, the same bytes held in reassembly after it, the same end-of-capture
//! flush and the same counters. The fixtures were generated from that stage and are frozen
//! (fixtures/decode/README.md).
//!
//! With `PCAPDNS_DECODE_DUMPS=DIR`, every dump in DIR (the same form, from the public corpus
//! say) is compared the same way.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use pcapdns_core::config::Config;
use pcapdns_core::decode::FrameDecoder;
use pcapdns_core::types::{addr_text, Decoded, Record};
use serde_json::{json, Value};

fn read_lines(path: &Path) -> Vec<Value> {
    let raw = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s
    } else {
        String::from_utf8(raw).expect("utf-8")
    };
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// An item in the fixtures' form.
fn item(d: &Decoded) -> Value {
    match d {
        Decoded::Payload(p) => json!([
            "p",
            p.frame,
            p.time.to_bits(),
            p.iface,
            p.transport.as_str(),
            addr_text(&p.src),
            p.sport,
            addr_text(&p.dst),
            p.dport,
            hex(&p.data)
        ]),
        Decoded::Icmp(q) => json!([
            "i",
            q.frame,
            q.time.to_bits(),
            q.iface,
            addr_text(&q.reporter),
            q.icmp_type,
            q.icmp_code,
            addr_text(&q.src),
            q.sport,
            addr_text(&q.dst),
            q.dport,
            hex(&q.data)
        ]),
    }
}

fn stats(d: &FrameDecoder) -> Value {
    let (s, t, f) = (&d.stats, &d.tcp.stats, &d.fragments);
    json!({
        "non_ip": s.non_ip, "not_dns": s.not_dns, "bad_ip": s.bad_ip,
        "fragments": s.fragments, "icmp_errors": s.icmp_errors,
        "tcp_gaps": t.gaps, "tcp_unframed_bytes": t.unframed_bytes,
        "tcp_incomplete_messages": t.incomplete_messages,
        "tcp_empty_messages": t.empty_messages, "tcp_evicted_flows": t.evicted_flows,
        "tcp_evicted_bytes": t.evicted_bytes,
        "fragments_reassembled": f.reassembled, "fragments_dropped": f.dropped,
        "fragments_evicted": f.evicted, "fragments_evicted_bytes": f.evicted_bytes,
    })
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Run one fixture; return the first difference, if any.
fn check(path: &Path) -> Result<usize, String> {
    let lines = read_lines(path);
    let head = &lines[0];
    let cfg = Config {
        ports: head["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| num(p) as u16)
            .collect(),
        max_tcp_buffer_bytes: num(&head["tcp_bytes"]) as usize,
        max_fragment_buffer_bytes: num(&head["fragment_bytes"]) as usize,
        ..Config::default()
    };
    let case = head["case"].as_str().unwrap_or("?").to_string();
    let mut decoder = FrameDecoder::new(&cfg);
    let mut out = Vec::new();
    let mut records = 0;
    for line in &lines[1..lines.len() - 1] {
        let r = line["r"].as_array().expect("record");
        let rec = Record {
            frame: num(&r[0]),
            time: f64::from_bits(num(&r[1])),
            link_type: num(&r[2]) as u32,
            iface: num(&r[3]) as u32,
            data: unhex(r[4].as_str().expect("data")),
        };
        out.clear();
        decoder.decode(&rec, &mut out);
        let got: Vec<Value> = out.iter().map(item).collect();
        let want = line["o"].as_array().expect("items");
        if &got != want {
            return Err(format!(
                "{case}: frame {} ({}):\n  rust:   {}\n  python: {}",
                rec.frame,
                hex(&rec.data),
                Value::from(got),
                Value::from(want.clone())
            ));
        }
        let held = json!([decoder.fragments.buffered, decoder.tcp.buffered]);
        if held != line["b"] {
            return Err(format!(
                "{case}: frame {}: bytes held {held}, python {}",
                rec.frame, line["b"]
            ));
        }
        records += 1;
    }
    let last = &lines[lines.len() - 1];
    out.clear();
    decoder.finish(&mut out);
    let got: Vec<Value> = out.iter().map(item).collect();
    if Value::from(got.clone()) != last["finish"] {
        return Err(format!(
            "{case}: finish:\n  rust:   {}\n  python: {}",
            Value::from(got),
            last["finish"]
        ));
    }
    let s = stats(&decoder);
    if s != last["stats"] {
        return Err(format!(
            "{case}: counters:\n  rust:   {s}\n  python: {}",
            last["stats"]
        ));
    }
    Ok(records)
}

fn fixtures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains(".jsonl"))
        .collect();
    v.sort();
    v
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decode")
}

fn run_one(name: &str) {
    let dir = fixture_dir();
    let path = [
        dir.join(format!("{name}.jsonl")),
        dir.join(format!("{name}.jsonl.gz")),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("no fixture {name} in {}", dir.display()));
    if let Err(e) = check(&path) {
        panic!("{e}");
    }
}

macro_rules! fixture_tests {
    ($($test:ident => $name:literal,)*) => {
        $(#[test] fn $test() { run_one($name); })*

        #[test]
        fn every_fixture_has_a_test() {
            let named = [$($name),*];
            for p in fixtures(&fixture_dir()) {
                let file = p.file_name().unwrap().to_string_lossy().to_string();
                let stem = file.trim_end_matches(".gz").trim_end_matches(".jsonl");
                assert!(named.contains(&stem), "fixture {file} is not checked by a test");
            }
        }
    };
}

fixture_tests! {
    links => "links",
    ipv6_extension_headers => "ipv6-extension-headers",
    ipv4_damaged => "ipv4-damaged",
    icmp => "icmp",
    ports => "ports-5300-and-53",
    fragments => "fragments",
    fragments_any_order => "fragments-any-order",
    fragments_budget => "fragments-budget",
    fragments_too_many_datagrams => "fragments-too-many-datagrams",
    tcp_basic => "tcp-basic",
    tcp_holes => "tcp-holes",
    tcp_hole_pieces => "tcp-hole-pieces",
    tcp_acked => "tcp-acked",
    tcp_expiry => "tcp-expiry",
    tcp_budget => "tcp-budget",
    tcp_fuzz => "tcp-fuzz",
    tcp_fuzz_small_budget => "tcp-fuzz-small-budget",
    mutated_frames => "mutated-frames",
    sample_aaaa_same_port_race => "sample-aaaa-same-port-race.pcap",
    sample_clean_glibc_getent => "sample-clean-glibc-getent.pcap",
    sample_dnat_service_any => "sample-dnat-service-any.pcap",
    sample_ipv6_clean => "sample-ipv6-clean.pcap",
    sample_late_response_icmp => "sample-late-response-icmp.pcap",
    sample_musl_failed_near_end => "sample-musl-failed-near-end.pcap",
    sample_musl_fanout => "sample-musl-fanout.pcap",
    sample_ndots_search_expansion => "sample-ndots-search-expansion.pcap",
    sample_race_timeout1_short_capture => "sample-race-timeout1-short-capture.pcap",
    sample_servfail_refused => "sample-servfail-refused.pcap",
    sample_slow_response => "sample-slow-response.pcap",
    sample_tc_glibc_a_aaaa_tcp => "sample-tc-glibc-a-aaaa-tcp.pcap",
    sample_tc_no_tcp_fallback => "sample-tc-no-tcp-fallback.pcap",
    sample_tc_then_tcp_retry => "sample-tc-then-tcp-retry.pcap",
    sample_timeout_dropped => "sample-timeout-dropped.pcap",
}

/// Dumps of other captures (the public corpus), when `PCAPDNS_DECODE_DUMPS` names them.
#[test]
fn dumps_named_by_the_environment() {
    let Some(dir) = std::env::var_os("PCAPDNS_DECODE_DUMPS") else {
        eprintln!("skipped: PCAPDNS_DECODE_DUMPS is not set");
        return;
    };
    let (mut same, mut records, mut failures) = (0, 0, Vec::new());
    let files = fixtures(Path::new(&dir));
    for p in &files {
        match check(p) {
            Ok(n) => {
                same += 1;
                records += n;
            }
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "{} dumps compared, {same} identical ({records} records)",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
