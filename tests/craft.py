"""Craft DNS packets and captures for tests with scapy.

Every helper returns bytes or writes a file; tests then run the real pipeline on it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

CLIENT = "10.0.3.7"
SERVER = "10.96.0.10"


def query(
    name: str = "example.com",
    qtype: str | int = "A",
    id: int = 0x1234,
    src: str = CLIENT,
    dst: str = SERVER,
    sport: int = 40000,
    dport: int = 53,
    tcp: bool = False,
    v6: bool = False,
) -> Packet:
    """A DNS query packet (IP layer and up)."""
    dns = DNS(id=id, rd=1, qd=DNSQR(qname=name, qtype=qtype))
    ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    if tcp:
        raw = bytes(dns)
        return ip / TCP(sport=sport, dport=dport, flags="PA", seq=1000) / Raw(
            struct.pack("!H", len(raw)) + raw
        )
    return ip / UDP(sport=sport, dport=dport) / dns


def response(
    name: str = "example.com",
    qtype: str | int = "A",
    id: int = 0x1234,
    src: str = SERVER,
    dst: str = CLIENT,
    sport: int = 53,
    dport: int = 40000,
    rcode: int = 0,
    tc: bool = False,
    answers: Iterable[str] = ("192.0.2.1",),
    v6: bool = False,
) -> Packet:
    """A DNS response packet (IP layer and up)."""
    qt = qtype if isinstance(qtype, int) else {"A": 1, "AAAA": 28}.get(qtype, 1)
    an = [DNSRR(rrname=name, type=qt, rdata=a, ttl=30)
          for a in (answers if rcode == 0 and not tc else ())]
    extra = {"an": an} if an else {}
    dns = DNS(id=id, qr=1, rd=1, ra=1, tc=int(tc), rcode=rcode,
              qd=DNSQR(qname=name, qtype=qtype), **extra)
    ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    return ip / UDP(sport=sport, dport=dport) / dns


def eth(pkt: Packet) -> Packet:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt


def write_pcap(path: Path, packets: Iterable[tuple[float, bytes]], link_type: int = 1,
               nanos: bool = False, big_endian: bool = False) -> Path:
    """Write a classic pcap from (time, frame bytes) pairs, with any link type."""
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    unit = 1_000_000_000 if nanos else 1_000_000
    out = bytearray(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, link_type))
    for t, data in packets:
        sec = int(t)
        frac = int(round((t - sec) * unit))
        out += struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data
    path.write_bytes(bytes(out))
    return path


def write_eth(path: Path, packets: Iterable[tuple[float, Packet]]) -> Path:
    """Write IP-layer packets as an Ethernet pcap."""
    return write_pcap(path, ((t, bytes(eth(p))) for t, p in packets))


__all__ = [
    "CLIENT", "SERVER", "ICMP", "IP", "IPv6", "TCP", "UDP", "DNS", "DNSQR", "DNSRR",
    "Raw", "query", "response", "eth", "write_pcap", "write_eth",
]


# -- Captures with several interfaces, DNS over TCP, ICMP errors -------------------------

LINUX_SLL2 = 276


def sll2(pkt: Packet, ifindex: int, outgoing: bool = True) -> bytes:
    """An IP packet behind a LINUX_SLL2 header, as ``tcpdump -i any`` writes it."""
    raw = bytes(pkt)
    proto = 0x0800 if raw[0] >> 4 == 4 else 0x86DD
    # protocol, reserved, ifindex, ARPHRD_ETHER, packet type (4 outgoing, 0 to us),
    # address length, 8 address bytes
    header = struct.pack("!HHIHBB8s", proto, 0, ifindex, 1, 4 if outgoing else 0, 6,
                         b"\x02\x00\x00\x00\x00\x01\x00\x00")
    return header + raw


def write_sll2(path: Path, packets: Iterable[tuple[float, int, Packet]]) -> Path:
    """Write (time, interface index, IP packet) triples as a LINUX_SLL2 pcap."""
    return write_pcap(path, ((t, sll2(p, i)) for t, i, p in packets), link_type=LINUX_SLL2)


def write_pcapng(path: Path, packets: Iterable[tuple[float, int, Packet]],
                 interfaces: int = 2) -> Path:
    """Write (time, interface id, IP packet) triples as an Ethernet pcapng with
    ``interfaces`` interfaces (microsecond timestamps)."""

    def block(kind: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", kind, n) + body + struct.pack("<I", n)

    out = bytearray(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    for _ in range(interfaces):
        out += block(1, struct.pack("<HHI", 1, 0, 262144))
    for t, iface, p in packets:
        data = bytes(eth(p))
        us = int(round(t * 1_000_000))
        out += block(6, struct.pack("<IIIII", iface, us >> 32, us & 0xFFFFFFFF,
                                    len(data), len(data)) + data)
    path.write_bytes(bytes(out))
    return path


def tcp_dns(messages: Iterable[Packet | bytes], src: str = CLIENT, dst: str = SERVER,
            sport: int = 40000, dport: int = 53, seq: int = 1000, flags: str = "PA",
            v6: bool = False) -> Packet:
    """One TCP segment carrying DNS messages, each with its 2-byte length prefix."""
    raw = b"".join(struct.pack("!H", len(b)) + b for b in (bytes(m) for m in messages))
    ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    return ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq) / Raw(raw)


def icmp_port_unreachable(bounced: Packet) -> Packet:
    """The ICMP port unreachable a host sends back for ``bounced`` (an IPv4 datagram that
    reached a closed port), quoting it whole."""
    return IP(src=bounced[IP].dst, dst=bounced[IP].src) / ICMP(type=3, code=3) / Raw(
        bytes(bounced)
    )


def analyze_packets(path: Path, packets: Iterable[tuple[float, Packet]], **config: object):
    """Write (time, IP packet) pairs as an Ethernet pcap at ``path`` and run the whole
    analysis on it with ``AnalysisConfig(**config)``, keeping every lookup."""
    from pcapdns.analysis import analyze
    from pcapdns.config import AnalysisConfig

    write_eth(path, packets)
    return analyze([str(path)], AnalysisConfig(**config), keep_lookups=True)  # type: ignore[arg-type]


def lead_in(packets: Iterable[tuple[float, Packet]], by: float = 60.0) -> list:
    """``packets`` ``by`` seconds into a capture whose first frame is an unrelated UDP
    datagram at time 0 (so every frame number moves up by one): a response within
    ``max_wait`` of a capture's first packet may answer a query sent before the capture
    started and is not unsolicited, so a test of unsolicited responses starts mid-capture."""
    lead = IP(src="10.0.9.9", dst="10.0.9.10") / UDP(sport=5000, dport=5001) / b"lead"
    return [(0.0, lead)] + [(t + by, p) for t, p in packets]


def findings_of(analysis, kind: str) -> list:
    """The aggregated findings of one kind."""
    return [f for f in analysis.findings if f.first.kind == kind]


# --- pcapng with per-interface link types, TCP segments, running the decoder ------------

from dataclasses import dataclass  # noqa: E402

from pcapdns import _core  # noqa: E402
from pcapdns.config import AnalysisConfig  # noqa: E402
from pcapdns.records import IcmpQuote, Payload  # noqa: E402

#: What the frame decoder hands on.
Decoded = Payload | IcmpQuote
#: The frame decoder's counters (``_core.FrameDecoder.stats``): "decode", "tcp" and
#: "fragments", each a dict of counts.
DecoderStats = dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Interface:
    """One pcapng interface: link type and time stamp resolution (``if_tsresol`` byte:
    10**-n seconds per tick, or 2**-n when the high bit is set)."""

    link_type: int = 1
    tsresol: int = 6
    name: str | None = None


def write_pcapng_interfaces(path: Path, interfaces: Iterable[Interface],
                            packets: Iterable[tuple[int, float, bytes]],
                            big_endian: bool = False) -> Path:
    """Write a pcapng file from (interface id, time, frame bytes) triples."""
    o = ">" if big_endian else "<"
    ifaces = list(interfaces)

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack(o + "II", btype, n) + body + struct.pack(o + "I", n)

    def option(code: int, value: bytes) -> bytes:
        return struct.pack(o + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    out = bytearray(block(0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1)))
    for i in ifaces:
        opts = option(9, bytes([i.tsresol]))
        if i.name is not None:
            opts += option(2, i.name.encode())
        out += block(1, struct.pack(o + "HHI", i.link_type, 0, 262144) + opts + b"\0" * 4)
    for iface, t, data in packets:
        v = ifaces[iface].tsresol
        ticks = round(t * (2 ** (v & 0x7F) if v & 0x80 else 10**v))
        out += block(6, struct.pack(o + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF,
                                    len(data), len(data)) + data)
    path.write_bytes(bytes(out))
    return path


def framed(dns: Packet) -> bytes:
    """A DNS message with the 2-byte length prefix it carries over TCP (RFC 1035 4.2.2)."""
    raw = bytes(dns)
    return struct.pack("!H", len(raw)) + raw


def tcp_segment(seq: int, payload: bytes = b"", flags: str = "PA", src: str = CLIENT,
                dst: str = SERVER, sport: int = 40000, dport: int = 53,
                ack: int = 1) -> Packet:
    """One TCP segment (IP layer and up) of a DNS-over-TCP connection."""
    return IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq,
                                      ack=ack) / Raw(payload)


def decode_capture(path: Path | str,
                   ports: frozenset[int] = frozenset({53})) -> tuple[list[Decoded], DecoderStats]:
    """Run the core's reader and frame decoder over a capture as the analysis does (records
    in time order, the end-of-capture flush included); return what was decoded and the
    decoder's counters."""
    reader = _core.Reader([str(path)], AnalysisConfig().reorder_window)
    decoder = _core.FrameDecoder(ports)
    out: list[Decoded] = []
    for t, frame, link_type, iface, data in reader:
        out.extend(decoder.decode(frame, t, link_type, iface, data))
    out.extend(decoder.finish())
    return out, decoder.stats()
