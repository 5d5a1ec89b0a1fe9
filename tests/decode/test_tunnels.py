"""DNS inside overlay tunnels, through the whole analysis: the inner lookups, the tunnel
and its two nodes on each transaction, the summary's counts, and copies of one message seen
inside and outside a tunnel taken as one message."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import GRE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet

from pcapdns.analysis import analyze
from pcapdns.output.document import build
from pcapdns.output.summary import Summary
from tests.craft import eth, query, response, write_sll2

NODE_A, NODE_B = "192.168.0.1", "192.168.0.2"
T0 = 1_700_000_000.0


def vxlan(inner: Packet, src: str = NODE_A, dst: str = NODE_B, port: int = 4789) -> Packet:
    return IP(src=src, dst=dst) / UDP(sport=50000, dport=port) / VXLAN(vni=42) / eth(inner)


def gre(inner: Packet, src: str = NODE_A, dst: str = NODE_B) -> Packet:
    return IP(src=src, dst=dst) / GRE(proto=0x0800) / inner


def test_lookups_inside_vxlan_and_gre_name_their_nodes(tmp_path: Path) -> None:
    packets = [
        (T0, 2, vxlan(query(id=1))),
        (T0 + 0.001, 2, vxlan(response(id=1), src=NODE_B, dst=NODE_A)),
        (T0 + 0.010, 2, vxlan(query(id=2, name="flannel.example"), port=8472)),
        (T0 + 0.020, 2, gre(query(id=3, name="gre.example"))),
        (T0 + 0.021, 2, gre(response(id=3, name="gre.example"), src=NODE_B, dst=NODE_A)),
    ]
    path = write_sll2(tmp_path / "underlay.pcap", packets)
    a = analyze([str(path)], keep_lookups=True)
    s = Summary.of(a)
    assert s.lookups == 3 and s.answered_queries == 2, (s.lookups, s.answered_queries)
    assert {k: n for k, n in s.tunnels.items() if n} == {"vxlan": 3, "gre": 2}, s.tunnels
    doc = build(a)
    tunnels = {t["qname"]: t["tunnel"] for t in doc["transactions"]}
    assert tunnels == {
        "example.com": {"type": "vxlan", "outer_src": NODE_A, "outer_dst": NODE_B},
        "flannel.example": {"type": "vxlan", "outer_src": NODE_A, "outer_dst": NODE_B},
        "gre.example": {"type": "gre", "outer_src": NODE_A, "outer_dst": NODE_B},
    }, tunnels
    assert doc["summary"]["tunnels"]["vxlan"] == 3


def test_a_copy_inside_the_tunnel_and_one_outside_are_one_message(tmp_path: Path) -> None:
    # tcpdump -i any on a node: the pod's veth (ifindex 5) has the plain query and answer,
    # the underlay (ifindex 2) the same messages inside VXLAN, microseconds apart.
    q, r = query(id=7), response(id=7)
    packets = [
        (T0, 5, q),
        (T0 + 0.00002, 2, vxlan(q)),
        (T0 + 0.001, 2, vxlan(r, src=NODE_B, dst=NODE_A)),
        (T0 + 0.00102, 5, r),
    ]
    path = write_sll2(tmp_path / "any.pcap", packets)
    a = analyze([str(path)], keep_lookups=True)
    s = Summary.of(a)
    assert (s.lookups, s.queries, s.responses, s.duplicates) == (1, 1, 1, 2), (
        s.lookups, s.queries, s.responses, s.duplicates)
    t = a.lookups[0].attempts[0]
    # The query was first seen plain, its answer first inside the tunnel.
    assert t.query.tunnel is None and t.response is not None
    assert t.response.tunnel is not None and t.response.tunnel.outer_src == NODE_B
    assert t.tunnel == t.response.tunnel
    assert [g.iface for g in t.query.legs] == [2], t.query.legs


def test_a_damaged_tunnel_header_is_counted_not_fatal(tmp_path: Path) -> None:
    bad = bytearray(bytes(vxlan(query(id=9))))
    bad[28] = 0  # the VXLAN flags: no I flag
    path = write_sll2(tmp_path / "bad.pcap", [(T0, 2, IP(bytes(bad)))])
    s = Summary.of(analyze([str(path)]))
    assert s.skipped.bad_tunnel_frames == 1 and s.lookups == 0, s.skipped
