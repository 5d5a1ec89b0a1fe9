//! Overlay encapsulations: the headers of VXLAN, Geneve, GRE (with ERSPAN and PPTP's PPP),
//! GRE over UDP and Teredo, read down to the frame or packet they carry.
//!
//! Each reader takes the bytes after the outer UDP or IP header and returns what is inside,
//! or None when the header is cut short or is not one this stage reads; the caller counts
//! that. Nothing here keeps state; the decoder bounds how deep tunnels nest.

use std::net::IpAddr;

/// The encapsulations decapsulated, one counter each in `TunnelCounts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// VXLAN (RFC 7348), UDP 4789 or flannel's 8472.
    Vxlan,
    /// Geneve (RFC 8926), UDP 6081.
    Geneve,
    /// IPv4 in IPv4 (protocol 4).
    Ipip,
    /// IPv6 in IPv4 (protocol 41, "sit").
    Ip6in4,
    /// IPv4 in IPv6 (next header 4).
    Ip4in6,
    /// IPv6 in IPv6 (next header 41).
    Ip6in6,
    /// GRE (protocol 47) carrying IP or Ethernet.
    Gre,
    /// GRE carrying ERSPAN type I, II or III.
    Erspan,
    /// PPTP's enhanced GRE (version 1) carrying PPP.
    Pptp,
    /// GRE over UDP (RFC 8086), UDP 4754.
    GreUdp,
    /// Teredo (RFC 4380): IPv6 in UDP 3544.
    Teredo,
}

impl TunnelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Ipip => "ipip",
            TunnelKind::Ip6in4 => "ip6in4",
            TunnelKind::Ip4in6 => "ip4in6",
            TunnelKind::Ip6in6 => "ip6in6",
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan => "erspan",
            TunnelKind::Pptp => "pptp",
            TunnelKind::GreUdp => "gre_udp",
            TunnelKind::Teredo => "teredo",
        }
    }
}

/// The outermost tunnel a DNS message was found in: its kind and the two nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tunnel {
    pub kind: TunnelKind,
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
}

/// Frames (or inner frames, when tunnels nest) decapsulated, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelCounts {
    pub vxlan: u64,
    pub geneve: u64,
    pub ipip: u64,
    pub ip6in4: u64,
    pub ip4in6: u64,
    pub ip6in6: u64,
    pub gre: u64,
    pub erspan: u64,
    pub pptp: u64,
    pub gre_udp: u64,
    pub teredo: u64,
}

impl TunnelCounts {
    pub fn add(&mut self, kind: TunnelKind) {
        let n = match kind {
            TunnelKind::Vxlan => &mut self.vxlan,
            TunnelKind::Geneve => &mut self.geneve,
            TunnelKind::Ipip => &mut self.ipip,
            TunnelKind::Ip6in4 => &mut self.ip6in4,
            TunnelKind::Ip4in6 => &mut self.ip4in6,
            TunnelKind::Ip6in6 => &mut self.ip6in6,
            TunnelKind::Gre => &mut self.gre,
            TunnelKind::Erspan => &mut self.erspan,
            TunnelKind::Pptp => &mut self.pptp,
            TunnelKind::GreUdp => &mut self.gre_udp,
            TunnelKind::Teredo => &mut self.teredo,
        };
        *n += 1;
    }

