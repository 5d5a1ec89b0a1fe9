//! Stage 3: DNS payload bytes -> a DNS message (header and question).
//!
//! Only the header and the first question are decoded on the hot path (RFC 1035 section
//! 4.1). Names come out in presentation form with RFC 4343 escapes (`\.` inside a label,
//! `\DDD` for bytes outside printable ASCII), because captured names are attacker-controlled
//! and must survive JSON, terminals and HTML unchanged. Answer records are decoded by
//! `records::answer_section`, only when the user asks for them.
//!
//! Parsing a message allocates the message's copy of its bytes, and its question name
//! unless a message in memory has the same one (`Names`): the usual name is one copy of
//! its wire bytes, any other is built in place.

mod intern;
mod name;
pub mod names;
pub mod rdata;
pub mod records;
pub mod svcb;
mod text;
pub mod wire;

use std::borrow::Cow;
use std::fmt;
use std::rc::Rc;

use crate::decode::PayloadRef;
use crate::types::{Bytes, Message, Msg, Payload, QName};

pub use intern::Names;
pub use name::{read_name, MAX_NAME, MAX_POINTERS};

/// The response code, in the low four bits of the flags word.
pub const RCODE_MASK: u16 = 0x000F;
pub use crate::types::{QR, TC};

/// The operation code of a flags word (bits 11-14).
pub fn opcode(flags: u16) -> u16 {
    (flags >> 11) & 0xF
}

/// Which of the two decode error families an error belongs to (the Python side's
/// `Truncated` and `Malformed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The message ends before the header or question it announces.
    Truncated,
    /// The message is not well formed (bad label, compression loop, over-long name).
    Malformed,
}

/// A DNS message that did not decode. Its text is the reason shown to the user (the first
/// malformed frames are listed with it), word for word as the analysis has always written
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsError {
    pub kind: ErrorKind,
    text: Cow<'static, str>,
}

impl DnsError {
    pub(crate) fn truncated(text: impl Into<Cow<'static, str>>) -> Self {
        DnsError {
            kind: ErrorKind::Truncated,
            text: text.into(),
        }
    }

    pub(crate) fn malformed(text: impl Into<Cow<'static, str>>) -> Self {
        DnsError {
            kind: ErrorKind::Malformed,
            text: text.into(),
        }
    }

    /// The reason, e.g. "compression pointer loop".
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for DnsError {}

const HEADER: usize = 12;

/// Decode the header and first question of the DNS message in `p`.
///
/// Errors:
/// - truncated: fewer than 12 bytes, or the question runs past the end;
/// - malformed: a reserved label type, a compression loop (more than `MAX_POINTERS`
///   jumps, or a pointer to itself), or a name longer than 255 bytes.
pub fn parse(p: Payload) -> Result<Message, DnsError> {
    parse_ref(&p.as_ref())
}

/// `parse` of a payload whose bytes are lent: the message gets its own copy of them.
pub fn parse_ref(p: &PayloadRef<'_>) -> Result<Message, DnsError> {
    parse_into(p, |data, pos| {
        let mut buf = name::NameBuf::new();
        let after = name::read_qname_into(data, pos, &mut buf)?;
        Ok((QName::from(buf.to_boxed_str()), after))
    })
}

/// `parse_ref`, the question name shared through `names` with the other messages in
/// memory that ask or answer it.
pub fn parse_with(p: &PayloadRef<'_>, names: &mut Names) -> Result<Message, DnsError> {
    parse_into(p, |data, pos| names.question(data, pos))
}

/// `parse_with`, the message made shared (`Msg`) where it is built: the engine's form,
/// which spares moving the message into its shared allocation.
pub fn parse_shared(p: &PayloadRef<'_>, names: &mut Names) -> Result<Msg, DnsError> {
    let h = parse_head(p.data, |data, pos| names.question(data, pos))?;
    Ok(Rc::new(h.message(p)))
}

/// Parse `p`, reading its question name with `question`.
fn parse_into(
    p: &PayloadRef<'_>,
    question: impl FnOnce(&[u8], usize) -> Result<(QName, usize), DnsError>,
) -> Result<Message, DnsError> {
    Ok(parse_head(p.data, question)?.message(p))
}

/// What a message's header and question say.
struct Head {
    id: u16,
    flags: u16,
    qdcount: u16,
    ancount: u16,
    qname: Option<QName>,
    qtype: u16,
    qclass: u16,
}

impl Head {
    /// The message of `p` that says this.
    #[inline(always)]
    fn message(self, p: &PayloadRef<'_>) -> Message {
        Message {
            frame: p.frame,
            time: p.time,
            iface: p.iface,
            transport: p.transport,
            src: p.src,
            sport: p.sport,
            dst: p.dst,
            dport: p.dport,
            id: self.id,
            flags: self.flags,
            qdcount: self.qdcount,
            ancount: self.ancount,
            qname: self.qname,
            qtype: self.qtype,
            qclass: self.qclass,
            data: Bytes::new(p.data),
            legs: crate::legs::Legs::found_in(p.tunnel.copied()),
        }
    }
}

/// The header and first question of the DNS message `data`.
#[inline(always)]
fn parse_head(
    data: &[u8],
    question: impl FnOnce(&[u8], usize) -> Result<(QName, usize), DnsError>,
) -> Result<Head, DnsError> {
    let h: [u8; HEADER] = match data.get(..HEADER).and_then(|s| s.try_into().ok()) {
        Some(h) => h,
        None => {
            return Err(DnsError::truncated(format!(
                "{} bytes, shorter than the 12-byte DNS header",
                data.len()
            )))
        }
    };
    let id = u16::from_be_bytes([h[0], h[1]]);
    let flags = u16::from_be_bytes([h[2], h[3]]);
    let qdcount = u16::from_be_bytes([h[4], h[5]]);
    let ancount = u16::from_be_bytes([h[6], h[7]]);
    let (qname, qtype, qclass) = if qdcount != 0 {
        let (qname, pos) = question(data, HEADER)?;
        let tail = match data.get(pos..pos.saturating_add(4)) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => {
                return Err(DnsError::truncated(
                    "question ends before its type and class",
                ))
            }
        };
        (
            Some(qname),
            u16::from_be_bytes([tail[0], tail[1]]),
            u16::from_be_bytes([tail[2], tail[3]]),
        )
    } else {
        (None, 0, 0)
    };
    Ok(Head {
        id,
        flags,
        qdcount,
        ancount,
        qname,
        qtype,
        qclass,
    })
}

