//! `pcapdns._core.Engine`: the whole per-packet path for pcapdns/analysis.py.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::config::Config;
use crate::engine;
use crate::matcher::Event;
use crate::read::{InputError, InputErrorKind};

use super::convert::Classes;
use super::facts::{decide, Facts};
use super::policy::Policy;
use crate::facts::{FLAGGED, TICK, WATCHED};
use crate::upstream;

/// Put `obj.field` into `dict` under the field's name, for each field named.
macro_rules! fields {
    ($py:expr, $dict:expr, $obj:expr, [$($f:ident),* $(,)?]) => {{
        $( $dict.set_item(stringify!($f), &$obj.$f)?; )*
    }};
}

/// The analysis of one capture, run a step at a time.
#[pyclass(unsendable, module = "pcapdns._core")]
pub struct Engine {
    inner: engine::Engine,
    classes: Classes,
    events: Vec<Event>,
    /// The window detectors' facts, shared with the Python detectors.
    facts: Py<Facts>,
    /// The collector's `detect`, `tick` and `orphan`.
    detect: Py<PyAny>,
    tick: Py<PyAny>,
    orphan: Py<PyAny>,
    /// Every lookup as a Python record, when the caller keeps them all.
    kept: Option<Py<PyList>>,
    /// The collector's `every_lookup`, when it has one: called with every lookup before
    /// the facts decide on it (the tests' check that the hand-over finds what the whole
    /// path finds).
    every: Option<Py<PyAny>>,
    /// Lookups closed, and those handed to the detectors.
    lookups: u64,
    handed: u64,
    /// What the end of the capture leaves open, decided in Python.
    policy: Policy,
}

pub(crate) fn config_from(cfg: &Bound<'_, PyAny>) -> PyResult<Config> {
    macro_rules! get {
        ($name:ident) => {
            cfg.getattr(stringify!($name))?.extract()?
        };
    }
    let ports: std::collections::HashSet<u16> = get!(ports);
    let mut ports: Vec<u16> = ports.into_iter().collect();
    ports.sort_unstable();
    Ok(Config {
        ports,
        slow: get!(slow),
        reorder_window: get!(reorder_window),
        duplicate_window: get!(duplicate_window),
        retransmission_window: get!(retransmission_window),
        retransmission_min_gap: get!(retransmission_min_gap),
        tc_fallback_window: get!(tc_fallback_window),
        pair_before: get!(pair_before),
        pair_after: get!(pair_after),
        fanout_window: get!(fanout_window),
        max_wait: get!(max_wait),
        answer_linger: get!(answer_linger),
        max_in_flight: get!(max_in_flight),
        max_in_flight_bytes: get!(max_in_flight_bytes),
        max_lingering: get!(max_lingering),
        max_dedupe_entries: get!(max_dedupe_entries),
        max_plausible_span: get!(max_plausible_span),
        max_tcp_buffer_bytes: get!(max_tcp_buffer_bytes),
        max_fragment_buffer_bytes: get!(max_fragment_buffer_bytes),
    })
}

