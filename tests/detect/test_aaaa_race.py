"""Concurrent same-port A/AAAA pairs and the conntrack race that loses one of them.

Each UDP A query pairs with the earliest unpaired AAAA for the same name from the same
client IP and port to the same server, sent from 5 ms before to 500 ms after it. The pair
is concurrent when the AAAA left before the A's answer came back (or the A was never
answered); it lost the race when exactly one of the two is unanswered.
"""

from __future__ import annotations

import pytest

from pcapdns.output.document import build
from tests.craft import IP, UDP, analyze_packets, findings_of, query, response

NAME = "api.default.svc.cluster.local"


def _a(t, id=1, sport=40000, **kw):
    return (t, query(NAME, "A", id=id, sport=sport, **kw))


def _aaaa(t, id=2, sport=40000, **kw):
    return (t, query(NAME, "AAAA", id=id, sport=sport, **kw))


def _a_answer(t, id=1, sport=40000):
    return (t, response(NAME, "A", id=id, dport=sport))


def _aaaa_answer(t, id=2, sport=40000):
    return (t, response(NAME, "AAAA", id=id, dport=sport, answers=("2001:db8::7",)))


def _tx(a, frame):
    return next(t for lk in a.lookups for t in lk.attempts if t.query.frame == frame)



def _capture_goes_on():
    """A later packet: the capture outlasts the time an answer to the lost query could take."""
    return (10.0, query("later.example", id=999, sport=49999))

def test_glibc_aaaa_lost_then_resent_same_id_same_port_is_race_lost(tmp_path):
    a = analyze_packets(tmp_path / "aaaa-same-port-race.pcap", [
        _a(1.0),
        _aaaa(1.00003),
        _a_answer(1.0012),
        # conntrack dropped the AAAA; glibc waits its 5 s timeout and asks again on the
        # same socket with the same ID.
        _aaaa(6.0),
        _aaaa_answer(6.0011),
    ])

    m = a.match
    assert (m.a_aaaa_pairs, m.a_aaaa_same_port_concurrent, m.a_aaaa_race_lost) == (1, 1, 1)
    (f,) = findings_of(a, "aaaa_race_lost")
    assert f.first.severity == "error"
    assert (f.first.client, f.first.qname, f.first.qtype) == ("10.0.3.7", NAME, "AAAA")
    assert {1, 2} <= set(f.first.frames)
    assert "AAAA query got no answer" in f.first.detail
    # The AAAA lookup: the lost first attempt and its same-socket retransmission, answered
    # 5 s after the first attempt.
    aaaa = next(lk for lk in a.lookups if lk.first.qtype == 28)
    assert [t.retransmission for t in aaaa.attempts] == [None, "same_id_same_port"]
    assert aaaa.latency == pytest.approx(5.00107, abs=1e-6)
    # One problem per cause: the retransmission and the 5 s answer are the race's
    # evidence, not problems beside it.
    assert findings_of(a, "slow_response") == []
    assert findings_of(a, "retransmission") == []
    assert f.first.explains == ("retransmission", "slow_response")
    assert findings_of(a, "timeout") == []
    summary = build(a)["summary"]
    assert summary["a_aaaa_same_port_concurrent"] == 1
    assert summary["a_aaaa_race_lost"] == 1


def test_a_lost_while_its_aaaa_was_answered_is_race_lost(tmp_path):
    a = analyze_packets(tmp_path / "a-lost.pcap", [
        _a(1.0),
        _aaaa(1.00003),
        _aaaa_answer(1.0012),
        _a(6.0),
        _a_answer(6.0011),
    ])

    assert a.match.a_aaaa_race_lost == 1
    (f,) = findings_of(a, "aaaa_race_lost")
    assert f.first.qtype == "A"
    assert "the A query got no answer" in f.first.detail


def test_concurrent_pair_both_answered_is_not_a_race(tmp_path):
    a = analyze_packets(tmp_path / "both.pcap", [
        _a(1.0),
        _aaaa(1.00003),
        _a_answer(1.0012),
        _aaaa_answer(1.0013),
    ])

    m = a.match
    assert (m.a_aaaa_pairs, m.a_aaaa_same_port_concurrent, m.a_aaaa_race_lost) == (1, 1, 0)
    assert findings_of(a, "aaaa_race_lost") == []
    assert _tx(a, 1).pair_frame == 2
    assert _tx(a, 2).pair_frame == 1
    rows = {r["query_frame"]: r for r in build(a)["transactions"]}
    assert (rows[1]["pair_frame"], rows[2]["pair_frame"]) == (2, 1)


