//! `pcapdns._core.Deduplicator` and `pcapdns._core.Matcher`: the duplicate filter and the
//! matcher on their own, fed Python messages one at a time (for tests and tools; the
//! analysis runs them inside the Engine).

use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PySet};

use crate::dedupe;
use crate::matcher::{self, Event, MatchStats};
use crate::types::IcmpQuote;

use super::convert::Classes;
use super::dns::{address, message_from};
use super::engine::config_from;
use super::policy::Policy;

/// Drops the copies of a DNS message captured more than once (core/src/dedupe.rs).
#[pyclass(unsendable, module = "pcapdns._core")]
pub struct Deduplicator {
    inner: dedupe::Deduplicator,
}

#[pymethods]
impl Deduplicator {
    /// Remember each kept message for `window` seconds, at most `max_entries` of them;
    /// with `record_copies`, keep which copy each dropped one was (`copies`).
    #[new]
    #[pyo3(signature = (window, record_copies = false, max_entries = 100_000))]
    fn new(window: f64, record_copies: bool, max_entries: usize) -> Deduplicator {
        Deduplicator {
            inner: dedupe::Deduplicator::new(window, record_copies, max_entries),
        }
    }

    /// True when `message` (a pcapdns.dns.message.Message) is a copy of a message kept
    /// earlier; else remember it.
    fn is_duplicate(&mut self, message: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.is_duplicate(&message_from(message)?))
    }

    #[getter]
    fn window(&self) -> f64 {
        self.inner.window
    }

    #[getter]
    fn max_entries(&self) -> usize {
        self.inner.max_entries
    }

    /// Copies dropped.
    #[getter]
    fn duplicates(&self) -> u64 {
        self.inner.duplicates
    }

    /// Messages forgotten before their window was over (the `max_entries` cap).
    #[getter]
    fn evicted(&self) -> u64 {
        self.inner.evicted
    }

    /// Frame of each dropped copy -> frame of the copy kept (in frame order), or None
    /// when not recording.
    #[getter]
    fn copies<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(copies) = &self.inner.copies else {
            return Ok(None);
        };
        let mut pairs: Vec<(&u64, &u64)> = copies.iter().collect();
        pairs.sort_unstable();
        let d = PyDict::new(py);
        for (dropped, kept) in pairs {
            d.set_item(dropped, kept)?;
        }
        Ok(Some(d))
    }

    /// Server addresses seen on either side of a DNAT, as text.
    #[getter]
    fn dnat_servers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PySet>> {
        PySet::new(py, self.inner.dnat_server_texts())
    }

    /// Messages remembered now (the memory bound).
    #[getter]
    fn remembered(&self) -> usize {
        self.inner.remembered()
    }

    /// Entries of the table of which way each client port and ID last went.
    #[getter]
    fn turns_remembered(&self) -> usize {
        self.inner.turns_remembered()
    }
}

/// Matches responses to queries and groups attempts into lookups (core/src/matcher).
///
/// The records it closes are handed, converted and in order, to `on_lookup` and
/// `on_orphan` before `message`, `icmp` and `finish` return.
#[pyclass(unsendable, module = "pcapdns._core")]
pub struct Matcher {
    inner: matcher::Matcher,
    classes: Classes,
    on_lookup: Py<PyAny>,
    on_orphan: Py<PyAny>,
    /// What the end of the capture leaves open, decided in Python.
    policy: Policy,
}

impl Matcher {
    /// Hand what the matcher decided to the callbacks. When one raises, the exception
    /// propagates and the records after it are dropped.
    fn emit(&mut self, py: Python<'_>) -> PyResult<()> {
        let mut events = Vec::new();
        self.inner.drain(&mut events);
        for ev in events {
            match ev {
                Event::Lookup(mut l) => {
                    let obj = if l.needs_policy() {
                        let (obj, s) = self.policy.apply(py, &mut self.classes, &l)?;
                        self.inner.settle(&mut l, &s);
                        obj
                    } else {
                        self.classes.lookup(py, &l)?
                    };
                    self.on_lookup.call1(py, (obj,))?;
                }
                Event::Orphan(o) => {
                    let obj = self.classes.orphan(py, &o)?;
                    self.on_orphan.call1(py, (obj,))?;
                }
            }
        }
        Ok(())
    }
}