/// The question name as the matcher keys it: lower case, exactly as Python's `str.lower()`
/// would make it. A parsed name is ASCII (escapes cover every other byte), so ASCII case
/// folding is that; borrowed when the name has no upper-case letter.
pub fn key_name(qname: &str) -> Cow<'_, str> {
    if qname.is_ascii() {
        if qname.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(qname.to_ascii_lowercase())
        } else {
            Cow::Borrowed(qname)
        }
    } else {
        // Not a name `parse` makes; Unicode lower case, as Python's.
        Cow::Owned(qname.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Transport;
    use std::net::{IpAddr, Ipv4Addr};

    fn payload(data: Vec<u8>) -> Payload {
        Payload {
            frame: 7,
            time: 1_700_000_000.25,
            iface: 3,
            transport: Transport::Udp,
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 3, 7)),
            sport: 40000,
            dst: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
            dport: 53,
            data,
            tunnel: None,
        }
    }

    fn header(qdcount: u16) -> Vec<u8> {
        let mut h = vec![0x12, 0x34, 0x81, 0x83, 0, 0, 0, 2, 0, 0, 0, 0];
        h[4..6].copy_from_slice(&qdcount.to_be_bytes());
        h
    }

    fn with_name(name: &[u8]) -> Vec<u8> {
        let mut d = header(1);
        d.extend_from_slice(name);
        d.extend_from_slice(&[0, 28, 0, 1]);
        d
    }

    #[test]
    fn header_and_question() {
        let m = parse(payload(with_name(b"\x03Www\x07example\x03com\x00"))).unwrap();
        assert_eq!(
            (m.id, m.flags, m.qdcount, m.ancount),
            (0x1234, 0x8183, 1, 2)
        );
        assert_eq!(m.qname.as_deref(), Some("Www.example.com"));
        assert_eq!((m.qtype, m.qclass), (28, 1));
        assert_eq!(
            (m.frame, m.time, m.iface, m.sport, m.dport),
            (7, 1_700_000_000.25, 3, 40000, 53)
        );
        assert!(m.is_response() && m.rcode() == 3 && !m.truncated());
        assert_eq!(opcode(m.flags), 0);
        assert_eq!(&*m.data, &with_name(b"\x03Www\x07example\x03com\x00")[..]);
    }

    #[test]
    fn root_and_no_question() {
        let m = parse(payload(with_name(b"\x00"))).unwrap();
        assert_eq!(m.qname.as_deref(), Some("."));
        let m = parse(payload(header(0))).unwrap();
        assert_eq!((m.qname, m.qtype, m.qclass), (None, 0, 0));
    }

    #[test]
    fn short_header_and_short_question() {
        let e = parse(payload(vec![0; 4])).unwrap_err();
        assert_eq!(
            (e.kind, e.to_string().as_str()),
            (
                ErrorKind::Truncated,
                "4 bytes, shorter than the 12-byte DNS header"
            )
        );
        let e = parse(payload(header(1))).unwrap_err();
        assert_eq!(e.text(), "name runs past the end of the message");
        let mut d = header(1);
        d.extend_from_slice(b"\x00\x00\x01\x00");
        let e = parse(payload(d)).unwrap_err();
        assert_eq!(e.text(), "question ends before its type and class");
    }

    #[test]
    fn key_name_lowers_ascii_only_when_needed() {
        assert!(matches!(
            key_name("www.example"),
            Cow::Borrowed("www.example")
        ));
        assert_eq!(key_name("WwW.Ex\\065mple"), "www.ex\\065mple");
        assert_eq!(key_name("\\\\A\\."), "\\\\a\\.");
    }
}
