//! `pcapdns._core.parse`: the DNS stage (header and question) for tests and tools, and a
//! Python `pcapdns.dns.message.Message` read back into a core message for the bindings
//! that take one (the duplicate filter, the matcher).

use std::net::IpAddr;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::dns::{self, DnsError, ErrorKind};
use crate::types::{Message, Payload, Transport};

use super::convert::Classes;

/// "udp" or "tcp" as a transport.
pub(crate) fn transport(text: &str) -> PyResult<Transport> {
    match text {
        "udp" => Ok(Transport::Udp),
        "tcp" => Ok(Transport::Tcp),
        _ => Err(PyValueError::new_err(format!(
            "transport must be 'udp' or 'tcp', not {text:?}"
        ))),
    }
}

/// An address in text form.
pub(crate) fn address(text: &str) -> PyResult<IpAddr> {
    text.parse()
        .map_err(|_| PyValueError::new_err(format!("not an IP address: {text:?}")))
}

/// The pcapdns.dns.message exception of a DNS error, with its text.
fn dns_error(py: Python<'_>, e: &DnsError) -> PyErr {
    let class = match e.kind {
        ErrorKind::Truncated => "DnsTruncated",
        ErrorKind::Malformed => "DnsMalformed",
    };
    let made = py
        .import("pcapdns.dns.message")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((e.text(),)));
    match made {
        Ok(err) => PyErr::from_value(err),
        Err(err) => err,
    }
}

/// Decode the header and first question of a DNS message carried as described (the
/// fields of a payload): a pcapdns.dns.message.Message. Raises DnsTruncated or
/// DnsMalformed with the reason the analysis reports for such a message.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn parse(
    py: Python<'_>,
    frame: u64,
    time: f64,
    iface: u32,
    transport: &str,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    data: &[u8],
) -> PyResult<Py<PyAny>> {
    let p = Payload {
        frame,
        time,
        iface,
        transport: self::transport(transport)?,
        src: address(src)?,
        sport,
        dst: address(dst)?,
        dport,
        data: data.to_vec(),
        tunnel: None,
    };
    let m = dns::parse(p).map_err(|e| dns_error(py, &e))?;
    Classes::new(py)?.message(py, &m)
}

/// A pcapdns.dns.message.Message (or any object with its fields) as a core message.
pub(crate) fn message_from(m: &Bound<'_, PyAny>) -> PyResult<Message> {
    macro_rules! get {
        ($name:literal) => {
            m.getattr($name)?.extract()?
        };
    }
    let transport_text: String = get!("transport");
    let src: String = get!("src");
    let dst: String = get!("dst");
    let qname: Option<String> = get!("qname");
    let data = m.getattr("data")?;
    let data = data.cast::<PyBytes>()?;
    Ok(Message {
        frame: get!("frame"),
        time: get!("time"),
        iface: get!("iface"),
        transport: transport(&transport_text)?,
        src: address(&src)?,
        sport: get!("sport"),
        dst: address(&dst)?,
        dport: get!("dport"),
        id: get!("id"),
        flags: get!("flags"),
        qdcount: get!("qdcount"),
        ancount: get!("ancount"),
        qname: qname.map(crate::types::QName::from),
        qtype: get!("qtype"),
        qclass: get!("qclass"),
        data: data.as_bytes().into(),
        // The legs, and the tunnel they carry, are evidence for the outputs, not read by
        // the matcher.
        legs: Default::default(),
    })
}
