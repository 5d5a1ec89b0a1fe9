//! Read captures as the analysis does and print what came out.
//!
//!     read_dump [--window SECONDS] PATH...          one JSON object (the fixtures' form)
//!     read_dump --speed [--window SECONDS] PATH...  records read and records per second
//!
//! The JSON form is the one of tests/fixtures/read/cases.jsonl, written from the former
//! Python reader, so a capture can be compared with a dump of it made then.

#[path = "../tests/read/dump.rs"]
#[allow(dead_code)]
mod dump;

use std::process::ExitCode;
use std::time::Instant;

use pcapdns_core::read::open_inputs;
use pcapdns_core::types::Record;

fn main() -> ExitCode {
    let mut window = 0.5;
    let mut speed = false;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--window" => match args.next().and_then(|w| w.parse().ok()) {
                Some(w) => window = w,
                None => {
                    eprintln!("--window needs a number of seconds");
                    return ExitCode::from(2);
                }
            },
            "--speed" => speed = true,
            _ => paths.push(a),
        }
    }
    if paths.is_empty() {
        eprintln!("usage: read_dump [--speed] [--window SECONDS] PATH...");
        return ExitCode::from(2);
    }
    if !speed {
        println!("{}", dump::dump(&paths[0], &paths, window));
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    let mut reader = match open_inputs(&paths, window) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut rec = Record {
        frame: 0,
        time: 0.0,
        link_type: 0,
        iface: 0,
        data: Vec::new(),
    };
    let mut bytes = 0usize;
    while reader.next_record_into(&mut rec) {
        bytes += rec.data.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(e) = reader.error() {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let n = reader.records();
    println!(
        "{n} records ({:.1} MiB of packet data, {:.1} MiB of files) in {seconds:.3} s: \
         {:.2} M records/s, {:.0} MiB/s",
        bytes as f64 / (1 << 20) as f64,
        reader.total_bytes() as f64 / (1 << 20) as f64,
        n as f64 / seconds / 1e6,
        reader.total_bytes() as f64 / (1 << 20) as f64 / seconds
    );
    ExitCode::SUCCESS
}
