//! `pcapdns._core.Facts`: the lookup facts (core/src/facts.rs) that the Python window
//! detectors share with the engine, and `may_be_flagged` for Python lookup records.
//!
//! One `Facts` serves both sides: the detectors call its methods with the addresses as
//! text, and the engine, holding the same object, tells it each closed lookup (`decide`),
//! borrowing it only for that call, never while Python code runs.

use std::net::IpAddr;

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;

use crate::config::Config;
use crate::facts::{self, AnswerOutline, Caps, Closed, Outline};
use crate::matcher::Lookup;
use crate::types::Time;

/// The answer memory, the clocks and what the window detectors watch (pcapdns/detect/);
/// see core/src/facts.rs. `Facts(config)` takes the windows of an AnalysisConfig; the
/// keyword caps are for tests.
#[pyclass(unsendable, subclass, module = "pcapdns._core")]
pub struct Facts {
    inner: facts::Facts,
    settle: Time,
    memory: Time,
}

/// An address as text (`addr_text`'s form) -> the core's key.
fn addr(text: &str) -> PyResult<IpAddr> {
    text.parse()
        .map_err(|_| PyValueError::new_err(format!("not an IP address: {text:?}")))
}

fn windows(config: &Bound<'_, PyAny>) -> PyResult<Config> {
    let get = |name: &str| -> PyResult<f64> { config.getattr(name)?.extract() };
    Ok(Config {
        slow: get("slow")?,
        retransmission_window: get("retransmission_window")?,
        tc_fallback_window: get("tc_fallback_window")?,
        max_wait: get("max_wait")?,
        answer_linger: get("answer_linger")?,
        ..Config::default()
    })
}

/// The outline of a Python lookup record (pcapdns.match.records.Lookup), given to `f`;
/// `first_marked` is read only for `may_be_flagged` (`flags`), and only where it reads it,
/// so that `closed` reads no more of a record than the facts take. Raises what reading the
/// record raises, and ValueError for a lookup without attempts or with an address that is
/// not one.
fn with_outline<R>(
    flags: bool,
    lookup: &Bound<'_, PyAny>,
    f: impl FnOnce(&Outline<'_>) -> R,
) -> PyResult<R> {
    let py = lookup.py();
    let attempts = lookup.getattr(intern!(py, "attempts"))?;
    let n = attempts.len()?;
    if n == 0 {
        return Err(PyValueError::new_err("a lookup without attempts"));
    }
    let first = attempts.get_item(0)?;
    let q = first.getattr(intern!(py, "query"))?;
    let udp = |msg: &Bound<'_, PyAny>| -> PyResult<bool> {
        let t: PyBackedStr = msg.getattr(intern!(py, "transport"))?.extract()?;
        Ok(&*t == "udp")
    };
    let qname: Option<PyBackedStr> = q.getattr(intern!(py, "qname"))?.extract()?;
    let last_time: Time = if n == 1 {
        q.getattr(intern!(py, "time"))?.extract()?
    } else {
        attempts
            .get_item(n - 1)?
            .getattr(intern!(py, "query"))?
            .getattr(intern!(py, "time"))?
            .extract()?
    };
    let answer = lookup.getattr(intern!(py, "answer"))?;
    let answer = if answer.is_none() {
        None
    } else {
        let aq = answer.getattr(intern!(py, "query"))?;
        let r = answer.getattr(intern!(py, "response"))?;
        Some(AnswerOutline {
            udp: udp(&aq)?,
            port: aq.getattr(intern!(py, "sport"))?.extract()?,
            response: if r.is_none() {
                None
            } else {
                Some((
                    r.getattr(intern!(py, "time"))?.extract()?,
                    r.getattr(intern!(py, "flags"))?.extract()?,
                ))
            },
        })
    };
    let first_marked = flags
        && n == 1
        && answer.is_some()
        && (!first.getattr(intern!(py, "retransmission"))?.is_none()
            || !first.getattr(intern!(py, "fanout_of"))?.is_none()
            || first.getattr(intern!(py, "pair_race_lost"))?.is_truthy()?
            || first.getattr(intern!(py, "icmp_frames"))?.is_truthy()?
            || !first.getattr(intern!(py, "leg_fault"))?.is_none());
    let src: PyBackedStr = q.getattr(intern!(py, "src"))?.extract()?;
    let dst: PyBackedStr = q.getattr(intern!(py, "dst"))?.extract()?;
    let outline = Outline {
        client: addr(&src)?,
        server: addr(&dst)?,
        first_time: q.getattr(intern!(py, "time"))?.extract()?,
        qname: qname.as_deref(),
        qtype: q.getattr(intern!(py, "qtype"))?.extract()?,
        qclass: q.getattr(intern!(py, "qclass"))?.extract()?,
        first_udp: udp(&q)?,
        last_time,
        attempts: n,
        open_at_end: lookup.getattr(intern!(py, "open_at_end"))?.is_truthy()?,
        answer,
        first_marked,
    };
    Ok(f(&outline))
}

