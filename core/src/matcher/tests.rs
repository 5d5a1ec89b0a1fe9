//! The matcher's bounded state and freed memory (the fixtures in tests/matcher.rs prove the
//! equivalence with the Python matcher; these prove what the fixtures are too large for).

use std::net::IpAddr;
use std::rc::Rc;

use super::*;
use crate::types::Message;

fn wire(id: u16, flags: u16, name: &str, qtype: u16) -> Box<[u8]> {
    let mut out = Vec::new();
    for v in [id, flags, 1, 0, 0, 0] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.into()
}

#[allow(clippy::too_many_arguments)]
fn msg(
    frame: u64,
    t: f64,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    id: u16,
    name: &str,
    qtype: u16,
    response: bool,
) -> Msg {
    let flags = if response { 0x8180 } else { 0x0100 };
    Rc::new(Message {
        frame,
        time: t,
        iface: 0,
        transport: Transport::Udp,
        src: src.parse::<IpAddr>().unwrap(),
        sport,
        dst: dst.parse::<IpAddr>().unwrap(),
        dport,
        id,
        flags,
        qdcount: 1,
        ancount: u16::from(response),
        qname: Some(name.into()),
        qtype,
        qclass: 1,
        data: wire(id, flags, name, qtype).into(),
        legs: Default::default(),
    })
}

fn lookups(m: &mut Matcher) -> Vec<Lookup> {
    let mut ev = Vec::new();
    m.drain(&mut ev);
    ev.into_iter()
        .filter_map(|e| match e {
            Event::Lookup(l) => Some(l),
            Event::Orphan(_) => None,
        })
        .collect()
}

fn biggest(m: &Matcher) -> usize {
    m.table_sizes().iter().map(|(_, n)| *n).max().unwrap()
}

#[test]
fn state_stays_small_over_ten_minutes_of_answered_lookups() {
    let mut m = Matcher::new(&Config::default());
    let mut frame = 0;
    let mut peak = 0;
    let mut done = 0;
    // 20 A/AAAA lookups a second from 50 client ports for 10 minutes, each answered in 2 ms.
    for i in 0..12_000u32 {
        let mut t = 1000.0 + f64::from(i) * 0.05;
        let sport = 32768 + (i % 50) as u16;
        let name = format!("svc{}.ns.svc.cluster.local", i % 300);
        let ids = [(1u16, i as u16), (28, (i + 1) as u16)];
        for (qtype, id) in ids {
            frame += 1;
            m.message(msg(
                frame,
                t,
                "10.0.3.7",
                sport,
                "10.96.0.10",
                53,
                id,
                &name,
                qtype,
                false,
            ));
            t += 0.00002;
        }
        for (qtype, id) in ids {
            frame += 1;
            m.message(msg(
                frame,
                t + 0.002,
                "10.96.0.10",
                53,
                "10.0.3.7",
                sport,
                id,
                &name,
                qtype,
                true,
            ));
        }
        peak = peak.max(biggest(&m));
        done += lookups(&mut m).len();
    }
    // What is still open is the last second or so of lookups, never the whole capture.
    assert_eq!(m.table_sizes()[0], ("pending", 0));
    assert!(peak <= 100, "peak index size {peak}");
    assert!(done >= 23_000, "{done} lookups emitted before the end");
    m.finish(Some(1600.1));
    done += lookups(&mut m).len();
    assert_eq!(biggest(&m), 0, "{:?}", m.table_sizes());
    assert_eq!(done, 24_000);
    assert_eq!(m.stats.a_aaaa_pairs, 12_000);
    assert_eq!(m.stats.a_aaaa_same_port_concurrent, 12_000);
    assert_eq!(m.stats.a_aaaa_race_lost, 0);
    assert_eq!((m.open, m.bytes), (0, 0));
}

#[test]
fn state_for_unanswered_queries_covers_only_max_wait() {
    let mut m = Matcher::new(&Config::default());
    // Ten unanswered queries a second for ten minutes, each a new name.
    for i in 0..6000u32 {
        let t = 1000.0 + f64::from(i) * 0.1;
        m.message(msg(
            u64::from(i) + 1,
            t,
            "10.0.3.7",
            40000 + (i % 1000) as u16,
            "10.96.0.10",
            53,
            i as u16,
            &format!("gone{i}.example"),
            1,
            false,
        ));
    }
    // About max_wait (30 s) of queries are still open: 300, not 6000.
    assert!((290..=320).contains(&m.open), "open {}", m.open);
    assert!(biggest(&m) <= 320, "{:?}", m.table_sizes());
    assert_eq!(m.stats.evicted, 0);
}

