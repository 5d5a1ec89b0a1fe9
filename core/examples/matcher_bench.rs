//! Throughput and memory of the matcher on a synthetic stream.
//!
//!     cargo run --release --example matcher_bench -- [MESSAGES] [--rate LOOKUPS_PER_S]
//!         [--no-memory]
//!
//! MESSAGES defaults to 1,000,000 and the rate to 10,000 lookups (40,000 messages) a
//! second of capture time: about 20,000 answered queries linger at once.
//!
//! The stream is what a busy node sends: clients asking A and AAAA from one socket, most
//! answered within milliseconds, some NXDOMAIN, some never answered and retried, a few
//! truncated. The throughput is the CPU time of the matcher alone over messages built
//! beforehand; the memory is measured on a stream five times as long built on the fly.

use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Instant;

use pcapdns_core::config::Config;
use pcapdns_core::matcher::{Event, Matcher};
use pcapdns_core::types::{Message, Msg, Transport};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn wire(id: u16, flags: u16, name: &str, qtype: u16, extra: usize) -> Box<[u8]> {
    let mut out = Vec::with_capacity(18 + name.len() + extra);
    for v in [id, flags, 1, u16::from(flags & 0x8000 != 0), 0, 0] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.resize(out.len() + extra, 0);
    out.into()
}

/// The synthetic stream, in time order, message by message.
struct Stream {
    rng: Rng,
    names: Vec<String>,
    t: f64,
    frame: u64,
    later: std::collections::BinaryHeap<std::cmp::Reverse<(u64, u64)>>,
    pending: std::collections::HashMap<u64, Msg>,
    seq: u64,
    gap: f64,
}

const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10));