def test_concurrent_pair_with_both_unanswered_is_not_a_race(tmp_path):
    # Nothing came back at all: a dead server, not a lost insert.
    a = analyze_packets(tmp_path / "none.pcap", [
        _a(1.0),
        _aaaa(1.00003),
    ])

    assert a.match.a_aaaa_same_port_concurrent == 1
    assert a.match.a_aaaa_race_lost == 0
    assert findings_of(a, "aaaa_race_lost") == []


def test_single_request_sequential_a_then_aaaa_on_one_port_is_not_concurrent(tmp_path):
    # options single-request: the AAAA leaves only after the A's answer, same socket.
    a = analyze_packets(tmp_path / "single-request.pcap", [
        _a(1.0),
        _a_answer(1.0012),
        _aaaa(1.0013),
        _aaaa_answer(1.0025),
    ])

    assert a.match.a_aaaa_pairs == 1
    assert a.match.a_aaaa_same_port_concurrent == 0
    assert findings_of(a, "aaaa_race_lost") == []


def test_sequential_pair_whose_aaaa_is_lost_is_not_a_race(tmp_path):
    a = analyze_packets(tmp_path / "single-request-lost.pcap", [
        _a(1.0),
        _a_answer(1.0012),
        _aaaa(1.0013),
    ])

    assert a.match.a_aaaa_same_port_concurrent == 0
    assert a.match.a_aaaa_race_lost == 0


def test_single_request_reopen_aaaa_from_a_new_port_does_not_pair(tmp_path):
    a = analyze_packets(tmp_path / "reopen.pcap", [
        _a(1.0, sport=40000),
        _a_answer(1.0012, sport=40000),
        _aaaa(1.0013, sport=40001),
        _aaaa_answer(1.0025, sport=40001),
    ])

    assert a.match.a_aaaa_pairs == 0
    assert _tx(a, 1).pair_frame is None


def test_concurrent_a_and_aaaa_from_different_ports_do_not_pair(tmp_path):
    a = analyze_packets(tmp_path / "ports.pcap", [
        _a(1.0, sport=40000),
        _aaaa(1.00003, sport=40001),
        _a_answer(1.0012, sport=40000),
    ])

    assert a.match.a_aaaa_pairs == 0
    assert a.match.a_aaaa_race_lost == 0


def test_a_and_aaaa_to_different_servers_do_not_pair(tmp_path):
    a = analyze_packets(tmp_path / "servers.pcap", [
        _a(1.0, dst="10.96.0.10"),
        _aaaa(1.00003, dst="10.96.0.11"),
    ])

    assert a.match.a_aaaa_pairs == 0


def test_a_and_aaaa_for_different_names_do_not_pair(tmp_path):
    a = analyze_packets(tmp_path / "names.pcap", [
        (1.0, query("a.example", "A", id=1)),
        (1.00003, query("b.example", "AAAA", id=2)),
    ])

    assert a.match.a_aaaa_pairs == 0


@pytest.mark.parametrize(
    ("aaaa_offset", "pairs"),
    [(-0.003, 1), (-0.006, 0), (0.499, 1), (0.501, 0)],
    ids=["aaaa-3ms-before", "aaaa-6ms-before", "aaaa-499ms-after", "aaaa-501ms-after"],
)
def test_aaaa_pairs_from_5ms_before_to_500ms_after_the_a(tmp_path, aaaa_offset, pairs):
    packets = sorted([_a(1.0), _aaaa(1.0 + aaaa_offset)], key=lambda p: p[0])
    a = analyze_packets(tmp_path / "window.pcap", packets)

    assert a.match.a_aaaa_pairs == pairs
    # Neither was answered, so a pair is concurrent.
    assert a.match.a_aaaa_same_port_concurrent == pairs


def test_aaaa_3ms_before_the_a_and_lost_is_race_lost(tmp_path):
    a = analyze_packets(tmp_path / "aaaa-first.pcap", [
        _aaaa(0.997),
        _a(1.0),
        _a_answer(1.0012),
        _capture_goes_on(),
    ])

    assert a.match.a_aaaa_same_port_concurrent == 1
    assert a.match.a_aaaa_race_lost == 1


def test_each_a_pairs_with_the_earliest_unpaired_aaaa(tmp_path):
    a = analyze_packets(tmp_path / "earliest.pcap", [
        _a(1.0, id=1),
        _aaaa(1.001, id=2),
        _aaaa(1.002, id=3),
        _a(1.003, id=4),
    ])

    assert a.match.a_aaaa_pairs == 2
    assert _tx(a, 1).pair_frame == 2
    assert _tx(a, 4).pair_frame == 3


