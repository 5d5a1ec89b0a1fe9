"""Decode one frame down to the DNS payloads it carries.

Hot path: headers are read with ``struct`` and indexing at known offsets; no per-layer
objects are built for the many frames that are not DNS. Everything that is not decodable is
counted in ``DecodeStats`` and skipped; nothing raises out of ``FrameDecoder.decode``.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from pcapdns.decode import fragments, tcp
from pcapdns.decode.fragments import FragmentReassembler
from pcapdns.decode.records import IcmpQuote, Payload
from pcapdns.decode.tcp import TcpReassembler

_unpack_H = struct.Struct("!H").unpack_from
_unpack_HH = struct.Struct("!HH").unpack_from
_unpack_HHH = struct.Struct("!HHH").unpack_from
_unpack_I = struct.Struct("!I").unpack_from
_unpack_II = struct.Struct("!II").unpack_from
_unpack_le_I = struct.Struct("<I").unpack_from

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_PPPOE_SESSION = 0x8864
_PPP_TO_ETHERTYPE = {0x0021: 0x0800, 0x0057: 0x86DD}
_VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
# BSD loopback address families for IPv6 differ by OS (NetBSD/OpenBSD 24, FreeBSD 28,
# Darwin 30); IPv4 is 2 everywhere.
_NULL_IPV6 = frozenset({24, 28, 30})
# IPv6 extension headers that pcapdns walks over (RFC 8200 section 4).
_V6_SKIP = frozenset({0, 43, 60, 135, 139, 140})
_V6_FRAGMENT = 44

Decoded = Payload | IcmpQuote


@dataclass(slots=True)
class DecodeStats:
    """Frames that did not yield DNS, by reason."""

    #: Frames whose link layer does not carry IPv4 or IPv6 (ARP, LLDP, ...).
    non_ip: int = 0
    #: IP frames that are not UDP/TCP on a DNS port, nor ICMP about one.
    not_dns: int = 0
    #: IP headers that are cut short or inconsistent.
    bad_ip: int = 0
    #: IP fragments taken into reassembly.
    fragments: int = 0
    #: ICMP errors quoting a DNS datagram.
    icmp_errors: int = 0


class FrameDecoder:
    """Stateful decoder: link layer, IP (with fragments), UDP, TCP (with reassembly)."""

    def __init__(self, ports: frozenset[int], tcp_bytes: int = tcp.MAX_BYTES,
                 fragment_bytes: int = fragments.MAX_BYTES) -> None:
        self.ports = ports
        self.stats = DecodeStats()
        self.fragments = FragmentReassembler(fragment_bytes)
        self.tcp = TcpReassembler(tcp_bytes)
        self._addr_cache: dict[bytes, str] = {}
        self._last_sweep = 0.0

    # -- addresses -------------------------------------------------------------------

    def _addr(self, raw: bytes) -> str:
        s = self._addr_cache.get(raw)
        if s is None:
            if len(self._addr_cache) > 65536:
                self._addr_cache.clear()
            s = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
            self._addr_cache[raw] = s
        return s

    # -- entry point -----------------------------------------------------------------

    def decode(
        self, frame: int, ts: float, link_type: int, iface: int, data: bytes
    ) -> list[Decoded] | None:
        """Return the DNS payloads and ICMP quotes in one frame, or None."""
        if ts - self._last_sweep > 10.0:
            self._sweep(ts)
        # Link layer: find the IP header and its version.
        if link_type == 1:  # Ethernet, with any number of VLAN tags
            if len(data) < 14:
                self.stats.non_ip += 1
                return None
            off = 12
            (etype,) = _unpack_H(data, off)
            while etype in _VLAN_TAGS and len(data) >= off + 6:
                off += 4
                (etype,) = _unpack_H(data, off)
            off += 2
            if etype == _PPPOE_SESSION and len(data) >= off + 8:
                # PPPoE session header (6 bytes), then the 2-byte PPP protocol (RFC 2516).
                (ppp,) = _unpack_H(data, off + 6)
                etype = _PPP_TO_ETHERTYPE.get(ppp, 0)
                off += 8
        elif link_type == 276:  # LINUX_SLL2: protocol, reserved, ifindex, ...
            if len(data) < 20:
                self.stats.non_ip += 1
                return None
            (etype,) = _unpack_H(data, 0)
            (iface,) = _unpack_I(data, 4)
            off = 20
        elif link_type == 113:  # LINUX_SLL
            if len(data) < 16:
                self.stats.non_ip += 1
                return None
            (etype,) = _unpack_H(data, 14)
            off = 16
        elif link_type in (101, 12, 14, 228, 229):
            if not data:
                self.stats.non_ip += 1
                return None
            version = data[0] >> 4
            etype = _ETH_IPV4 if version == 4 else _ETH_IPV6 if version == 6 else 0
            off = 0
        elif link_type == 0 or link_type == 108:
            if len(data) < 4:
                self.stats.non_ip += 1
                return None
            (family,) = _unpack_le_I(data, 0) if link_type == 0 else _unpack_I(data, 0)
            if link_type == 0 and family > 0xFFFF:  # written by a big-endian host
                (family,) = _unpack_I(data, 0)
            etype = _ETH_IPV4 if family == 2 else _ETH_IPV6 if family in _NULL_IPV6 else 0
            off = 4
        else:  # pragma: no cover - the reader refuses other link types
            self.stats.non_ip += 1
            return None
        if etype == _ETH_IPV4:
            return self._ipv4(frame, ts, iface, data, off)
        if etype == _ETH_IPV6:
            return self._ipv6(frame, ts, iface, data, off)
        self.stats.non_ip += 1
        return None

    # -- IP ----------------------------------------------------------------------------

    def _ipv4(
        self, frame: int, ts: float, iface: int, data: bytes, off: int
    ) -> list[Decoded] | None:
        if len(data) < off + 20 or data[off] >> 4 != 4:
            self.stats.bad_ip += 1
            return None
        ihl = (data[off] & 0x0F) * 4
        total, _ident, frag = _unpack_HHH(data, off + 2)
        if ihl < 20 or total < ihl:
            self.stats.bad_ip += 1
            return None
        end = min(off + total, len(data))  # drop Ethernet padding; tolerate snaplen cuts
        proto = data[off + 9]
        src = data[off + 12 : off + 16]
        dst = data[off + 16 : off + 20]
        l4 = off + ihl
        if frag & 0x3FFF:  # MF set or a non-zero offset: a fragment
            self.stats.fragments += 1
            whole = self.fragments.add(
                (src, dst, _ident, proto, iface), (frag & 0x1FFF) * 8, bool(frag & 0x2000),
                data[l4:end], ts,
            )
            if whole is None:
                return None
            return self._l4(frame, ts, iface, proto, src, dst, whole, 0, len(whole))
        return self._l4(frame, ts, iface, proto, src, dst, data, l4, end)

    def _ipv6(
        self, frame: int, ts: float, iface: int, data: bytes, off: int
    ) -> list[Decoded] | None:
        if len(data) < off + 40 or data[off] >> 4 != 6:
            self.stats.bad_ip += 1
            return None
        (plen,) = _unpack_H(data, off + 4)
        nxt = data[off + 6]
        src = data[off + 8 : off + 24]
        dst = data[off + 24 : off + 40]
        pos = off + 40
        end = min(pos + plen, len(data)) if plen else len(data)  # 0: jumbogram
        for _ in range(8):  # bounded walk over extension headers
            if nxt in _V6_SKIP:
                if pos + 2 > end:
                    self.stats.bad_ip += 1
                    return None
                nxt, hlen = data[pos], (data[pos + 1] + 1) * 8
                pos += hlen
            elif nxt == _V6_FRAGMENT:
                if pos + 8 > end:
                    self.stats.bad_ip += 1
                    return None
                inner = data[pos]
                (offm,) = _unpack_H(data, pos + 2)
                (ident,) = _unpack_I(data, pos + 4)
                pos += 8
                if offm & 0xFFF9 == 0:  # atomic fragment (RFC 6946)
                    nxt = inner
                    continue
                self.stats.fragments += 1
                whole = self.fragments.add(
                    (src, dst, ident, inner, iface), offm & 0xFFF8, bool(offm & 1),
                    data[pos:end], ts,
                )
                if whole is None:
                    return None
                return self._l4(frame, ts, iface, inner, src, dst, whole, 0, len(whole))
            else:
                break
        return self._l4(frame, ts, iface, nxt, src, dst, data, pos, end)

    # -- transport -----------------------------------------------------------------------

    def _l4(
        self, frame: int, ts: float, iface: int, proto: int, src: bytes, dst: bytes,
        data: bytes, pos: int, end: int,
    ) -> list[Decoded] | None:
        ports = self.ports
        if proto == 17:
            if end - pos < 8:
                self.stats.bad_ip += 1
                return None
            sport, dport = _unpack_HH(data, pos)
            if sport not in ports and dport not in ports:
                self.stats.not_dns += 1
                return None
            (ulen,) = _unpack_H(data, pos + 4)
            stop = pos + ulen if 8 <= ulen <= end - pos else end
            return [
                Payload(frame, ts, iface, "udp", self._addr(src), sport, self._addr(dst), dport,
                        data[pos + 8 : stop])
            ]
        if proto == 6:
            if end - pos < 20:
                self.stats.bad_ip += 1
                return None
            sport, dport = _unpack_HH(data, pos)
            if sport not in ports and dport not in ports:
                self.stats.not_dns += 1
                return None
            seq, ack = _unpack_II(data, pos + 4)
            doff = (data[pos + 12] >> 4) * 4
            flags = data[pos + 13]
            if doff < 20:
                self.stats.bad_ip += 1
                return None
            s, d = self._addr(src), self._addr(dst)
            out: list[Decoded] = [
                Payload(mframe, mtime, iface, "tcp", s, sport, d, dport, msg)
                for msg, mframe, mtime in self.tcp.segment(
                    (s, sport, d, dport), seq, flags, data[pos + doff : end], frame, ts, ack
                )
            ]
            return out or None
        if proto == 1 or proto == 58:
            return self._icmp(frame, ts, iface, proto, src, data, pos, end)
        self.stats.not_dns += 1
        return None

    def _icmp(
        self, frame: int, ts: float, iface: int, proto: int, reporter: bytes,
        data: bytes, pos: int, end: int,
    ) -> list[Decoded] | None:
        """An ICMP destination-unreachable that quotes a UDP datagram on a DNS port."""
        if end - pos < 8:
            self.stats.not_dns += 1
            return None
        itype, icode = data[pos], data[pos + 1]
        q = pos + 8
        if proto == 1 and itype == 3 and end - q >= 28 and data[q] >> 4 == 4:
            qihl = (data[q] & 0x0F) * 4
            qproto = data[q + 9]
            qsrc, qdst = data[q + 12 : q + 16], data[q + 16 : q + 20]
            u = q + qihl
        elif proto == 58 and itype == 1 and end - q >= 48 and data[q] >> 4 == 6:
            qproto = data[q + 6]
            qsrc, qdst = data[q + 8 : q + 24], data[q + 24 : q + 40]
            u = q + 40
        else:
            self.stats.not_dns += 1
            return None
        if qproto != 17 or end - u < 8:
            self.stats.not_dns += 1
            return None
        sport, dport = _unpack_HH(data, u)
        if sport not in self.ports and dport not in self.ports:
            self.stats.not_dns += 1
            return None
        self.stats.icmp_errors += 1
        return [
            IcmpQuote(frame, ts, iface, self._addr(reporter), itype, icode, self._addr(qsrc),
                      sport, self._addr(qdst), dport, data[u + 8 : end])
        ]

    # -- housekeeping --------------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        self.fragments.expire(now)
        self.tcp.expire(now)

    def finish(self) -> list[Decoded]:
        """End of capture: return messages still held in TCP reassembly; count the rest."""
        self.fragments.finish()
        # The interface of a message framed at the end is not known any more; 0 is safe
        # because TCP copies are never matched as duplicates by interface alone.
        return [
            Payload(frame, ts, 0, "tcp", k[0], k[1], k[2], k[3], msg)
            for k, (msg, frame, ts) in self.tcp.finish_with_keys()
        ]
