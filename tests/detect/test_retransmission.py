"""Retransmissions: the same question to the same server again, while the previous query
was still unanswered and no more than 11 s after it. Whether the ID or the port changed
does not matter; the transaction says which."""

from __future__ import annotations

import pytest

from pcapdns.config import AnalysisConfig
from pcapdns.detect import retransmission
from pcapdns.output.document import build
from tests.craft import analyze_packets, findings_of, query, response


def _lookup(a):
    (lookup,) = a.lookups
    return lookup


@pytest.mark.parametrize(
    ("resolver", "second", "kind"),
    [
        ("glibc keeps the socket and the ID", {"id": 1, "sport": 40000}, "same_id_same_port"),
        ("dig keeps the ID, changes the port", {"id": 1, "sport": 40001}, "same_id_new_port"),
        ("a new ID from the same socket", {"id": 2, "sport": 40000}, "new_id_same_port"),
        ("single-request-reopen: a new socket", {"id": 2, "sport": 40001}, "new_id_new_port"),
    ],
)
def test_retry_of_an_unanswered_query_is_a_retransmission_whatever_changed(
    tmp_path, resolver, second, kind
):
    a = analyze_packets(tmp_path / "retry.pcap", [
        (1.0, query(id=1, sport=40000)),
        (6.0, query(**second)),
        (6.002, response(id=second["id"], dport=second["sport"])),
    ])

    lookup = _lookup(a)
    assert [t.attempt for t in lookup.attempts] == [1, 2]
    assert [t.retransmission for t in lookup.attempts] == [None, kind]
    assert a.match.retransmissions == 1
    assert (a.match.lookups, a.match.failed_lookups) == (1, 0)
    (f,) = findings_of(a, "retransmission")
    # The lost first try is why the answer came 5 s late: one problem, as bad as the wait.
    assert f.first.severity == "error"
    assert f.first.explains == ("slow_response",)
    assert findings_of(a, "slow_response") == []
    assert f.first.frames == (1, 2, 3)
    assert f.first.time == 1.0


def test_glibc_retry_after_5s_answered_2ms_later_has_latency_from_the_first_attempt(tmp_path):
    a = analyze_packets(tmp_path / "stall.pcap", [
        (1.0, query()),
        (6.0, query()),
        (6.002, response()),
    ])

    lookup = _lookup(a)
    assert lookup.latency == pytest.approx(5.002, abs=1e-6)
    assert lookup.answer.latency == pytest.approx(0.002, abs=1e-6)
    doc = build(a)
    assert doc["summary"]["latency_ms"]["max"] == pytest.approx(5002.0, abs=0.01)
    assert doc["summary"]["latency_ms"]["p50"] == pytest.approx(5002.0, rel=0.001)
    rows = {r["query_frame"]: r for r in doc["transactions"]}
    assert rows[2]["latency_ms"] == pytest.approx(2.0, abs=0.01)
    assert rows[2]["lookup_latency_ms"] == pytest.approx(5002.0, abs=0.01)
    assert rows[2]["retransmission"] == "same_id_same_port"
    # The 5-second stall is the retransmission's doing: one error, and no timeout.
    (f,) = findings_of(a, "retransmission")
    assert (f.first.severity, f.first.explains) == ("error", ("slow_response",))
    assert findings_of(a, "slow_response") == []
    assert findings_of(a, "timeout") == []


def test_retry_11s_later_is_still_a_retransmission(tmp_path):
    a = analyze_packets(tmp_path / "11s.pcap", [
        (1.0, query(id=1)),
        (11.9, query(id=2)),
        (11.902, response(id=2)),
    ])

    assert a.match.retransmissions == 1
    assert len(_lookup(a).attempts) == 2


def test_query_more_than_11s_after_the_previous_starts_a_new_lookup(tmp_path):
    a = analyze_packets(tmp_path / "new.pcap", [
        (1.0, query(id=1)),
        (12.5, query(id=2)),
        (12.502, response(id=2)),
    ])

    assert a.match.retransmissions == 0
    assert a.match.lookups == 2
    assert [len(lk.attempts) for lk in a.lookups] == [1, 1]
    assert findings_of(a, "retransmission") == []


def test_window_counts_from_the_previous_attempt_not_the_first(tmp_path):
    # glibc attempts:2 with timeout:5 over two nameservers, or a long retry train: each
    # retry is within 11 s of the one before, so one lookup spans 20 s.
    a = analyze_packets(tmp_path / "train.pcap", [
        (1.0, query(id=1)),
        (11.0, query(id=2)),
        (21.0, query(id=3)),
        (21.001, response(id=3)),
    ])

    lookup = _lookup(a)
    assert [t.attempt for t in lookup.attempts] == [1, 2, 3]
    assert lookup.latency == pytest.approx(20.001, abs=1e-6)


