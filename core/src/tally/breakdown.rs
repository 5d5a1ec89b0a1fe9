//! Per-server and per-client tallies of lookups: which server fails, which client suffers
//! (pcapdns/breakdown.py).
//!
//! Memory is bounded: at most `max_servers` servers and `max_clients` clients are tallied
//! one by one; lookups of any further ones are added to a single "other" row.

use std::net::IpAddr;

use super::latency::{bucket_of, LatencyHistogram};
use super::LookupFacts;
use crate::hash::FastMap;
use crate::types::addr_text;

pub const MAX_SERVERS: usize = 1000;
pub const MAX_CLIENTS: usize = 20000;
/// The key of the row that takes the addresses past the cap.
pub const OTHER: &str = "*";

const SERVFAIL: u16 = 2;
const NXDOMAIN: u16 = 3;
const REFUSED: u16 = 5;

/// Lookups sent to one server address (the first attempt's destination).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerTally {
    pub lookups: u64,
    pub answered: u64,
    /// Failed lookups, not counting those still open at the capture's end.
    pub failed: u64,
    pub retransmissions: u64,
    pub servfail: u64,
    pub nxdomain: u64,
    pub refused: u64,
    /// Latencies of the answered lookups that did not fail.
    pub latency: LatencyHistogram,
}

/// Lookups made by one client address.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientTally {
    pub lookups: u64,
    pub answered: u64,
    pub failed: u64,
    pub retransmissions: u64,
    pub race_lost: u64,
    pub servfail: u64,
    pub nxdomain: u64,
    pub refused: u64,
    /// Slowest answered lookup, in seconds from its first attempt.
    pub max_latency: f64,
}

/// A row's key: an address, or the row of the addresses past the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowKey {
    Addr(IpAddr),
    Other,
}

impl RowKey {
    /// The key as the Python tables hold it: the address text, or "*".
    pub fn text(&self) -> String {
        match self {
            RowKey::Addr(a) => addr_text(a),
            RowKey::Other => OTHER.to_string(),
        }
    }
}

/// Rows in the order they were first needed (a Python dict's order), at most `cap` of
/// them for addresses plus the "other" row.
#[derive(Clone, Debug)]
pub struct Table<T> {
    rows: Vec<(RowKey, T)>,
    /// Row of each address; by family, as plain integers, which hash in one step.
    index4: FastMap<u32, usize>,
    index6: FastMap<u128, usize>,
    other: Option<usize>,
    cap: usize,
    /// The address asked last and its row: a lookup's client or server is often the
    /// previous one's (one server; the A and AAAA queries of a client close together).
    last: Option<(IpAddr, usize)>,
}

impl<T: Default> Table<T> {
    fn new(cap: usize) -> Self {
        Table {
            rows: Vec::new(),
            index4: FastMap::default(),
            index6: FastMap::default(),
            other: None,
            cap,
            last: None,
        }
    }

    fn index_of(&self, addr: &IpAddr) -> Option<usize> {
        match addr {
            IpAddr::V4(a) => self.index4.get(&a.to_bits()).copied(),
            IpAddr::V6(a) => self.index6.get(&a.to_bits()).copied(),
        }
    }

    /// The row of `addr`; once the table holds `cap` rows (the "other" row counts), a new
    /// address goes to the "other" row.
    fn row(&mut self, addr: IpAddr) -> &mut T {
        if let Some((a, i)) = self.last {
            if a == addr {
                return &mut self.rows[i].1;
            }
        }
        let i = match self.index_of(&addr) {
            Some(i) => i,
            None if self.rows.len() >= self.cap => match self.other {
                Some(i) => i,
                None => {
                    self.rows.push((RowKey::Other, T::default()));
                    self.other = Some(self.rows.len() - 1);
                    self.rows.len() - 1
                }
            },
            None => {
                let i = self.rows.len();
                self.rows.push((RowKey::Addr(addr), T::default()));
                match addr {
                    IpAddr::V4(a) => self.index4.insert(a.to_bits(), i),
                    IpAddr::V6(a) => self.index6.insert(a.to_bits(), i),
                };
                i
            }
        };
        // A new address past the cap stays in the "other" row: every row is for good.
        self.last = Some((addr, i));
        &mut self.rows[i].1
    }

