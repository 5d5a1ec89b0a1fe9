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
from tests.craft import eth, query, response, write_pcap, write_sll2

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


def _every_tunnel() -> dict[str, tuple[str, object]]:
    """Per inner name: (the tunnel type the transaction must name, a function wrapping an
    inner IP packet in an outer Ethernet frame of node A to node B)."""
    from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III
    from scapy.contrib.geneve import GENEVE
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether

    a6, b6 = "fd00::a", "fd00::b"

    def mac():
        return Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")

    def ip4(inner):
        return mac() / IP(src=NODE_A, dst=NODE_B) / inner

    return {
        "vxlan.example": ("vxlan", lambda p: ip4(
            UDP(sport=40000, dport=4789) / VXLAN(vni=1) / eth(p))),
        "geneve.example": ("geneve", lambda p: ip4(
            UDP(sport=40000, dport=6081) / GENEVE(vni=7, proto=0x6558) / eth(p))),
        "ipip.example": ("ipip", lambda p: ip4(p)),
        "sixin4.example": ("ip6in4", lambda p: ip4(p)),
        "fourin6.example": ("ip4in6", lambda p: mac() / IPv6(src=a6, dst=b6) / p),
        "gre.example": ("gre", lambda p: ip4(GRE(proto=0x0800) / p)),
        # GRE on a VLAN: the outer frame is 802.1Q-tagged.
        "grevlan.example": ("gre", lambda p: mac() / Dot1Q(vlan=20)
                            / IP(src=NODE_A, dst=NODE_B) / GRE(proto=0x0800) / p),
        # Ethernet over GRE (gretap), the bridged frame itself on a VLAN.
        "gretap.example": ("gre", lambda p: ip4(
            GRE(proto=0x6558) / mac() / Dot1Q(vlan=30) / p)),
        "erspan2.example": ("erspan", lambda p: ip4(
            GRE(seqnum_present=1, sequence_number=1, proto=0x88BE) / ERSPAN_II(session_id=3)
            / eth(p))),
        "erspan3.example": ("erspan", lambda p: ip4(
            GRE(seqnum_present=1, sequence_number=1, proto=0x22EB) / ERSPAN_III(session_id=3)
            / eth(p))),
        "greudp.example": ("gre_udp", lambda p: ip4(
            UDP(sport=40000, dport=4754) / GRE(proto=0x0800) / p)),
        # Geneve inside VXLAN: the transaction names the outermost tunnel, both are counted.
        "nested.example": ("vxlan", lambda p: ip4(
            UDP(sport=40000, dport=4789) / VXLAN(vni=1)
            / mac() / IP(src="10.244.0.1", dst="10.244.1.1")
            / UDP(sport=40001, dport=6081) / GENEVE(vni=7, proto=0x6558) / eth(p))),
    }


def test_every_tunnel_type_and_nesting_end_to_end(tmp_path: Path) -> None:
    packets: list[tuple[float, bytes]] = []
    t = T0
    wraps = _every_tunnel()
    for i, (name, (_, wrap)) in enumerate(wraps.items(), start=1):
        v6 = name == "sixin4.example"
        kw = {"v6": True, "src": "fd00:10::1", "dst": "fd00:10::2"} if v6 else {}
        packets.append((t, bytes(wrap(query(id=i, name=name, **kw)))))
        packets.append((t + 0.002, bytes(wrap(response(id=i, name=name, **(
            {"v6": True, "src": "fd00:10::2", "dst": "fd00:10::1"} if v6 else {}))))))
        t += 0.01
    path = write_pcap(tmp_path / "tunnels.pcap", packets)
    a = analyze([str(path)], keep_lookups=True)
    doc = build(a)
    got = {x["qname"]: (x["tunnel"] or {}).get("type") for x in doc["transactions"]}
    assert got == {name: kind for name, (kind, _) in wraps.items()}, got
    assert all(x["rcode"] == "NOERROR" for x in doc["transactions"]), doc["transactions"]
    assert doc["summary"]["answered_queries"] == len(wraps), doc["summary"]["answered_queries"]
    counts = {k: n for k, n in doc["summary"]["tunnels"].items() if n}
    # Two frames (query and answer) per name; the nested pair counts once as VXLAN and
    # once as Geneve.
    assert counts == {"vxlan": 4, "geneve": 4, "ipip": 2, "ip6in4": 2, "ip4in6": 2,
                      "gre": 6, "erspan": 4, "gre_udp": 2}, counts
    assert doc["summary"]["skipped"]["bad_tunnel_frames"] == 0, doc["summary"]["skipped"]
