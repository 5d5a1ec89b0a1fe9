//! The core's records as the Python records the detectors and outputs read
//! (pcapdns.dns.message.Message, pcapdns.match.records.Transaction/Lookup/Orphan).
//!
//! Only the lookups handed to Python are converted: each Python object costs about as much
//! as parsing a packet.

use std::collections::HashMap;
use std::net::IpAddr;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::decode::tunnel::Tunnel;
use crate::matcher::{Lookup, Orphan, Transaction};
use crate::types::{addr_text, Message};

/// The fields of pcapdns.dns.message.Message, pcapdns.match.records.Transaction and
/// Lookup, in order.
const MESSAGE_FIELDS: usize = 18;
const TRANSACTION_FIELDS: usize = 22;
const LOOKUP_FIELDS: usize = 5;

/// Addresses kept as Python strings at most; past it the cache starts again.
const MAX_ADDRS: usize = 1 << 16;

/// The Python classes, looked up once.
///
/// Message, Transaction and Lookup are NamedTuples; an instance is made by `tuple.__new__`
/// on the class with every field given, which skips the class's own `__new__` (Python code
/// that takes keywords and defaults) and halves the cost of each record. `new` checks the
/// field counts, so that a field added in Python and not here fails at once.
pub struct Classes {
    tuple_new: Py<PyAny>,
    message: Py<PyAny>,
    leg: Py<PyAny>,
    tunnel: Py<PyAny>,
    transaction: Py<PyAny>,
    lookup: Py<PyAny>,
    orphan: Py<PyAny>,
    udp: Py<PyString>,
    tcp: Py<PyString>,
    addrs: HashMap<IpAddr, Py<PyString>>,
}

