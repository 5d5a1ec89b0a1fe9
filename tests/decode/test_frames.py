"""Frames down to DNS payloads: every link type pcapdns reads, IPv4 and IPv6 with extension
headers, Ethernet padding, and ICMP errors that quote DNS."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import (
    ARP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Ether,
    Loopback,
    LoopbackOpenBSD,
)
from scapy.packet import Packet

from pcapdns.analysis import analyze
from pcapdns.cli import main
from pcapdns.records import IcmpQuote, Payload
from tests.craft import (
    CLIENT,
    DNS,
    ICMP,
    IP,
    SERVER,
    UDP,
    IPv6,
    Raw,
    decode_capture,
    eth,
    icmp_port_unreachable,
    query,
    response,
    write_eth,
    write_pcap,
)

T0 = 1_700_000_000.0
CLIENT6 = "fd00:10:244::7"
SERVER6 = "fd00:10:96::a"
MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def v4() -> Packet:
    return query(name="kubernetes.default.svc.cluster.local")


def v6() -> Packet:
    return query(name="kubernetes.default.svc.cluster.local", src=CLIENT6, dst=SERVER6, v6=True)


def only_payload(path: Path) -> Payload:
    out, _ = decode_capture(path)
    assert len(out) == 1
    assert type(out[0]) is Payload
    return out[0]


LINK_CASES: list[tuple[str, int, Callable[[], Packet], Callable[[Packet], bytes], int]] = [
    # (id, link type, IP packet, frame around it, expected Payload.iface)
    ("ethernet-ipv4", 1, v4, lambda p: bytes(eth(p)), 0),
    ("ethernet-ipv6", 1, v6, lambda p: bytes(eth(p)), 0),
    ("vlan-802.1q", 1, v4, lambda p: bytes(Ether(**MACS) / Dot1Q(vlan=11) / p), 0),
    (
        "qinq-88a8-8100",
        1,
        v6,
        lambda p: bytes(Ether(**MACS) / Dot1AD(vlan=100) / Dot1Q(vlan=11) / p),
        0,
    ),
    ("linux-sll-ipv4", 113, v4, lambda p: bytes(CookedLinux(proto=0x0800) / p), 0),
    ("linux-sll-ipv6", 113, v6, lambda p: bytes(CookedLinux(proto=0x86DD) / p), 0),
    ("linux-sll2-ifindex", 276, v4, lambda p: bytes(CookedLinuxV2(proto=0x0800, ifindex=7) / p), 7),
    ("raw-101-ipv4", 101, v4, bytes, 0),
    ("raw-101-ipv6", 101, v6, bytes, 0),
    ("ipv4-228", 228, v4, bytes, 0),
    ("ipv6-229", 229, v6, bytes, 0),
    # BSD NULL: the address family in the writing host's byte order (little-endian here).
    ("null-ipv4", 0, v4, lambda p: bytes(Loopback(type=2) / p), 0),
    ("null-ipv6-darwin", 0, v6, lambda p: bytes(Loopback(type=30) / p), 0),
    ("null-ipv6-freebsd", 0, v6, lambda p: bytes(Loopback(type=28) / p), 0),
    ("null-ipv4-big-endian-host", 0, v4, lambda p: struct.pack(">I", 2) + bytes(p), 0),
    # OpenBSD LOOP: the address family in network byte order.
    ("loop-ipv4", 108, v4, lambda p: bytes(LoopbackOpenBSD(type=2) / p), 0),
    ("loop-ipv6", 108, v6, lambda p: bytes(LoopbackOpenBSD(type=24) / p), 0),
]


@pytest.mark.parametrize(
    "link_type, make, frame, iface", [c[1:] for c in LINK_CASES], ids=[c[0] for c in LINK_CASES]
)
def test_dns_payload_behind_each_link_type(
    tmp_path: Path,
    link_type: int,
    make: Callable[[], Packet],
    frame: Callable[[Packet], bytes],
    iface: int,
) -> None:
    pkt = make()
    path = write_pcap(tmp_path / "link.pcap", [(T0, frame(pkt))], link_type=link_type)

    p = only_payload(path)

    src, dst = (CLIENT6, SERVER6) if IPv6 in pkt else (CLIENT, SERVER)
    assert p == Payload(1, pytest.approx(T0), iface, "udp", src, 40000, dst, 53, bytes(pkt[DNS]))


def test_sll2_interface_index_from_the_corpus(corpus: Path) -> None:
    out, _ = decode_capture(corpus / "dnscap__sll2.pcap")

    # tshark -T fields -e sll.ifindex
    assert [(p.frame, p.iface, p.src) for p in out] == [(1, 10, "238.0.0.1"), (2, 10, "238.0.0.2")]


@pytest.mark.parametrize(
    "extension",
    [
        IPv6ExtHdrHopByHop(),
        IPv6ExtHdrDestOpt(),
        IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt(),
    ],
    ids=["hop-by-hop", "destination-options", "both"],
)
def test_ipv6_extension_headers_before_udp_are_walked(tmp_path: Path, extension: Packet) -> None:
    dns = DNS(id=7, rd=1, qd=query()[DNS].qd)
    pkt = IPv6(src=CLIENT6, dst=SERVER6) / extension / UDP(sport=40000, dport=53) / dns
    path = write_eth(tmp_path / "ext.pcap", [(T0, pkt)])

    p = only_payload(path)

    assert (p.src, p.sport, p.dst, p.dport) == (CLIENT6, 40000, SERVER6, 53)
    assert p.data == bytes(dns)


def test_ethernet_padding_after_a_short_packet_is_not_dns(tmp_path: Path) -> None:
    pkt = query(name=".")  # a query for the root: 59 bytes on the wire
    frame = bytes(eth(pkt))
    assert len(frame) < 60  # the sender pads it to the Ethernet minimum, here not with zeros
    padded = frame + b"\xaa" * (60 - len(frame))
    path = write_pcap(tmp_path / "padded.pcap", [(T0, padded)])

    assert only_payload(path).data == bytes(pkt[DNS])


def test_ipv6_ethernet_padding_from_the_corpus(corpus: Path) -> None:
    out, _ = decode_capture(corpus / "dnscap__ipv6-with-ethernet-padding.pcap")

    # An 80-byte frame whose IPv6 payload length is 25: UDP header and a 17-byte query.
    assert [len(p.data) for p in out] == [17]


def test_udp_on_other_ports_and_non_ip_frames_are_counted_not_decoded(tmp_path: Path) -> None:
    ntp = IP(src=CLIENT, dst=SERVER) / UDP(sport=123, dport=123) / Raw(b"\x23" + b"\0" * 47)
    arp = Ether(**MACS) / ARP(psrc=CLIENT, pdst=SERVER)
    path = write_pcap(tmp_path / "other.pcap", [(T0, bytes(eth(ntp))), (T0 + 1, bytes(arp))])

    out, stats = decode_capture(path)

    assert out == []
    assert (stats["decode"]["not_dns"], stats["decode"]["non_ip"]) == (1, 1)


def test_dns_on_a_configured_port(tmp_path: Path) -> None:
    path = write_eth(tmp_path / "5353.pcap", [(T0, query(dport=5300))])

    out, _ = decode_capture(path, ports=frozenset({5300}))

    assert [p.dport for p in out] == [5300]


def test_ip_header_cut_short_by_the_snapshot_length_is_counted(tmp_path: Path) -> None:
    frame = bytes(eth(query()))[: 14 + 12]
    path = write_pcap(tmp_path / "snap.pcap", [(T0, frame)])

    out, stats = decode_capture(path)

    assert out == []
    assert stats["decode"]["bad_ip"] == 1


# -- ICMP errors that quote DNS ----------------------------------------------------------


def late_answer_bounced(v6: bool) -> list[tuple[float, Packet]]:
    """A query, the client giving up, the response arriving 6 s later at a closed port, and
    the client host's port unreachable quoting that response."""
    if v6:
        q = query(src=CLIENT6, dst=SERVER6, v6=True)
        r = response(src=SERVER6, dst=CLIENT6, v6=True)
        bounce = IPv6(src=CLIENT6, dst=SERVER6) / ICMPv6DestUnreach(code=4) / Raw(bytes(r))
    else:
        q, r = query(), response()
        bounce = icmp_port_unreachable(r)
    return [(T0, q), (T0 + 6.0, r), (T0 + 6.0001, bounce)]


