"""The agent's default capture filter, compiled and run by the real tcpdump.

Crafted packets are written as pcap files of the link types tcpdump writes (Ethernet for
one interface, LINUX_SLL2 for ``-i any``), and ``tcpdump -r FILE EXPR`` says which of them
the filter keeps. Packet i has the time i, so the printed times name the packets kept.
Needs tcpdump, not root.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption, fragment
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    fragment6,
)
from scapy.packet import Packet, Raw

from pcapdns import agent
from tests.craft import LINUX_SLL2, eth, query, response, sll2, write_pcap

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")

C4, S4 = "10.0.3.7", "10.96.0.10"
C6, S6 = "fd00::7", "fd00::a"


def big_answer(v6: bool = False, sport: int = 53) -> Packet:
    """A 3 kB EDNS answer: it leaves the server as IP fragments."""
    ip = IPv6(src=S6, dst=C6) if v6 else IP(src=S4, dst=C4)
    return ip / UDP(sport=sport, dport=40000) / Raw(b"\x12\x34\x81\x80" + b"\x00" * 3000)


def quote(outer: Packet, bounced: Packet) -> Packet:
    """An ICMP error ``outer`` quoting the start of ``bounced`` (RFC 1812: as much as fits
    in 576 bytes)."""
    return outer / Raw(bytes(bounced)[:528])


def icmp4(kind: int, code: int, bounced: Packet) -> Packet:
    return quote(IP(src=bounced[IP].dst, dst=bounced[IP].src) / ICMP(type=kind, code=code),
                 bounced)


def icmp6(layer: Packet, bounced: Packet) -> Packet:
    return quote(IPv6(src=bounced[IPv6].dst, dst=bounced[IPv6].src) / layer, bounced)


def with_options(pkt: Packet) -> Packet:
    """The same datagram with 8 bytes of IPv4 options (IHL 7): the ports move."""
    pkt = pkt.copy()
    pkt[IP].options = [IPOption(b"\x01\x01\x01\x01"), IPOption(b"\x01\x01\x01\x00")]
    del pkt[IP].ihl, pkt[IP].len, pkt[IP].chksum
    return IP(bytes(pkt))


ANSWER4 = response(src=S4, dst=C4, dport=40000)
ANSWER6 = response(src=S6, dst=C6, dport=40000, v6=True, answers=("2001:db8::1",),
                   qtype="AAAA")
QUERY4 = query(src=C4, dst=S4)
NTP4 = IP(src=C4, dst=S4) / UDP(sport=123, dport=123) / Raw(b"\x23" + b"\x00" * 47)
HTTPS6 = IPv6(src=C6, dst=S6) / UDP(sport=40001, dport=443) / Raw(b"quic")
FRAGS4 = fragment(big_answer(), fragsize=1400)
FRAGS6 = fragment6(big_answer(v6=True), 1280)
NTP_FRAGS6 = fragment6(IPv6(src=C6, dst=S6) / UDP(sport=123, dport=123)
                       / Raw(b"\x00" * 3000), 1280)

#: (what, packet, kept by the default filter)
CASES: list[tuple[str, Packet, bool]] = [
    ("UDP query to 53", QUERY4, True),
    ("UDP answer from 53", ANSWER4, True),
    ("TCP to 53", query(src=C4, dst=S4, tcp=True), True),
    ("IPv6 UDP answer", ANSWER6, True),
    ("IPv6 TCP query", query(src=C6, dst=S6, tcp=True, v6=True), True),
    ("first IPv4 fragment of an answer", FRAGS4[0], True),
    ("second IPv4 fragment of an answer", FRAGS4[1], True),
    ("last IPv4 fragment of an answer", FRAGS4[-1], True),
    ("first IPv6 fragment of an answer", FRAGS6[0], True),
    ("last IPv6 fragment of an answer", FRAGS6[-1], True),
    ("port unreachable quoting a late answer", icmp4(3, 3, ANSWER4), True),
    ("port unreachable quoting an answer with IP options",
     icmp4(3, 3, with_options(ANSWER4)), True),
    ("host unreachable quoting a query", icmp4(3, 1, QUERY4), True),
    ("fragmentation needed quoting TCP 53", icmp4(3, 4, query(src=S4, dst=C4, sport=53,
                                                              dport=40000, tcp=True)), True),
    ("time exceeded quoting a query", icmp4(11, 0, QUERY4), True),
    ("parameter problem quoting a query", icmp4(12, 0, QUERY4), True),
    ("ICMPv6 port unreachable quoting an answer", icmp6(ICMPv6DestUnreach(code=4), ANSWER6),
     True),
    ("ICMPv6 packet too big quoting an answer", icmp6(ICMPv6PacketTooBig(mtu=1280), ANSWER6),
     True),
    ("ICMPv6 time exceeded quoting a query",
     icmp6(ICMPv6TimeExceeded(), query(src=C6, dst=S6, v6=True)), True),
    ("UDP 123", NTP4, False),
    ("TCP 443", IP(src=C4, dst=S4) / TCP(sport=40000, dport=443), False),
    ("port unreachable quoting NTP", icmp4(3, 3, NTP4), False),
    ("ICMP echo request", IP(src=C4, dst=S4) / ICMP(type=8) / Raw(b"ping"), False),
    ("ICMP echo reply with DNS-looking bytes",
     IP(src=S4, dst=C4) / ICMP(type=0) / Raw(bytes(ANSWER4)), False),
    ("ICMPv6 port unreachable quoting QUIC", icmp6(ICMPv6DestUnreach(code=4), HTTPS6), False),
    ("ICMPv6 echo request", IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(), False),
    ("first IPv6 fragment of NTP", NTP_FRAGS6[0], False),
    ("first IPv4 fragment of NTP", fragment(IP(src=C4, dst=S4) / UDP(sport=123, dport=123)
                                            / Raw(b"\x00" * 3000), 1400)[0], False),
]


def kept(tmp_path: Path, expr: str, packets: list[Packet], link: str) -> set[int]:
    """Indexes of ``packets`` that tcpdump keeps with ``expr``, read from a pcap of
    link type ``link``."""
    path = tmp_path / f"{link}.pcap"
    if link == "EN10MB":
        write_pcap(path, ((i, bytes(eth(p))) for i, p in enumerate(packets)))
    else:
        write_pcap(path, ((i, sll2(p, 2)) for i, p in enumerate(packets)),
                   link_type=LINUX_SLL2)
    cp = subprocess.run(["tcpdump", "-r", str(path), "-nn", "-tt", expr],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    return {int(line.split(".")[0]) for line in cp.stdout.splitlines()
            if line[:1].isdigit()}


@pytest.mark.parametrize("link", ["EN10MB", "LINUX_SLL2"])
def test_default_filter_keeps_dns_its_fragments_and_its_icmp_errors(
    tmp_path: Path, link: str
) -> None:
    got = kept(tmp_path, agent.parse_options([]).bpf, [p for _, p, _ in CASES], link)
    wrong = [(what, "dropped" if keep else "kept") for i, (what, _, keep) in enumerate(CASES)
             if (i in got) != keep]
    assert not wrong, wrong


def test_the_old_filter_lost_fragments_and_icmp(tmp_path: Path) -> None:
    """What ``port 53`` alone dropped: why the default is more than that."""
    got = kept(tmp_path, "port 53", [p for _, p, _ in CASES], "LINUX_SLL2")
    lost = {what for i, (what, _, keep) in enumerate(CASES) if keep and i not in got}
    assert {"second IPv4 fragment of an answer", "first IPv6 fragment of an answer",
            "port unreachable quoting a late answer",
            "ICMPv6 port unreachable quoting an answer"} <= lost


def test_extra_ports_reach_fragments_and_icmp(tmp_path: Path) -> None:
    mdns = IP(src=C4, dst=S4) / UDP(sport=5353, dport=5353) / Raw(b"\x00" * 12)
    mdns6 = IPv6(src=C6, dst=S6) / UDP(sport=40000, dport=5353) / Raw(b"\x00" * 12)
    packets = [mdns, icmp4(3, 3, mdns), icmp6(ICMPv6DestUnreach(code=4), mdns6),
               fragment6(big_answer(v6=True, sport=5353), 1280)[0], NTP4]
    o = agent.parse_options(["--port", "5353"])
    assert o.ports == (53, 5353)
    assert kept(tmp_path, o.bpf, packets, "LINUX_SLL2") == {0, 1, 2, 3}
    assert kept(tmp_path, agent.parse_options([]).bpf, packets, "LINUX_SLL2") == set()


@pytest.mark.parametrize("link", ["EN10MB", "LINUX_SLL", "LINUX_SLL2", "RAW"])
def test_default_filter_compiles_for_every_link_type(link: str) -> None:
    """``tcpdump -d`` compiles it (the program it prints is far below the kernel's
    4096-instruction limit, even with ten ports)."""
    ports = [str(n) for n in range(5300, 5309)]
    for argv in ([], [x for p in ports for x in ("--port", p)]):
        cp = subprocess.run(["tcpdump", "-y", link, "-d", agent.parse_options(argv).bpf],
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
        assert 50 < len(cp.stdout.splitlines()) < 1000