def test_aaaa_pairs_with_the_first_a_whose_window_covers_it(tmp_path):
    a = analyze_packets(tmp_path / "two-a.pcap", [
        _a(1.0, id=1),
        _a_answer(1.001, id=1),
        _a(1.1, id=3),
        _aaaa(1.2, id=2),
    ])

    assert a.match.a_aaaa_pairs == 1
    assert _tx(a, 1).pair_frame == 4
    assert _tx(a, 3).pair_frame is None
    # The AAAA left after the first A's answer: not concurrent.
    assert a.match.a_aaaa_same_port_concurrent == 0


def test_a_and_aaaa_over_tcp_do_not_pair(tmp_path):
    a = analyze_packets(tmp_path / "tcp.pcap", [
        (1.0, query(NAME, "A", id=1, tcp=True)),
        (1.0001, query(NAME, "AAAA", id=2, tcp=True, sport=40000)),
    ])

    assert a.match.a_aaaa_pairs == 0


def test_many_clients_racing_are_counted_per_pair_and_merged_per_client(tmp_path):
    packets = []
    for i in range(5):
        t = 1.0 + i * 0.1
        packets += [
            _a(t, id=10 + i, sport=41000 + i),
            _aaaa(t + 0.00003, id=20 + i, sport=41000 + i),
            _a_answer(t + 0.001, id=10 + i, sport=41000 + i),
        ]
    a = analyze_packets(tmp_path / "many.pcap", packets + [_capture_goes_on()])

    assert a.match.a_aaaa_race_lost == 5
    (f,) = findings_of(a, "aaaa_race_lost")
    assert f.count == 5


def test_race_finding_names_the_lost_query_type_whichever_member_closed_last(tmp_path):
    # The capture stops soon after: both members are closed together at the end, and the
    # answered AAAA happens to be closed last. The finding is still about the lost A.
    a = analyze_packets(tmp_path / "a-lost-at-end.pcap", [
        _a(1.0),
        _aaaa(1.00003),
        _aaaa_answer(1.0012),
        (7.0, IP(src="10.0.3.7", dst="10.0.9.9") / UDP(sport=5000, dport=8080)),
    ])

    (f,) = findings_of(a, "aaaa_race_lost")
    assert f.first.qtype == "A"
    assert "the A query got no answer" in f.first.detail
    assert {1, 2} <= set(f.first.frames)


def test_aaaa_unanswered_just_before_the_capture_ends_is_no_race(tmp_path):
    from tests.craft import analyze_packets, findings_of, query, response

    a = analyze_packets(tmp_path / "race-at-end.pcap", [
        (1.0, query("api.example", "A", id=1)),
        (1.00002, query("api.example", "AAAA", id=2)),
        (1.001, response("api.example", "A", id=1)),
        (2.0, query("other.example", id=3, sport=41000)),
    ])
    assert a.match.a_aaaa_same_port_concurrent == 1
    assert a.match.a_aaaa_race_lost == 0
    assert findings_of(a, "aaaa_race_lost") == []


def test_race_with_options_timeout_1_near_the_end_is_a_race(tmp_path):
    # `options timeout:1`: the AAAA is lost, glibc re-sends it every second; the SRE
    # stopped the capture 5 s after the first query. The retries show the client gave up
    # on the lost query, so the race is decided though the end is near.
    a = analyze_packets(tmp_path / "race-timeout1.pcap", [
        _a(1.0),
        _aaaa(1.00003),
        _a_answer(1.0012),
        _aaaa(2.0),
        _aaaa(3.0),
        _aaaa(4.0),
        (6.0, query("later.example", id=999, sport=49999)),
    ])

    assert a.match.a_aaaa_race_lost == 1
    (f,) = findings_of(a, "aaaa_race_lost")
    assert f.first.qtype == "AAAA"
    assert "3 retries were not answered either" in f.first.detail


def test_real_glibc_race_with_timeout_1_in_a_short_capture_is_a_race() -> None:
    # sample_pcaps/README.md: glibc with `options timeout:1`, the first two AAAA queries
    # dropped, the capture stopped 2 s after the first query.
    from pcapdns.analysis import analyze
    from tests.conftest import SAMPLES

    a = analyze([str(SAMPLES / "race-timeout1-short-capture.pcap")])
    assert a.match.a_aaaa_race_lost == 1
    (f,) = findings_of(a, "aaaa_race_lost")
    assert f.first.qtype == "AAAA"
    assert set(f.first.explains) == {"retransmission", "slow_response"}
    assert [x.first.kind for x in a.findings] == ["aaaa_race_lost"]