@pytest.mark.parametrize("v6", [False, True], ids=["icmp-3-3", "icmpv6-1-4"])
def test_port_unreachable_quoting_a_response_is_an_icmp_quote(tmp_path: Path, v6: bool) -> None:
    path = write_eth(tmp_path / "bounce.pcap", late_answer_bounced(v6))

    out, stats = decode_capture(path)

    quote = out[2]
    assert type(quote) is IcmpQuote
    client, server = (CLIENT6, SERVER6) if v6 else (CLIENT, SERVER)
    assert (quote.frame, quote.reporter, quote.icmp_type, quote.icmp_code) == (
        3,
        client,
        1 if v6 else 3,
        4 if v6 else 3,
    )
    assert (quote.src, quote.sport, quote.dst, quote.dport) == (server, 53, client, 40000)
    assert quote.data == bytes(late_answer_bounced(v6)[1][1][DNS])
    assert stats["decode"]["icmp_errors"] == 1


@pytest.mark.parametrize("v6", [False, True], ids=["icmp-3-3", "icmpv6-1-4"])
def test_port_unreachable_is_not_counted_as_a_response(tmp_path: Path, v6: bool) -> None:
    path = write_eth(tmp_path / "bounce.pcap", late_answer_bounced(v6))

    result = analyze([str(path)])
    run = CliRunner().invoke(main, ["analyze", str(path), "--format", "json"])

    assert (result.match.queries, result.match.responses) == (1, 1)
    assert result.match.icmp_errors == 1
    assert run.exit_code == 0, run.output
    document = json.loads(run.output)["summary"]
    assert (document["responses"], document["icmp_errors"]) == (1, 1)


def test_icmp_that_quotes_no_dns_is_not_an_icmp_error(tmp_path: Path) -> None:
    ntp = IP(src=SERVER, dst=CLIENT) / UDP(sport=123, dport=40000) / Raw(b"\0" * 48)
    ping = IP(src=CLIENT, dst=SERVER) / ICMP(type=8)
    path = write_eth(tmp_path / "icmp.pcap", [(T0, icmp_port_unreachable(ntp)), (T0 + 1, ping)])

    out, stats = decode_capture(path)

    assert out == []
    assert (stats["decode"]["icmp_errors"], stats["decode"]["not_dns"]) == (0, 2)
