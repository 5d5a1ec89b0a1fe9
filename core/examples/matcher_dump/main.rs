//! Compare the Rust matcher with the recorded output of the former Python one over a folder
//! of cases (the form of tests/fixtures/matcher/, see its README).
//!
//!     cargo run --release --example matcher_dump -- DUMP
//!
//! Prints one line per case that differs, then the count of cases compared and identical.

mod case;

use std::fs;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: matcher_dump DIR (a folder of matcher cases)");
        return ExitCode::from(2);
    };
    let mut paths: Vec<_> = match fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) => {
            eprintln!("{dir}: {e}");
            return ExitCode::from(2);
        }
    };
    paths.retain(|p| p.extension().is_some_and(|x| x == "jsonl"));
    paths.sort();
    let (mut same, mut messages) = (0usize, 0usize);
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
        match case::check(&c) {
            Ok(()) => same += 1,
            Err(e) => println!("DIFFERS {e}"),
        }
    }
    println!(
        "{} cases compared, {same} identical ({messages} inputs)",
        paths.len()
    );
    if same == paths.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