    /// (kind, count) for every kind, in a fixed order.
    pub fn items(&self) -> [(&'static str, u64); 11] {
        [
            ("vxlan", self.vxlan),
            ("geneve", self.geneve),
            ("ipip", self.ipip),
            ("ip6in4", self.ip6in4),
            ("ip4in6", self.ip4in6),
            ("ip6in6", self.ip6in6),
            ("gre", self.gre),
            ("erspan", self.erspan),
            ("pptp", self.pptp),
            ("gre_udp", self.gre_udp),
            ("teredo", self.teredo),
        ]
    }
}

/// UDP destination ports of the UDP encapsulations.
pub const VXLAN_PORT: u16 = 4789;
/// flannel's VXLAN backend uses the Linux kernel's historical port.
pub const VXLAN_FLANNEL_PORT: u16 = 8472;
pub const GENEVE_PORT: u16 = 6081;
pub const GRE_UDP_PORT: u16 = 4754;
/// Teredo servers and relays: either side of the datagram.
pub const TEREDO_PORT: u16 = 3544;

/// Ethertypes met inside tunnels.
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
/// Transparent Ethernet bridging: an Ethernet frame follows.
const ETH_BRIDGED: u16 = 0x6558;
const ETH_ERSPAN_2: u16 = 0x88BE;
const ETH_ERSPAN_3: u16 = 0x22EB;
const ETH_PPP: u16 = 0x880B;
/// PPP protocol numbers of IPv4 and IPv6, and the HDLC address and control bytes.
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const PPP_ADDRESS_CONTROL: [u8; 2] = [0xFF, 0x03];

/// VXLAN's I flag: the network identifier is valid (RFC 7348 section 5).
const VXLAN_I: u8 = 0x08;
/// GRE flags (RFC 2784, RFC 2890, RFC 2637 for version 1).
const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQUENCE: u16 = 0x1000;
const GRE_ACK: u16 = 0x0080;
const GRE_VERSION: u16 = 0x0007;

/// What a tunnel header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner<'a> {
    /// An Ethernet frame (with its own VLAN tags maybe).
    Ethernet(&'a [u8]),
    /// An IPv4 or IPv6 packet, by ethertype.
    Ip(u16, &'a [u8]),
    /// Nothing to decode (a PPTP acknowledgement, a PPP control packet): not an error.
    Nothing,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s: &[u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(u16::from_be_bytes(*s))
}

/// The inner packet by the ethertype a header names.
fn by_ethertype(etype: u16, rest: &[u8]) -> Option<Inner<'_>> {
    match etype {
        ETH_IPV4 | ETH_IPV6 => Some(Inner::Ip(etype, rest)),
        ETH_BRIDGED => Some(Inner::Ethernet(rest)),
        _ => None,
    }
}

/// VXLAN: an 8-byte header with the I flag, then an Ethernet frame.
pub fn vxlan(b: &[u8]) -> Option<Inner<'_>> {
    let flags = *b.first()?;
    let rest = b.get(8..)?;
    (flags & VXLAN_I != 0).then_some(Inner::Ethernet(rest))
}

/// Geneve: version 0, options of a length in 4-byte words, a protocol type.
pub fn geneve(b: &[u8]) -> Option<Inner<'_>> {
    let first = *b.first()?;
    if first >> 6 != 0 {
        return None;
    }
    let options = (first & 0x3F) as usize * 4;
    let proto = be16(b, 2)?;
    by_ethertype(proto, b.get(8 + options..)?)
}

/// GRE, and what it says it carries: the kind is `Erspan` or `Pptp` when the payload says
/// so, else `plain` (GRE, or GRE over UDP).
pub fn gre(b: &[u8], plain: TunnelKind) -> Option<(TunnelKind, Inner<'_>)> {
    let flags = be16(b, 0)?;
    let proto = be16(b, 2)?;
    let mut at = 4;
    match flags & GRE_VERSION {
        0 => {
            if flags & GRE_ROUTING != 0 {
                // RFC 1701 source routing: deprecated, and its entries are not walked.
                return None;
            }
            if flags & GRE_CHECKSUM != 0 {
                at += 4;
            }
            if flags & GRE_KEY != 0 {
                at += 4;
            }
            if flags & GRE_SEQUENCE != 0 {
                at += 4;
            }
            let rest = b.get(at..)?;
            match proto {
                ETH_ERSPAN_2 => {
                    // Type I has no sequence number and no header (the Ethernet frame
                    // follows); type II has both, and an 8-byte header.
                    if flags & GRE_SEQUENCE == 0 {
                        Some((TunnelKind::Erspan, Inner::Ethernet(rest)))
                    } else {
                        Some((TunnelKind::Erspan, Inner::Ethernet(rest.get(8..)?)))
                    }
                }
                ETH_ERSPAN_3 => {
                    // A 12-byte header, then an 8-byte platform subheader when O is set.
                    let o = *rest.get(11)? & 1 != 0;
                    let skip = if o { 20 } else { 12 };
                    Some((TunnelKind::Erspan, Inner::Ethernet(rest.get(skip..)?)))
                }
                _ => Some((plain, by_ethertype(proto, rest)?)),
            }
        }
        1 => {
            // PPTP (RFC 2637): the key field (payload length, call id) is always there.
            if proto != ETH_PPP || flags & GRE_KEY == 0 {
                return None;
            }
            at += 4;
            if flags & GRE_SEQUENCE != 0 {
                at += 4;
            }
            if flags & GRE_ACK != 0 {
                at += 4;
            }
            let rest = b.get(at..)?;
            Some((TunnelKind::Pptp, ppp(rest)?))
        }
        _ => None,
    }
}

