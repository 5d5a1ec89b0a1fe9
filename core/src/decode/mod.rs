//! Stage 2: frames -> DNS payloads (link layer, IP with fragments, UDP, TCP reassembly,
//! ICMP errors that quote DNS).
//!
//! Hot path: headers are read at known offsets from fixed-size windows taken with checked
//! access; nothing is built for the many frames that are not DNS. Everything that is not
//! decodable is counted in `DecodeStats` and skipped; nothing panics on capture bytes.
//!
//! The layers are hand-rolled rather than sliced with `etherparse` (0.21): its lax slicing
//! differs from the behaviour this stage keeps, and every difference would change a counted
//! figure. It takes the frame's length when an IPv4 total length is shorter than the header
//! (counted as a bad IP header here), wants the IPv4 options inside the frame, walks the
//! authentication header after IPv4 and IPv6 (not walked here), rejects a hop-by-hop header
//! that is not first (walked here), stops at three VLAN tags, and knows no PPPoE session.

pub mod fragments;
mod ordered;
pub mod tcp;
pub mod tunnel;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::Config;
use crate::types::{Decoded, IcmpQuote, Payload, Record, Time, Transport};
use fragments::{FragmentKey, FragmentReassembler};
use tcp::{FlowKey, TcpReassembler};
use tunnel::{Inner, Tunnel, TunnelCounts, TunnelKind};

pub use tcp::TcpStats;

/// Link-layer header types decoded here (tcpdump.org/linktypes.html).
pub mod linktype {
    /// BSD loopback: 4-byte address family in the writing host's byte order.
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// DLT_RAW as some systems write it.
    pub const RAW_12: u32 = 12;
    /// DLT_RAW on OpenBSD.
    pub const RAW_14: u32 = 14;
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const RAW_IPV4: u32 = 228;
    pub const RAW_IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const PPPOE_SESSION: u16 = 0x8864;
/// PPP protocol numbers of IPv4 and IPv6 (RFC 1332, RFC 5072).
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
/// 802.1Q, 802.1ad, and the two pre-standard QinQ tags.
const VLAN_TAGS: [u16; 4] = [0x8100, 0x88A8, 0x9100, 0x9200];
/// BSD loopback address families for IPv6 differ by OS (NetBSD/OpenBSD 24, FreeBSD 28,
/// Darwin 30); IPv4 is 2 everywhere.
const NULL_IPV4: u32 = 2;
const NULL_IPV6: [u32; 3] = [24, 28, 30];

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
/// IPv4 (IP-in-IP), IPv6 (sit, ip6tnl) and GRE as the protocol an IP header carries.
const PROTO_IPV4: u8 = 4;
const PROTO_IPV6: u8 = 41;
const PROTO_GRE: u8 = 47;
/// Tunnels inside tunnels are opened this many levels deep (Geneve in VXLAN is two).
pub const MAX_TUNNEL_DEPTH: u8 = 4;
/// IPv6 extension headers walked over (RFC 8200 section 4): hop-by-hop, routing,
/// destination options, mobility, HIP, shim6.
const V6_SKIP: [u8; 6] = [0, 43, 60, 135, 139, 140];
const V6_FRAGMENT: u8 = 44;
/// At most this many IPv6 extension headers are walked.
const V6_MAX_HEADERS: usize = 8;
/// ICMP destination unreachable, ICMPv6 destination unreachable.
const ICMP_UNREACHABLE: u8 = 3;
const ICMPV6_UNREACHABLE: u8 = 1;
/// Fragments and expired state are swept when capture time moves on by more than this.
const SWEEP_SECONDS: f64 = 10.0;

/// Frames that did not yield DNS, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames whose link layer does not carry IPv4 or IPv6 (ARP, LLDP, ...).
    pub non_ip: u64,
    /// IP frames that are not UDP/TCP on a DNS port, nor ICMP about one.
    pub not_dns: u64,
    /// IP headers that are cut short or inconsistent.
    pub bad_ip: u64,
    /// IP fragments taken into reassembly.
    pub fragments: u64,
    /// ICMP errors quoting a DNS datagram.
    pub icmp_errors: u64,
    /// Tunnel headers cut short or of a form not read (GRE source routing, a VXLAN
    /// header without its I flag, ...); also in `not_dns`.
    pub bad_tunnel: u64,
    /// Tunnels nested deeper than `MAX_TUNNEL_DEPTH`, not opened; also in `not_dns`.
    pub tunnel_too_deep: u64,
}

/// A DNS payload as the decoder finds it: its bytes are lent (a slice of the frame, or of
/// a reassembled message) for the time of the call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PayloadRef<'a> {
    pub frame: u64,
    pub time: Time,
    pub iface: u32,
    pub transport: Transport,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub data: &'a [u8],
    /// The outermost tunnel the message was found in, if any (lent: one word to pass).
    pub tunnel: Option<&'a Tunnel>,
}

impl PayloadRef<'_> {
    /// The payload with its own copy of the bytes.
    pub fn to_payload(&self) -> Payload {
        Payload {
            frame: self.frame,
            time: self.time,
            iface: self.iface,
            transport: self.transport,
            src: self.src,
            sport: self.sport,
            dst: self.dst,
            dport: self.dport,
            data: self.data.to_vec(),
            tunnel: self.tunnel.copied(),
        }
    }
}

impl Payload {
    /// The payload's bytes lent.
    pub fn as_ref(&self) -> PayloadRef<'_> {
        PayloadRef {
            frame: self.frame,
            time: self.time,
            iface: self.iface,
            transport: self.transport,
            src: self.src,
            sport: self.sport,
            dst: self.dst,
            dport: self.dport,
            data: &self.data,
            tunnel: self.tunnel.as_ref(),
        }
    }
}