    /// The rows in insertion order.
    pub fn rows(&self) -> &[(RowKey, T)] {
        &self.rows
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn get(&self, key: &RowKey) -> Option<&T> {
        match key {
            RowKey::Addr(a) => self.index_of(a).map(|i| &self.rows[i].1),
            RowKey::Other => self.other.map(|i| &self.rows[i].1),
        }
    }

    /// The rows with their keys as text, in insertion order (the Python dict's items()).
    pub fn items(&self) -> Vec<(String, &T)> {
        self.rows.iter().map(|(k, t)| (k.text(), t)).collect()
    }

    fn sorted_by<K: Ord>(&self, key: impl Fn(&T) -> K) -> Vec<(String, &T)> {
        let mut rows: Vec<(K, String, &T)> = self
            .rows
            .iter()
            .map(|(k, t)| (key(t), k.text(), t))
            .collect();
        // Keys are distinct, so the order is total.
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rows.into_iter().map(|(_, k, t)| (k, t)).collect()
    }
}

#[derive(Clone, Debug)]
pub struct Breakdown {
    pub servers: Table<ServerTally>,
    pub clients: Table<ClientTally>,
}

impl Default for Breakdown {
    fn default() -> Self {
        Self::with_caps(MAX_SERVERS, MAX_CLIENTS)
    }
}

impl Breakdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_caps(max_servers: usize, max_clients: usize) -> Self {
        Breakdown {
            servers: Table::new(max_servers),
            clients: Table::new(max_clients),
        }
    }

    pub fn lookup(&mut self, f: &LookupFacts) {
        self.lookup_in(f, f.latency.map(bucket_of));
    }

    /// `lookup`, the latency's histogram bucket known (`bucket_of(f.latency)`).
    pub fn lookup_in(&mut self, f: &LookupFacts, bucket: Option<i64>) {
        let server = self.servers.row(f.server);
        let client = self.clients.row(f.client);
        let retries = u64::from(f.retransmissions);
        server.lookups += 1;
        client.lookups += 1;
        server.retransmissions += retries;
        client.retransmissions += retries;
        client.race_lost += u64::from(f.race_lost);
        if f.failed {
            server.failed += 1;
            client.failed += 1;
            return;
        }
        // Still waiting when the capture ended: neither answered nor failed.
        let Some(latency) = f.latency else { return };
        server.answered += 1;
        client.answered += 1;
        match bucket {
            Some(b) => server.latency.add_in(b, latency),
            None => server.latency.add(latency),
        }
        if latency > client.max_latency {
            client.max_latency = latency;
        }
        match f.rcode {
            Some(SERVFAIL) => {
                server.servfail += 1;
                client.servfail += 1;
            }
            Some(NXDOMAIN) => {
                server.nxdomain += 1;
                client.nxdomain += 1;
            }
            Some(REFUSED) => {
                server.refused += 1;
                client.refused += 1;
            }
            _ => {}
        }
    }

    /// Servers busiest first, then by address text: the order of the document's and the
    /// report's server tables.
    pub fn servers_by_lookups(&self) -> Vec<(String, &ServerTally)> {
        self.servers.sorted_by(|t| std::cmp::Reverse(t.lookups))
    }

    /// Clients with the most failed lookups first, then the most races lost, the most
    /// lookups, the address text: the order of the document's and the report's client
    /// tables.
    pub fn clients_by_failures(&self) -> Vec<(String, &ClientTally)> {
        use std::cmp::Reverse;
        self.clients
            .sorted_by(|t| (Reverse(t.failed), Reverse(t.race_lost), Reverse(t.lookups)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        client: &str,
        server: &str,
        failed: bool,
        latency: Option<f64>,
    ) -> LookupFacts<'static> {
        LookupFacts {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            attempt_times: &[1.0],
            retransmissions: 0,
            race_lost: 0,
            failed,
            latency,
            rcode: latency.map(|_| 0),
        }
    }

    #[test]
    fn rows_beyond_the_cap_share_one_row() {
        let mut b = Breakdown::with_caps(1000, 2);
        for i in 0..5 {
            b.lookup(&facts(&format!("10.0.4.{i}"), "10.96.0.10", false, None));
        }
        let keys: Vec<String> = b.clients.items().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["10.0.4.0", "10.0.4.1", "*"]);
        assert_eq!(b.clients.get(&RowKey::Other).unwrap().lookups, 3);
        // An address already tallied keeps its own row.
        b.lookup(&facts("10.0.4.1", "10.96.0.10", false, None));
        assert_eq!(b.clients.rows()[1].1.lookups, 2);
    }

    #[test]
    fn failed_lookups_count_no_latency_and_open_ones_nothing() {
        let mut b = Breakdown::new();
        b.lookup(&facts("10.0.0.1", "10.96.0.10", true, Some(2.0)));
        b.lookup(&facts("10.0.0.1", "10.96.0.10", false, None));
        b.lookup(&facts("10.0.0.1", "10.96.0.10", false, Some(0.004)));
        let (_, s) = &b.servers.rows()[0];
        assert_eq!((s.lookups, s.answered, s.failed, s.latency.n), (3, 1, 1, 1));
        assert_eq!(b.clients.rows()[0].1.max_latency, 0.004);
    }
}