#[pymethods]
impl Facts {
    #[new]
    #[pyo3(signature = (config, *, sweep_min = facts::SWEEP_MIN,
                        max_answered = facts::MAX_ANSWERED, max_clients = facts::MAX_CLIENTS))]
    fn new(
        config: &Bound<'_, PyAny>,
        sweep_min: usize,
        max_answered: usize,
        max_clients: usize,
    ) -> PyResult<Facts> {
        let cfg = windows(config)?;
        let caps = Caps {
            sweep_min,
            max_answered,
            max_clients,
        };
        let inner = facts::Facts::with_caps(&cfg, caps).map_err(PyValueError::new_err)?;
        Ok(Facts {
            inner,
            settle: facts::settle_time(&cfg),
            memory: facts::answer_memory(&cfg),
        })
    }

    /// Take the facts of one closed lookup; return what the caller must do with it (QUIET,
    /// TICK or WATCHED). `closed` derives the arguments from a lookup record.
    #[pyo3(signature = (client, server, first_time, last_time, qname, qtype, qclass,
                        failed_udp, answered, answer_udp, answer_port, answer_time, rcode))]
    #[allow(clippy::too_many_arguments)]
    fn lookup_closed(
        &mut self,
        client: &str,
        server: &str,
        first_time: f64,
        last_time: f64,
        qname: Option<&str>,
        qtype: u16,
        qclass: u16,
        failed_udp: bool,
        answered: bool,
        answer_udp: bool,
        answer_port: u16,
        answer_time: f64,
        rcode: u16,
    ) -> PyResult<u8> {
        let c = Closed {
            client: addr(client)?,
            server: addr(server)?,
            first_time,
            last_time,
            qname,
            qtype,
            qclass,
            failed_udp,
            answered,
            answer_udp,
            answer_port,
            answer_time,
            rcode,
        };
        Ok(self.inner.lookup_closed(&c))
    }

    /// `lookup_closed` with the facts of a closed lookup record
    /// (pcapdns.match.records.Lookup), derived as the engine derives them from its own.
    fn closed(&mut self, lookup: &Bound<'_, PyAny>) -> PyResult<u8> {
        let inner = &mut self.inner;
        with_outline(false, lookup, |o| inner.lookup_closed(&o.closed()))
    }

    /// The capture ended (after the detectors' own `finish`): forget everything but the
    /// clocks and the counts, what the detectors watch included.
    fn finish(&mut self) {
        self.inner.finish();
    }

    /// Time of the last UDP answer on (client, port, server) remembered, else -inf.
    fn answered_at(&self, client: &str, port: u16, server: &str) -> PyResult<f64> {
        Ok(self.inner.answered_at(addr(client)?, port, addr(server)?))
    }

    /// Time of the last answer to `client` on a port other than `port`, else -inf.
    fn other_answer(&self, client: &str, port: u16) -> PyResult<f64> {
        Ok(self.inner.other_answer(addr(client)?, port))
    }

    /// Hand over every lookup answered over UDP to `client`.
    fn watch_client(&mut self, client: &str) -> PyResult<()> {
        self.inner.watch_client(addr(client)?);
        Ok(())
    }

    fn unwatch_client(&mut self, client: &str) -> PyResult<()> {
        self.inner.unwatch_client(addr(client)?);
        Ok(())
    }

    /// Hand over every lookup answered over UDP on (client, port, server).
    fn watch_port(&mut self, client: &str, port: u16, server: &str) -> PyResult<()> {
        self.inner.watch_port(addr(client)?, port, addr(server)?);
        Ok(())
    }

    fn unwatch_port(&mut self, client: &str, port: u16, server: &str) -> PyResult<()> {
        self.inner.unwatch_port(addr(client)?, port, addr(server)?);
        Ok(())
    }

    /// Hand over every answered lookup from `client` for `qtype` and `qclass` whose name's
    /// first label (lower case, final dots stripped) is `label`.
    fn watch_name(&mut self, client: &str, qtype: u16, qclass: u16, label: &str) -> PyResult<()> {
        self.inner.watch_name(addr(client)?, qtype, qclass, label);
        Ok(())
    }

    fn unwatch_name(&mut self, client: &str, qtype: u16, qclass: u16, label: &str) -> PyResult<()> {
        self.inner.unwatch_name(addr(client)?, qtype, qclass, label);
        Ok(())
    }

    /// Ask for a TICK (at least) once `latest_query` reaches `t` (inf: never); replaces the
    /// time asked before.
    fn wake_at(&mut self, t: f64) {
        self.inner.wake_at(t);
    }

    /// Latest query time of any lookup closed so far (its last attempt's).
    #[getter]
    fn latest_query(&self) -> f64 {
        self.inner.latest_query()
    }

    /// Latest first-query time of any answered lookup with a question name.
    #[getter]
    fn latest_answered_query(&self) -> f64 {
        self.inner.latest_answered_query()
    }

    /// Answers up to this time may have been dropped under the cap.
    #[getter]
    fn forgotten(&self) -> f64 {
        self.inner.forgotten()
    }

    /// Answer memory entries (client ports and clients) dropped under the caps.
    #[getter]
    fn answers_evicted(&self) -> u64 {
        self.inner.answers_evicted()
    }

    /// Seconds after which every answer from a time has reached the detectors.
    #[getter]
    fn settle_time(&self) -> f64 {
        self.settle
    }

    /// Seconds an answer is remembered.
    #[getter]
    fn answer_memory(&self) -> f64 {
        self.memory
    }

    /// (client, port, server) answers and clients held now, and the sweeps so far.
    #[getter]
    fn answers_kept(&self) -> usize {
        self.inner.answers_kept()
    }

    #[getter]
    fn clients_kept(&self) -> usize {
        self.inner.clients_kept()
    }

    #[getter]
    fn sweeps(&self) -> u64 {
        self.inner.sweeps()
    }

    /// The caps it was made with.
    #[getter]
    fn sweep_min(&self) -> usize {
        self.inner.caps().sweep_min
    }

    #[getter]
    fn max_answered(&self) -> usize {
        self.inner.caps().max_answered
    }

    #[getter]
    fn max_clients(&self) -> usize {
        self.inner.caps().max_clients
    }
}