/// Where the decoder hands what it finds, in the order found. A `Vec<Decoded>` collects
/// owned copies; the engine parses each payload where it lies, without copying it first.
pub trait Sink {
    fn payload(&mut self, p: &PayloadRef<'_>);
    fn icmp(&mut self, q: IcmpQuote);
}

impl Sink for Vec<Decoded> {
    fn payload(&mut self, p: &PayloadRef<'_>) {
        self.push(Decoded::Payload(p.to_payload()));
    }
    fn icmp(&mut self, q: IcmpQuote) {
        self.push(Decoded::Icmp(q));
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s: &[u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(u16::from_be_bytes(*s))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s: &[u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(*s))
}

fn v4(b: &[u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(*b))
}

fn v6(b: &[u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(*b))
}

/// An address of 4 or 16 bytes at `at`.
fn addr(b: &[u8], at: usize, len: usize) -> Option<IpAddr> {
    if len == 4 {
        Some(v4(b.get(at..at + 4)?.try_into().ok()?))
    } else {
        Some(v6(b.get(at..at + 16)?.try_into().ok()?))
    }
}

/// Stateful decoder: link layer, IP (with fragments), UDP, TCP (with reassembly).
#[derive(Debug)]
pub struct FrameDecoder {
    /// The DNS ports, one bit each.
    ports: Box<[u64; 1024]>,
    pub stats: DecodeStats,
    pub fragments: FragmentReassembler,
    pub tcp: TcpReassembler,
    /// Frames decapsulated, by tunnel kind.
    pub tunnels: TunnelCounts,
    last_sweep: Time,
    /// Tunnels open around the frame being decoded, and the outermost of them.
    depth: u8,
    outer: Option<Tunnel>,
}

impl FrameDecoder {
    pub fn new(cfg: &Config) -> Self {
        Self::with_limits(
            &cfg.ports,
            cfg.max_tcp_buffer_bytes,
            cfg.max_fragment_buffer_bytes,
        )
    }

    pub fn with_limits(ports: &[u16], tcp_bytes: usize, fragment_bytes: usize) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports {
            bits[p as usize >> 6] |= 1 << (p & 63);
        }
        FrameDecoder {
            ports: bits,
            stats: DecodeStats::default(),
            fragments: FragmentReassembler::new(fragment_bytes),
            tcp: TcpReassembler::new(tcp_bytes),
            tunnels: TunnelCounts::default(),
            last_sweep: 0.0,
            depth: 0,
            outer: None,
        }
    }

    #[inline]
    fn is_port(&self, p: u16) -> bool {
        self.ports[p as usize >> 6] >> (p & 63) & 1 != 0
    }

    /// Hand the DNS payloads and ICMP quotes in one record to `out`, in order.
    pub fn decode<S: Sink + ?Sized>(&mut self, rec: &Record, out: &mut S) {
        self.decode_frame(
            rec.frame,
            rec.time,
            rec.link_type,
            rec.iface,
            &rec.data,
            out,
        )
    }

    /// `decode` for a record whose fields are held apart (a reader that lends its bytes).
    pub fn decode_frame<S: Sink + ?Sized>(
        &mut self,
        frame: u64,
        ts: Time,
        link_type: u32,
        iface: u32,
        data: &[u8],
        out: &mut S,
    ) {
        if ts - self.last_sweep > SWEEP_SECONDS {
            self.sweep(ts);
        }
        let Some((etype, off, iface)) = link_layer(link_type, iface, data) else {
            self.stats.non_ip += 1;
            return;
        };
        match etype {
            ETH_IPV4 => self.ipv4(frame, ts, iface, data, off, out),
            ETH_IPV6 => self.ipv6(frame, ts, iface, data, off, out),
            _ => self.stats.non_ip += 1,
        }
    }

    // -- IP ----------------------------------------------------------------------------

    // Inlined into `decode_frame` and into `tunnel`, their two callers: a tunnel makes
    // them recursive, and without this neither copy would be inlined, which costs every
    // untunnelled frame a call.
    #[inline(always)]
    fn ipv4<S: Sink + ?Sized>(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        data: &[u8],
        off: usize,
        out: &mut S,
    ) {
        let Some(h) = data
            .get(off..off + 20)
            .and_then(|h| <&[u8; 20]>::try_from(h).ok())
        else {
            self.stats.bad_ip += 1;
            return;
        };
        if h[0] >> 4 != 4 {
            self.stats.bad_ip += 1;
            return;
        }
        let ihl = (h[0] & 0x0F) as usize * 4;
        let total = u16::from_be_bytes([h[2], h[3]]) as usize;
        let ident = u16::from_be_bytes([h[4], h[5]]);
        let frag = u16::from_be_bytes([h[6], h[7]]);
        if ihl < 20 || total < ihl {
            self.stats.bad_ip += 1;
            return;
        }
        let end = (off + total).min(data.len()); // drop Ethernet padding; tolerate snaplen cuts
        let proto = h[9];
        let src = v4(&[h[12], h[13], h[14], h[15]]);
        let dst = v4(&[h[16], h[17], h[18], h[19]]);
        let l4 = off + ihl;
        if frag & 0x3FFF != 0 {
            // MF set or a non-zero offset: a fragment
            self.stats.fragments += 1;
            let key = FragmentKey {
                src,
                dst,
                ident: ident as u32,
                proto,
                iface,
            };
            let piece = data.get(l4..end).unwrap_or(&[]);
            let offset = (frag & 0x1FFF) as usize * 8;
            if let Some(whole) = self
                .fragments
                .add(key, offset, frag & 0x2000 != 0, piece, ts)
            {
                self.l4(
                    frame,
                    ts,
                    iface,
                    proto,
                    src,
                    dst,
                    &whole,
                    0,
                    whole.len(),
                    out,
                );
            }
            return;
        }
        self.l4(frame, ts, iface, proto, src, dst, data, l4, end, out)
    }

    #[inline(always)]
    fn ipv6<S: Sink + ?Sized>(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        data: &[u8],
        off: usize,
        out: &mut S,
    ) {
        let Some(h) = data
            .get(off..off + 40)
            .and_then(|h| <&[u8; 40]>::try_from(h).ok())
        else {
            self.stats.bad_ip += 1;
            return;
        };
        if h[0] >> 4 != 6 {
            self.stats.bad_ip += 1;
            return;
        }
        let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
        let mut nxt = h[6];
        let (Some(src), Some(dst)) = (addr(h, 8, 16), addr(h, 24, 16)) else {
            self.stats.bad_ip += 1;
            return;
        };
        let mut pos = off + 40;
        // A payload length of 0 is a jumbogram (RFC 2675): the frame says how long it is.
        let end = if plen != 0 {
            (pos + plen).min(data.len())
        } else {
            data.len()
        };
        for _ in 0..V6_MAX_HEADERS {
            if V6_SKIP.contains(&nxt) {
                let Some(e) = data.get(pos..pos + 2).filter(|_| pos + 2 <= end) else {
                    self.stats.bad_ip += 1;
                    return;
                };
                nxt = e[0];
                pos += (e[1] as usize + 1) * 8;
            } else if nxt == V6_FRAGMENT {
                let Some(f) = data
                    .get(pos..pos + 8)
                    .filter(|_| pos + 8 <= end)
                    .and_then(|f| <&[u8; 8]>::try_from(f).ok())
                else {
                    self.stats.bad_ip += 1;
                    return;
                };
                let inner = f[0];
                let offm = u16::from_be_bytes([f[2], f[3]]);
                let ident = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                pos += 8;
                if offm & 0xFFF9 == 0 {
                    // An atomic fragment (RFC 6946): the whole datagram.
                    nxt = inner;
                    continue;
                }
                self.stats.fragments += 1;
                let key = FragmentKey {
                    src,
                    dst,
                    ident,
                    proto: inner,
                    iface,
                };
                let piece = data.get(pos..end).unwrap_or(&[]);
                let offset = (offm & 0xFFF8) as usize;
                if let Some(whole) = self.fragments.add(key, offset, offm & 1 != 0, piece, ts) {
                    self.l4(
                        frame,
                        ts,
                        iface,
                        inner,
                        src,
                        dst,
                        &whole,
                        0,
                        whole.len(),
                        out,
                    );
                }
                return;
            } else {
                break;
            }
        }
        self.l4(frame, ts, iface, nxt, src, dst, data, pos, end, out)
    }

    // -- transport -----------------------------------------------------------------------

    /// The transport header at `pos`, the IP payload ending at `end` (`end <= data.len()`;
    /// `pos` may lie beyond `end` when a header length points past the data).
    #[allow(clippy::too_many_arguments)]
    fn l4<S: Sink + ?Sized>(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        data: &[u8],
        pos: usize,
        end: usize,
        out: &mut S,
    ) {
        let avail = end.saturating_sub(pos);
        match proto {
            PROTO_UDP => {
                let Some(u) = data.get(pos..pos + 8).filter(|_| avail >= 8) else {
                    self.stats.bad_ip += 1;
                    return;
                };
                let sport = u16::from_be_bytes([u[0], u[1]]);
                let dport = u16::from_be_bytes([u[2], u[3]]);
                if !self.is_port(sport) && !self.is_port(dport) {
                    self.udp_tunnel(
                        frame, ts, iface, src, dst, sport, dport, data, pos, end, out,
                    );
                    return;
                }
                let ulen = u16::from_be_bytes([u[4], u[5]]) as usize;
                let stop = if 8 <= ulen && ulen <= avail {
                    pos + ulen
                } else {
                    end
                };
                let body = data.get(pos + 8..stop).unwrap_or(&[]);
                out.payload(&PayloadRef {
                    frame,
                    time: ts,
                    iface,
                    transport: Transport::Udp,
                    src,
                    sport,
                    dst,
                    dport,
                    data: body,
                    tunnel: self.outer.as_ref(),
                });
            }
            PROTO_TCP => {
                let Some(t) = data
                    .get(pos..pos + 20)
                    .filter(|_| avail >= 20)
                    .and_then(|t| <&[u8; 20]>::try_from(t).ok())
                else {
                    self.stats.bad_ip += 1;
                    return;
                };
                let sport = u16::from_be_bytes([t[0], t[1]]);
                let dport = u16::from_be_bytes([t[2], t[3]]);
                if !self.is_port(sport) && !self.is_port(dport) {
                    self.stats.not_dns += 1;
                    return;
                }
                let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
                let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
                let doff = (t[12] >> 4) as usize * 4;
                let flags = t[13];
                if doff < 20 {
                    self.stats.bad_ip += 1;
                    return;
                }
                let payload = data.get(pos + doff..end).unwrap_or(&[]);
                let key = FlowKey {
                    src,
                    sport,
                    dst,
                    dport,
                };
                let tunnel = self.outer.as_ref();
                self.tcp.segment(
                    key,
                    seq,
                    flags,
                    payload,
                    frame,
                    ts,
                    ack,
                    &mut |msg, mframe, mtime| {
                        out.payload(&PayloadRef {
                            frame: mframe,
                            time: mtime,
                            iface,
                            transport: Transport::Tcp,
                            src,
                            sport,
                            dst,
                            dport,
                            data: &msg,
                            tunnel,
                        })
                    },
                );
            }
            PROTO_ICMP | PROTO_ICMPV6 => {
                self.icmp(frame, ts, iface, proto, src, data, pos, end, out)
            }
            // IP in IP and GRE, else not DNS: kept out of line, as the other protocols
            // are rare where DNS is.
            _ => self.ip_tunnel(frame, ts, iface, proto, src, dst, data, pos, end, out),
        }
    }

    // -- tunnels -------------------------------------------------------------------------

    /// An IP payload of protocol `proto` other than UDP, TCP and ICMP: a tunnel when it is
    /// IP in IP or GRE, else not DNS.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn ip_tunnel<S: Sink + ?Sized>(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        data: &[u8],
        pos: usize,
        end: usize,
        out: &mut S,
    ) {
        match proto {
            PROTO_IPV4 | PROTO_IPV6 => {
                let (etype, kind) = match (proto, src.is_ipv4()) {
                    (PROTO_IPV4, true) => (ETH_IPV4, TunnelKind::Ipip),
                    (PROTO_IPV4, false) => (ETH_IPV4, TunnelKind::Ip4in6),
                    (_, true) => (ETH_IPV6, TunnelKind::Ip6in4),
                    (_, false) => (ETH_IPV6, TunnelKind::Ip6in6),
                };
                let inner = data.get(pos..end).map(|b| Inner::Ip(etype, b));
                self.tunnel(frame, ts, iface, kind, src, dst, inner, out)
            }
            PROTO_GRE => {
                match data
                    .get(pos..end)
                    .and_then(|b| tunnel::gre(b, TunnelKind::Gre))
                {
                    Some((kind, inner)) => {
                        self.tunnel(frame, ts, iface, kind, src, dst, Some(inner), out)
                    }
                    None => self.bad_tunnel(),
                }
            }
            _ => self.stats.not_dns += 1,
        }
    }

