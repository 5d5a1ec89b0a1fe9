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
    an = None
    qt = qtype if isinstance(qtype, int) else {"A": 1, "AAAA": 28}.get(qtype, 1)
    for a in answers if rcode == 0 and not tc else ():
        rr = DNSRR(rrname=name, type=qt, rdata=a, ttl=30)
        an = rr if an is None else an / rr
    dns = DNS(id=id, qr=1, rd=1, ra=1, tc=int(tc), rcode=rcode,
              qd=DNSQR(qname=name, qtype=qtype), an=an)
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