/// Whether a stateless detector may find something in `lookup` (a
/// pcapdns.match.records.Lookup) under `config` (an AnalysisConfig; its `slow`); false only
/// for a lookup answered at its one attempt, with response code 0, no TC bit, within
/// `slow`, not a retransmission or part of a fan-out, no A/AAAA race lost, and no ICMP
/// error about it.
#[pyfunction]
fn may_be_flagged(lookup: &Bound<'_, PyAny>, config: &Bound<'_, PyAny>) -> PyResult<bool> {
    let slow: f64 = config.getattr(intern!(lookup.py(), "slow"))?.extract()?;
    with_outline(true, lookup, |o| o.may_be_flagged(slow))
}

/// Tell the facts the Python detectors hold one closed lookup of the engine; say what to do
/// with it: `facts::FLAGGED` or `facts::WATCHED` (hand it to the detectors), `facts::TICK`
/// (let time pass in the window detectors) or `facts::QUIET`.
///
/// The facts are borrowed for this call only. Call it for every closed lookup in the order
/// they close, and for the next one only after the detectors were given this one when it
/// was handed over. Raises (`PyBorrowMutError`) only when the facts are borrowed already,
/// which no Python code can do while this runs.
#[allow(dead_code)] // the engine's hand-over calls it
pub(crate) fn decide(
    facts: &Py<Facts>,
    py: Python<'_>,
    lookup: &Lookup,
    cfg: &Config,
) -> PyResult<u8> {
    let mut f = facts.bind(py).try_borrow_mut()?;
    Ok(f.inner.decide(lookup, cfg.slow))
}

/// Add `Facts`, `may_be_flagged` and the constants to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Facts>()?;
    m.add_function(wrap_pyfunction!(may_be_flagged, m)?)?;
    m.add("QUIET", facts::QUIET)?;
    m.add("TICK", facts::TICK)?;
    m.add("WATCHED", facts::WATCHED)?;
    m.add("STALE_WINDOW", facts::STALE_WINDOW)?;
    Ok(())
}