    /// A tunnel header that does not read: the frame is not DNS as far as this stage can
    /// tell (a frame counts once among non_ip, not_dns and bad_ip), and a bad tunnel.
    fn bad_tunnel(&mut self) {
        self.stats.not_dns += 1;
        self.stats.bad_tunnel += 1;
    }

    /// A UDP datagram on no DNS port: a tunnel when its port names one, else not DNS.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn udp_tunnel<S: Sink + ?Sized>(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
        data: &[u8],
        pos: usize,
        end: usize,
        out: &mut S,
    ) {
        use tunnel::{GENEVE_PORT, GRE_UDP_PORT, TEREDO_PORT, VXLAN_FLANNEL_PORT, VXLAN_PORT};
        let body = data.get(pos + 8..end).unwrap_or(&[]);
        let (kind, inner) = match dport {
            VXLAN_PORT | VXLAN_FLANNEL_PORT => (TunnelKind::Vxlan, tunnel::vxlan(body)),
            GENEVE_PORT => (TunnelKind::Geneve, tunnel::geneve(body)),
            GRE_UDP_PORT => match tunnel::gre(body, TunnelKind::GreUdp) {
                Some((kind, inner)) => (kind, Some(inner)),
                None => (TunnelKind::GreUdp, None),
            },
            _ if dport == TEREDO_PORT || sport == TEREDO_PORT => {
                // Teredo's port also carries its own bubbles and router solicitations,
                // which are not errors: only IPv6 is opened, nothing else is counted bad.
                match tunnel::teredo(body) {
                    Some(inner) => (TunnelKind::Teredo, Some(inner)),
                    None => {
                        self.stats.not_dns += 1;
                        return;
                    }
                }
            }
            _ => {
                self.stats.not_dns += 1;
                return;
            }
        };
        self.tunnel(frame, ts, iface, kind, src, dst, inner, out)
    }

