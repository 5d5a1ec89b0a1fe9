//! The decode stage (core/src/decode) for Python's tests and tools: the frame decoder,
//! and its TCP and fragment reassemblers on their own.
//!
//! Conversion only: every decision is the stage's. What the decoder hands on crosses as
//! the NamedTuples pcapdns.records.Payload and pcapdns.records.IcmpQuote (addresses in
//! inet_ntop text), its counters as plain dicts.

use std::net::IpAddr;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::decode::fragments::{self, FragmentKey};
use crate::decode::tcp::{self, FlowKey};
use crate::types::{addr_text, Decoded, Record};

fn ip(text: &str) -> PyResult<IpAddr> {
    text.parse()
        .map_err(|_| PyValueError::new_err(format!("{text:?} is not an IP address")))
}

/// The ports given as any iterable of numbers (a set, a frozenset, a list).
fn port_list(ports: &Bound<'_, PyAny>) -> PyResult<Vec<u16>> {
    let mut out = Vec::new();
    for p in ports.try_iter()? {
        out.push(p?.extract::<u16>()?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn tcp_stats<'py>(py: Python<'py>, r: &tcp::TcpReassembler) -> PyResult<Bound<'py, PyDict>> {
    let t = &r.stats;
    let d = PyDict::new(py);
    d.set_item("gaps", t.gaps)?;
    d.set_item("unframed_bytes", t.unframed_bytes)?;
    d.set_item("incomplete_messages", t.incomplete_messages)?;
    d.set_item("empty_messages", t.empty_messages)?;
    d.set_item("evicted_flows", t.evicted_flows)?;
    d.set_item("evicted_bytes", t.evicted_bytes)?;
    d.set_item("buffered", r.buffered)?;
    d.set_item("flows", r.flows())?;
    Ok(d)
}

fn fragment_stats<'py>(
    py: Python<'py>,
    f: &fragments::FragmentReassembler,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("reassembled", f.reassembled)?;
    d.set_item("dropped", f.dropped)?;
    d.set_item("evicted", f.evicted)?;
    d.set_item("evicted_bytes", f.evicted_bytes)?;
    d.set_item("buffered", f.buffered)?;
    d.set_item("pending", f.pending())?;
    Ok(d)
}

/// Links, IP (with fragments), UDP, TCP (with reassembly) and ICMP errors quoting DNS:
/// frames in, Payload and IcmpQuote records out.
#[pyclass(unsendable, module = "pcapdns._core")]
pub struct FrameDecoder {
    inner: crate::decode::FrameDecoder,
    payload: Py<PyAny>,
    icmp_quote: Py<PyAny>,
    record: Record,
    out: Vec<Decoded>,
}

impl FrameDecoder {
    fn convert<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for item in self.out.drain(..) {
            let obj = match item {
                Decoded::Payload(p) => self.payload.bind(py).call1((
                    p.frame,
                    p.time,
                    p.iface,
                    p.transport.as_str(),
                    addr_text(&p.src),
                    p.sport,
                    addr_text(&p.dst),
                    p.dport,
                    PyBytes::new(py, &p.data),
                ))?,
                Decoded::Icmp(q) => self.icmp_quote.bind(py).call1((
                    q.frame,
                    q.time,
                    q.iface,
                    addr_text(&q.reporter),
                    q.icmp_type,
                    q.icmp_code,
                    addr_text(&q.src),
                    q.sport,
                    addr_text(&q.dst),
                    q.dport,
                    PyBytes::new(py, &q.data),
                ))?,
            };
            list.append(obj)?;
        }
        Ok(list)
    }
}

#[pymethods]
impl FrameDecoder {
    /// `ports` carry DNS; `tcp_bytes` and `fragment_bytes` are the reassemblers' byte
    /// budgets (AnalysisConfig's max_tcp_buffer_bytes and max_fragment_buffer_bytes).
    #[new]
    #[pyo3(signature = (ports, tcp_bytes = tcp::MAX_BYTES, fragment_bytes = fragments::MAX_BYTES))]
    fn new(
        py: Python<'_>,
        ports: &Bound<'_, PyAny>,
        tcp_bytes: usize,
        fragment_bytes: usize,
    ) -> PyResult<FrameDecoder> {
        let records = py.import("pcapdns.records")?;
        Ok(FrameDecoder {
            inner: crate::decode::FrameDecoder::with_limits(
                &port_list(ports)?,
                tcp_bytes,
                fragment_bytes,
            ),
            payload: records.getattr("Payload")?.unbind(),
            icmp_quote: records.getattr("IcmpQuote")?.unbind(),
            record: Record {
                frame: 0,
                time: 0.0,
                link_type: 0,
                iface: 0,
                data: Vec::new(),
            },
            out: Vec::new(),
        })
    }

