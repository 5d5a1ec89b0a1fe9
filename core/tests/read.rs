//! The read stage against the reference reader: every case of
//! tests/fixtures/read/cases.jsonl (generated from the former Python reader, and frozen:
//! fixtures/read/README.md) is read again here and must come out the same: the records
//! (numbers, times to the bit, link types, interfaces, bytes), each file's description and
//! warnings, the reorder counters and warning, and the error text when the input is
//! unusable.
//!
//! Cases are grouped by what they show, one test per group; `every_case_is_checked` makes
//! sure no case falls outside a group.

#[path = "read/dump.rs"]
mod dump;

use std::fs;
use std::path::Path;

use serde_json::Value;

const CASES: &str = "tests/fixtures/read/cases.jsonl";

/// Groups of cases, by name prefix.
const GROUPS: [(&str, &[&str]); 10] = [
    ("samples", &["sample-", "samples-"]),
    ("pcap", &["pcap-"]),
    ("pcapng", &["pcapng-"]),
    ("bad_time", &["bad-time-"]),
    (
        "damaged",
        &["cut-", "giant-", "caplen-", "bad-block-", "block-length-"],
    ),
    (
        "unusable",
        &["not-capture-", "unsupported-", "missing-", "directory-"],
    ),
    ("gzip", &["gzip-"]),
    (
        "merge",
        &[
            "ring-",
            "far-apart",
            "quiet-ring",
            "side-by-side",
            "files-without-",
            "mixed-",
        ],
    ),
    ("order", &["order-"]),
    ("fuzz", &["fuzz-"]),
];

fn cases() -> Vec<Value> {
    let text = fs::read_to_string(CASES).expect("fixture file tests/fixtures/read/cases.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON case"))
        .collect()
}

fn name(case: &Value) -> &str {
    case["case"].as_str().unwrap_or("")
}

