//! Late segments inside a skipped gap: one gap of 2n + 2 bytes is skipped on a message
//! boundary, then n one-byte segments arrive inside it in ascending order, each splitting
//! the last piece of the gap. Prints the time the late segments take (TCP reassembly alone).
//!
//!     cargo run --release --example tcp_late_bench -- 20000 100000

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use pcapdns_core::decode::tcp::{FlowKey, TcpReassembler, ACK, MAX_BYTES, SYN};
use pcapdns_core::types::Time;

/// A query for the root, type A, with its length prefix.
fn query(ident: u16) -> Vec<u8> {
    let mut body = Vec::new();
    for v in [ident, 0x0100, 1, 0, 0, 0] {
        body.extend_from_slice(&v.to_be_bytes());
    }
    body.extend_from_slice(b"\x00\x00\x01\x00\x01");
    let mut m = (body.len() as u16).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

fn main() {
    let key = FlowKey {
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        sport: 40000,
        dst: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
        dport: 53,
    };
    let mut sizes: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a segment count"))
        .collect();
    if sizes.is_empty() {
        sizes.push(20_000);
    }
    let psh_ack = 0x08 | ACK;
    for n in sizes {
        let mut r = TcpReassembler::new(MAX_BYTES);
        let mut messages = 0u64;
        let mut emit = |_: Vec<u8>, _: u64, _: Time| messages += 1;
        let (m1, m2) = (query(1), query(2));
        r.segment(key, 1000, SYN, b"", 1, 0.0, 0, &mut emit);
        r.segment(key, 1001, psh_ack, &m1, 2, 0.0, 0, &mut emit);
        let base = 1001 + m1.len() as u32;
        // Beyond the gap a message starts: the gap is skipped at once.
        r.segment(key, base + 2 * n + 2, psh_ack, &m2, 3, 0.0, 0, &mut emit);
        let t = Instant::now();
        for i in 0..n {
            let (seq, frame, time) = (base + 1 + 2 * i, 4 + i as u64, 0.001 * i as f64);
            r.segment(key, seq, psh_ack, b"\x00", frame, time, 0, &mut emit);
        }
        let dt = t.elapsed().as_secs_f64();
        println!(
            "rust n={n} {dt:.4}s messages={messages} gaps={} unframed_bytes={}",
            r.stats.gaps, r.stats.unframed_bytes
        );
    }
}
