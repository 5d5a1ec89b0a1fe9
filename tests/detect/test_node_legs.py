"""The legs of a packet inside a node (``tcpdump -i any``): a query lost before the DNAT, an
answer lost on its way back, an answer from an address the client did not ask."""

from __future__ import annotations

from pcapdns.analysis import analyze
from pcapdns.config import AnalysisConfig
from tests.craft import findings_of, query, response, write_sll2

POD, SVC, COREDNS, OTHER = "10.0.3.7", "10.96.0.10", "10.244.1.5", "10.244.1.9"
#: SLL2 interface indexes: the pod's veth and the CoreDNS pod's veth.
POD_IF, DNS_IF = 2, 3


def _answered(t: float, name: str, id: int, port: int) -> list:
    """A lookup through the node's DNAT, every message on both sides."""
    return [
        (t, POD_IF, query(name, id=id, src=POD, dst=SVC, sport=port)),
        (t + 0.00002, DNS_IF, query(name, id=id, src=POD, dst=COREDNS, sport=port)),
        (t + 0.001, DNS_IF, response(name, id=id, src=COREDNS, dst=POD, dport=port)),
        (t + 0.00102, POD_IF, response(name, id=id, src=SVC, dst=POD, dport=port)),
    ]


def _analyze(tmp_path, packets):
    path = write_sll2(tmp_path / "node.pcap", sorted(packets, key=lambda p: p[0]))
    return analyze([str(path)], AnalysisConfig(), keep_lookups=True)


def _tx(a, name):
    (lk,) = [lk for lk in a.lookups if lk.first.qname == name]
    return lk


def test_delivered_answers_have_their_legs_and_no_fault(tmp_path):
    a = _analyze(tmp_path, _answered(1.0, "web.example.com", 1, 40001))
    lk = _tx(a, "web.example.com")
    t = lk.attempts[0]
    assert t.leg_fault is None and not lk.failed
    assert [(g.frame, g.iface, g.address) for g in t.query.legs] == [(2, DNS_IF, COREDNS)]
    assert [(g.frame, g.iface, g.address) for g in t.response.legs] == [(4, POD_IF, SVC)]
    assert a.duplicates == 2  # a leg is still no second lookup
    assert not any(f.first.kind in ("lost_in_node", "reply_not_delivered",
                                    "unexpected_source") for f in a.findings)


def test_a_query_with_no_copy_after_the_dnat_was_lost_in_the_node(tmp_path):
    packets = _answered(1.0, "web.example.com", 1, 40001)
    packets += [(1.5, POD_IF, query("lost.example.com", id=2, src=POD, dst=SVC, sport=40002))]
    packets += _answered(40.0, "db.example.com", 3, 40003)
    a = _analyze(tmp_path, packets)
    lk = _tx(a, "lost.example.com")
    assert lk.attempts[0].leg_fault == "lost_in_node" and lk.failed
    (f,) = findings_of(a, "lost_in_node")
    assert f.first.severity == "error" and f.first.frames == (5,)
    assert "timeout" in f.first.explains and findings_of(a, "timeout") == []


def test_an_answer_from_the_dnat_target_that_never_reached_the_pod(tmp_path):
    packets = _answered(1.0, "nodeliver.example.com", 1, 40001)[:3]
    a = _analyze(tmp_path, packets)
    lk = _tx(a, "nodeliver.example.com")
    assert lk.attempts[0].leg_fault == "reply_not_delivered"
    assert lk.failed and a.match.lookups_failed == 1 and a.match.lookups_failed_late == 0
    (f,) = findings_of(a, "reply_not_delivered")
    # Both legs of the query, and the answer.
    assert f.first.severity == "error" and f.first.frames == (1, 2, 3)
    assert COREDNS in f.first.detail


def test_an_answer_from_another_address_is_dropped_by_the_client(tmp_path):
    packets = _answered(1.0, "web.example.com", 1, 40001)
    packets += [
        (2.0, POD_IF, query("other.example.com", id=2, src=POD, dst=SVC, sport=40002)),
        (2.00002, DNS_IF, query("other.example.com", id=2, src=POD, dst=COREDNS, sport=40002)),
        (2.001, DNS_IF, response("other.example.com", id=2, src=OTHER, dst=POD, dport=40002)),
        (2.00102, POD_IF, response("other.example.com", id=2, src=OTHER, dst=POD,
                                   dport=40002)),
    ]
    a = _analyze(tmp_path, packets)
    lk = _tx(a, "other.example.com")
    assert lk.attempts[0].leg_fault == "unexpected_source" and lk.failed
    (f,) = findings_of(a, "unexpected_source")
    assert f.first.frames == (5, 6, 7, 8)
    assert OTHER in f.first.detail and COREDNS in f.first.detail


def test_one_interface_answer_from_another_address_is_unexpected(tmp_path):
    # A capture in the pod's namespace: the answer's source is not the address asked.
    a = _analyze(tmp_path, [
        (1.0, POD_IF, query("x.example.com", id=7, src=POD, dst=SVC, sport=40007)),
        (1.002, POD_IF, response("x.example.com", id=7, src=COREDNS, dst=POD, dport=40007)),
    ])
    (f,) = findings_of(a, "unexpected_source")
    assert f.first.frames == (1, 2)
    assert a.match.lookups_failed == 1


def test_a_retry_that_got_through_saves_the_lookup(tmp_path):
    # The conntrack race's picture: the first query dies in the node, the client's retry
    # 5 s later (same ID and port) gets through.
    packets = _answered(1.0, "web.example.com", 1, 40001)
    packets += [(2.0, POD_IF, query("flaky.example.com", id=2, src=POD, dst=SVC, sport=40002))]
    packets += _answered(7.0, "flaky.example.com", 2, 40002)
    a = _analyze(tmp_path, packets)
    lk = _tx(a, "flaky.example.com")
    assert len(lk.attempts) == 2 and lk.answer is lk.attempts[1] and not lk.failed
    assert [t.leg_fault for t in lk.attempts] == ["lost_in_node", None]
    (f,) = findings_of(a, "lost_in_node")
    # The 5 s answer and the retry are its evidence; a slow answer makes it an error.
    assert set(f.first.explains) >= {"retransmission", "slow_response"}
    assert findings_of(a, "retransmission") == []


def test_a_retry_after_an_undelivered_answer_is_a_lookup_of_its_own(tmp_path):
    # The matcher saw the first query answered on the wire: the client's retry starts a new
    # lookup (docs/analysis.md, Legs), and the first one failed.
    packets = _answered(1.0, "web.example.com", 1, 40001)
    packets += _answered(2.0, "flaky.example.com", 2, 40002)[:3]
    packets += _answered(7.0, "flaky.example.com", 2, 40002)
    a = _analyze(tmp_path, packets)
    first, retry = [lk for lk in a.lookups if lk.first.qname == "flaky.example.com"]
    assert first.failed and not retry.failed
    (f,) = findings_of(a, "reply_not_delivered")
    assert f.first.severity == "error"
