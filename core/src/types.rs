//! The records that flow between the stages.

use std::net::IpAddr;
use std::rc::Rc;

/// Seconds since the epoch, as a float: the analysis' unit of time everywhere.
pub type Time = f64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// One record of the merged capture, numbered in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Frame number in the merged capture, 1-based.
    pub frame: u64,
    pub time: Time,
    /// The file's (or pcapng interface's) link type.
    pub link_type: u32,
    /// pcapng interface id, 0 for classic pcap.
    pub iface: u32,
    pub data: Vec<u8>,
}

/// One DNS message's bytes as carried by UDP or by a reassembled TCP stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    /// Frame number; for TCP, the segment that completed the message.
    pub frame: u64,
    pub time: Time,
    /// Capture interface: SLL2 ifindex, pcapng interface id, else 0.
    pub iface: u32,
    pub transport: Transport,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// The DNS message (for TCP, without the 2-byte length prefix).
    pub data: Vec<u8>,
    /// The outermost tunnel the message was found in, if any.
    pub tunnel: Option<crate::decode::tunnel::Tunnel>,
}

/// An ICMP/ICMPv6 destination-unreachable error that quotes a DNS datagram.
#[derive(Clone, Debug, PartialEq)]
pub struct IcmpQuote {
    pub frame: u64,
    pub time: Time,
    pub iface: u32,
    /// Who sent the error (the host whose port was closed).
    pub reporter: IpAddr,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// The quoted datagram's addresses and ports.
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// As much of the quoted DNS message as the error carries.
    pub data: Vec<u8>,
}

/// What the frame decoder hands on.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Payload(Payload),
    Icmp(IcmpQuote),
}

/// One DNS message: the header and the question, with the whole message kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub frame: u64,
    pub time: Time,
    pub iface: u32,
    pub transport: Transport,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub id: u16,
    /// The 16-bit flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    /// Question name in presentation form without the final dot ("." for the root), with
    /// RFC 4343 escapes; None when the message has no question. Shared by the messages in
    /// memory with the same name (`dns::Names`).
    pub qname: Option<QName>,
    pub qtype: u16,
    pub qclass: u16,
    /// The whole DNS message.
    pub data: Bytes,
    /// Copies of it on other interfaces that the duplicate filter dropped, and the
    /// overlay tunnel it was found in (`legs`).
    pub legs: crate::legs::Legs,
}

/// Bytes of a DNS message kept in the message itself up to this many (every query of a
/// busy cluster, and most answers; the message then fits 192 bytes with its reference
/// counts).
pub const INLINE: usize = 94;

/// A DNS message's bytes, read as a slice: in the message when they fit (`INLINE`), so
/// that a message costs one allocation, else shared on the heap.
#[derive(Clone)]
pub struct Bytes(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Rc<[u8]>),
}

