"""Truncation: a matched UDP response with TC=1. It is followed by TCP when the client's
next query for the same name and type (same client IP, within 5 s) goes over TCP; another
UDP try first, or nothing within 5 s, means no fallback."""

from __future__ import annotations

from pcapdns.output.document import build
from tests.craft import (
    CLIENT,
    DNS,
    SERVER,
    analyze_packets,
    findings_of,
    query,
    response,
    tcp_dns,
)

NAME = "headless.ns.svc.cluster.local"


def _tc(t: float = 1.0, qtype: str = "A", id: int = 1, sport: int = 40000,
        dst: str = SERVER):
    """A UDP query and its TC=1 answer (a headless Service with many endpoints)."""
    return [
        (t, query(NAME, qtype, id=id, sport=sport, dst=dst)),
        (t + 0.001, response(NAME, qtype, id=id, dport=sport, tc=True, src=dst)),
    ]


def _capture_goes_on():
    """A later packet, so the capture outlasts the 5 s in which a TCP retry may come."""
    return [(10.0, query("later.example", id=99, sport=49999))]


def _tcp_query(qtype: str = "A", id: int = 2, sport: int = 46000, dst: str = SERVER):
    return tcp_dns([query(NAME, qtype, id=id)[DNS]], sport=sport, dst=dst)


def _tcp_answer(qtype: str = "A", id: int = 2, sport: int = 46000):
    return tcp_dns([response(NAME, qtype, id=id, dport=sport)[DNS]], src=SERVER, dst=CLIENT,
                   sport=53, dport=sport, seq=7000)


def _tx(a, frame):
    return next(t for lk in a.lookups for t in lk.attempts if t.query.frame == frame)


def test_tc_answer_then_tcp_query_within_milliseconds_is_a_tcp_fallback(tmp_path):
    a = analyze_packets(tmp_path / "tc-then-tcp-retry.pcap", _tc() + [
        (1.003, _tcp_query()),
        (1.006, _tcp_answer()),
    ])

    assert a.match.tc_responses == 1
    assert a.match.tc_followed_by_tcp == 1
    assert a.match.tc_without_tcp_retry == 0
    assert findings_of(a, "truncated_no_tcp_fallback") == []
    t = _tx(a, 1)
    assert t.tc_followed_by_tcp is True
    assert t.tc_next_query_frame == 3
    assert _tx(a, 3).response.frame == 4
    row = next(r for r in build(a)["transactions"] if r["query_frame"] == 1)
    assert (row["tc"], row["tc_followed_by_tcp"]) == (True, True)


def test_tcp_retry_with_a_new_id_to_the_same_server_counts(tmp_path):
    a = analyze_packets(tmp_path / "new-id.pcap", _tc(id=0x1111) + [
        (1.2, _tcp_query(id=0x2222)),
    ])

    assert a.match.tc_followed_by_tcp == 1


def test_tc_answer_then_another_udp_try_is_no_tcp_fallback(tmp_path):
    # Old musl: never retries over TCP; it asks again over UDP.
    a = analyze_packets(tmp_path / "tc-udp-again.pcap", _tc() + [
        (1.5, query(NAME, id=3, sport=40001)),
        (2.0, _tcp_query()),
    ])

    assert a.match.tc_without_tcp_retry == 1
    assert a.match.tc_followed_by_tcp == 0
    (f,) = findings_of(a, "truncated_no_tcp_fallback")
    assert f.first.severity == "error"
    assert f.first.frames == (1, 2, 3)
    assert (f.first.qname, f.first.qtype) == (NAME, "A")
    assert "over UDP instead of TCP" in f.first.detail
    assert _tx(a, 1).tc_next_query_frame == 3


def test_tc_answer_with_nothing_after_it_is_no_tcp_fallback(tmp_path):
    a = analyze_packets(tmp_path / "tc-alone.pcap", _tc() + [
        (20.0, query("other.example")),
    ])

    assert a.match.tc_without_tcp_retry == 1
    (f,) = findings_of(a, "truncated_no_tcp_fallback")
    assert f.first.frames == (1, 2)
    assert "no TCP query" in f.first.detail