    /// Open one tunnel: count it, note it as the outermost when it is, and decode what it
    /// carries as a frame of its own. `inner` is None when its header did not read.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[cold]
    fn tunnel<S: Sink + ?Sized>(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        kind: TunnelKind,
        src: IpAddr,
        dst: IpAddr,
        inner: Option<Inner<'_>>,
        out: &mut S,
    ) {
        let Some(inner) = inner else {
            self.bad_tunnel();
            return;
        };
        if self.depth >= MAX_TUNNEL_DEPTH {
            // Not DNS as far as this stage can tell, like a tunnel it cannot read.
            self.stats.not_dns += 1;
            self.stats.tunnel_too_deep += 1;
            return;
        }
        self.tunnels.add(kind);
        let outermost = self.outer.is_none();
        if outermost {
            self.outer = Some(Tunnel {
                kind,
                outer_src: src,
                outer_dst: dst,
            });
        }
        self.depth += 1;
        match inner {
            Inner::Ip(ETH_IPV4, b) => self.ipv4(frame, ts, iface, b, 0, out),
            Inner::Ip(_, b) => self.ipv6(frame, ts, iface, b, 0, out),
            Inner::Ethernet(b) => match link_layer(linktype::ETHERNET, iface, b) {
                Some((ETH_IPV4, off, _)) => self.ipv4(frame, ts, iface, b, off, out),
                Some((ETH_IPV6, off, _)) => self.ipv6(frame, ts, iface, b, off, out),
                _ => self.stats.non_ip += 1,
            },
            Inner::Nothing => self.stats.non_ip += 1,
        }
        self.depth -= 1;
        if outermost {
            self.outer = None;
        }
    }

