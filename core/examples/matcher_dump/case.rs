//! One matcher case of `tests/fixtures/matcher/` (see its README): its input,
//! its runs, and what the former Python matcher emitted in each. `check` runs the Rust matcher
//! over the input and compares its output line by line.
//!
//! Shared by the fixture test (`tests/matcher.rs`) and the `matcher_dump` example.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use pcapdns_core::config::Config;
use pcapdns_core::matcher::{Event, Lookup, MatchStats, Matcher, Orphan, Settlement, Transaction};
use pcapdns_core::types::{IcmpQuote, Message, Msg, Transport};
use serde_json::{json, Value};

pub enum Input {
    Start(Option<f64>),
    Msg(Msg),
    Icmp(IcmpQuote),
    Finish(Option<f64>),
}

pub struct Case {
    pub name: String,
    pub configs: Vec<Config>,
    /// Per run, the `timeout` the policy decided with (the core does not read it).
    pub timeouts: Vec<f64>,
    pub inputs: Vec<Input>,
    /// Per run, the output lines the Python matcher wrote, in order.
    pub expected: Vec<Vec<Value>>,
}

fn err<T>(what: impl std::fmt::Display) -> Result<T, String> {
    Err(what.to_string())
}

fn float(v: &Value) -> Result<Option<f64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => s.parse::<f64>().map(Some).map_err(|e| format!("{s}: {e}")),
        _ => err(format!("not a float string: {v}")),
    }
}

fn int(v: &Value) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("not an integer: {v}"))
}

fn addr(v: &Value) -> Result<IpAddr, String> {
    let s = v.as_str().ok_or_else(|| format!("not an address: {v}"))?;
    s.parse().map_err(|e| format!("{s}: {e}"))
}

