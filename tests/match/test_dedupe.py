"""Duplicates: the same DNS message captured more than once is counted and dropped.

A copy is a duplicate when it has the same transport, identical DNS payload bytes and the
same client port, comes within 50 ms of the first copy, and was either seen on another
capture interface or has identical addresses and ports.
"""

from __future__ import annotations

from pcapdns.analysis import analyze
from pcapdns.config import AnalysisConfig
from pcapdns.dns.message import parse
from pcapdns.match.dedupe import Deduplicator
from pcapdns.output.document import build
from pcapdns.records import Payload
from tests.craft import (
    IP,
    analyze_packets,
    query,
    response,
    tcp_dns,
    write_pcapng,
    write_sll2,
)

POD = "10.244.1.7"
CLUSTER_IP = "10.96.0.10"
COREDNS = "10.244.2.5"
VETH = 12  # the pod's veth on the node
ETH0 = 2  # the node's uplink, after kube-proxy's DNAT


def _run_sll2(tmp_path, packets, **config):
    path = write_sll2(tmp_path / "any.pcap", packets)
    return analyze([str(path)], AnalysisConfig(**config), keep_lookups=True)


def _nat_copies(t: float = 0.0, id: int = 0x4D2, sport: int = 41000):
    """One lookup as ``tcpdump -i any`` on the client's node records it: each packet on
    the veth (pod <-> ClusterIP) and on the uplink (pod <-> CoreDNS pod IP)."""
    return [
        (t, VETH, query(id=id, src=POD, dst=CLUSTER_IP, sport=sport)),
        (t + 0.00002, ETH0, query(id=id, src=POD, dst=COREDNS, sport=sport)),
        (t + 0.0011, ETH0, response(id=id, src=COREDNS, dst=POD, dport=sport)),
        (t + 0.00112, VETH, response(id=id, src=CLUSTER_IP, dst=POD, dport=sport)),
    ]


def test_tcpdump_any_copies_before_and_after_dnat_on_two_interfaces_are_duplicates(tmp_path):
    a = _run_sll2(tmp_path, _nat_copies())

    assert a.duplicates == 2
    assert (a.match.queries, a.match.responses) == (1, 1)
    assert a.match.answered_queries == 1
    assert a.match.unsolicited_responses == 0
    assert a.findings == []
    (lookup,) = a.lookups
    (t,) = lookup.attempts
    # The first copy of each message is the one kept.
    assert (t.query.frame, t.query.dst, t.query.iface) == (1, CLUSTER_IP, VETH)
    assert (t.response.frame, t.response.src, t.response.iface) == (3, COREDNS, ETH0)
    summary = build(a)["summary"]
    assert (summary["duplicates"], summary["dns_messages"]) == (2, 2)


def test_many_lookups_on_two_interfaces_count_each_copy_once(tmp_path):
    packets = []
    for i in range(20):
        packets += _nat_copies(t=i * 0.2, id=100 + i, sport=42000 + i)
    a = _run_sll2(tmp_path, packets)

    assert a.duplicates == 40
    assert (a.match.queries, a.match.answered_queries) == (20, 20)
    assert len(a.lookups) == 20


def test_copy_on_the_same_interface_with_identical_addresses_is_a_duplicate(tmp_path):
    # A bridge in promiscuous mode delivers the very same datagram twice.
    a = analyze_packets(tmp_path / "bridge.pcap", [
        (0.0, query()),
        (0.0003, query()),
        (0.002, response()),
    ])

    assert a.duplicates == 1
    assert a.match.queries == 1
    assert a.match.retransmissions == 0
    (lookup,) = a.lookups
    assert len(lookup.attempts) == 1


def test_musl_same_query_to_two_servers_on_one_interface_is_not_a_duplicate(tmp_path):
    a = analyze_packets(tmp_path / "musl.pcap", [
        (0.0, query(dst="10.96.0.10")),
        (0.00005, query(dst="169.254.20.10")),
    ])

    assert a.duplicates == 0
    assert a.match.queries == 2
    assert a.match.fanout_groups == 1


def test_copy_on_another_interface_more_than_50ms_later_is_not_a_duplicate(tmp_path):
    a = _run_sll2(tmp_path, [
        (0.0, VETH, query(src=POD, dst=CLUSTER_IP)),
        (0.060, ETH0, query(src=POD, dst=COREDNS)),
    ])

    assert a.duplicates == 0
    assert a.match.queries == 2


def test_copy_on_another_interface_49ms_later_is_a_duplicate(tmp_path):
    a = _run_sll2(tmp_path, [
        (0.0, VETH, query(src=POD, dst=CLUSTER_IP)),
        (0.049, ETH0, query(src=POD, dst=COREDNS)),
    ])

    assert a.duplicates == 1
    assert a.match.queries == 1


def test_window_counts_from_the_first_copy_not_the_last(tmp_path):
    # Copies at 0, 30 and 60 ms: the third is 60 ms after the first copy kept.
    a = _run_sll2(tmp_path, [
        (0.0, VETH, query(src=POD, dst=CLUSTER_IP)),
        (0.030, ETH0, query(src=POD, dst=COREDNS)),
        (0.060, 3, query(src=POD, dst=COREDNS)),
    ])

    assert a.duplicates == 1
    assert a.match.queries == 2