impl Bytes {
    pub fn new(data: &[u8]) -> Bytes {
        let mut buf = [0u8; INLINE];
        match buf.get_mut(..data.len()) {
            Some(head) => {
                head.copy_from_slice(data);
                Bytes(Repr::Inline {
                    len: data.len() as u8,
                    buf,
                })
            }
            None => Bytes(Repr::Heap(Rc::from(data))),
        }
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for Bytes {
    fn from(data: &[u8]) -> Bytes {
        Bytes::new(data)
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(data: Vec<u8>) -> Bytes {
        Bytes::new(&data)
    }
}

impl From<Box<[u8]>> for Bytes {
    fn from(data: Box<[u8]>) -> Bytes {
        Bytes::new(&data)
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

impl Eq for Bytes {}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// A question name: its text (read as a `str`), shared by the messages that carry it, with
/// its hash ignoring ASCII case computed once, when the name is made (the matcher keys
/// queries by name that way, several times a message).
#[derive(Clone)]
pub struct QName(Rc<NameText>);

struct NameText {
    lower_hash: u64,
    text: Box<str>,
    /// The uncompressed wire form it was read from (`with_wire`), else empty.
    wire: Box<[u8]>,
}

impl QName {
    pub fn new(text: &str) -> QName {
        Self::from(Box::<str>::from(text))
    }

    /// The name `text` read from the uncompressed wire form `wire`, which it keeps (for
    /// `dns::Names` to recognise the name by its bytes).
    pub fn with_wire(text: Box<str>, wire: &[u8]) -> QName {
        QName(Rc::new(NameText {
            lower_hash: crate::hash::name_hash(text.as_bytes()),
            text,
            wire: wire.into(),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The wire form the name was read from (`with_wire`), else empty.
    pub fn wire(&self) -> &[u8] {
        &self.0.wire
    }

    /// The name's hash ignoring ASCII case, keyed by the process's secret name seed
    /// (`hash::name_hash`).
    pub fn lower_hash(&self) -> u64 {
        self.0.lower_hash
    }

    /// Whether both are the same shared name (then they are equal).
    pub fn same(a: &QName, b: &QName) -> bool {
        Rc::ptr_eq(&a.0, &b.0)
    }

    /// How many messages (and tables) hold this name.
    pub fn holders(&self) -> usize {
        Rc::strong_count(&self.0)
    }
}

impl std::ops::Deref for QName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0.text
    }
}

impl From<Box<str>> for QName {
    fn from(text: Box<str>) -> QName {
        QName(Rc::new(NameText {
            lower_hash: crate::hash::name_hash(text.as_bytes()),
            text,
            wire: Box::default(),
        }))
    }
}

impl From<&str> for QName {
    fn from(text: &str) -> QName {
        QName::new(text)
    }
}

impl From<String> for QName {
    fn from(text: String) -> QName {
        QName::from(text.into_boxed_str())
    }
}

impl PartialEq for QName {
    fn eq(&self, other: &QName) -> bool {
        QName::same(self, other) || self.as_str() == other.as_str()
    }
}

impl Eq for QName {}

impl std::fmt::Debug for QName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

pub const QR: u16 = 0x8000;
pub const TC: u16 = 0x0200;

impl Message {
    pub fn is_response(&self) -> bool {
        self.flags & QR != 0
    }
    pub fn rcode(&self) -> u16 {
        self.flags & 0xF
    }
    pub fn truncated(&self) -> bool {
        self.flags & TC != 0
    }
}

/// Messages are shared by the matcher's indexes and the transactions it emits.
pub type Msg = Rc<Message>;

/// An address in text form exactly as the C library's `inet_ntop` writes it (the form the
/// documents and the Python side use).
pub fn addr_text(a: &IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => ipv6_text(&v6.octets()),
    }
}

/// RFC 5952 text as glibc's `inet_ntop` writes it: the longest run of two or more zero
/// groups (the first of equal runs) becomes "::", and an IPv4-mapped or IPv4-compatible
/// address ends in dotted quad.
fn ipv6_text(b: &[u8; 16]) -> String {
    let mut g = [0u16; 8];
    for (i, w) in g.iter_mut().enumerate() {
        *w = u16::from_be_bytes([b[2 * i], b[2 * i + 1]]);
    }
    // Longest run of zero groups.
    let (mut best, mut best_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if g[i] == 0 {
            let start = i;
            while i < 8 && g[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best = usize::MAX;
    }
    let mut out = String::with_capacity(40);
    let mut i = 0;
    while i < 8 {
        if i == best {
            out.push(':');
            if i == 0 {
                out.push(':');
            }
            i += best_len;
            continue;
        }
        // glibc: "::ffff:a.b.c.d" and "::a.b.c.d" (the compressed run starts at 0).
        if i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && g[5] == 0xffff)) {
            out.push_str(&format!("{}.{}.{}.{}", b[12], b[13], b[14], b[15]));
            return out;
        }
        out.push_str(&format!("{:x}", g[i]));
        if i < 7 {
            out.push(':');
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn t(s: &str) -> String {
        addr_text(&IpAddr::V6(s.parse::<Ipv6Addr>().unwrap()))
    }

    #[test]
    fn bytes_read_the_same_inline_or_not() {
        for n in [0, 1, INLINE - 1, INLINE, INLINE + 1, 4096] {
            let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let b = Bytes::new(&data);
            assert_eq!(&*b, &data[..], "{n}");
            assert_eq!(matches!(b.0, Repr::Inline { .. }), n <= INLINE, "{n}");
            assert_eq!(b.clone(), Bytes::from(data.clone()));
        }
    }

    #[test]
    fn ipv6_text_matches_inet_ntop() {
        assert_eq!(t("::"), "::");
        assert_eq!(t("::1"), "::1");
        assert_eq!(t("fd00::53"), "fd00::53");
        assert_eq!(t("1:0:2:0:0:3:0:4"), "1:0:2::3:0:4");
        assert_eq!(t("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
        assert_eq!(t("::10.0.0.1"), "::10.0.0.1");
        assert_eq!(t("1::"), "1::");
        assert_eq!(t("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
    }
}