/// The pcapdns.errors exception for an input that cannot be used.
pub(crate) fn input_error(py: Python<'_>, e: InputError) -> PyErr {
    let class = match e.kind {
        InputErrorKind::NotACapture => "NotACaptureError",
        InputErrorKind::UnsupportedLinkType => "UnsupportedLinkTypeError",
        InputErrorKind::Input => "InputError",
    };
    let made = py
        .import("pcapdns.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((e.path.as_str(), e.problem.as_str())));
    match made {
        Ok(err) => PyErr::from_value(err),
        Err(err) => err,
    }
}

impl Engine {
    /// Hand what the last step closed to Python, in order: every orphan to the collector;
    /// a lookup to the detectors when a stateless detector may flag it or the window
    /// detectors watch it (the facts decide, one lookup at a time, since what the
    /// detectors do with one lookup decides what they watch next), and a tick when the
    /// facts' clock reached a time they asked to be woken at. A healthy lookup is only
    /// tallied, never made a Python record, unless every lookup is kept.
    fn deliver(&mut self, py: Python<'_>) -> PyResult<()> {
        let mut events = std::mem::take(&mut self.events);
        let result = self.deliver_events(py, &mut events);
        events.clear();
        self.events = events;
        result
    }

    fn deliver_events(&mut self, py: Python<'_>, events: &mut Vec<Event>) -> PyResult<()> {
        for ev in events.drain(..) {
            match ev {
                Event::Lookup(mut l) => {
                    self.lookups += 1;
                    let mut every_obj = None;
                    if l.needs_policy() {
                        let (obj, s) = self.policy.apply(py, &mut self.classes, &l)?;
                        self.inner.settle(&mut l, &s);
                        every_obj = Some(obj);
                    }
                    if let Some(every) = &self.every {
                        let obj = match every_obj {
                            Some(obj) => obj,
                            None => self.classes.lookup(py, &l)?,
                        };
                        every.call1(py, (obj.clone_ref(py),))?;
                        every_obj = Some(obj);
                    }
                    let mut code = decide(&self.facts, py, &l, &self.inner.cfg)?;
                    if code < WATCHED && upstream::hand_over(&l, self.inner.cfg.slow) {
                        // A slow upstream leg may be why a downstream lookup was slow.
                        code = FLAGGED;
                    }
                    let handed = code >= WATCHED;
                    if !handed && self.kept.is_none() && self.every.is_none() {
                        if code == TICK {
                            self.tick.call0(py)?;
                        }
                        continue;
                    }
                    let obj = match every_obj {
                        Some(obj) => obj,
                        None => self.classes.lookup(py, &l)?,
                    };
                    if let Some(kept) = &self.kept {
                        kept.bind(py).append(obj.clone_ref(py))?;
                    }
                    if handed {
                        self.handed += 1;
                        self.detect.call1(py, (obj,))?;
                    } else if code == TICK {
                        self.tick.call0(py)?;
                    }
                }
                Event::Orphan(o) => {
                    let obj = self.classes.orphan(py, &o)?;
                    self.orphan.call1(py, (obj,))?;
                }
            }
        }
        Ok(())
    }
}

#[pymethods]
impl Engine {
    /// Open the capture made of `paths` (files and directories) for `config` (an
    /// AnalysisConfig), handing what it finds to `collector` (a FindingCollector: its
    /// `facts`, `detect`, `tick` and `orphan`); every lookup is appended to `kept` when
    /// given. Raises the pcapdns.errors InputError family.
    #[new]
    #[pyo3(signature = (paths, config, collector, kept=None))]
    fn new(
        py: Python<'_>,
        paths: Vec<String>,
        config: &Bound<'_, PyAny>,
        collector: &Bound<'_, PyAny>,
        kept: Option<Py<PyList>>,
    ) -> PyResult<Engine> {
        let cfg = config_from(config)?;
        let facts: Py<Facts> = collector.getattr("facts")?.extract()?;
        let inner =
            engine::Engine::open(&paths, cfg, kept.is_some()).map_err(|e| input_error(py, e))?;
        Ok(Engine {
            inner,
            classes: Classes::new(py)?,
            events: Vec::new(),
            facts,
            detect: collector.getattr("detect")?.unbind(),
            tick: collector.getattr("tick")?.unbind(),
            orphan: collector.getattr("orphan")?.unbind(),
            kept,
            every: match collector.getattr("every_lookup") {
                Ok(f) => Some(f.unbind()),
                Err(_) => None,
            },
            lookups: 0,
            handed: 0,
            policy: Policy::new(py, config)?,
        })
    }

    /// Read and process up to `max_records` records, handing what they close to the
    /// collector; whether records are left.
    fn step(&mut self, py: Python<'_>, max_records: usize) -> PyResult<bool> {
        py.check_signals()?;
        // A chunk at a time, each chunk's events handed over at once (engine::CHUNK_RECORDS
        // says why); the order of what the collector gets is the same.
        let mut left = max_records;
        loop {
            let n = left.min(engine::CHUNK_RECORDS);
            let more = self
                .inner
                .step(n, &mut self.events)
                .map_err(|e| input_error(py, e))?;
            self.deliver(py)?;
            left -= n;
            if !more || left == 0 {
                return Ok(more);
            }
        }
    }

    /// The capture ended at `end`: everything still in flight, closed and handed over.
    fn finish(&mut self, py: Python<'_>, end: Option<f64>) -> PyResult<()> {
        self.inner
            .finish(end, &mut self.events)
            .map_err(|e| input_error(py, e))?;
        self.deliver(py)
    }

    /// Whether the address `addr` (text) was seen forwarding so far: it sent a query the
    /// core linked as the upstream leg of a query it was asked (core/src/upstream.rs).
    fn is_forwarder(&self, addr: &str) -> bool {
        addr.parse()
            .is_ok_and(|a| self.inner.links.is_forwarder(&a))
    }

    /// (lookups closed, lookups handed to the detectors) so far.
    #[getter]
    fn handed_over(&self) -> (u64, u64) {
        (self.lookups, self.handed)
    }

    /// Bytes of the input consumed, as of the last record processed (for progress).
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read()
    }

    #[getter]
    fn total_bytes(&self) -> u64 {
        self.inner.total_bytes()
    }

    /// The newest record time read (records can be written out of time order).
    #[getter]
    fn newest(&self) -> f64 {
        self.inner.newest()
    }

    /// Each input file as the keyword arguments of pcapdns.stats.CaptureFile, once every
    /// record has been read (`step` returned false).
    fn files(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let out = PyList::empty(py);
        let reader = self
            .inner
            .reader()
            .ok_or_else(|| PyValueError::new_err("files() before the input is read"))?;
        for f in reader.files() {
            let d = PyDict::new(py);
            fields!(
                py,
                d,
                f,
                [
                    path,
                    size,
                    format,
                    gzip,
                    link_types,
                    packets,
                    first_time,
                    last_time,
                    truncated,
                    warnings,
                    bytes_read,
                    bad_timestamps
                ]
            );
            let names = PyDict::new(py);
            for (k, v) in &f.interface_names {
                names.set_item(k, v)?;
            }
            d.set_item("interface_names", names)?;
            out.append(d)?;
        }
        Ok(out.unbind())
    }

    /// Everything else the outputs need, once the capture is finished.
    fn facts(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        if !self.inner.finished() {
            return Err(PyValueError::new_err("facts() before finish()"));
        }
        let e = &self.inner;
        let (Some(reader), Some(decoder)) = (e.reader(), e.decoder()) else {
            return Err(PyValueError::new_err("facts() before the input is read"));
        };
        let d = PyDict::new(py);
        d.set_item("records", reader.records())?;
        d.set_item("late", reader.late())?;
        d.set_item("open_warnings", reader.open_warnings())?;
        d.set_item("late_warning", reader.late_warning())?;
        d.set_item("malformed", e.malformed)?;
        d.set_item("malformed_examples", &e.malformed_examples)?;

        let s = &decoder.stats;
        let dec = PyDict::new(py);
        fields!(
            py,
            dec,
            s,
            [
                non_ip,
                not_dns,
                bad_ip,
                fragments,
                icmp_errors,
                bad_tunnel,
                tunnel_too_deep
            ]
        );
        d.set_item("decode", dec)?;
        let tunnels = PyDict::new(py);
        for (kind, n) in decoder.tunnels.items() {
            tunnels.set_item(kind, n)?;
        }
        d.set_item("tunnels", tunnels)?;
        let t = &decoder.tcp.stats;
        let tcp = PyDict::new(py);
        fields!(
            py,
            tcp,
            t,
            [
                gaps,
                unframed_bytes,
                incomplete_messages,
                empty_messages,
                evicted_flows,
                evicted_bytes
            ]
        );
        d.set_item("tcp", tcp)?;
        let f = &decoder.fragments;
        let frag = PyDict::new(py);
        fields!(py, frag, f, [reassembled, dropped, evicted, evicted_bytes]);
        d.set_item("fragments", frag)?;

        let ms = super::matcher::stats_dict(py, &e.matcher.stats)?;
        d.set_item("match", ms)?;

        let dd = &e.dedupe;
        let dedupe = PyDict::new(py);
        dedupe.set_item("duplicates", dd.duplicates)?;
        dedupe.set_item("evicted", dd.evicted)?;
        match &dd.copies {
            Some(c) => {
                let copies = PyDict::new(py);
                for (k, v) in c {
                    copies.set_item(k, v)?;
                }
                dedupe.set_item("copies", copies)?;
            }
            None => dedupe.set_item("copies", py.None())?,
        }
        d.set_item("dedupe", dedupe)?;
        let dnat: Vec<String> = dd.dnat_server_texts();
        d.set_item("dnat_servers", dnat)?;
        let replicas = PyList::empty(py);
        for r in &e.replicas.rows {
            let (Some(service), Some(target)) = (r.service, r.target) else {
                continue;
            };
            let ms = r.latency.summary_ms();
            let row = PyDict::new(py);
            row.set_item("service", crate::types::addr_text(&service))?;
            row.set_item("address", crate::types::addr_text(&target))?;
            row.set_item("queries", r.queries)?;
            row.set_item("failed", r.failed)?;
            row.set_item("answered", r.latency.n)?;
            row.set_item("p50_ms", ms.p50)?;
            row.set_item("p99_ms", ms.p99)?;
            row.set_item("failed_frames", r.failed_frames.clone())?;
            let slow: Vec<(u64, u64)> = r.slowest.iter().map(|&(_, q, a)| (q, a)).collect();
            row.set_item("slowest_frames", slow)?;
            replicas.append(row)?;
        }
        d.set_item("replicas", replicas)?;

        let tl = &e.tallies;
        let h = &tl.latency;
        d.set_item("latency", (h.raw(), h.n, h.max))?;
        let servers = PyList::empty(py);
        for (key, row) in tl.breakdown.servers.items() {
            let r = PyDict::new(py);
            fields!(
                py,
                r,
                row,
                [
                    lookups,
                    answered,
                    failed,
                    retransmissions,
                    servfail,
                    nxdomain,
                    refused
                ]
            );
            let lh = &row.latency;
            r.set_item("latency", (lh.raw(), lh.n, lh.max))?;
            servers.append((key, r))?;
        }
        let clients = PyList::empty(py);
        for (key, row) in tl.breakdown.clients.items() {
            let r = PyDict::new(py);
            fields!(
                py,
                r,
                row,
                [
                    lookups,
                    answered,
                    failed,
                    retransmissions,
                    race_lost,
                    servfail,
                    nxdomain,
                    refused,
                    max_latency
                ]
            );
            clients.append((key, r))?;
        }
        d.set_item("breakdown", (servers, clients))?;
        let up = PyList::empty(py);
        for (server, row) in e.upstream.sorted() {
            let r = PyDict::new(py);
            fields!(
                py,
                r,
                row,
                [queries, retransmissions, answered, timeouts, open]
            );
            let rcodes: Vec<(usize, u64)> = row
                .rcodes
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| (c, *n))
                .collect();
            r.set_item("rcodes", rcodes)?;
            let lh = &row.latency;
            r.set_item("latency", (lh.raw(), lh.n, lh.max))?;
            up.append((server, r))?;
        }
        d.set_item("upstream", up)?;
        let l = &e.links;
        let links = PyDict::new(py);
        links.set_item("linked", l.linked)?;
        links.set_item("evicted", l.evicted)?;
        links.set_item("links_evicted", l.links_evicted)?;
        links.set_item("learn_evicted", l.learn_evicted)?;
        links.set_item("servers_untallied", e.upstream.servers_untallied)?;
        d.set_item("upstream_links", links)?;
        let (start, step, queries, failed) = tl.timeline.series();
        d.set_item(
            "timeline",
            (
                start,
                step,
                queries,
                failed,
                tl.timeline.first,
                tl.timeline.last,
            ),
        )?;
        Ok(d.unbind())
    }
}
