"""Fan-out: one query (same client IP and port, ID and question) sent to two or more
server addresses within 50 ms, as musl (Alpine) does with every nameserver."""

from __future__ import annotations

from pcapdns.output.document import build
from tests.craft import analyze_packets, findings_of, query, response

KUBE_DNS = "10.96.0.10"
NODELOCAL = "169.254.20.10"
THIRD = "10.96.0.11"


def _tx(a, frame):
    return next(t for lk in a.lookups for t in lk.attempts if t.query.frame == frame)


def test_musl_sends_one_query_to_every_nameserver_and_each_answer_matches_its_own(tmp_path):
    a = analyze_packets(tmp_path / "musl-fanout.pcap", [
        (1.0, query(id=7, dst=KUBE_DNS)),
        (1.00002, query(id=7, dst=NODELOCAL)),
        (1.0004, response(id=7, src=NODELOCAL)),
        (1.0019, response(id=7, src=KUBE_DNS)),
    ])

    assert a.match.fanout_groups == 1
    assert a.match.answered_queries == 2
    assert a.match.unsolicited_responses == 0
    assert a.match.retransmissions == 0
    assert _tx(a, 1).response.src == KUBE_DNS
    assert _tx(a, 2).response.src == NODELOCAL
    assert [_tx(a, 1).fanout_of, _tx(a, 2).fanout_of] == [1, 1]
    (f,) = findings_of(a, "fanout")
    assert f.first.severity == "info"
    assert f.first.frames == (1,)
    assert f.first.server == KUBE_DNS
    doc = build(a)
    assert doc["summary"]["fanout_groups"] == 1
    assert [r["fanout_of"] for r in doc["transactions"]] == [1, 1]


def test_three_nameservers_are_one_fanout(tmp_path):
    a = analyze_packets(tmp_path / "three.pcap", [
        (1.0, query(dst=KUBE_DNS)),
        (1.00002, query(dst=NODELOCAL)),
        (1.00004, query(dst=THIRD)),
    ])

    assert a.match.fanout_groups == 1
    assert len(findings_of(a, "fanout")) == 1
    assert {_tx(a, f).fanout_of for f in (1, 2, 3)} == {1}


def test_same_query_to_another_server_60ms_later_is_not_a_fanout(tmp_path):
    a = analyze_packets(tmp_path / "later.pcap", [
        (1.0, query(dst=KUBE_DNS)),
        (1.060, query(dst=NODELOCAL)),
    ])

    assert a.match.fanout_groups == 0
    assert findings_of(a, "fanout") == []


def test_queries_with_different_ids_to_two_servers_are_not_a_fanout(tmp_path):
    a = analyze_packets(tmp_path / "ids.pcap", [
        (1.0, query(id=1, dst=KUBE_DNS)),
        (1.00002, query(id=2, dst=NODELOCAL)),
    ])

    assert a.match.fanout_groups == 0


def test_queries_from_different_ports_to_two_servers_are_not_a_fanout(tmp_path):
    a = analyze_packets(tmp_path / "ports.pcap", [
        (1.0, query(sport=40000, dst=KUBE_DNS)),
        (1.00002, query(sport=40001, dst=NODELOCAL)),
    ])

    assert a.match.fanout_groups == 0


def test_musl_retry_round_is_a_second_fanout(tmp_path):
    # musl re-sends to all nameservers every timeout/attempts seconds.
    a = analyze_packets(tmp_path / "rounds.pcap", [
        (1.0, query(dst=KUBE_DNS)),
        (1.00002, query(dst=NODELOCAL)),
        (2.67, query(dst=KUBE_DNS)),
        (2.67002, query(dst=NODELOCAL)),
        (2.671, response(src=KUBE_DNS)),
    ])

    assert a.match.fanout_groups == 2
    assert a.match.retransmissions == 2
    assert _tx(a, 3).fanout_of == 3
    # One finding per client, server and question, counting both rounds.
    (f,) = findings_of(a, "fanout")
    assert f.count == 2