impl Stream {
    fn new(lookups_per_second: f64) -> Stream {
        let names = (0..5000)
            .map(|i| format!("svc{i}.ns{}.svc.cluster.local", i % 40))
            .collect();
        Stream {
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            names,
            t: 1_700_000_000.0,
            frame: 0,
            later: Default::default(),
            pending: Default::default(),
            seq: 0,
            gap: 11_000.0 / lookups_per_second,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn msg(
        &mut self,
        t: f64,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        id: u16,
        flags: u16,
        name: &str,
        qtype: u16,
    ) -> Msg {
        self.frame += 1;
        let extra = if flags & 0x8000 != 0 {
            16 + (self.frame % 3) as usize * 40
        } else {
            11
        };
        Rc::new(Message {
            frame: self.frame,
            time: t,
            iface: 0,
            transport: Transport::Udp,
            src,
            sport,
            dst,
            dport,
            id,
            flags,
            qdcount: 1,
            ancount: u16::from(flags & 0x8000 != 0),
            qname: Some(name.into()),
            qtype,
            qclass: 1,
            data: wire(id, flags, name, qtype, extra).into(),
            legs: Default::default(),
        })
    }

    /// Schedule `m` at `t` (answers come later than their queries).
    fn at(&mut self, t: f64, m: Msg) {
        self.seq += 1;
        let key = (t * 1e6) as u64;
        self.pending.insert(self.seq, m);
        self.later.push(std::cmp::Reverse((key, self.seq)));
    }

    /// One client's A/AAAA lookup and what happens to it.
    fn lookup(&mut self) {
        let r = self.rng.next();
        let client = IpAddr::V4(Ipv4Addr::new(10, 0, (r >> 8) as u8 & 63, r as u8));
        let sport = 32768 + (self.rng.below(28000) as u16);
        let name = self.names[self.rng.below(self.names.len() as u64) as usize].clone();
        let id = self.rng.next() as u16;
        let t = self.t;
        let fate = self.rng.below(1000);
        for (k, qtype) in [(0u16, 1u16), (1, 28)] {
            let qid = id.wrapping_add(k);
            let tq = t + f64::from(k) * 0.00002;
            let q = self.msg(tq, client, sport, SERVER, 53, qid, 0x0100, &name, qtype);
            self.at(tq, q);
            let rcode = if fate < 150 { 3 } else { 0 };
            let tc = if fate >= 990 && qtype == 1 { 0x0200 } else { 0 };
            if (980..990).contains(&fate) && qtype == 28 {
                // Lost: retried 5 s later on the same socket, then answered.
                let tr = tq + 5.0;
                let q2 = self.msg(tr, client, sport, SERVER, 53, qid, 0x0100, &name, qtype);
                self.at(tr, q2);
                let a = self.msg(
                    tr + 0.002,
                    SERVER,
                    53,
                    client,
                    sport,
                    qid,
                    0x8180,
                    &name,
                    qtype,
                );
                self.at(tr + 0.002, a);
                continue;
            }
            let delay = 0.0005 + self.rng.below(3000) as f64 * 1e-6;
            let flags = 0x8180 | rcode | tc;
            let a = self.msg(
                tq + delay,
                SERVER,
                53,
                client,
                sport,
                qid,
                flags,
                &name,
                qtype,
            );
            self.at(tq + delay, a);
        }
    }

    fn next(&mut self) -> Msg {
        loop {
            if let Some(std::cmp::Reverse((key, seq))) = self.later.peek().copied() {
                if (key as f64) <= self.t * 1e6 {
                    self.later.pop();
                    return self.pending.remove(&seq).expect("scheduled");
                }
            }
            self.lookup();
            // 90 us apart on average: 11,000 lookups a second, times `gap`.
            self.t += self.gap * (0.00005 + self.rng.below(80) as f64 * 1e-6);
        }
    }
}

/// CPU time of this thread so far, in seconds (the machine may be shared: wall time
/// would measure the neighbours too); falls back to wall time off Linux.
fn cpu_seconds(wall: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns as f64 / 1e9)
}

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rate_at = args.iter().position(|a| a == "--rate");
    let n: usize = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && rate_at.is_none_or(|r| *i != r + 1))
        .map(|(_, s)| s.replace([',', '_'], "").parse().expect("a message count"))
        .unwrap_or(1_000_000);
    let rate: f64 = args
        .iter()
        .position(|a| a == "--rate")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse().expect("lookups a second"))
        .unwrap_or(10_000.0);
    let origin = Instant::now();

    // Memory first (before anything else has grown the heap): a stream five times as long
    // as the throughput run, built on the fly; the resident size at each fifth shows
    // whether it stays flat.
    if !args.iter().any(|a| a == "--no-memory") {
        let mut s = Stream::new(rate);
        let mut m = Matcher::new(&Config::default());
        let mut events = Vec::new();
        let mut rss = Vec::new();
        for i in 0..5 * n {
            m.message(s.next());
            if i % 1024 == 0 {
                m.drain(&mut events);
                events.clear();
            }
            if (i + 1) % n == 0 {
                rss.push(rss_kb("VmRSS:") / 1024);
            }
        }
        println!(
            "memory: {} messages streamed, {} open at the end; resident MiB after each fifth \
             {rss:?}",
            5 * n,
            m.open
        );
    }

    // Throughput: the messages are built first, so that only the matcher is timed (with
    // the lookups it hands out dropped as a consumer would).
    let mut s = Stream::new(rate);
    let stream: Vec<Msg> = (0..n).map(|_| s.next()).collect();
    drop(s);
    let start = cpu_seconds(origin);
    let mut m = Matcher::new(&Config::default());
    let mut events = Vec::new();
    let (mut lookups, mut orphans) = (0u64, 0u64);
    let mut count = |events: &mut Vec<Event>| {
        for e in events.drain(..) {
            match e {
                Event::Lookup(_) => lookups += 1,
                Event::Orphan(_) => orphans += 1,
            }
        }
    };
    for (i, msg) in stream.iter().enumerate() {
        m.message(msg.clone());
        if i % 1024 == 0 {
            m.drain(&mut events);
            count(&mut events);
        }
    }
    m.finish(None);
    m.drain(&mut events);
    count(&mut events);
    let matcher = cpu_seconds(origin) - start;
    let span = stream.last().map_or(0.0, |x| x.time) - stream.first().map_or(0.0, |x| x.time);
    println!(
        "{n} messages over {span:.0} s of capture: {} queries, {lookups} lookups, {orphans} \
         orphans, {} retransmissions, {} A/AAAA pairs, {} closed early",
        m.stats.queries, m.stats.retransmissions, m.stats.a_aaaa_pairs, m.stats.closed_early,
    );
    println!(
        "matcher: {matcher:.3} s of CPU = {:.2} M messages/s",
        n as f64 / matcher / 1e6
    );
}