impl Classes {
    pub fn new(py: Python<'_>) -> PyResult<Classes> {
        let module = py.import("pcapdns.dns.message")?;
        let message = module.getattr("Message")?.unbind();
        let leg = module.getattr("Leg")?.unbind();
        let tunnel = module.getattr("Tunnel")?.unbind();
        let records = py.import("pcapdns.match.records")?;
        let transaction = records.getattr("Transaction")?;
        let lookup = records.getattr("Lookup")?;
        for (class, fields) in [
            (message.bind(py), MESSAGE_FIELDS),
            (&transaction, TRANSACTION_FIELDS),
            (&lookup, LOOKUP_FIELDS),
        ] {
            let n = class.getattr("_fields")?.len()?;
            if n != fields {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "{} has {n} fields; the core fills in {fields}",
                    class.getattr("__name__")?
                )));
            }
        }
        Ok(Classes {
            tuple_new: py
                .import("builtins")?
                .getattr("tuple")?
                .getattr("__new__")?
                .unbind(),
            message,
            leg,
            tunnel,
            transaction: transaction.unbind(),
            lookup: lookup.unbind(),
            orphan: records.getattr("Orphan")?.unbind(),
            udp: PyString::intern(py, "udp").unbind(),
            tcp: PyString::intern(py, "tcp").unbind(),
            addrs: HashMap::new(),
        })
    }

    /// An instance of the NamedTuple `class` holding `fields` (all of them, in order).
    fn make(
        &self,
        py: Python<'_>,
        class: &Py<PyAny>,
        fields: Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        Ok(self
            .tuple_new
            .bind(py)
            .call1((class.bind(py), fields))?
            .unbind())
    }

    fn addr(&mut self, py: Python<'_>, a: &IpAddr) -> Py<PyString> {
        if let Some(s) = self.addrs.get(a) {
            return s.clone_ref(py);
        }
        if self.addrs.len() >= MAX_ADDRS {
            self.addrs.clear();
        }
        let s = PyString::new(py, &addr_text(a)).unbind();
        self.addrs.insert(*a, s.clone_ref(py));
        s
    }

    pub fn message(&mut self, py: Python<'_>, m: &Message) -> PyResult<Py<PyAny>> {
        let transport = match m.transport {
            crate::types::Transport::Udp => self.udp.clone_ref(py),
            crate::types::Transport::Tcp => self.tcp.clone_ref(py),
        };
        let src = self.addr(py, &m.src);
        let dst = self.addr(py, &m.dst);
        let qname = match &m.qname {
            Some(q) => PyString::new(py, q).into_any().unbind(),
            None => py.None(),
        };
        let args: [Py<PyAny>; MESSAGE_FIELDS] = [
            m.frame.into_pyobject(py)?.into_any().unbind(),
            m.time.into_pyobject(py)?.into_any().unbind(),
            m.iface.into_pyobject(py)?.into_any().unbind(),
            transport.into_any(),
            src.into_any(),
            m.sport.into_pyobject(py)?.into_any().unbind(),
            dst.into_any(),
            m.dport.into_pyobject(py)?.into_any().unbind(),
            m.id.into_pyobject(py)?.into_any().unbind(),
            m.flags.into_pyobject(py)?.into_any().unbind(),
            m.qdcount.into_pyobject(py)?.into_any().unbind(),
            m.ancount.into_pyobject(py)?.into_any().unbind(),
            qname,
            m.qtype.into_pyobject(py)?.into_any().unbind(),
            m.qclass.into_pyobject(py)?.into_any().unbind(),
            PyBytes::new(py, &m.data).into_any().unbind(),
            self.legs(py, m)?,
            self.tunnel(py, m.legs.tunnel())?,
        ];
        self.make(py, &self.message, PyTuple::new(py, args)?)
    }

    /// A message's legs as a tuple of pcapdns.dns.message.Leg (the empty tuple, shared,
    /// for the message of a capture on one interface).
    fn legs(&mut self, py: Python<'_>, m: &Message) -> PyResult<Py<PyAny>> {
        if !m.legs.any() {
            return Ok(PyTuple::empty(py).into_any().unbind());
        }
        let mut out = Vec::new();
        for l in m.legs.get().legs {
            let addr = self.addr(py, &l.addr);
            let fields = PyTuple::new(
                py,
                [
                    l.frame.into_pyobject(py)?.into_any().unbind(),
                    l.time.into_pyobject(py)?.into_any().unbind(),
                    l.iface.into_pyobject(py)?.into_any().unbind(),
                    addr.into_any(),
                ],
            )?;
            out.push(self.make(py, &self.leg, fields)?);
        }
        Ok(PyTuple::new(py, out)?.into_any().unbind())
    }

    /// A tunnel as a pcapdns.dns.message.Tunnel, or None.
    fn tunnel(&mut self, py: Python<'_>, t: Option<Tunnel>) -> PyResult<Py<PyAny>> {
        let Some(t) = t else {
            return Ok(py.None());
        };
        let fields = PyTuple::new(
            py,
            [
                PyString::intern(py, t.kind.as_str()).into_any().unbind(),
                self.addr(py, &t.outer_src).into_any(),
                self.addr(py, &t.outer_dst).into_any(),
            ],
        )?;
        self.make(py, &self.tunnel, fields)
    }

    pub fn transaction(&mut self, py: Python<'_>, t: &Transaction) -> PyResult<Py<PyAny>> {
        let query = self.message(py, &t.query)?;
        let response = match &t.response {
            Some(r) => Some(self.message(py, r)?),
            None => None,
        };
        let pair = match &t.pair_transaction {
            Some(p) => Some(self.transaction(py, p)?),
            None => None,
        };
        let args: [Py<PyAny>; TRANSACTION_FIELDS] = [
            query,
            response.into_pyobject(py)?.unbind(),
            t.lookup_id.into_pyobject(py)?.into_any().unbind(),
            t.attempt.into_pyobject(py)?.into_any().unbind(),
            t.retransmission
                .map(|k| k.as_str())
                .into_pyobject(py)?
                .unbind(),
            t.fanout_of.into_pyobject(py)?.unbind(),
            t.tc_followed_by_tcp.into_pyobject(py)?.unbind(),
            t.tc_next_query_frame.into_pyobject(py)?.unbind(),
            t.pair_frame.into_pyobject(py)?.unbind(),
            pybool(py, t.pair_concurrent),
            pybool(py, t.pair_race_lost),
            t.pair_answered.into_pyobject(py)?.unbind(),
            PyTuple::new(py, &t.icmp_frames)?.into_any().unbind(),
            PyTuple::new(py, &t.late_icmp_frames)?.into_any().unbind(),
            t.pair_response_frame.into_pyobject(py)?.unbind(),
            pair.into_pyobject(py)?.unbind(),
            pybool(py, t.tcp_fallback),
            pybool(py, t.pair_lost_retried),
            t.leg_fault.map(|f| f.as_str()).into_pyobject(py)?.unbind(),
            t.upstream_of.into_pyobject(py)?.unbind(),
            t.forwarded_as.into_pyobject(py)?.unbind(),
            // The query's tunnel, else its answer's (a capture that saw only one way
            // through the overlay).
            self.tunnel(
                py,
                t.query
                    .legs
                    .tunnel()
                    .or_else(|| t.response.as_ref().and_then(|r| r.legs.tunnel())),
            )?,
        ];
        self.make(py, &self.transaction, PyTuple::new(py, args)?)
    }

    pub fn lookup(&mut self, py: Python<'_>, l: &Lookup) -> PyResult<Py<PyAny>> {
        let mut attempts = Vec::with_capacity(l.attempts.len());
        for t in &l.attempts {
            attempts.push(self.transaction(py, t)?);
        }
        // The answer is the same object as its attempt.
        let answer = match l.answer {
            Some(i) if i < attempts.len() => attempts[i].clone_ref(py),
            _ => py.None(),
        };
        let args = (
            l.id,
            PyTuple::new(py, attempts)?,
            answer,
            l.open_at_end,
            l.end,
        );
        Ok(self.lookup.bind(py).call1(args)?.unbind())
    }

    pub fn orphan(&mut self, py: Python<'_>, o: &Orphan) -> PyResult<Py<PyAny>> {
        let message = match &o.message {
            Some(m) => Some(self.message(py, m)?),
            None => None,
        };
        let args = (
            o.kind.as_str(),
            message,
            o.frame,
            o.time,
            o.client.as_str(),
            o.server.as_str(),
            o.qname.as_str(),
            o.qtype,
            o.reason.as_str(),
        );
        Ok(self.orphan.bind(py).call1(args)?.unbind())
    }
}

fn pybool(py: Python<'_>, b: bool) -> Py<PyAny> {
    pyo3::types::PyBool::new(py, b)
        .to_owned()
        .into_any()
        .unbind()
}
