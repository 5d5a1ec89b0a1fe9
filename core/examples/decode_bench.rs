//! Decode speed: read a classic pcap into memory, then time the frame decoder over its
//! records (reading is not timed). `bench/bench.py --generate-only` writes a capture.
//!
//!     cargo run --release --example decode_bench -- /tmp/bench.pcap [rounds]

use std::time::Instant;

use pcapdns_core::config::Config;
use pcapdns_core::decode::FrameDecoder;
use pcapdns_core::types::{Decoded, Record};

/// The records of a classic pcap (either byte order, micro- or nanosecond stamps).
fn read_pcap(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let magic = bytes.get(..4).ok_or("not a pcap: too short")?;
    let (le, unit) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, 1e-6),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, 1e-6),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, 1e-9),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, 1e-9),
        _ => return Err("not a classic pcap".into()),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let link_type = u32_at(20).ok_or("header cut short")?;
    let mut out = Vec::new();
    let mut pos = 24;
    while let (Some(sec), Some(frac), Some(incl)) = (u32_at(pos), u32_at(pos + 4), u32_at(pos + 8))
    {
        let start = pos + 16;
        let Some(data) = bytes.get(start..start + incl as usize) else {
            break;
        };
        out.push(Record {
            frame: out.len() as u64 + 1,
            time: sec as f64 + frac as f64 * unit,
            link_type,
            iface: 0,
            data: data.to_vec(),
        });
        pos = start + incl as usize;
    }
    Ok(out)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: decode_bench PCAP [rounds]");
    let rounds: usize = args.next().map_or(5, |r| r.parse().expect("rounds"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let records = read_pcap(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cfg = Config::default();
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let mut decoder = FrameDecoder::new(&cfg);
        let mut out: Vec<Decoded> = Vec::with_capacity(16);
        let (mut items, mut bytes_out) = (0usize, 0usize);
        let start = Instant::now();
        for rec in &records {
            out.clear();
            decoder.decode(rec, &mut out);
            for d in out.drain(..) {
                items += 1;
                if let Decoded::Payload(p) = d {
                    bytes_out += p.data.len();
                }
            }
        }
        decoder.finish(&mut out);
        items += out.len();
        let secs = start.elapsed().as_secs_f64();
        best = best.min(secs);
        eprintln!(
            "{} records -> {items} items ({bytes_out} bytes) in {:.3} s: {:.2} M records/s; {:?}",
            records.len(),
            secs,
            records.len() as f64 / secs / 1e6,
            decoder.stats
        );
    }
    println!(
        "best of {rounds}: {:.3} s, {:.2} M records/s",
        best,
        records.len() as f64 / best / 1e6
    );
}