/// Write a damaged variant where the case expects it: the source with its byte edits.
fn materialize(case: &Value) {
    let Some(fuzz) = case.get("fuzz") else { return };
    let source = fuzz["source"].as_str().unwrap();
    let mut data = fs::read(source).unwrap();
    for op in fuzz["ops"].as_array().unwrap() {
        let pos = op[0].as_u64().unwrap() as usize;
        let v = op[1].as_i64().unwrap();
        if pos >= data.len() {
            continue;
        }
        if v >= 0 {
            data[pos] = v as u8;
        } else {
            let end = (pos + (-v) as usize).min(data.len());
            data.drain(pos..end);
        }
    }
    let path = case["paths"][0].as_str().unwrap();
    fs::create_dir_all(Path::new(path).parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// Where two cases differ, field by field, shortened.
fn differences(want: &Value, got: &Value) -> String {
    let (Value::Object(w), Value::Object(g)) = (want, got) else {
        return format!("want {want}, got {got}");
    };
    let mut keys: Vec<&String> = w.keys().chain(g.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::new();
    for k in keys {
        let (a, b) = (w.get(k), g.get(k));
        if a != b {
            let show = |v: Option<&Value>| {
                let s = v.map_or("(absent)".to_string(), Value::to_string);
                if s.len() > 600 {
                    format!("{}...", &s[..600])
                } else {
                    s
                }
            };
            out += &format!("\n    {k}: want {}\n    {k}:  got {}", show(a), show(b));
        }
    }
    out
}

fn check(group: &str) {
    let prefixes = GROUPS.iter().find(|g| g.0 == group).unwrap().1;
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in cases() {
        let n = name(&case);
        if !prefixes.iter().any(|p| n.starts_with(p)) {
            continue;
        }
        materialize(&case);
        let paths: Vec<String> = case["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let window = case["window"].as_f64().unwrap();
        let mut got = dump::dump(n, &paths, window);
        checked += 1;
        if case.get("fuzz").is_some() {
            // Damaged variants keep only the digest of their records.
            if let Value::Object(m) = &mut got {
                m.remove("records");
            }
        }
        if case.get("crash").is_some() {
            // The Python reader failed on these bytes with an exception of its own (a
            // struct.error on a block too short for its fields); reading them without a
            // panic is all that is asked.
            continue;
        }
        let (want, got) = (dump::normalized(&case), dump::normalized(&got));
        if want != got {
            failures.push(format!("{n}:{}", differences(&want, &got)));
        }
    }
    assert!(checked > 0, "no case in group {group}");
    assert!(
        failures.is_empty(),
        "{} of {checked} cases differ from the reference reader:\n{}",
        failures.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_case_is_checked() {
    let lost: Vec<String> = cases()
        .iter()
        .map(|c| name(c).to_string())
        .filter(|n| !GROUPS.iter().any(|g| g.1.iter().any(|p| n.starts_with(p))))
        .collect();
    assert!(lost.is_empty(), "cases in no group: {lost:?}");
}

/// The bundled sample captures, one by one and all together.
#[test]
fn samples() {
    check("samples");
}

/// Classic pcap in both byte orders and resolutions, FCS bits, every decoded link type.
#[test]
fn pcap() {
    check("pcap");
}

/// pcapng: interfaces with their own link type, if_tsresol (all 256 values), if_tsoffset and
/// name; sections in both byte orders; simple and obsolete packet blocks; skipped blocks;
/// invalid UTF-8 names; fields that run past their block.
#[test]
fn pcapng() {
    check("pcapng");
}

/// Time stamps outside 1970..2200: skipped, counted, the first one named.
#[test]
fn bad_timestamps() {
    check("bad_time");
}

/// Files cut off in a header, a record or a block; a giant caplen; impossible pcapng block
/// lengths.
#[test]
fn damaged_files() {
    check("damaged");
}

/// Inputs that cannot be used: not captures, unsupported link types (also after the first
/// packet), missing files, directories without captures.
#[test]
fn unusable_inputs() {
    check("unusable");
}

/// gzip: members, padding, every header field, a bad CRC or length, garbage after the
/// stream, cut off and damaged at many places.
#[test]
fn gzip() {
    check("gzip");
}

/// Rings and directories: files ordered by first packet time, skipped files, files given
/// twice, files far apart in time, files without records.
#[test]
fn merge() {
    check("merge");
}

/// The reorder window: jitter undone, late records counted, a burst over the buffer's caps.
#[test]
fn time_order() {
    check("order");
}

/// Random damage to pcap, pcapng and gzip sources (the fuzz test's recipe).
#[test]
fn damaged_variants() {
    check("fuzz");
}

/// Far more damage than the reference reader was asked about: every crafted input cut at
/// many places and overwritten at random, read to the end. Whatever the bytes, the reader
/// returns records or an InputError naming the file; it never panics.
#[test]
fn any_damage_is_read_without_a_panic() {
    let dir = Path::new("target/read-damage");
    fs::create_dir_all(dir).unwrap();
    let mut inputs: Vec<_> = fs::read_dir("tests/fixtures/read/inputs")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    inputs.sort();
    // xorshift64*: the same variants every run.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as usize % n.max(1)
    };
    let mut read = 0;
    for (k, input) in inputs.iter().enumerate() {
        let source = fs::read(input).unwrap();
        // (Small inputs only: the large ones inflate to megabytes, slow in a debug build.)
        let name = input.file_name().unwrap().to_string_lossy();
        if source.is_empty() || source.len() > 10_000 || name.starts_with("order-") {
            continue;
        }
        for round in 0..12 {
            let mut data = source.clone();
            if round % 5 == 0 {
                data.truncate(next(data.len()));
            } else {
                for _ in 0..1 + next(12) {
                    let at = next(data.len());
                    match next(4) {
                        0 => data.truncate(at),
                        1 => {
                            let end = (at + 1 + next(32)).min(data.len());
                            data.drain(at..end);
                        }
                        // Lengths are the bytes most worth damaging: a byte of 0x00/0xff.
                        2 => data[at] = if next(2) == 0 { 0 } else { 0xff },
                        _ => data[at] = next(256) as u8,
                    }
                    if data.is_empty() {
                        break;
                    }
                }
            }
            let path = dir.join(format!("damage-{k:03}-{round:02}"));
            fs::write(&path, &data).unwrap();
            let shown = path.to_str().unwrap().to_string();
            match pcapdns_core::read::open_inputs(std::slice::from_ref(&shown), 0.5) {
                Ok(mut reader) => {
                    while reader.next_record().is_some() {}
                    if let Some(e) = reader.error() {
                        assert!(e.message.starts_with(&shown), "{e}");
                    }
                    for f in reader.files() {
                        assert!(f.warnings.iter().all(|w| w.starts_with(&shown)), "{f:?}");
                    }
                }
                Err(e) => assert!(e.message.starts_with(&shown), "{e}"),
            }
            read += 1;
        }
    }
    assert!(read > 900, "only {read} variants read");
}