def test_identical_payload_from_another_client_port_is_not_a_duplicate(tmp_path):
    a = _run_sll2(tmp_path, [
        (0.0, VETH, query(src=POD, dst=CLUSTER_IP, sport=41000)),
        (0.001, ETH0, query(src=POD, dst=COREDNS, sport=41001)),
    ])

    assert a.duplicates == 0
    assert a.match.queries == 2


def test_same_id_with_another_question_is_not_a_duplicate(tmp_path):
    a = _run_sll2(tmp_path, [
        (0.0, VETH, query(name="a.example", src=POD, dst=CLUSTER_IP)),
        (0.001, ETH0, query(name="b.example", src=POD, dst=COREDNS)),
    ])

    assert a.duplicates == 0
    assert a.match.queries == 2


def test_same_addresses_on_one_interface_with_other_server_port_is_not_a_duplicate(tmp_path):
    a = analyze_packets(tmp_path / "ports.pcap", [
        (0.0, query(dport=53)),
        (0.001, query(dport=5353)),
    ], ports=frozenset({53, 5353}))

    assert a.duplicates == 0
    assert a.match.queries == 2


def test_pcapng_copies_on_two_interfaces_are_duplicates(tmp_path):
    path = write_pcapng(tmp_path / "two.pcapng", [
        (1.0, 0, query(src=POD, dst=CLUSTER_IP)),
        (1.00002, 1, query(src=POD, dst=COREDNS)),
        (1.001, 1, response(src=COREDNS, dst=POD)),
        (1.00102, 0, response(src=CLUSTER_IP, dst=POD)),
    ])
    a = analyze([str(path)], AnalysisConfig(), keep_lookups=True)

    assert a.duplicates == 2
    assert (a.match.queries, a.match.answered_queries) == (1, 1)


def test_tcp_message_captured_on_two_interfaces_is_a_duplicate(tmp_path):
    q = query()
    a = _run_sll2(tmp_path, [
        (0.0, VETH, tcp_dns([q["DNS"]], src=POD, dst=CLUSTER_IP, sport=43000)),
        (0.00002, ETH0, tcp_dns([q["DNS"]], src=POD, dst=COREDNS, sport=43000)),
    ])

    assert a.duplicates == 1
    assert (a.match.queries, a.match.queries_tcp) == (1, 1)


def test_identical_tcp_queries_on_one_connection_are_two_queries(tmp_path):
    # Reassembly already removed re-captured segments; two identical messages on one
    # connection were really sent twice.
    msg = bytes(query()["DNS"])
    a = analyze_packets(tmp_path / "tcp.pcap", [
        (0.0, tcp_dns([msg], seq=1000)),
        (0.001, tcp_dns([msg], seq=1000 + 2 + len(msg))),
    ])

    assert a.duplicates == 0
    assert (a.match.queries, a.match.queries_tcp) == (2, 2)


def test_remembered_copies_are_forgotten_after_the_window():
    dedupe = Deduplicator(0.050)
    msg = bytes(query()["DNS"])
    for i in range(10_000):
        p = Payload(i + 1, i * 0.01, 0, "udp", "10.0.3.7", 30000 + i % 20000, "10.96.0.10",
                    53, msg)
        assert not dedupe.is_duplicate(parse(p))

    assert dedupe.duplicates == 0
    # Only the copies of the last 50 ms are kept.
    assert sum(len(v) for v in dedupe._seen.values()) <= 6
    assert len(dedupe._order) <= 6
    # Which way each client port and ID last went is swept now and then: bounded too.
    assert len(dedupe._turn) <= 4096


def test_first_copy_udp_ip_ttl_differs_but_payload_is_what_counts(tmp_path):
    a = _run_sll2(tmp_path, [
        (0.0, VETH, IP(src=POD, dst=CLUSTER_IP, ttl=64) / query()["UDP"]),
        (0.00002, ETH0, IP(src=POD, dst=COREDNS, ttl=63) / query()["UDP"]),
    ])

    assert a.duplicates == 1


def test_query_sent_again_after_its_answer_is_not_a_duplicate(tmp_path):
    # glibc, answered REFUSED, asks again at once: same ID, same port, same bytes, 120 us
    # later, on the same interface. A copy of a packet cannot follow the answer to it.
    a = _run_sll2(tmp_path, [
        (1.0, ETH0, query("web", id=0x5A, src=POD, sport=43700)),
        (1.00005, ETH0, response("web", id=0x5A, dst=POD, dport=43700, rcode=5)),
        (1.00012, ETH0, query("web", id=0x5A, src=POD, sport=43700)),
        (1.00017, ETH0, response("web", id=0x5A, dst=POD, dport=43700, rcode=5)),
    ])
    assert a.duplicates == 0
    assert (a.match.queries, a.match.responses, a.match.answered_queries) == (2, 2, 2)
    assert a.match.rcodes == {"REFUSED": 2}


def test_copy_captured_before_the_answer_is_still_a_duplicate(tmp_path):
    a = _run_sll2(tmp_path, [
        (1.0, ETH0, query("web", id=0x5A, src=POD, sport=43700)),
        (1.00001, ETH0, query("web", id=0x5A, src=POD, sport=43700)),
        (1.00005, ETH0, response("web", id=0x5A, dst=POD, dport=43700, rcode=5)),
    ])
    assert a.duplicates == 1
    assert (a.match.queries, a.match.answered_queries) == (1, 1)
