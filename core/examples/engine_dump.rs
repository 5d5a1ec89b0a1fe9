//! Everything the core says about a capture, one line per event then every counter and
//! tally, for comparing two builds of the core byte for byte on captures of any size:
//!
//!     cargo run --release --example engine_dump -- CAPTURE... > before.txt
//!
//! Times are written as their bits, so a change in any float shows.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};

use pcapdns_core::config::Config;
use pcapdns_core::engine::Engine;
use pcapdns_core::matcher::{Event, Settlement, Transaction};
use pcapdns_core::types::Message;

fn msg(out: &mut String, m: &Message) {
    let _ = write!(
        out,
        "[{} {:x} {} {:?} {}:{}>{}:{} id={} fl={:x} qd={} an={} q={:?} {}/{} len={}]",
        m.frame,
        m.time.to_bits(),
        m.iface,
        m.transport,
        m.src,
        m.sport,
        m.dst,
        m.dport,
        m.id,
        m.flags,
        m.qdcount,
        m.ancount,
        m.qname.as_deref(),
        m.qtype,
        m.qclass,
        m.data.len(),
    );
    // Only a tunnelled message says so: a capture without tunnels prints as before.
    if let Some(t) = m.legs.tunnel() {
        out.pop();
        let _ = write!(
            out,
            " tunnel={}:{}>{}]",
            t.kind.as_str(),
            t.outer_src,
            t.outer_dst
        );
    }
}

fn tx(out: &mut String, t: &Transaction) {
    out.push_str("  q=");
    msg(out, &t.query);
    if let Some(r) = &t.response {
        out.push_str(" r=");
        msg(out, r);
    }
    let _ = write!(
        out,
        " lk={} at={} re={:?} fo={:?} tc={:?} tcn={:?} pf={:?} pc={} rl={} pa={:?} icmp={:?} \
         late={:?} prf={:?} pt={:?} fb={}",
        t.lookup_id,
        t.attempt,
        t.retransmission,
        t.fanout_of,
        t.tc_followed_by_tcp,
        t.tc_next_query_frame,
        t.pair_frame,
        t.pair_concurrent,
        t.pair_race_lost,
        t.pair_answered,
        t.icmp_frames,
        t.late_icmp_frames,
        t.pair_response_frame,
        t.pair_transaction.as_ref().map(|p| p.query.frame),
        t.tcp_fallback,
    );
    // The forwarder's links, only where there is one (the lines of other captures stay as
    // they were).
    if t.upstream_of.is_some() || t.forwarded_as.is_some() {
        let _ = write!(out, " up={:?} fw={:?}", t.upstream_of, t.forwarded_as);
    }
}

fn event(out: &mut String, ev: &Event) {
    match ev {
        Event::Lookup(l) => {
            let _ = write!(
                out,
                "L {} answer={:?} open_at_end={} failed={} latency={:?}",
                l.id,
                l.answer,
                l.open_at_end,
                l.failed(),
                l.latency().map(f64::to_bits)
            );
            for t in &l.attempts {
                out.push('\n');
                tx(out, t);
            }
        }
        Event::Orphan(o) => {
            let _ = write!(
                out,
                "O {} {} {:x} {} {} {:?} {} {:?}",
                o.kind.as_str(),
                o.frame,
                o.time.to_bits(),
                o.client,
                o.server,
                o.qname,
                o.qtype,
                o.reason
            );
            if let Some(m) = &o.message {
                out.push(' ');
                msg(out, m);
            }
        }
    }
    out.push('\n');
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let mut engine = match Engine::open(&paths, Config::default(), true) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let mut events = Vec::new();
    let mut text = String::new();
    let mut flush = |events: &mut Vec<Event>, w: &mut BufWriter<_>| {
        for ev in events.drain(..) {
            text.clear();
            event(&mut text, &ev);
            let _ = w.write_all(text.as_bytes());
        }
    };
    loop {
        let more = engine.step(4096, &mut events).expect("readable input");
        flush(&mut events, &mut w);
        if !more {
            break;
        }
    }
    engine.finish(None, &mut events).expect("readable input");
    engine.settle_all(&mut events, |_| Settlement::default());
    flush(&mut events, &mut w);

    let e = &engine;
    let (r, dec) = (
        e.reader().expect("the input is read"),
        e.decoder().expect("the input is read"),
    );
    let _ = writeln!(
        w,
        "records={} late={} early={} behind={:x} warnings={:?}",
        r.records(),
        r.late(),
        r.released_early(),
        r.most_behind().to_bits(),
        r.warnings()
    );
    let _ = writeln!(w, "malformed={} {:?}", e.malformed, e.malformed_examples);
    let _ = writeln!(w, "decode={:?}", dec.stats);
    if dec.tunnels != Default::default() {
        let _ = writeln!(w, "tunnels={:?}", dec.tunnels);
    }
    let _ = writeln!(w, "tcp={:?}", dec.tcp.stats);
    let f = &dec.fragments;
    let _ = writeln!(
        w,
        "fragments={} {} {} {}",
        f.reassembled, f.dropped, f.evicted, f.evicted_bytes
    );
    let _ = writeln!(w, "match={:?}", e.matcher.stats);
    let d = &e.dedupe;
    let mut copies: Vec<(u64, u64)> = d
        .copies
        .as_ref()
        .map(|c| c.iter().map(|(&a, &b)| (a, b)).collect())
        .unwrap_or_default();
    copies.sort_unstable();
    let _ = writeln!(
        w,
        "dedupe={} {} {:?} copies={:?}",
        d.duplicates, d.evicted, d.dnat_servers, copies
    );
    let t = &e.tallies;
    let bits = |raw: Vec<(i64, u64, f64)>| -> Vec<(i64, u64, u64)> {
        raw.into_iter()
            .map(|(b, n, s)| (b, n, s.to_bits()))
            .collect()
    };
    let _ = writeln!(
        w,
        "latency={:?} {} {:x}",
        bits(t.latency.raw()),
        t.latency.n,
        t.latency.max.to_bits()
    );
    for (key, row) in t.breakdown.servers.items() {
        let _ = writeln!(
            w,
            "server {key} {} {} {} {} {} {} {} {:?} {}",
            row.lookups,
            row.answered,
            row.failed,
            row.retransmissions,
            row.servfail,
            row.nxdomain,
            row.refused,
            bits(row.latency.raw()),
            row.latency.max.to_bits()
        );
    }
    for (key, row) in t.breakdown.clients.items() {
        let _ = writeln!(w, "client {key} {row:?} {:x}", row.max_latency.to_bits());
    }
    let (start, step, queries, failed) = t.timeline.series();
    let _ = writeln!(
        w,
        "timeline {start} {step} {queries:?} {failed:?} {:?} {:?}",
        t.timeline.first.map(f64::to_bits),
        t.timeline.last.map(f64::to_bits)
    );
    let l = &e.links;
    if l.linked > 0 || l.evicted > 0 || l.links_evicted > 0 {
        let _ = writeln!(
            w,
            "links {} {} {} {}",
            l.linked, l.evicted, l.links_evicted, e.upstream.servers_untallied
        );
    }
    for (key, row) in e.upstream.sorted() {
        let _ = writeln!(
            w,
            "upstream {key} {} {} {} {} {} {:?} {:?} {:x}",
            row.queries,
            row.retransmissions,
            row.answered,
            row.timeouts,
            row.open,
            row.rcodes,
            bits(row.latency.raw()),
            row.latency.max.to_bits()
        );
    }
}