    /// An ICMP destination-unreachable that quotes a UDP datagram on a DNS port.
    #[allow(clippy::too_many_arguments)]
    fn icmp<S: Sink + ?Sized>(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        proto: u8,
        reporter: IpAddr,
        data: &[u8],
        pos: usize,
        end: usize,
        out: &mut S,
    ) {
        match self.icmp_quote(frame, ts, iface, proto, reporter, data, pos, end) {
            Some(q) => {
                self.stats.icmp_errors += 1;
                out.icmp(q);
            }
            None => self.stats.not_dns += 1,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn icmp_quote(
        &self,
        frame: u64,
        ts: Time,
        iface: u32,
        proto: u8,
        reporter: IpAddr,
        data: &[u8],
        pos: usize,
        end: usize,
    ) -> Option<IcmpQuote> {
        if end.saturating_sub(pos) < 8 {
            return None;
        }
        let itype = *data.get(pos)?;
        let icode = *data.get(pos + 1)?;
        let q = pos + 8;
        let room = end - q;
        let first = *data.get(q).unwrap_or(&0);
        let (qproto, qsrc, qdst, u) =
            if proto == PROTO_ICMP && itype == ICMP_UNREACHABLE && room >= 28 && first >> 4 == 4 {
                let qihl = (first & 0x0F) as usize * 4;
                (
                    *data.get(q + 9)?,
                    addr(data, q + 12, 4)?,
                    addr(data, q + 16, 4)?,
                    q + qihl,
                )
            } else if proto == PROTO_ICMPV6
                && itype == ICMPV6_UNREACHABLE
                && room >= 48
                && first >> 4 == 6
            {
                (
                    *data.get(q + 6)?,
                    addr(data, q + 8, 16)?,
                    addr(data, q + 24, 16)?,
                    q + 40,
                )
            } else {
                return None;
            };
        if qproto != PROTO_UDP || end.saturating_sub(u) < 8 {
            return None;
        }
        let sport = be16(data, u)?;
        let dport = be16(data, u + 2)?;
        if !self.is_port(sport) && !self.is_port(dport) {
            return None;
        }
        Some(IcmpQuote {
            frame,
            time: ts,
            iface,
            reporter,
            icmp_type: itype,
            icmp_code: icode,
            src: qsrc,
            sport,
            dst: qdst,
            dport,
            data: data.get(u + 8..end)?.to_vec(),
        })
    }

    // -- housekeeping --------------------------------------------------------------------

    fn sweep(&mut self, now: Time) {
        self.last_sweep = now;
        self.fragments.expire(now, false);
        self.tcp.expire(now, false);
    }

    /// End of capture: append the messages still held in TCP reassembly; count the rest.
    pub fn finish<S: Sink + ?Sized>(&mut self, out: &mut S) {
        self.fragments.finish();
        // The interface of a message framed at the end is not known any more; 0 is safe
        // because TCP copies are never matched as duplicates by interface alone.
        self.tcp.finish(&mut |k, msg, frame, time| {
            out.payload(&PayloadRef {
                frame,
                time,
                iface: 0,
                transport: Transport::Tcp,
                src: k.src,
                sport: k.sport,
                dst: k.dst,
                dport: k.dport,
                data: &msg,
                tunnel: None,
            })
        });
    }
}

/// The link layer: the ethertype of what it carries, where that starts, and the capture
/// interface (the SLL2 header names it). None when the frame is too short for its header.
fn link_layer(link_type: u32, iface: u32, data: &[u8]) -> Option<(u16, usize, u32)> {
    use linktype::*;
    match link_type {
        ETHERNET => {
            // Any number of VLAN tags, then maybe a PPPoE session.
            if data.len() < 14 {
                return None;
            }
            let mut off = 12;
            let mut etype = be16(data, off)?;
            while VLAN_TAGS.contains(&etype) && data.len() >= off + 6 {
                off += 4;
                etype = be16(data, off)?;
            }
            off += 2;
            if etype == PPPOE_SESSION && data.len() >= off + 8 {
                // PPPoE session header (6 bytes), then the 2-byte PPP protocol (RFC 2516).
                etype = match be16(data, off + 6)? {
                    PPP_IPV4 => ETH_IPV4,
                    PPP_IPV6 => ETH_IPV6,
                    _ => 0,
                };
                off += 8;
            }
            Some((etype, off, iface))
        }
        LINUX_SLL2 => {
            // protocol, reserved, interface index, ...
            if data.len() < 20 {
                return None;
            }
            Some((be16(data, 0)?, 20, be32(data, 4)?))
        }
        LINUX_SLL => {
            if data.len() < 16 {
                return None;
            }
            Some((be16(data, 14)?, 16, iface))
        }
        RAW | RAW_12 | RAW_14 | RAW_IPV4 | RAW_IPV6 => {
            let version = data.first()? >> 4;
            let etype = match version {
                4 => ETH_IPV4,
                6 => ETH_IPV6,
                _ => 0,
            };
            Some((etype, 0, iface))
        }
        NULL | LOOP => {
            let b: [u8; 4] = data.get(..4)?.try_into().ok()?;
            let family = if link_type == NULL {
                let le = u32::from_le_bytes(b);
                // Written by a big-endian host.
                if le > 0xFFFF {
                    u32::from_be_bytes(b)
                } else {
                    le
                }
            } else {
                u32::from_be_bytes(b)
            };
            let etype = if family == NULL_IPV4 {
                ETH_IPV4
            } else if NULL_IPV6.contains(&family) {
                ETH_IPV6
            } else {
                0
            };
            Some((etype, 4, iface))
        }
        // The reader refuses other link types.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! Damaged frames, checked against what the Python stage did with the same bytes.
    use super::*;

    const CLIENT: [u8; 4] = [10, 0, 3, 7];
    const SERVER: [u8; 4] = [10, 96, 0, 10];
    /// A DNS query for example.com (ID 0x1234, RD).
    const QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
                           \x07example\x03com\x00\x00\x01\x00\x01";

    fn ipv4(proto: u8, payload: &[u8], ident: u16, frag: u16) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut v = vec![0x45, 0];
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&ident.to_be_bytes());
        v.extend_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0]);
        v.extend_from_slice(&CLIENT);
        v.extend_from_slice(&SERVER);
        v.extend_from_slice(payload);
        v
    }

    fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(data);
        v
    }

    fn tcp(seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&40000u16.to_be_bytes());
        v.extend_from_slice(&53u16.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        v.extend_from_slice(data);
        v
    }

    fn eth(ip: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        v.extend_from_slice(ip);
        v
    }

    fn run(frames: &[(u32, Vec<u8>)]) -> (Vec<Decoded>, FrameDecoder) {
        let mut d = FrameDecoder::new(&Config::default());
        let mut out = Vec::new();
        for (i, (link_type, data)) in frames.iter().enumerate() {
            let rec = Record {
                frame: i as u64 + 1,
                time: 1_700_000_000.0 + i as f64 * 0.001,
                link_type: *link_type,
                iface: 0,
                data: data.clone(),
            };
            d.decode(&rec, &mut out);
        }
        d.finish(&mut out);
        (out, d)
    }

    fn payloads(out: &[Decoded]) -> Vec<(u64, Vec<u8>)> {
        out.iter()
            .map(|x| match x {
                Decoded::Payload(p) => (p.frame, p.data.clone()),
                Decoded::Icmp(q) => (q.frame, q.data.clone()),
            })
            .collect()
    }

    #[test]
    fn short_headers_are_counted_by_layer() {
        let good = eth(&ipv4(PROTO_UDP, &udp(40000, 53, QUERY), 0, 0));
        let (out, d) = run(&[
            (1, good[..13].to_vec()),      // Ethernet cut short: not IP
            (1, good[..14 + 19].to_vec()), // IPv4 header cut short
            (1, good[..14 + 27].to_vec()), // UDP header cut short
            (113, vec![0; 15]),            // SLL cut short
            (276, vec![0; 19]),            // SLL2 cut short
            (0, vec![2, 0, 0]),            // NULL cut short
            (101, vec![]),                 // nothing at all
        ]);
        assert!(out.is_empty());
        assert_eq!((d.stats.non_ip, d.stats.bad_ip), (5, 2));
    }

    #[test]
    fn bad_ihl_and_total_length() {
        let mut ihl4 = ipv4(PROTO_UDP, &udp(40000, 53, QUERY), 0, 0);
        ihl4[0] = 0x44;
        let mut total19 = ipv4(PROTO_UDP, &udp(40000, 53, QUERY), 0, 0);
        total19[2..4].copy_from_slice(&19u16.to_be_bytes());
        // A total length longer than the frame (a snap length cut) keeps what there is.
        let mut long = ipv4(PROTO_UDP, &udp(40000, 53, QUERY), 0, 0);
        long[2..4].copy_from_slice(&1000u16.to_be_bytes());
        // Padding after the datagram is not DNS.
        let mut padded = eth(&ipv4(PROTO_UDP, &udp(40000, 53, QUERY), 0, 0));
        padded.extend_from_slice(&[0xaa; 30]);
        // Options that reach past the frame leave no UDP header.
        let mut ihl15 = ipv4(PROTO_UDP, &udp(40000, 53, QUERY), 0, 0);
        ihl15[0] = 0x4f;
        ihl15[2..4].copy_from_slice(&60u16.to_be_bytes());
        let (out, d) = run(&[
            (101, ihl4),
            (101, total19),
            (101, long),
            (1, padded),
            (101, ihl15),
        ]);
        assert_eq!(
            payloads(&out),
            vec![(3, QUERY.to_vec()), (4, QUERY.to_vec())]
        );
        assert_eq!(d.stats.bad_ip, 3);
    }

    #[test]
    fn udp_length_that_lies_is_ignored() {
        let mut zero = udp(40000, 53, QUERY);
        zero[4..6].copy_from_slice(&0u16.to_be_bytes());
        let mut huge = udp(40000, 53, QUERY);
        huge[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
        let mut short = udp(40000, 53, QUERY);
        short[4..6].copy_from_slice(&10u16.to_be_bytes());
        let (out, _) = run(&[
            (101, ipv4(PROTO_UDP, &zero, 0, 0)),
            (101, ipv4(PROTO_UDP, &huge, 0, 0)),
            (101, ipv4(PROTO_UDP, &short, 0, 0)),
        ]);
        assert_eq!(
            payloads(&out),
            vec![
                (1, QUERY.to_vec()),
                (2, QUERY.to_vec()),
                (3, QUERY[..2].to_vec())
            ]
        );
    }

    #[test]
    fn overlapping_fragments_keep_the_longer_piece_at_an_offset() {
        let whole = udp(53, 40000, QUERY); // 37 bytes
        let mut fake = whole.clone();
        fake[8..16].copy_from_slice(&[0xee; 8]);
        let (out, d) = run(&[
            (101, ipv4(PROTO_UDP, &whole[..8], 7, 0x2000)),
            // A longer piece at offset 0 replaces the first.
            (101, ipv4(PROTO_UDP, &whole[..24], 7, 0x2000)),
            // A shorter piece at offset 8 is kept beside it, and the later offset wins
            // where they overlap.
            (101, ipv4(PROTO_UDP, &fake[8..16], 7, 0x2000 | 1)),
            (101, ipv4(PROTO_UDP, &whole[16..], 7, 2)),
        ]);
        let mut expect = QUERY.to_vec();
        expect[..8].copy_from_slice(&[0xee; 8]);
        assert_eq!(payloads(&out), vec![(4, expect)]);
        assert_eq!(
            (
                d.stats.fragments,
                d.fragments.reassembled,
                d.fragments.dropped
            ),
            (4, 1, 0)
        );
        assert_eq!(d.fragments.buffered, 0);
    }

    #[test]
    fn fragment_past_the_largest_datagram_is_dropped() {
        let (out, d) = run(&[
            (101, ipv4(PROTO_UDP, &[0; 100], 9, 0x2000)),
            (101, ipv4(PROTO_UDP, &[0; 16], 9, 0x2000 | (65528 / 8))),
        ]);
        assert!(out.is_empty());
        assert_eq!((d.fragments.dropped, d.fragments.buffered), (1, 0));
    }

    #[test]
    fn giant_tcp_length_prefixes_wait_and_are_counted_incomplete() {
        let mut lie = vec![0xff, 0xff];
        lie.extend_from_slice(QUERY);
        let mut two = vec![0, QUERY.len() as u8];
        two.extend_from_slice(QUERY);
        two.extend_from_slice(&[0xff, 0xff]);
        two.extend_from_slice(QUERY);
        let (out, d) = run(&[
            (101, ipv4(PROTO_TCP, &tcp(1000, tcp::SYN, &[]), 0, 0)),
            (101, ipv4(PROTO_TCP, &tcp(1001, 0x18, &lie), 0, 0)),
            (
                101,
                ipv4(PROTO_TCP, &tcp(1001 + lie.len() as u32, 0x11, &[]), 0, 0),
            ),
        ]);
        assert!(out.is_empty());
        assert_eq!(d.tcp.stats.incomplete_messages, 1);
        assert_eq!(d.tcp.buffered, 0);
        // At the end of the capture: the message before the lie is framed, the lie waits.
        let (out, d) = run(&[
            (101, ipv4(PROTO_TCP, &tcp(1000, tcp::SYN, &[]), 0, 0)),
            (101, ipv4(PROTO_TCP, &tcp(1001, 0x18, &two), 0, 0)),
        ]);
        assert_eq!(payloads(&out), vec![(2, QUERY.to_vec())]);
        assert_eq!(d.tcp.stats.incomplete_messages, 1);
    }

    #[test]
    fn ipv6_extension_header_walk_stops_after_eight() {
        fn v6(chain: usize) -> Vec<u8> {
            let body = udp(40000, 53, QUERY);
            let mut ext = Vec::new();
            for k in 0..chain {
                ext.extend_from_slice(&[if k + 1 < chain { 60 } else { 17 }, 0, 0, 0, 0, 0, 0, 0]);
            }
            let mut v = vec![0x60, 0, 0, 0];
            v.extend_from_slice(&((ext.len() + body.len()) as u16).to_be_bytes());
            v.extend_from_slice(&[60, 64]);
            v.extend_from_slice(&[0xfd; 16]);
            v.extend_from_slice(&[0xfe; 16]);
            v.extend_from_slice(&ext);
            v.extend_from_slice(&body);
            v
        }
        let (out, d) = run(&[(101, v6(7)), (101, v6(8)), (101, v6(9))]);
        assert_eq!(
            payloads(&out),
            vec![(1, QUERY.to_vec()), (2, QUERY.to_vec())]
        );
        assert_eq!(d.stats.not_dns, 1);
    }

    // -- tunnels ---------------------------------------------------------------------------

    const NODE_A: [u8; 4] = [192, 168, 0, 1];
    const NODE_B: [u8; 4] = [192, 168, 0, 2];

    /// An IPv4 packet between the two nodes.
    fn outer4(proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = ipv4(proto, payload, 0, 0);
        v[12..16].copy_from_slice(&NODE_A);
        v[16..20].copy_from_slice(&NODE_B);
        v
    }

    /// An IPv6 packet (no extension headers) carrying `nxt`.
    fn ip6(nxt: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(&[nxt, 64]);
        v.extend_from_slice(&[0xfd; 16]);
        v.extend_from_slice(&[0xfe; 16]);
        v.extend_from_slice(payload);
        v
    }

    fn vxlan(inner_eth: &[u8]) -> Vec<u8> {
        [&[0x08, 0, 0, 0, 0, 0, 42, 0][..], inner_eth].concat()
    }

    fn geneve(inner_eth: &[u8]) -> Vec<u8> {
        // One 8-byte option (two words).
        [
            &[0x02, 0, 0x65, 0x58, 0, 0, 7, 0][..],
            &[0, 1, 2, 1, 0, 0, 0, 0],
            inner_eth,
        ]
        .concat()
    }

    /// The query inside IPv4 inside UDP (client to server).
    fn dns4() -> Vec<u8> {
        ipv4(PROTO_UDP, &udp(40000, 53, QUERY), 0, 0)
    }

    fn tunnel_of(out: &[Decoded]) -> Vec<Option<(TunnelKind, IpAddr, IpAddr)>> {
        out.iter()
            .map(|x| match x {
                Decoded::Payload(p) => p.tunnel.map(|t| (t.kind, t.outer_src, t.outer_dst)),
                Decoded::Icmp(_) => None,
            })
            .collect()
    }

    #[test]
    fn each_encapsulation_yields_the_inner_query_with_the_outer_nodes() {
        let a = v4(&NODE_A);
        let b = v4(&NODE_B);
        let gre_plain = [&[0, 0, 0x08, 0x00][..], &dns4()].concat();
        let gre_keyed = [
            &[0x30, 0, 0x65, 0x58, 0, 0, 0, 9, 0, 0, 0, 1][..],
            &eth(&dns4()),
        ]
        .concat();
        let erspan2 = [
            &[0x10, 0, 0x88, 0xBE, 0, 0, 0, 1][..],
            &[0x10; 8],
            &eth(&dns4()),
        ]
        .concat();
        let erspan3 = [
            &[0x10, 0, 0x22, 0xEB, 0, 0, 0, 1][..],
            &[0; 12],
            &eth(&dns4()),
        ]
        .concat();
        let pptp = [
            &[
                0x30, 0x01, 0x88, 0x0B, 0, 0, 0, 1, 0, 0, 0, 1, 0xFF, 0x03, 0x00, 0x21,
            ][..],
            &dns4(),
        ]
        .concat();
        let frames = vec![
            (
                101,
                outer4(PROTO_UDP, &udp(51000, 4789, &vxlan(&eth(&dns4())))),
            ),
            (
                101,
                outer4(PROTO_UDP, &udp(51000, 8472, &vxlan(&eth(&dns4())))),
            ),
            (
                101,
                outer4(PROTO_UDP, &udp(51000, 6081, &geneve(&eth(&dns4())))),
            ),
            (101, outer4(PROTO_IPV4, &dns4())),
            (
                101,
                outer4(PROTO_IPV6, &ip6(PROTO_UDP, &udp(40000, 53, QUERY))),
            ),
            (101, ip6(PROTO_IPV4, &dns4())),
            (
                101,
                ip6(PROTO_IPV6, &ip6(PROTO_UDP, &udp(40000, 53, QUERY))),
            ),
            (101, outer4(PROTO_GRE, &gre_plain)),
            (101, outer4(PROTO_GRE, &gre_keyed)),
            (101, outer4(PROTO_GRE, &erspan2)),
            (101, outer4(PROTO_GRE, &erspan3)),
            (101, outer4(PROTO_GRE, &pptp)),
            (101, outer4(PROTO_UDP, &udp(51000, 4754, &gre_plain))),
            (
                101,
                outer4(
                    PROTO_UDP,
                    &udp(3544, 51000, &ip6(PROTO_UDP, &udp(40000, 53, QUERY))),
                ),
            ),
            // GRE on a VLAN.
            (1, {
                let mut f = eth(&outer4(PROTO_GRE, &gre_plain));
                f.splice(12..12, [0x81, 0x00, 0, 7]);
                f
            }),
        ];
        let n = frames.len();
        let (out, d) = run(&frames);
        assert_eq!(
            payloads(&out),
            vec![(0, QUERY.to_vec()); n]
                .iter()
                .enumerate()
                .map(|(i, (_, q))| (i as u64 + 1, q.clone()))
                .collect::<Vec<_>>()
        );
        let v6 = IpAddr::V6(Ipv6Addr::from([0xfd; 16]));
        let v6b = IpAddr::V6(Ipv6Addr::from([0xfe; 16]));
        use TunnelKind::*;
        let kinds = [
            (Vxlan, a, b),
            (Vxlan, a, b),
            (Geneve, a, b),
            (Ipip, a, b),
            (Ip6in4, a, b),
            (Ip4in6, v6, v6b),
            (Ip6in6, v6, v6b),
            (Gre, a, b),
            (Gre, a, b),
            (Erspan, a, b),
            (Erspan, a, b),
            (Pptp, a, b),
            (GreUdp, a, b),
            (Teredo, a, b),
            (Gre, a, b),
        ];
        assert_eq!(
            tunnel_of(&out),
            kinds.iter().map(|k| Some(*k)).collect::<Vec<_>>()
        );
        let t = &d.tunnels;
        assert_eq!(
            (t.vxlan, t.geneve, t.ipip, t.ip6in4, t.ip4in6, t.ip6in6),
            (2, 1, 1, 1, 1, 1)
        );
        assert_eq!(
            (t.gre, t.erspan, t.pptp, t.gre_udp, t.teredo),
            (3, 2, 1, 1, 1)
        );
        assert_eq!((d.stats.bad_tunnel, d.stats.tunnel_too_deep), (0, 0));
    }

    #[test]
    fn nested_tunnels_keep_the_outermost_and_stop_past_the_bound() {
        // Geneve inside VXLAN: the outer nodes are VXLAN's.
        let mut inner_ip = ipv4(PROTO_UDP, &udp(51000, 6081, &geneve(&eth(&dns4()))), 0, 0);
        inner_ip[12..16].copy_from_slice(&[172, 16, 0, 1]);
        let nested = outer4(PROTO_UDP, &udp(51000, 4789, &vxlan(&eth(&inner_ip))));
        // IP-in-IP wrapped five and six times: four levels are opened, no more.
        let wrap = |levels: usize| {
            let mut p = dns4();
            for _ in 0..levels {
                p = outer4(PROTO_IPV4, &p);
            }
            p
        };
        let (out, d) = run(&[(101, nested), (101, wrap(4)), (101, wrap(5))]);
        assert_eq!(
            payloads(&out),
            vec![(1, QUERY.to_vec()), (2, QUERY.to_vec())]
        );
        assert_eq!(
            tunnel_of(&out)[0],
            Some((TunnelKind::Vxlan, v4(&NODE_A), v4(&NODE_B)))
        );
        assert_eq!((d.tunnels.vxlan, d.tunnels.geneve), (1, 1));
        assert_eq!(d.tunnels.ipip, 4 + 4);
        assert_eq!(d.stats.tunnel_too_deep, 1);
    }

    #[test]
    fn bad_tunnel_headers_are_counted() {
        let mut no_i = vxlan(&eth(&dns4()));
        no_i[0] = 0;
        let frames = vec![
            (101, outer4(PROTO_UDP, &udp(51000, 4789, &no_i))),
            (101, outer4(PROTO_UDP, &udp(51000, 4789, &[8, 0, 0]))),
            (
                101,
                outer4(
                    PROTO_UDP,
                    &udp(51000, 6081, &[0x3f, 0, 0x65, 0x58, 0, 0, 0, 0]),
                ),
            ),
            (101, outer4(PROTO_GRE, &[0x40, 0, 8, 0, 0, 0, 0, 0])),
            (101, outer4(PROTO_GRE, &[0, 0])),
            (
                101,
                outer4(PROTO_UDP, &udp(51000, 4754, &[0, 0, 0x12, 0x34])),
            ),
            // The inner packet cut short is the inner layer's problem.
            (101, outer4(PROTO_IPV4, &dns4()[..10])),
            // A Teredo bubble is not an error, and not DNS.
            (101, outer4(PROTO_UDP, &udp(3544, 51000, &[0, 0]))),
        ];
        let (out, d) = run(&frames);
        assert!(out.is_empty());
        assert_eq!(d.stats.bad_tunnel, 6);
        assert_eq!((d.stats.bad_ip, d.stats.not_dns), (1, 6 + 1));
    }

    #[test]
    fn tunnels_survive_every_cut_and_flipped_byte() {
        let bases = [
            outer4(PROTO_UDP, &udp(51000, 4789, &vxlan(&eth(&dns4())))),
            outer4(PROTO_UDP, &udp(51000, 6081, &geneve(&eth(&dns4())))),
            outer4(
                PROTO_GRE,
                &[
                    &[0xB0, 0, 0x08, 0x00, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2][..],
                    &dns4(),
                ]
                .concat(),
            ),
            outer4(
                PROTO_GRE,
                &[
                    &[0x10, 0, 0x22, 0xEB, 0, 0, 0, 1][..],
                    &[0; 11],
                    &[1],
                    &[0; 8],
                    &eth(&dns4()),
                ]
                .concat(),
            ),
            outer4(
                PROTO_GRE,
                &[
                    &[
                        0x30, 0x81, 0x88, 0x0B, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x21,
                    ][..],
                    &dns4(),
                ]
                .concat(),
            ),
            ip6(PROTO_IPV6, &ip6(PROTO_IPV4, &dns4())),
            outer4(
                PROTO_UDP,
                &udp(
                    3544,
                    5,
                    &[
                        &[0, 1, 1, 1, 9, 9][..],
                        &[0; 9],
                        &[0; 8],
                        &ip6(PROTO_UDP, &udp(1, 53, QUERY)),
                    ]
                    .concat(),
                ),
            ),
        ];
        let mut d = FrameDecoder::new(&Config::default());
        let mut out = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut frame = 0;
        for base in &bases {
            for cut in 0..=base.len() {
                frame += 1;
                let mut data = base[..cut].to_vec();
                for _ in 0..3 {
                    if cut > 0 {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let at = (seed % cut as u64) as usize;
                        data[at] = (seed >> 32) as u8;
                    }
                }
                for bytes in [base[..cut].to_vec(), data] {
                    let rec = Record {
                        frame,
                        time: frame as f64,
                        link_type: 101,
                        iface: 0,
                        data: bytes,
                    };
                    d.decode(&rec, &mut out);
                }
            }
        }
        d.finish(&mut out);
        assert!(d.stats.bad_tunnel > 0);
    }

    /// Every cut of every frame, and each byte flipped, on every link type: counted or
    /// decoded, never a panic.
    #[test]
    fn every_prefix_and_flipped_byte_is_survived() {
        let mut lie = vec![0xff, 0xff];
        lie.extend_from_slice(QUERY);
        let bases = [
            ipv4(PROTO_UDP, &udp(40000, 53, QUERY), 0, 0),
            ipv4(PROTO_TCP, &tcp(1000, 0x18, &lie), 0, 0),
            ipv4(PROTO_UDP, &udp(53, 40000, QUERY), 3, 0x2001),
            ipv4(
                PROTO_ICMP,
                &[
                    &[3, 3, 0, 0, 0, 0, 0, 0][..],
                    &ipv4(PROTO_UDP, &udp(53, 4, QUERY), 0, 0),
                ]
                .concat(),
                0,
                0,
            ),
        ];
        let mut d = FrameDecoder::new(&Config::default());
        let mut out = Vec::new();
        let mut frame = 0;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for base in &bases {
            for link_type in [0, 1, 12, 14, 101, 108, 113, 228, 229, 276] {
                let head: Vec<u8> = match link_type {
                    1 => eth(&[])[..14].to_vec(),
                    0 => 2u32.to_le_bytes().to_vec(),
                    108 => 2u32.to_be_bytes().to_vec(),
                    113 => [&[0u8; 14][..], &[8, 0]].concat(),
                    276 => [&[8u8, 0, 0, 0, 0, 0, 0, 7][..], &[0; 12]].concat(),
                    _ => vec![],
                };
                let full = [&head[..], base].concat();
                for cut in 0..=full.len() {
                    frame += 1;
                    let mut data = full[..cut].to_vec();
                    if cut > 0 {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let at = (seed % cut as u64) as usize;
                        data[at] = (seed >> 32) as u8;
                    }
                    for bytes in [full[..cut].to_vec(), data] {
                        let rec = Record {
                            frame,
                            time: frame as f64,
                            link_type,
                            iface: 0,
                            data: bytes,
                        };
                        d.decode(&rec, &mut out);
                    }
                }
            }
        }
        d.finish(&mut out);
        assert!(frame > 1000);
    }
}
