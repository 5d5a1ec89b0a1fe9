//! The answer-section decoder against what the former Python decoder made of the same
//! messages (the frozen fixtures of tests/fixtures/rdata/, see its README), and against
//! random bytes.
//!
//! `PCAPDNS_RDATA_FIXTURES=DIR` also checks every file of that form in DIR (a corpus check).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use pcapdns_core::dns::records::{answer_section, AnswerSection, MAX_RECORDS};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rdata")
}

fn lines(path: &Path) -> Vec<Value> {
    let raw = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s
    } else {
        String::from_utf8(raw).expect("UTF-8")
    };
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Check every line of a fixture file: (lines, differences).
fn check(path: &Path) -> (usize, Vec<String>) {
    let all = lines(path);
    let mut diffs = Vec::new();
    for line in &all {
        let data = unhex(line["data"].as_str().expect("data"));
        let got = answer_section(&data);
        let want = AnswerSection {
            records: line["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| r.as_str().expect("record").to_string())
                .collect(),
            error: line["error"].as_str().map(str::to_string),
        };
        if got != want {
            diffs.push(format!(
                "{} {}: want {want:?}, got {got:?}",
                path.display(),
                line["what"]
            ));
        }
    }
    (all.len(), diffs)
}

fn assert_same(name: &str, at_least: usize) {
    let (n, diffs) = check(&fixtures().join(name));
    assert!(
        diffs.is_empty(),
        "{} differences, the first:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(10)].join("\n")
    );
    assert!(n >= at_least, "{name}: only {n} lines");
}

#[test]
fn sample_capture_responses_as_in_python() {
    assert_same("samples.jsonl", 80);
}

#[test]
fn public_corpus_messages_as_in_python() {
    assert_same("corpus.jsonl.gz", 1000);
}

#[test]
fn crafted_messages_as_in_python() {
    assert_same("crafted.jsonl.gz", 2500);
}

#[test]
fn random_messages_as_in_python() {
    assert_same("random.jsonl.gz", 9000);
}

#[test]
fn other_fixture_files_when_asked() {
    let Some(dir) = std::env::var_os("PCAPDNS_RDATA_FIXTURES") else {
        return;
    };
    let mut total = 0;
    for entry in fs::read_dir(&dir).expect("PCAPDNS_RDATA_FIXTURES") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().contains(".jsonl") {
            let (n, diffs) = check(&path);
            assert!(
                diffs.is_empty(),
                "{}",
                diffs[..diffs.len().min(10)].join("\n")
            );
            total += n;
        }
    }
    eprintln!(
        "{total} messages as in the fixtures of {}",
        dir.to_string_lossy()
    );
}

/// xorshift64*: reproducible random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Printable ASCII only: every byte of the wire is escaped or quoted on its way out.
fn printable(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7F).contains(&b))
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x0DD5_EC71_0A5E_C7A5);
    // Sound messages from the fixtures, to damage: most random bytes die in the header.
    let bases: Vec<Vec<u8>> = lines(&fixtures().join("crafted.jsonl.gz"))
        .iter()
        .map(|l| unhex(l["data"].as_str().expect("data")))
        .filter(|d| d.len() > 12)
        .collect();
    let (mut records, mut errors) = (0, 0);
    for i in 0..200_000 {
        let mut data = if i % 5 == 0 {
            let mut d = vec![
                0x12,
                0x34,
                0x81,
                0x80,
                0,
                rng.byte() % 3,
                0,
                rng.byte() % 24,
                0,
                0,
                0,
                0,
            ];
            d.extend((0..rng.below(120)).map(|_| rng.byte()));
            d
        } else {
            bases[rng.below(bases.len())].clone()
        };
        for _ in 0..=rng.below(4) {
            let at = rng.below(data.len() + 1);
            match rng.below(4) {
                0 if at < data.len() => data[at] = rng.byte(),
                1 => data.truncate(at),
                2 => data
                    .splice(at..at, [0xC0 | rng.byte() & 0x3F, rng.byte()])
                    .for_each(drop),
                _ => data
                    .splice(at..at, (0..rng.below(8)).map(|_| rng.byte()))
                    .for_each(drop),
            }
        }
        let s = answer_section(&data);
        assert!(s.records.len() <= MAX_RECORDS);
        assert!(s.records.iter().all(|r| printable(r)), "{s:?}");
        records += s.records.len();
        if let Some(e) = &s.error {
            assert!(printable(e) && !e.is_empty(), "{s:?}");
            errors += 1;
        }
    }
    assert!(
        records > 20_000 && errors > 50_000,
        "{records} records, {errors} errors"
    );
}