fn hex(v: &Value) -> Result<Vec<u8>, String> {
    let s = v.as_str().ok_or_else(|| format!("not hex: {v}"))?;
    if s.len() % 2 != 0 {
        return err("odd hex");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

fn field(a: &[Value], i: usize) -> Result<&Value, String> {
    a.get(i).ok_or_else(|| format!("field {i} missing"))
}

fn message(v: &Value) -> Result<Message, String> {
    let a = v.as_array().ok_or("message is not an array")?;
    let f = |i| field(a, i);
    let transport = match f(3)?.as_str() {
        Some("udp") => Transport::Udp,
        Some("tcp") => Transport::Tcp,
        _ => return err("bad transport"),
    };
    Ok(Message {
        frame: int(f(0)?)?,
        time: float(f(1)?)?.ok_or("no time")?,
        iface: int(f(2)?)? as u32,
        transport,
        src: addr(f(4)?)?,
        sport: int(f(5)?)? as u16,
        dst: addr(f(6)?)?,
        dport: int(f(7)?)? as u16,
        id: int(f(8)?)? as u16,
        flags: int(f(9)?)? as u16,
        qdcount: int(f(10)?)? as u16,
        ancount: int(f(11)?)? as u16,
        qname: f(12)?.as_str().map(Into::into),
        qtype: int(f(13)?)? as u16,
        qclass: int(f(14)?)? as u16,
        data: hex(f(15)?)?.into(),
        legs: Default::default(),
    })
}

fn icmp(v: &Value) -> Result<IcmpQuote, String> {
    let a = v.as_array().ok_or("icmp is not an array")?;
    let f = |i| field(a, i);
    Ok(IcmpQuote {
        frame: int(f(0)?)?,
        time: float(f(1)?)?.ok_or("no time")?,
        iface: int(f(2)?)? as u32,
        reporter: addr(f(3)?)?,
        icmp_type: int(f(4)?)? as u8,
        icmp_code: int(f(5)?)? as u8,
        src: addr(f(6)?)?,
        sport: int(f(7)?)? as u16,
        dst: addr(f(8)?)?,
        dport: int(f(9)?)? as u16,
        data: hex(f(10)?)?,
    })
}

fn config(v: &Value) -> Result<(Config, f64), String> {
    let mut c = Config::default();
    let get = |k: &str| v.get(k).ok_or_else(|| format!("config has no {k}"));
    let fl =
        |k: &str| -> Result<f64, String> { float(get(k)?)?.ok_or_else(|| format!("{k} null")) };
    let timeout = fl("timeout")?;
    c.retransmission_window = fl("retransmission_window")?;
    c.retransmission_min_gap = fl("retransmission_min_gap")?;
    c.tc_fallback_window = fl("tc_fallback_window")?;
    c.pair_before = fl("pair_before")?;
    c.pair_after = fl("pair_after")?;
    c.fanout_window = fl("fanout_window")?;
    c.max_wait = fl("max_wait")?;
    c.answer_linger = fl("answer_linger")?;
    c.max_in_flight = int(get("max_in_flight")?)? as usize;
    c.max_in_flight_bytes = int(get("max_in_flight_bytes")?)? as usize;
    c.max_lingering = int(get("max_lingering")?)? as usize;
    Ok((c, timeout))
}

/// The decisions the former matcher made about lookups the capture's end left open, which
/// the fixtures hold: the rules of pcapdns/policy.py (`settle`), restated to check that the
/// facts the core states are the ones they need.
pub fn fixture_policy(lk: &Lookup, timeout: f64) -> Settlement {
    let Some(end) = lk.end else {
        return Settlement::default();
    };
    let races_undone = lk
        .attempts
        .iter()
        .enumerate()
        .filter(|(_, t)| t.pair_race_lost && !t.pair_lost_retried)
        .filter(|(_, t)| {
            let lost = match (&t.response, &t.pair_transaction) {
                (None, _) => &t.query,
                (Some(_), Some(p)) => &p.query,
                (Some(_), None) => return false,
            };
            end - lost.time < timeout
        })
        .map(|(i, _)| i)
        .collect();
    Settlement {
        open_at_end: lk.answer.is_none() && may_still_wait(end, timeout, lk),
        races_undone,
    }
}

/// pcapdns/policy.py `may_still_wait`.
fn may_still_wait(end: f64, timeout: f64, lk: &Lookup) -> bool {
    let Some(last) = lk.attempts.last() else {
        return false;
    };
    let since = end - last.query.time;
    if since >= timeout {
        return false;
    }
    if let Some(r) = lk
        .attempts
        .iter()
        .rev()
        .find(|t| t.retransmission.is_some())
    {
        let lt = r.query.time;
        let before = lk
            .attempts
            .iter()
            .rev()
            .find(|t| t.query.time <= lt && !Rc::ptr_eq(t, r));
        if let Some(b) = before {
            if since >= lt - b.query.time {
                return false;
            }
        }
    }
    true
}

pub fn parse_case(text: &str) -> Result<Case, String> {
    let mut case = Case {
        name: String::new(),
        configs: vec![],
        timeouts: vec![],
        inputs: vec![],
        expected: vec![],
    };
    for (no, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", no + 1))?;
        let a = v
            .as_array()
            .ok_or_else(|| format!("line {}: not an array", no + 1))?;
        let tag = a.first().and_then(Value::as_str).unwrap_or("");
        let at = |i| field(a, i).map_err(|e| format!("line {}: {e}", no + 1));
        match tag {
            "case" => case.name = at(1)?.as_str().unwrap_or("").to_string(),
            "config" => {
                let (c, timeout) = config(at(2)?)?;
                case.configs.push(c);
                case.timeouts.push(timeout);
                case.expected.push(vec![]);
            }
            "s" => case.inputs.push(Input::Start(float(at(1)?)?)),
            "m" => case.inputs.push(Input::Msg(Rc::new(message(at(1)?)?))),
            "i" => case.inputs.push(Input::Icmp(icmp(at(1)?)?)),
            "f" => case.inputs.push(Input::Finish(float(at(1)?)?)),
            "lookup" | "orphan" | "stats" => {
                let k = int(at(1)?)? as usize;
                case.expected
                    .get_mut(k)
                    .ok_or("run without a config")?
                    .push(v.clone());
            }
            _ => return err(format!("line {}: unknown tag {tag:?}", no + 1)),
        }
    }
    Ok(case)
}

/// Python's `repr` of a float.
pub fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // The shortest correctly rounded digits that read back as `x` (Python's repr; ties
    // go to even in both).
    let a = x.abs();
    let e = (0..17)
        .map(|p| format!("{a:.p$e}"))
        .find(|s| s.parse::<f64>() == Ok(a))
        .unwrap_or_else(|| format!("{a:.16e}"));
    let (mant, exp) = e.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("exponent");
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if x < 0.0 { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let rest = &digits[1..];
        let m = if rest.is_empty() {
            digits[..1].to_string()
        } else {
            format!("{}.{rest}", &digits[..1])
        };
        let es = if exp < 0 { "-" } else { "+" };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    if exp < 0 {
        return format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize));
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}.0", "0".repeat(int_len - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

fn opt_f(x: Option<f64>) -> Value {
    x.map_or(Value::Null, |x| Value::String(py_repr(x)))
}

/// Names the messages of the output by their position in the input.
struct Numbering(HashMap<*const Message, usize>);

impl Numbering {
    fn n(&self, m: &Msg) -> Value {
        json!(self.0.get(&Rc::as_ptr(m)).copied())
    }
    fn opt(&self, m: Option<&Msg>) -> Value {
        m.map_or(Value::Null, |m| self.n(m))
    }

    fn tx(&self, t: &Transaction) -> Value {
        json!([
            self.n(&t.query),
            self.opt(t.response.as_ref()),
            t.lookup_id,
            t.attempt,
            t.retransmission.map(|r| r.as_str()),
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
            self.opt(t.pair_transaction.as_ref().map(|p| &p.query)),
            t.tcp_fallback,
            opt_f(t.latency()),
        ])
    }

    fn lookup(&self, lk: &Lookup) -> Value {
        let attempts: Vec<Value> = lk.attempts.iter().map(|t| self.tx(t)).collect();
        json!([
            lk.id,
            attempts,
            lk.answer,
            lk.open_at_end,
            lk.failed(),
            lk.retransmissions(),
            opt_f(lk.latency()),
        ])
    }

    fn orphan(&self, o: &Orphan) -> Value {
        json!({
            "kind": o.kind.as_str(),
            "message": self.opt(o.message.as_ref()),
            "frame": o.frame,
            "time": py_repr(o.time),
            "client": o.client,
            "server": o.server,
            "qname": o.qname,
            "qtype": o.qtype,
            "reason": o.reason,
        })
    }
}

pub fn stats_json(m: &Matcher) -> Value {
    let s: &MatchStats = &m.stats;
    json!({
        "queries": s.queries, "queries_udp": s.queries_udp, "queries_tcp": s.queries_tcp,
        "responses": s.responses, "answered_queries": s.answered_queries,
        "unanswered_queries": s.unanswered_queries,
        "unsolicited_responses": s.unsolicited_responses,
        "responses_before_capture": s.responses_before_capture,
        "continuation_responses": s.continuation_responses,
        "retransmissions": s.retransmissions, "tcp_fallback_queries": s.tcp_fallback_queries,
        "parallel_lookups": s.parallel_lookups, "lookups": s.lookups,
        "failed_lookups": s.failed_lookups, "lookups_open_at_end": s.lookups_open_at_end,
        "lookups_failed": s.lookups_failed, "lookups_failed_late": s.lookups_failed_late,
        "tc_responses": s.tc_responses, "tc_followed_by_tcp": s.tc_followed_by_tcp,
        "tc_without_tcp_retry": s.tc_without_tcp_retry, "tc_open_at_end": s.tc_open_at_end,
        "a_aaaa_pairs": s.a_aaaa_pairs,
        "a_aaaa_same_port_concurrent": s.a_aaaa_same_port_concurrent,
        "a_aaaa_race_lost": s.a_aaaa_race_lost, "fanout_groups": s.fanout_groups,
        "icmp_errors": s.icmp_errors, "evicted": s.evicted, "closed_early": s.closed_early,
        "rcodes": s.rcodes.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "open": m.open, "bytes": m.bytes,
    })
}

/// Run the Rust matcher over the case's input with the config of run `k`; the output
/// lines in the fixture's form.
pub fn run(case: &Case, k: usize) -> Vec<Value> {
    let mut numbering = Numbering(HashMap::new());
    for inp in &case.inputs {
        if let Input::Msg(m) = inp {
            let n = numbering.0.len();
            numbering.0.entry(Rc::as_ptr(m)).or_insert(n);
        }
    }
    let mut m = Matcher::new(&case.configs[k]);
    let mut events = Vec::new();
    for inp in &case.inputs {
        match inp {
            Input::Start(t) => m.capture_start = *t,
            Input::Msg(msg) => m.message(msg.clone()),
            Input::Icmp(e) => m.icmp(e),
            Input::Finish(end) => m.finish(*end),
        }
        let start = events.len();
        m.drain(&mut events);
        for e in &mut events[start..] {
            if let Event::Lookup(lk) = e {
                if lk.needs_policy() {
                    let s = fixture_policy(lk, case.timeouts[k]);
                    m.settle(lk, &s);
                }
            }
        }
    }
    let mut out: Vec<Value> = events
        .iter()
        .map(|e| match e {
            Event::Lookup(lk) => json!(["lookup", k, numbering.lookup(lk)]),
            Event::Orphan(o) => json!(["orphan", k, numbering.orphan(o)]),
        })
        .collect();
    out.push(json!(["stats", k, stats_json(&m)]));
    out
}

/// Compare every run with what Python wrote; the first difference of each run, if any.
pub fn check(case: &Case) -> Result<(), String> {
    let mut problems = vec![];
    for k in 0..case.configs.len() {
        let got = run(case, k);
        let want = &case.expected[k];
        if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
            problems.push(format!(
                "{} run {k}: output line {i} of {} (Python wrote {}) differs:\n  python: {}\n  rust:   {}",
                case.name,
                got.len(),
                want.len(),
                want.get(i).map_or("<none>".into(), Value::to_string),
                got.get(i).map_or("<none>".into(), Value::to_string),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Run the matcher over the case's input with the config of run `k`, dropping what it
/// emits: the matcher's own cost, for timing. Returns the messages fed.
pub fn replay(case: &Case, k: usize) -> usize {
    let mut m = Matcher::new(&case.configs[k]);
    let mut events = Vec::new();
    let mut n = 0;
    for inp in &case.inputs {
        match inp {
            Input::Start(t) => m.capture_start = *t,
            Input::Msg(msg) => {
                m.message(msg.clone());
                n += 1;
            }
            Input::Icmp(e) => m.icmp(e),
            Input::Finish(end) => m.finish(*end),
        }
        if events.len() < 4096 {
            m.drain(&mut events);
        } else {
            events.clear();
        }
    }
    n
}
