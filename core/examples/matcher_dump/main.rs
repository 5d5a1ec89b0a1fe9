//! Compare the Rust matcher with the recorded output of the former Python one over a folder
//! of cases (the form of tests/fixtures/matcher/, see its README).
//!
//!     cargo run --release --example matcher_dump -- DUMP
//!
//! Prints one line per case that differs, then the count of cases compared and identical,
//! and the CPU time the matcher alone took over all of them (first run of each case).

mod case;

use std::fs;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: matcher_dump DIR [--rewrite] (a folder of matcher cases)");
        return ExitCode::from(2);
    };
    let mut paths: Vec<_> = match fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) => {
            eprintln!("{dir}: {e}");
            return ExitCode::from(2);
        }
    };
    // --rewrite: write the core's output into the cases that differ (a deliberate change).
    let rewrite = std::env::args().nth(2).is_some_and(|a| a == "--rewrite");
    paths.retain(|p| p.extension().is_some_and(|x| x == "jsonl"));
    paths.sort();
    let (mut same, mut messages) = (0usize, 0usize);
    let (mut fed, mut cpu) = (0usize, 0.0f64);
    for p in &paths {
        let text = match fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                println!("{}: {e}", p.display());
                continue;
            }
        };
        let c = match case::parse_case(&text) {
            Ok(c) => c,
            Err(e) => {
                println!("{}: {e}", p.display());
                continue;
            }
        };
        messages += c.inputs.len();
        if !c.configs.is_empty() {
            let t = cpu_seconds();
            fed += case::replay(&c, 0);
            cpu += cpu_seconds() - t;
        }
        match case::check(&c) {
            Ok(()) => same += 1,
            Err(e) => {
                println!("DIFFERS {e}");
                if rewrite {
                    // A deliberate change of what the matcher emits: the case's inputs
                    // stay, its outputs become the core's (review the diff).
                    let mut out: Vec<String> = text
                        .lines()
                        .filter(|l| {
                            !["[\"lookup\"", "[\"orphan\"", "[\"stats\""]
                                .iter()
                                .any(|t| l.starts_with(t))
                        })
                        .map(str::to_string)
                        .collect();
                    for k in 0..c.configs.len() {
                        out.extend(case::run(&c, k).iter().map(|v| v.to_string()));
                    }
                    if let Err(e) = fs::write(p, out.join("\n") + "\n") {
                        println!("{}: {e}", p.display());
                    }
                }
            }
        }
    }
    println!(
        "{} cases compared, {same} identical ({messages} inputs)",
        paths.len()
    );
    if cpu > 0.0 {
        println!(
            "matcher alone: {fed} messages in {cpu:.3} s of CPU = {:.2} M messages/s",
            fed as f64 / cpu / 1e6
        );
    }
    if same == paths.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// CPU time of this thread, in seconds (0 where /proc does not say).
fn cpu_seconds() -> f64 {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(0.0, |ns| ns as f64 / 1e9)
}