def test_tcp_query_more_than_5s_after_the_tc_answer_is_no_fallback(tmp_path):
    a = analyze_packets(tmp_path / "tc-late-tcp.pcap", _tc() + [
        (6.5, _tcp_query()),
    ])

    assert a.match.tc_without_tcp_retry == 1
    assert a.match.tc_followed_by_tcp == 0
    (f,) = findings_of(a, "truncated_no_tcp_fallback")
    # The TCP query came too late to be the fallback; it is not "another UDP try".
    assert "no TCP query" in f.first.detail
    assert f.first.frames == (1, 2)


def test_tcp_query_for_another_name_or_type_is_not_the_fallback(tmp_path):
    a = analyze_packets(tmp_path / "tc-other.pcap", _tc() + [
        (1.01, tcp_dns([query("other.example", id=9)[DNS]], sport=46001)),
        (1.02, _tcp_query(qtype="AAAA", sport=46002)),
        *_capture_goes_on(),
    ])

    assert a.match.tc_without_tcp_retry == 1
    assert a.match.tc_followed_by_tcp == 0


def test_tcp_query_from_another_client_is_not_the_fallback(tmp_path):
    a = analyze_packets(tmp_path / "tc-other-client.pcap", _tc() + [
        (1.01, tcp_dns([query(NAME, id=9)[DNS]], src="10.0.3.8", sport=46001)),
        *_capture_goes_on(),
    ])

    assert a.match.tc_without_tcp_retry == 1


def test_glibc_sends_a_and_aaaa_in_one_tcp_segment_after_both_were_truncated(tmp_path):
    a = analyze_packets(tmp_path / "tc-a-aaaa.pcap", [
        (1.0, query(NAME, "A", id=1)),
        (1.00002, query(NAME, "AAAA", id=2)),
        (1.001, response(NAME, "A", id=1, tc=True)),
        (1.0011, response(NAME, "AAAA", id=2, tc=True)),
        (1.003, tcp_dns([query(NAME, "A", id=3)[DNS], query(NAME, "AAAA", id=4)[DNS]],
                        sport=46000)),
    ])

    assert a.match.tc_responses == 2
    assert a.match.tc_followed_by_tcp == 2
    assert a.match.queries_tcp == 2
    assert findings_of(a, "truncated_no_tcp_fallback") == []


def test_musl_fanout_truncated_by_both_servers_then_one_tcp_query_is_a_fallback(tmp_path):
    # musl 1.2.4 asks every nameserver at once; both answer TC=1 and it retries once over
    # TCP. That TCP query is the client's next query after each TC answer.
    a = analyze_packets(tmp_path / "tc-fanout.pcap", [
        (1.0, query(NAME, dst="10.96.0.10")),
        (1.00001, query(NAME, dst="169.254.20.10")),
        (1.001, response(NAME, src="10.96.0.10", tc=True)),
        (1.0012, response(NAME, src="169.254.20.10", tc=True)),
        (1.003, _tcp_query(dst="169.254.20.10")),
    ])

    assert a.match.tc_responses == 2
    assert a.match.tc_followed_by_tcp == 2
    assert findings_of(a, "truncated_no_tcp_fallback") == []


def test_tc_answer_over_tcp_is_not_a_truncation(tmp_path):
    a = analyze_packets(tmp_path / "tcp-tc.pcap", [
        (1.0, _tcp_query()),
        (1.01, tcp_dns([response(NAME, id=2, dport=46000, tc=True)[DNS]], src=SERVER,
                       dst=CLIENT, sport=53, dport=46000, seq=7000)),
    ])

    assert a.match.tc_responses == 0
    assert _tx(a, 1).tc_followed_by_tcp is None


def test_tc_answer_just_before_the_capture_ends_is_undecided(tmp_path):
    from tests.craft import analyze_packets, findings_of, query, response

    a = analyze_packets(tmp_path / "tc-at-end.pcap", [
        (1.0, query("big.example")),
        (1.001, response("big.example", tc=True)),
        (1.5, query("other.example", id=9, sport=41000)),
    ])
    assert a.match.tc_responses == 1
    assert (a.match.tc_followed_by_tcp, a.match.tc_without_tcp_retry) == (0, 0)
    assert a.match.tc_open_at_end == 1
    assert findings_of(a, "truncated_no_tcp_fallback") == []