/// A PPP frame as PPTP carries it: maybe the HDLC address and control bytes, then a
/// protocol of one byte (compressed) or two.
fn ppp(b: &[u8]) -> Option<Inner<'_>> {
    if b.is_empty() {
        return Some(Inner::Nothing); // an acknowledgement only
    }
    let b = if b.get(..2) == Some(&PPP_ADDRESS_CONTROL[..]) {
        &b[2..]
    } else {
        b
    };
    let first = *b.first()?;
    let (proto, rest) = if first & 1 == 1 {
        (first as u16, b.get(1..)?)
    } else {
        (be16(b, 0)?, b.get(2..)?)
    };
    Some(match proto {
        PPP_IPV4 => Inner::Ip(ETH_IPV4, rest),
        PPP_IPV6 => Inner::Ip(ETH_IPV6, rest),
        _ => Inner::Nothing,
    })
}

/// Teredo: an optional authentication header and origin indication, then IPv6.
pub fn teredo(b: &[u8]) -> Option<Inner<'_>> {
    let mut at = 0;
    if be16(b, at)? == 0x0001 {
        // Authentication: id length, auth length, the two, an 8-byte nonce, confirmation.
        let id = *b.get(at + 2)? as usize;
        let auth = *b.get(at + 3)? as usize;
        at += 4 + id + auth + 9;
    }
    if be16(b, at)? == 0x0000 {
        at += 8; // origin indication: port and address
    }
    let rest = b.get(at..)?;
    (rest.first()? >> 4 == 6).then_some(Inner::Ip(ETH_IPV6, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_needs_the_i_flag_and_eight_bytes() {
        assert_eq!(
            vxlan(&[8, 0, 0, 0, 0, 0, 42, 0, 1]),
            Some(Inner::Ethernet(&[1]))
        );
        assert_eq!(vxlan(&[0, 0, 0, 0, 0, 0, 42, 0, 1]), None);
        assert_eq!(vxlan(&[8, 0, 0, 0, 0, 0, 42]), None);
        assert_eq!(vxlan(&[]), None);
    }

    #[test]
    fn geneve_skips_its_options() {
        let mut g = vec![0x02, 0, 0x65, 0x58, 0, 0, 7, 0];
        g.extend_from_slice(&[0xAA; 8]); // two words of options
        g.push(1);
        assert_eq!(geneve(&g), Some(Inner::Ethernet(&[1])));
        g[2..4].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(geneve(&g), Some(Inner::Ip(ETH_IPV4, &[1])));
        g[0] = 0x03; // options past the end
        assert_eq!(geneve(&g[..16]), None);
        g[0] = 0x40; // version 1
        assert_eq!(geneve(&g), None);
    }

    #[test]
    fn gre_fields_are_skipped_by_flag() {
        let plain = [0, 0, 0x08, 0x00, 0x45];
        assert_eq!(
            gre(&plain, TunnelKind::Gre),
            Some((TunnelKind::Gre, Inner::Ip(ETH_IPV4, &[0x45])))
        );
        let all = [
            0xB0, 0, 0x86, 0xDD, 1, 1, 0, 0, 2, 2, 2, 2, 3, 3, 3, 3, 0x60,
        ];
        assert_eq!(
            gre(&all, TunnelKind::GreUdp),
            Some((TunnelKind::GreUdp, Inner::Ip(ETH_IPV6, &[0x60])))
        );
        assert_eq!(
            gre(&all[..16], TunnelKind::Gre),
            Some((TunnelKind::Gre, Inner::Ip(ETH_IPV6, &[][..])))
        );
        assert_eq!(gre(&all[..15], TunnelKind::Gre), None);
        assert_eq!(gre(&[0x40, 0, 8, 0, 0, 0, 0, 0], TunnelKind::Gre), None);
        assert_eq!(gre(&[0, 0, 0x12, 0x34, 0], TunnelKind::Gre), None);
        assert_eq!(gre(&[0, 0, 8], TunnelKind::Gre), None);
    }

    #[test]
    fn erspan_types_one_two_and_three() {
        let two = [&[0x10, 0, 0x88, 0xBE, 0, 0, 0, 1][..], &[0x10; 8], &[9]].concat();
        assert_eq!(
            gre(&two, TunnelKind::Gre),
            Some((TunnelKind::Erspan, Inner::Ethernet(&[9])))
        );
        let one = [0, 0, 0x88, 0xBE, 9];
        assert_eq!(
            gre(&one, TunnelKind::Gre),
            Some((TunnelKind::Erspan, Inner::Ethernet(&[9])))
        );
        let mut three = [&[0x10, 0, 0x22, 0xEB, 0, 0, 0, 1][..], &[0; 12], &[9]].concat();
        assert_eq!(
            gre(&three, TunnelKind::Gre),
            Some((TunnelKind::Erspan, Inner::Ethernet(&[9])))
        );
        three[8 + 11] = 1; // a platform subheader follows
        three.pop();
        three.extend_from_slice(&[0; 8]);
        three.push(7);
        assert_eq!(
            gre(&three, TunnelKind::Gre),
            Some((TunnelKind::Erspan, Inner::Ethernet(&[7])))
        );
        assert_eq!(gre(&three[..15], TunnelKind::Gre), None);
    }

    #[test]
    fn pptp_ppp_with_and_without_compression() {
        let head = [0x30, 0x01, 0x88, 0x0B, 0, 5, 0, 1, 0, 0, 0, 9];
        let full = [&head[..], &[0xFF, 0x03, 0x00, 0x21, 0x45]].concat();
        assert_eq!(
            gre(&full, TunnelKind::Gre),
            Some((TunnelKind::Pptp, Inner::Ip(ETH_IPV4, &[0x45])))
        );
        let short = [&head[..], &[0x57, 0x60]].concat();
        assert_eq!(
            gre(&short, TunnelKind::Gre),
            Some((TunnelKind::Pptp, Inner::Ip(ETH_IPV6, &[0x60])))
        );
        let lcp = [&head[..], &[0xC0, 0x21, 1]].concat();
        assert_eq!(
            gre(&lcp, TunnelKind::Gre),
            Some((TunnelKind::Pptp, Inner::Nothing))
        );
        // An acknowledgement alone (A set, no S): no payload.
        let ack = [0x20, 0x81, 0x88, 0x0B, 0, 0, 0, 1, 0, 0, 0, 9];
        assert_eq!(
            gre(&ack, TunnelKind::Gre),
            Some((TunnelKind::Pptp, Inner::Nothing))
        );
        // Version 1 without its key field is not PPTP.
        assert_eq!(gre(&[0, 1, 0x88, 0x0B, 0x21], TunnelKind::Gre), None);
        assert_eq!(gre(&head[..11], TunnelKind::Gre), None);
    }

    #[test]
    fn teredo_headers_are_skipped() {
        assert_eq!(teredo(&[0x60, 0]), Some(Inner::Ip(ETH_IPV6, &[0x60, 0])));
        let origin = [0, 0, 1, 2, 3, 4, 5, 6, 0x60];
        assert_eq!(teredo(&origin), Some(Inner::Ip(ETH_IPV6, &[0x60])));
        let auth = [&[0, 1, 2, 1][..], &[0xAB; 3], &[0; 9], &origin].concat();
        assert_eq!(teredo(&auth), Some(Inner::Ip(ETH_IPV6, &[0x60])));
        assert_eq!(teredo(&auth[..10]), None);
        assert_eq!(teredo(&[0x45, 0]), None);
        assert_eq!(teredo(&[]), None);
    }
}