#[test]
fn one_query_to_many_servers_matches_each_answer_to_its_server() {
    // 2,000 copies of one query (same client port, ID and name) to 2,000 servers: each
    // answer finds its own server's query through the per-server index.
    let mut m = Matcher::new(&Config::default());
    let servers: Vec<String> = (0..2000)
        .map(|i| format!("10.1.{}.{}", i >> 8, i & 255))
        .collect();
    for (i, s) in servers.iter().enumerate() {
        m.message(msg(
            i as u64 + 1,
            100.0 + i as f64 * 1e-4,
            "10.0.0.1",
            40000,
            s,
            53,
            7,
            "same.example",
            1,
            false,
        ));
    }
    for (i, s) in servers.iter().rev().enumerate() {
        m.message(msg(
            3000 + i as u64,
            102.0 + i as f64 * 1e-4,
            s,
            53,
            "10.0.0.1",
            40000,
            7,
            "same.example",
            1,
            true,
        ));
    }
    assert_eq!(
        (m.stats.answered_queries, m.stats.unsolicited_responses),
        (2000, 0)
    );
    assert_eq!(m.table_sizes()[..2], [("pending", 0), ("pending_to", 0)]);
    m.finish(Some(110.0));
    let all = lookups(&mut m);
    assert_eq!(all.len(), 2000);
    for lk in &all {
        let a = lk.answer_tx().expect("answered");
        assert_eq!(a.response.as_ref().unwrap().src, lk.first().dst);
    }
}

#[test]
fn in_flight_memory_cap_evicts_the_oldest_unanswered() {
    let cap = 50 * (QUERY_BYTES as usize + 40);
    let mut m = Matcher::new(&Config {
        max_in_flight_bytes: cap,
        ..Config::default()
    });
    for i in 0..200u16 {
        m.message(msg(
            u64::from(i) + 1,
            100.0 + f64::from(i) * 0.01,
            "10.0.0.1",
            1024 + i,
            "10.96.0.10",
            53,
            i,
            &format!("n{i}.example"),
            1,
            false,
        ));
        assert!(m.bytes <= cap as i64);
    }
    assert_eq!(m.stats.evicted, 200 - m.open as u64);
    assert!((40..=50).contains(&m.open));
}

#[test]
fn burst_with_one_time_stamp_closes_answered_queries_by_count() {
    let mut m = Matcher::new(&Config {
        max_lingering: 100,
        ..Config::default()
    });
    for i in 0..1000u16 {
        let name = format!("n{i}.example");
        m.message(msg(
            2 * u64::from(i) + 1,
            100.0,
            "10.0.0.1",
            1024 + i,
            "10.96.0.10",
            53,
            i,
            &name,
            1,
            false,
        ));
        m.message(msg(
            2 * u64::from(i) + 2,
            100.0,
            "10.96.0.10",
            53,
            "10.0.0.1",
            1024 + i,
            i,
            &name,
            1,
            true,
        ));
        assert!(m.open <= 101);
    }
    assert_eq!(m.stats.closed_early, 900);
    assert_eq!(m.stats.answered_queries, 1000);
}

/// A/AAAA pairs (open ones reference each other), retransmissions, fan-out and TC answers.
fn busy_stream() -> Vec<Msg> {
    let mut out = Vec::new();
    let mut frame = 0;
    let mut push = |t, src: &str, sport, dst: &str, dport, id, name: &str, qtype, resp| {
        frame += 1;
        out.push(msg(frame, t, src, sport, dst, dport, id, name, qtype, resp));
    };
    for i in 0..400u16 {
        let t = 1.0 + f64::from(i) * 0.05;
        let name = format!("n{}.example", i % 7);
        let port = 30000 + i;
        push(t, "10.0.3.7", port, "10.96.0.10", 53, i, &name, 1, false);
        push(
            t + 0.00001,
            "10.0.3.7",
            port,
            "10.96.0.10",
            53,
            i + 1000,
            &name,
            28,
            false,
        );
        push(
            t + 0.00002,
            "10.0.3.7",
            port,
            "10.96.0.11",
            53,
            i + 1000,
            &name,
            28,
            false,
        );
        if i % 3 != 0 {
            push(
                t + 0.001,
                "10.96.0.10",
                53,
                "10.0.3.7",
                port,
                i,
                &name,
                1,
                true,
            );
        }
        if i % 5 == 0 {
            push(
                t + 0.002,
                "10.0.3.7",
                port,
                "10.96.0.10",
                53,
                i,
                &name,
                1,
                false,
            );
        }
    }
    out
}

#[test]
fn closed_queries_free_every_message() {
    let stream = busy_stream();
    let mut m = Matcher::new(&Config::default());
    for x in &stream {
        m.message(x.clone());
    }
    m.finish(None);
    let all = lookups(&mut m);
    assert!(all.len() >= 200, "{} lookups", all.len());
    drop(all);
    // The matcher itself keeps nothing of a finished capture but its TC memory.
    let held: Vec<_> = stream.iter().filter(|x| Rc::strong_count(x) > 1).collect();
    assert!(held.is_empty(), "{} messages still referenced", held.len());
}

#[test]
fn dropping_an_unfinished_matcher_frees_every_message() {
    let stream = busy_stream();
    let mut m = Matcher::new(&Config::default());
    for x in &stream {
        m.message(x.clone());
    }
    assert!(m.open > 0);
    drop(m);
    let held = stream.iter().filter(|x| Rc::strong_count(x) > 1).count();
    assert_eq!(held, 0, "messages kept alive by a reference cycle");
}