def test_same_question_after_an_answer_is_a_new_lookup(tmp_path):
    a = analyze_packets(tmp_path / "again.pcap", [
        (1.0, query(id=1)),
        (1.001, response(id=1)),
        (2.0, query(id=1)),
        (2.001, response(id=1)),
    ])

    assert a.match.retransmissions == 0
    assert a.match.lookups == 2


def test_retry_sent_before_the_late_answer_to_the_first_attempt_is_a_retransmission(tmp_path):
    # The first answer came, but only after the client had already asked again.
    a = analyze_packets(tmp_path / "crossed.pcap", [
        (1.0, query(id=1, sport=40000)),
        (6.0, query(id=2, sport=40001)),
        (6.5, response(id=1, dport=40000)),
    ])

    lookup = _lookup(a)
    assert [t.retransmission for t in lookup.attempts] == [None, "new_id_new_port"]
    assert lookup.answer.query.frame == 1
    assert lookup.latency == pytest.approx(5.5, abs=1e-6)


def test_same_question_to_another_server_is_not_a_retransmission(tmp_path):
    # glibc moves on to the next nameserver: a new lookup at that server.
    a = analyze_packets(tmp_path / "next-ns.pcap", [
        (1.0, query(dst="10.96.0.10")),
        (6.0, query(dst="10.96.0.11")),
        (6.002, response(src="10.96.0.11")),
    ])

    assert a.match.retransmissions == 0
    assert a.match.lookups == 2


def test_other_type_or_name_is_not_a_retransmission(tmp_path):
    a = analyze_packets(tmp_path / "other.pcap", [
        (1.0, query(name="a.example", qtype="A")),
        (1.5, query(name="a.example", qtype="AAAA")),
        (2.0, query(name="b.example", qtype="A")),
    ])

    assert a.match.retransmissions == 0
    assert a.match.lookups == 3


def test_retransmission_over_tcp_is_a_separate_group_from_udp(tmp_path):
    a = analyze_packets(tmp_path / "transport.pcap", [
        (1.0, query()),
        (2.0, query(tcp=True, sport=45000)),
    ])

    assert a.match.retransmissions == 0
    assert a.match.lookups == 2


def test_never_answered_retry_train_is_one_failed_lookup(tmp_path):
    a = analyze_packets(tmp_path / "dead.pcap", [
        (1.0, query()),
        (6.0, query()),
        (11.0, query()),
        (20.0, query(name="keepalive.example")),
    ])

    lookup = next(lk for lk in a.lookups if lk.first.qname == "example.com")
    assert len(lookup.attempts) == 3
    assert not lookup.answered
    assert "never answered" in retransmission.detect(lookup, AnalysisConfig())[0].detail
    # The timeout explains the retries: one problem.
    assert findings_of(a, "retransmission") == []
    (f,) = findings_of(a, "timeout")
    assert f.first.explains == ("retransmission",)
    assert f.first.frames == (1, 2, 3)


def test_same_name_asked_twice_within_100ms_with_new_ids_is_two_parallel_lookups(tmp_path):
    # A phone asks one name twice, 0.2 ms apart, from two sockets: no resolver retries
    # that fast, so these are two lookups, both answered.
    a = analyze_packets(tmp_path / "parallel.pcap", [
        (1.0, query(id=1, sport=40000)),
        (1.0002, query(id=2, sport=40001)),
        (1.010, response(id=1, dport=40000)),
        (1.011, response(id=2, dport=40001)),
    ])

    assert (a.match.lookups, a.match.retransmissions, a.match.parallel_lookups) == (2, 0, 1)
    assert findings_of(a, "retransmission") == []
    assert build(a)["summary"]["parallel_lookups"] == 1


def test_new_id_retry_after_the_minimum_gap_is_a_retransmission(tmp_path):
    a = analyze_packets(tmp_path / "gap.pcap", [
        (1.0, query(id=1, sport=40000)),
        (1.2, query(id=2, sport=40001)),
        (1.21, response(id=2, dport=40001)),
    ], retransmission_min_gap=0.1)

    assert (a.match.lookups, a.match.retransmissions, a.match.parallel_lookups) == (1, 1, 0)


def test_corpus_iphone_parallel_lookups_are_not_retransmissions(corpus) -> None:
    # ndpi__iphone.pcap: the same names asked twice 0.2 ms apart with new IDs and ports,
    # both answered: parallel lookups, not a resolver's retry.
    from pcapdns.analysis import analyze

    a = analyze([str(corpus / "ndpi__iphone.pcap")])
    assert a.match.retransmissions == 0
    assert a.match.parallel_lookups == 2
    assert findings_of(a, "retransmission") == []
