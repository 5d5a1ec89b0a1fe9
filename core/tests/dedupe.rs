//! The duplicate filter against the former Python filter's decisions on the same message
//! streams (the frozen fixtures of tests/fixtures/dedupe/, see its README).
//!
//! `PCAPDNS_DEDUPE_FIXTURES=DIR` also checks every file of that form in DIR (a corpus
//! check).

use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pcapdns_core::dedupe::Deduplicator;
use pcapdns_core::types::{Message, Transport};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dedupe")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn time(v: &Value) -> f64 {
    v.as_str().expect("time").parse().expect("time")
}

fn message(v: &Value) -> Message {
    Message {
        frame: int(&v[0]),
        time: time(&v[1]),
        iface: int(&v[2]) as u32,
        transport: match v[3].as_str() {
            Some("udp") => Transport::Udp,
            Some("tcp") => Transport::Tcp,
            t => panic!("transport {t:?}"),
        },
        src: v[4].as_str().unwrap().parse::<IpAddr>().unwrap(),
        sport: int(&v[5]) as u16,
        dst: v[6].as_str().unwrap().parse::<IpAddr>().unwrap(),
        dport: int(&v[7]) as u16,
        id: int(&v[8]) as u16,
        flags: int(&v[9]) as u16,
        qdcount: 1,
        ancount: 0,
        qname: None,
        qtype: 1,
        qclass: 1,
        data: unhex(v[10].as_str().unwrap()).into(),
        legs: Default::default(),
    }
}

/// Run one stream; the first difference, if any. Returns the number of messages.
fn check_stream(path: &Path) -> Result<usize, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let (settings, rest) = lines.split_first().expect("settings");
    let (end, stream) = rest.split_last().expect("end state");
    let mut d = Deduplicator::new(
        time(&settings["window"]),
        settings["record_copies"].as_bool().unwrap(),
        int(&settings["max_entries"]) as usize,
    );
    let at = |line: &Value| format!("{}: frame {} ({})", path.display(), line[0], line);
    for line in stream {
        let dup = d.is_duplicate(&message(line));
        let got = [
            dup as u64,
            d.evicted,
            d.remembered() as u64,
            d.turns_remembered() as u64,
        ];
        let want = [
            int(&line[11]),
            int(&line[12]),
            int(&line[13]),
            int(&line[14]),
        ];
        if got != want {
            return Err(format!(
                "{}: [duplicate, evicted, remembered, directions] want {want:?}, got {got:?}",
                at(line)
            ));
        }
    }
    let copies = end["copies"].as_array().map(|pairs| {
        pairs
            .iter()
            .map(|p| (int(&p[0]), int(&p[1])))
            .collect::<HashMap<u64, u64>>()
    });
    let dnat: Vec<String> = end["dnat_servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let want = (int(&end["duplicates"]), int(&end["evicted"]), copies, dnat);
    let got = (
        d.duplicates,
        d.evicted,
        d.copies.clone(),
        d.dnat_server_texts(),
    );
    if got != want {
        return Err(format!(
            "{}: end state want {want:?}, got {got:?}",
            path.display()
        ));
    }
    Ok(stream.len())
}

fn check_dir(dir: &Path, filter: impl Fn(&str) -> bool) -> (usize, usize, usize, Vec<String>) {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .filter(|p| filter(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    paths.sort();
    let (mut files, mut same, mut messages, mut diffs) = (0, 0, 0, Vec::new());
    for path in paths {
        files += 1;
        match check_stream(&path) {
            Ok(n) => {
                same += 1;
                messages += n;
            }
            Err(e) => diffs.push(e),
        }
    }
    (files, same, messages, diffs)
}

#[test]
fn sample_captures_as_in_python() {
    let (files, same, messages, diffs) = check_dir(&fixtures(), |n| n.contains(".pcap"));
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(
        files >= 15 && same == files && messages > 150,
        "{files} {messages}"
    );
}

#[test]
fn crafted_streams_as_in_python() {
    let (files, _, messages, diffs) = check_dir(&fixtures(), |n| !n.contains(".pcap"));
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(files >= 20 && messages > 10_000, "{files} {messages}");
}

/// Captures given by PCAPDNS_DEDUPE_FIXTURES (files of the form of tests/fixtures/dedupe/).
#[test]
fn extra_captures_as_in_python() {
    let Some(dir) = std::env::var_os("PCAPDNS_DEDUPE_FIXTURES") else {
        eprintln!("skipped: PCAPDNS_DEDUPE_FIXTURES is not set");
        return;
    };
    let (files, same, messages, diffs) = check_dir(Path::new(&dir), |_| true);
    eprintln!("{files} captures, {same} identical ({messages} messages in those)");
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

// -- speed -----------------------------------------------------------------------------------

/// `cargo test --release --test dedupe -- --ignored --nocapture speed`
///
/// A node's `tcpdump -i any` stream: each message seen twice (veth and uplink, before and
/// after DNAT), clients on many ports, a query and its answer per lookup.
#[test]
#[ignore]
fn speed() {
    let pod: IpAddr = "10.244.1.7".parse().unwrap();
    let (svc, dns): (IpAddr, IpAddr) =
        ("10.96.0.10".parse().unwrap(), "10.244.2.5".parse().unwrap());
    let mut stream = Vec::new();
    let mut frame = 0;
    for i in 0..250_000u32 {
        let t = 1_700_000_000.0 + f64::from(i) * 0.000_02;
        let port = 20000 + (i % 40000) as u16;
        let id = (i * 7919) as u16;
        let mut q = vec![0u8; 12];
        q[..2].copy_from_slice(&id.to_be_bytes());
        q.extend_from_slice(format!("\x03www\x07example{i}\x03com\x00\x00\x01\x00\x01").as_bytes());
        let mut r = q.clone();
        r[2] = 0x81;
        r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
        for (dt, iface, src, sport, dst, dport, data, flags) in [
            (0.0, 12, pod, port, svc, 53, &q, 0x0100),
            (0.000_002, 2, pod, port, dns, 53, &q, 0x0100),
            (0.000_5, 2, dns, 53, pod, port, &r, 0x8180),
            (0.000_502, 12, svc, 53, pod, port, &r, 0x8180),
        ] {
            frame += 1;
            stream.push(Message {
                frame,
                time: t + dt,
                iface,
                transport: Transport::Udp,
                src,
                sport,
                dst,
                dport,
                id,
                flags,
                qdcount: 1,
                ancount: 0,
                qname: None,
                qtype: 1,
                qclass: 1,
                data: data.clone().into(),
                legs: Default::default(),
            });
        }
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut d = Deduplicator::new(0.050, false, 100_000);
        let start = Instant::now();
        let dups = stream.iter().filter(|m| d.is_duplicate(m)).count();
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!(dups, stream.len() / 2);
    }
    eprintln!(
        "dedupe: {} messages, half of them copies: {:.1} M/s, {:.0} ns each",
        stream.len(),
        stream.len() as f64 / best / 1e6,
        best * 1e9 / stream.len() as f64
    );
}