#[test]
fn names_match_ignoring_ascii_case() {
    let mut m = Matcher::new(&Config::default());
    m.message(msg(
        1,
        1.0,
        "10.0.3.7",
        40000,
        "10.96.0.10",
        53,
        7,
        "ExAmPle.CoM",
        1,
        false,
    ));
    m.message(msg(
        2,
        1.001,
        "10.96.0.10",
        53,
        "10.0.3.7",
        40000,
        7,
        "example.com",
        1,
        true,
    ));
    assert_eq!(m.stats.answered_queries, 1);
}

#[test]
fn answers_in_the_order_sent_leave_no_holes_behind() {
    // The same query to 600 servers, answered oldest first: each answer removes the front
    // of the key's ordered set, which compacts as the holes pile up. Every tenth answer
    // comes from another address (DNAT) and takes the newest query left under the key.
    let mut m = Matcher::new(&Config::default());
    let servers: Vec<String> = (0..600)
        .map(|i| format!("10.2.{}.{}", i >> 8, i & 255))
        .collect();
    for (i, s) in servers.iter().enumerate() {
        m.message(msg(
            i as u64 + 1,
            100.0 + i as f64 * 1e-4,
            "10.0.0.1",
            40000,
            s,
            53,
            7,
            "same.example",
            1,
            false,
        ));
    }
    let mut answered_by_dnat = 0;
    for (i, s) in servers.iter().enumerate() {
        let src = if i % 10 == 9 { "10.9.9.9" } else { s.as_str() };
        answered_by_dnat += usize::from(i % 10 == 9);
        m.message(msg(
            1000 + i as u64,
            101.0 + i as f64 * 1e-4,
            src,
            53,
            "10.0.0.1",
            40000,
            7,
            "same.example",
            1,
            true,
        ));
    }
    // A DNAT answer took the newest query left; the later answer from that query's own
    // server then takes the newest still left under the key (the fixture
    // synth-many-servers holds the Python matcher's exact decisions).
    assert_eq!(answered_by_dnat, 60);
    assert_eq!(
        m.stats.answered_queries + m.stats.unsolicited_responses,
        600
    );
    m.finish(Some(140.0));
    let all = lookups(&mut m);
    assert_eq!(all.len(), 600);
    let answered = all.iter().filter(|lk| lk.answered()).count() as u64;
    assert_eq!(answered, m.stats.answered_queries);
    assert_eq!(biggest(&m), 0, "{:?}", m.table_sizes());
}

#[test]
fn qtable_does_what_a_hash_map_does_with_colliding_hashes() {
    use super::state::QTable;
    use std::collections::HashMap;
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Values are (key, n); a key's hash is key % 7, so different keys share hashes and
    // only the value tells them apart.
    let mut table: QTable<(u64, u64)> = QTable::new();
    let mut map: HashMap<u64, u64> = HashMap::new();
    for step in 0..200_000u64 {
        let key = rand() % 500;
        let hash = key % 7;
        let found = table.find(hash, |v| v.0 == key);
        assert_eq!(found.is_some(), map.contains_key(&key), "step {step}");
        match rand() % 6 {
            0..=2 => match found {
                Some(i) => *table.get_mut(i).unwrap() = (key, step),
                None => {
                    table.insert(hash, (key, step));
                }
            },
            3 | 4 => {
                if let Some(i) = found {
                    assert_eq!(table.remove_at(i), Some((key, map[&key])));
                }
                map.remove(&key);
                continue;
            }
            _ if step % 5000 == 0 => {
                table.retain(|v| v.0 % 3 != 0);
                map.retain(|k, _| k % 3 != 0);
                table.shrink_to_fit(|_, _| {});
                continue;
            }
            _ => continue,
        }
        map.insert(key, step);
        assert_eq!(table.len(), map.len());
    }
    for (k, n) in &map {
        let i = table.find(k % 7, |v| v.0 == *k).unwrap();
        assert_eq!(table.get_mut(i).map(|v| v.1), Some(*n));
    }
}

#[test]
fn qtable_values_keep_their_slots() {
    use super::state::QTable;
    use std::cell::Cell;
    use std::collections::HashMap;
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Values are (key, slot); the slot each value is told stays its own until removed.
    let mut table: QTable<(u64, Rc<Cell<usize>>)> = QTable::new();
    let mut map: HashMap<u64, Rc<Cell<usize>>> = HashMap::new();
    for step in 0..100_000u64 {
        let key = rand() % 3000;
        let hash = key % 11;
        if let Some(slot) = map.get(&key) {
            let i = slot.get();
            assert_eq!(table.get(i).map(|v| v.0), Some(key), "step {step}");
            if rand() % 2 == 0 {
                table.remove_at(i);
                map.remove(&key);
            }
        } else {
            let slot = Rc::new(Cell::new(usize::MAX));
            table.insert_with(hash, (key, slot.clone()), |v, i| v.1.set(i));
            map.insert(key, slot);
        }
        if step % 7000 == 0 {
            table.shrink_to_fit(|v, i| v.1.set(i));
        }
    }
    assert_eq!(table.len(), map.len());
}
