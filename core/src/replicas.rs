//! Per DNAT target (each CoreDNS pod behind a Service address): its queries, how many got
//! no delivered answer, and its latencies, tallied over every lookup.
//!
//! A query's target is the address its copy after kube-proxy's DNAT went to (its legs,
//! `crate::legs`): known only on a capture that holds both sides of the node's NAT. Each
//! attempt counts on its own, since a retry from the same socket goes to the same replica
//! (the conntrack entry keeps it there) and a retry from a new socket may go to another.
//! Memory: one row per (Service, target), at most `MAX_REPLICAS`; each row keeps a sparse
//! latency histogram and a few evidence frames.

use std::net::IpAddr;

use crate::matcher::Lookup;
use crate::tally::latency::LatencyHistogram;
use crate::types::Time;

/// Rows kept: a cluster has a few DNS replicas; a hostile capture could show any number.
pub const MAX_REPLICAS: usize = 64;

/// Evidence frames kept per row: the first failed queries and the slowest answers.
pub const EVIDENCE: usize = 5;

/// One replica: a DNAT target of a Service address.
#[derive(Clone, Debug, Default)]
pub struct Replica {
    pub service: Option<IpAddr>,
    pub target: Option<IpAddr>,
    /// Queries that went to it (attempts whose post-DNAT copy carried its address).
    pub queries: u64,
    /// Of those, the ones without a delivered answer (not answered, or the answer never
    /// reached the client), the capture's end not cutting them short.
    pub failed: u64,
    /// Query-to-answer seconds of the delivered answers.
    pub latency: LatencyHistogram,
    /// Query frames of the first failed queries.
    pub failed_frames: Vec<u64>,
    /// (latency, query frame, response frame) of the slowest answers, slowest first.
    pub slowest: Vec<(Time, u64, u64)>,
}

impl Replica {
    fn add_slow(&mut self, latency: Time, q: u64, r: u64) {
        if self.slowest.len() == EVIDENCE
            && self.slowest.last().is_some_and(|&(l, _, _)| l >= latency)
        {
            return;
        }
        let at = self
            .slowest
            .iter()
            .position(|&(l, _, _)| l < latency)
            .unwrap_or(self.slowest.len());
        self.slowest.insert(at, (latency, q, r));
        self.slowest.truncate(EVIDENCE);
    }
}

/// The replicas seen so far, in the order first seen.
#[derive(Clone, Debug, Default)]
pub struct Replicas {
    pub rows: Vec<Replica>,
    /// Queries to a target past `MAX_REPLICAS` rows: counted only.
    pub dropped: u64,
}

impl Replicas {
    /// Tally the attempts of a closed lookup (its policy decisions made).
    pub fn lookup(&mut self, lookup: &Lookup) {
        for t in &lookup.attempts {
            let q = &t.query;
            let Some(target) = q.legs.find(|l| l.addr != q.dst).map(|l| l.addr) else {
                continue; // no copy after a DNAT: no replica to count it for
            };
            let delivered = t.response.as_ref().filter(|_| t.leg_fault.is_none());
            // An unanswered query the capture's end cut short may still have been answered.
            if delivered.is_none() && t.response.is_none() && lookup.open_at_end {
                continue;
            }
            let Some(row) = self.row(q.dst, target) else {
                self.dropped += 1;
                continue;
            };
            row.queries += 1;
            match delivered {
                Some(r) => {
                    let latency = r.time - q.time;
                    row.latency.add(latency);
                    row.add_slow(latency, q.frame, r.frame);
                }
                None => {
                    row.failed += 1;
                    if row.failed_frames.len() < EVIDENCE {
                        row.failed_frames.push(q.frame);
                    }
                }
            }
        }
    }

    fn row(&mut self, service: IpAddr, target: IpAddr) -> Option<&mut Replica> {
        let i = match self
            .rows
            .iter()
            .position(|r| r.service == Some(service) && r.target == Some(target))
        {
            Some(i) => i,
            None if self.rows.len() < MAX_REPLICAS => {
                self.rows.push(Replica {
                    service: Some(service),
                    target: Some(target),
                    ..Replica::default()
                });
                self.rows.len() - 1
            }
            None => return None,
        };
        self.rows.get_mut(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::legs::Leg;
    use crate::matcher::{Event, Matcher};
    use crate::types::{Message, Msg, Transport};
    use std::rc::Rc;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A message from `src` to `dst` (port 40000 on the client), with one leg at `leg`.
    fn msg(frame: u64, time: Time, src: &str, dst: &str, id: u16, flags: u16, leg: &str) -> Msg {
        let response = flags & crate::types::QR != 0;
        let m = Message {
            frame,
            time,
            iface: 2,
            transport: Transport::Udp,
            src: ip(src),
            sport: if response { 53 } else { 40000 + id },
            dst: ip(dst),
            dport: if response { 40000 + id } else { 53 },
            id,
            flags,
            qdcount: 1,
            ancount: 0,
            qname: Some("example.com".into()),
            qtype: 1,
            qclass: 1,
            data: vec![id as u8, flags as u8].into(),
            legs: Default::default(),
        };
        m.legs.push(Leg {
            frame: frame + 1000,
            time,
            iface: 3,
            addr: ip(leg),
        });
        Rc::new(m)
    }

    #[test]
    fn each_query_counts_for_its_dnat_target() {
        let (svc, a, b, pod) = ("10.96.0.10", "10.244.1.5", "10.244.2.5", "10.0.3.7");
        let mut m = Matcher::new(&Config::default());
        // To a: answered and un-NAT'd (1 ms); to b: answered 300 ms late, and one answer
        // that never came back un-NAT'd (its copy is from b too).
        m.message(msg(1, 1.0, pod, svc, 1, 0x0100, a));
        m.message(msg(2, 1.001, a, pod, 1, 0x8180, svc));
        m.message(msg(3, 2.0, pod, svc, 2, 0x0100, b));
        m.message(msg(4, 2.3, b, pod, 2, 0x8180, svc));
        m.message(msg(5, 3.0, pod, svc, 3, 0x0100, b));
        m.message(msg(6, 3.001, b, pod, 3, 0x8180, b));
        m.finish(Some(100.0));
        let mut events = Vec::new();
        m.drain(&mut events);
        let mut r = Replicas::default();
        for e in &events {
            if let Event::Lookup(lk) = e {
                r.lookup(lk);
            }
        }
        let rows: Vec<_> = r
            .rows
            .iter()
            .map(|x| (x.target.unwrap(), x.queries, x.failed, x.latency.n))
            .collect();
        assert_eq!(rows, [(ip(a), 1, 0, 1), (ip(b), 2, 1, 1)]);
        assert_eq!(r.rows[1].failed_frames, [5]);
        assert_eq!(r.rows[1].slowest, [(2.3 - 2.0, 3, 4)]);
    }

    #[test]
    fn the_slowest_answers_are_kept_slowest_first() {
        let mut r = Replica::default();
        for (i, l) in [0.1, 0.5, 0.2, 0.9, 0.3, 0.4, 0.05].iter().enumerate() {
            r.add_slow(*l, i as u64, 100 + i as u64);
        }
        let kept: Vec<f64> = r.slowest.iter().map(|s| s.0).collect();
        assert_eq!(kept, [0.9, 0.5, 0.4, 0.3, 0.2]);
    }
}
