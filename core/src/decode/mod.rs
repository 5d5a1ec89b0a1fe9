//! Stage 2: frames -> DNS payloads (link layer, IP with fragments, UDP, TCP reassembly,
//! ICMP errors that quote DNS).
//!
//! Hot path: headers are read at known offsets from fixed-size windows taken with checked
//! access; nothing is built for the many frames that are not DNS. Everything that is not
//! decodable is counted in `DecodeStats` and skipped; nothing panics on capture bytes.
//!
//! The link layers are hand-rolled rather than sliced with `etherparse`: its lax slicing
//! differs from the behaviour this stage keeps (it walks the IPv6 authentication header
//! and rejects a hop-by-hop header that is not first, caps VLAN tags, knows no PPPoE
//! session header, and refuses an IPv4 total length shorter than the options), and every
//! difference would change the counted figures.

pub mod fragments;
mod ordered;
pub mod tcp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::Config;
use crate::types::{Decoded, IcmpQuote, Payload, Record, Time, Transport};
use fragments::{FragmentKey, FragmentReassembler};
use tcp::{FlowKey, TcpReassembler};

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
    last_sweep: Time,
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
            last_sweep: 0.0,
        }
    }

    #[inline]
    fn is_port(&self, p: u16) -> bool {
        self.ports[p as usize >> 6] >> (p & 63) & 1 != 0
    }

    /// Append the DNS payloads and ICMP quotes in one record to `out`.
    pub fn decode(&mut self, rec: &Record, out: &mut Vec<Decoded>) {
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
    pub fn decode_frame(
        &mut self,
        frame: u64,
        ts: Time,
        link_type: u32,
        iface: u32,
        data: &[u8],
        out: &mut Vec<Decoded>,
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

    fn ipv4(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        data: &[u8],
        off: usize,
        out: &mut Vec<Decoded>,
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

    fn ipv6(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        data: &[u8],
        off: usize,
        out: &mut Vec<Decoded>,
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
    fn l4(
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
        out: &mut Vec<Decoded>,
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
                    self.stats.not_dns += 1;
                    return;
                }
                let ulen = u16::from_be_bytes([u[4], u[5]]) as usize;
                let stop = if 8 <= ulen && ulen <= avail {
                    pos + ulen
                } else {
                    end
                };
                let body = data.get(pos + 8..stop).unwrap_or(&[]);
                out.push(Decoded::Payload(Payload {
                    frame,
                    time: ts,
                    iface,
                    transport: Transport::Udp,
                    src,
                    sport,
                    dst,
                    dport,
                    data: body.to_vec(),
                }));
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
                self.tcp.segment(
                    key,
                    seq,
                    flags,
                    payload,
                    frame,
                    ts,
                    ack,
                    &mut |msg, mframe, mtime| {
                        out.push(Decoded::Payload(Payload {
                            frame: mframe,
                            time: mtime,
                            iface,
                            transport: Transport::Tcp,
                            src,
                            sport,
                            dst,
                            dport,
                            data: msg,
                        }))
                    },
                );
            }
            PROTO_ICMP | PROTO_ICMPV6 => {
                self.icmp(frame, ts, iface, proto, src, data, pos, end, out)
            }
            _ => self.stats.not_dns += 1,
        }
    }

    /// An ICMP destination-unreachable that quotes a UDP datagram on a DNS port.
    #[allow(clippy::too_many_arguments)]
    fn icmp(
        &mut self,
        frame: u64,
        ts: Time,
        iface: u32,
        proto: u8,
        reporter: IpAddr,
        data: &[u8],
        pos: usize,
        end: usize,
        out: &mut Vec<Decoded>,
    ) {
        match self.icmp_quote(frame, ts, iface, proto, reporter, data, pos, end) {
            Some(q) => {
                self.stats.icmp_errors += 1;
                out.push(Decoded::Icmp(q));
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
    pub fn finish(&mut self, out: &mut Vec<Decoded>) {
        self.fragments.finish();
        // The interface of a message framed at the end is not known any more; 0 is safe
        // because TCP copies are never matched as duplicates by interface alone.
        self.tcp.finish(&mut |k, msg, frame, time| {
            out.push(Decoded::Payload(Payload {
                frame,
                time,
                iface: 0,
                transport: Transport::Tcp,
                src: k.src,
                sport: k.sport,
                dst: k.dst,
                dport: k.dport,
                data: msg,
            }))
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