    /// The DNS payloads and ICMP quotes in one frame (often none).
    fn decode<'py>(
        &mut self,
        py: Python<'py>,
        frame: u64,
        time: f64,
        link_type: u32,
        iface: u32,
        data: &[u8],
    ) -> PyResult<Bound<'py, PyList>> {
        let r = &mut self.record;
        (r.frame, r.time, r.link_type, r.iface) = (frame, time, link_type, iface);
        r.data.clear();
        r.data.extend_from_slice(data);
        self.inner.decode(&self.record, &mut self.out);
        self.convert(py)
    }

    /// End of capture: the messages still held in TCP reassembly (what cannot complete
    /// is counted).
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.inner.finish(&mut self.out);
        self.convert(py)
    }

    /// The counters: {"decode": DecodeStats, "tcp": TcpStats with the bytes held
    /// ("buffered") and directions followed ("flows"), "fragments": reassembled, dropped,
    /// evicted, evicted_bytes, buffered, and datagrams open ("pending")}.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.inner.stats;
        let decode = PyDict::new(py);
        decode.set_item("non_ip", s.non_ip)?;
        decode.set_item("not_dns", s.not_dns)?;
        decode.set_item("bad_ip", s.bad_ip)?;
        decode.set_item("fragments", s.fragments)?;
        decode.set_item("icmp_errors", s.icmp_errors)?;
        let d = PyDict::new(py);
        d.set_item("decode", decode)?;
        d.set_item("tcp", tcp_stats(py, &self.inner.tcp)?)?;
        d.set_item("fragments", fragment_stats(py, &self.inner.fragments)?)?;
        Ok(d)
    }
}

/// DNS over TCP on its own: segments of one direction of a connection, keyed by
/// (src, sport, dst, dport), in; whole DNS messages out.
#[pyclass(unsendable, module = "pcapdns._core")]
pub struct TcpReassembler {
    inner: tcp::TcpReassembler,
}

#[pymethods]
impl TcpReassembler {
    #[new]
    #[pyo3(signature = (max_bytes = tcp::MAX_BYTES))]
    fn new(max_bytes: usize) -> TcpReassembler {
        TcpReassembler {
            inner: tcp::TcpReassembler::new(max_bytes),
        }
    }

    /// Feed one segment; return `(message, frame, time)` for every DNS message it
    /// completes (without the length prefix). `ack` is the acknowledgment number, used
    /// when the ACK flag is set.
    #[pyo3(signature = (key, seq, flags, payload, frame, time, ack = None))]
    #[allow(clippy::too_many_arguments)]
    fn segment<'py>(
        &mut self,
        py: Python<'py>,
        key: (String, u16, String, u16),
        seq: u32,
        flags: u8,
        payload: &[u8],
        frame: u64,
        time: f64,
        ack: Option<u32>,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = FlowKey {
            src: ip(&key.0)?,
            sport: key.1,
            dst: ip(&key.2)?,
            dport: key.3,
        };
        // Without an acknowledgment number the ACK flag says nothing.
        let flags = if ack.is_none() {
            flags & !tcp::ACK
        } else {
            flags
        };
        let mut done: Vec<(Vec<u8>, u64, f64)> = Vec::new();
        self.inner.segment(
            key,
            seq,
            flags,
            payload,
            frame,
            time,
            ack.unwrap_or(0),
            &mut |m, f, t| done.push((m, f, t)),
        );
        let out = PyList::empty(py);
        for (m, f, t) in done {
            out.append((PyBytes::new(py, &m), f, t))?;
        }
        Ok(out)
    }

    /// End of capture: `((src, sport, dst, dport), message, frame, time)` for what waited
    /// beyond gaps and can now be framed; the rest is counted.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut done: Vec<(FlowKey, Vec<u8>, u64, f64)> = Vec::new();
        self.inner
            .finish(&mut |k, m, f, t| done.push((*k, m, f, t)));
        let out = PyList::empty(py);
        for (k, m, f, t) in done {
            let key = (addr_text(&k.src), k.sport, addr_text(&k.dst), k.dport);
            out.append((key, PyBytes::new(py, &m), f, t))?;
        }
        Ok(out)
    }

    /// TcpStats, the bytes held ("buffered") and the directions followed ("flows").
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        tcp_stats(py, &self.inner)
    }
}

/// IP fragment reassembly on its own: fragments keyed by (src, dst, IP ID, protocol,
/// interface) in, whole payloads out.
#[pyclass(unsendable, module = "pcapdns._core")]
pub struct FragmentReassembler {
    inner: fragments::FragmentReassembler,
}

#[pymethods]
impl FragmentReassembler {
    #[new]
    #[pyo3(signature = (max_bytes = fragments::MAX_BYTES))]
    fn new(max_bytes: usize) -> FragmentReassembler {
        FragmentReassembler {
            inner: fragments::FragmentReassembler::new(max_bytes),
        }
    }

    /// Add one fragment (`offset` in bytes, `more` the MF flag); return the whole payload
    /// when it completes the datagram, else None.
    fn add<'py>(
        &mut self,
        py: Python<'py>,
        key: (String, String, u32, u8, u32),
        offset: u32,
        more: bool,
        data: &[u8],
        time: f64,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = FragmentKey {
            src: ip(&key.0)?,
            dst: ip(&key.1)?,
            ident: key.2,
            proto: key.3,
            iface: key.4,
        };
        Ok(self
            .inner
            .add(key, offset as usize, more, data, time)
            .map(|whole| PyBytes::new(py, &whole)))
    }

    /// reassembled, dropped, evicted, evicted_bytes, the bytes held ("buffered") and the
    /// datagrams open ("pending").
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        fragment_stats(py, &self.inner)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FrameDecoder>()?;
    m.add_class::<TcpReassembler>()?;
    m.add_class::<FragmentReassembler>()?;
    m.add("TCP_SEGMENT_OVERHEAD", tcp::SEGMENT_OVERHEAD)?;
    m.add("FRAGMENT_PIECE_OVERHEAD", fragments::PIECE_OVERHEAD)?;
    m.add("FRAGMENT_MAX_AGE", fragments::MAX_AGE)?;
    Ok(())
}