/// The counters as the keyword arguments of pcapdns.stats.MatchStats.
pub(crate) fn stats_dict<'py>(py: Python<'py>, m: &MatchStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    macro_rules! put {
        ($($f:ident),* $(,)?) => {{
            $( d.set_item(stringify!($f), m.$f)?; )*
        }};
    }
    put!(
        queries,
        queries_udp,
        queries_tcp,
        responses,
        answered_queries,
        unanswered_queries,
        unsolicited_responses,
        responses_before_capture,
        continuation_responses,
        retransmissions,
        tcp_fallback_queries,
        parallel_lookups,
        lookups,
        failed_lookups,
        lookups_open_at_end,
        lookups_failed,
        lookups_failed_late,
        tc_responses,
        tc_followed_by_tcp,
        tc_without_tcp_retry,
        tc_open_at_end,
        a_aaaa_pairs,
        a_aaaa_same_port_concurrent,
        a_aaaa_race_lost,
        fanout_groups,
        icmp_errors,
        evicted,
        closed_early,
    );
    let rcodes = PyDict::new(py);
    for (name, n) in &m.rcodes {
        rcodes.set_item(name, n)?;
    }
    d.set_item("rcodes", rcodes)?;
    Ok(d)
}

/// A pcapdns.stats.MatchStats of the counters.
fn stats_object(py: Python<'_>, m: &MatchStats) -> PyResult<Py<PyAny>> {
    let d = stats_dict(py, m)?;
    let class = py.import("pcapdns.stats")?.getattr("MatchStats")?;
    Ok(class.call((), Some(&d))?.unbind())
}

#[pymethods]
impl Matcher {
    /// Estimated memory of one query in flight beyond its DNS bytes (what
    /// `max_in_flight_bytes` counts).
    #[classattr]
    const QUERY_BYTES: i64 = matcher::QUERY_BYTES;

    /// A matcher with the windows and caps of `config` (an AnalysisConfig).
    #[new]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyAny>,
        on_lookup: Py<PyAny>,
        on_orphan: Py<PyAny>,
    ) -> PyResult<Matcher> {
        Ok(Matcher {
            inner: matcher::Matcher::new(&config_from(config)?),
            classes: Classes::new(py)?,
            on_lookup,
            on_orphan,
            policy: Policy::new(py, config)?,
        })
    }

    /// The next DNS message (a pcapdns.dns.message.Message), in time order.
    fn message(&mut self, py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.message(Rc::new(message_from(m)?));
        self.emit(py)
    }

    /// An ICMP error quoting a DNS datagram: an object with the fields frame, time, iface,
    /// reporter, icmp_type, icmp_code, src, sport, dst, dport and data.
    fn icmp(&mut self, py: Python<'_>, e: &Bound<'_, PyAny>) -> PyResult<()> {
        macro_rules! get {
            ($name:literal) => {
                e.getattr($name)?.extract()?
            };
        }
        let reporter: String = get!("reporter");
        let src: String = get!("src");
        let dst: String = get!("dst");
        let data: Vec<u8> = e
            .getattr("data")?
            .extract::<std::borrow::Cow<[u8]>>()?
            .into_owned();
        let quote = IcmpQuote {
            frame: get!("frame"),
            time: get!("time"),
            iface: get!("iface"),
            reporter: address(&reporter)?,
            icmp_type: get!("icmp_type"),
            icmp_code: get!("icmp_code"),
            src: address(&src)?,
            sport: get!("sport"),
            dst: address(&dst)?,
            dport: get!("dport"),
            data,
        };
        self.inner.icmp(&quote);
        self.emit(py)
    }

    /// The capture ended at `end` (None: at the newest message): close everything still
    /// in flight.
    #[pyo3(signature = (end = None))]
    fn finish(&mut self, py: Python<'_>, end: Option<f64>) -> PyResult<()> {
        self.inner.finish(end);
        self.emit(py)
    }

    /// Time of the capture's first packet (a response soon after it answers a query sent
    /// before the capture); set it before the first message.
    #[getter]
    fn capture_start(&self) -> Option<f64> {
        self.inner.capture_start
    }

    #[setter]
    fn set_capture_start(&mut self, start: Option<f64>) {
        self.inner.capture_start = start;
    }

    /// The counters so far, as a pcapdns.stats.MatchStats.
    #[getter]
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        stats_object(py, &self.inner.stats)
    }

    /// Queries not yet closed.
    #[getter]
    fn open(&self) -> usize {
        self.inner.open
    }

    /// What the queries in flight hold, estimated in bytes (QUERY_BYTES and the DNS bytes
    /// per query; more per response matched).
    #[getter]
    fn bytes(&self) -> i64 {
        self.inner.bytes
    }

    /// Entries of each in-flight index by name (pending, pending_to, groups, fanout,
    /// a_waiting, aaaa_recent, tc_waiting, by_id, xfr, open, lookups_in_flight): the
    /// bounded state.
    fn table_sizes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, n) in self.inner.table_sizes() {
            d.set_item(name, n)?;
        }
        Ok(d)
    }
}
