"""Late answers: the client had already closed its socket, so its kernel answered the
DNS response with an ICMP port unreachable quoting it."""

from __future__ import annotations

from tests.craft import (
    IP,
    UDP,
    analyze_packets,
    findings_of,
    icmp_port_unreachable,
    query,
    response,
)

END = IP(src="10.0.3.7", dst="10.0.9.9") / UDP(sport=5000, dport=8080)


def test_answer_after_the_client_closed_its_port_bounces_as_a_late_response(tmp_path):
    # A client with `options timeout:2 attempts:1` gave up after 2 s and closed the socket.
    r = response(id=0x77)
    a = analyze_packets(tmp_path / "late-answer.pcap", [
        (1.0, query(id=0x77)),
        (3.4, r),
        (3.40005, icmp_port_unreachable(r)),
    ])

    assert a.match.icmp_errors == 1
    assert a.match.answered_queries == 1
    (f,) = findings_of(a, "late_response")
    assert f.first.severity == "error"
    assert f.first.frames == (1, 2, 3)
    assert (f.first.client, f.first.server, f.first.qname) == (
        "10.0.3.7", "10.96.0.10", "example.com")
    assert "2.400 s" in f.first.detail
    assert findings_of(a, "icmp_unreachable") == []
    (lookup,) = a.lookups
    assert lookup.attempts[0].icmp_frames == (3,)


def test_late_answer_to_the_last_of_several_attempts_is_attached_to_that_attempt(tmp_path):
    r = response(id=2, dport=40001)
    a = analyze_packets(tmp_path / "late-retry.pcap", [
        (1.0, query(id=1, sport=40000)),
        (3.0, query(id=2, sport=40001)),
        (5.5, r),
        (5.5001, icmp_port_unreachable(r)),
    ])

    (f,) = findings_of(a, "late_response")
    assert f.first.frames == (2, 3, 4)
    assert f.first.time == 3.0


def test_icmp_about_a_query_is_not_a_late_response(tmp_path):
    q = query()
    a = analyze_packets(tmp_path / "query-bounced.pcap", [
        (1.0, q),
        (1.0003, icmp_port_unreachable(q)),
        (10.0, END),
    ])

    assert findings_of(a, "late_response") == []
    (f,) = findings_of(a, "timeout")
    assert 2 in f.first.frames


def test_musl_fanout_answer_bouncing_after_the_first_won_is_not_a_late_response(tmp_path):
    # musl takes the first answer and closes the socket; the slower server's answer
    # bounces by design.
    slow = response(src="10.96.0.10")
    a = analyze_packets(tmp_path / "fanout-bounce.pcap", [
        (1.0, query(dst="10.96.0.10")),
        (1.00002, query(dst="169.254.20.10")),
        (1.0004, response(src="169.254.20.10")),
        (1.003, slow),
        (1.00305, icmp_port_unreachable(slow)),
    ])

    assert findings_of(a, "late_response") == []


def test_icmp_quoting_an_answer_that_matched_nothing_is_an_icmp_unreachable(tmp_path):
    stray = response(id=0x99, dport=41234)
    a = analyze_packets(tmp_path / "stray-icmp.pcap", [
        (1.0, stray),
        (1.0001, icmp_port_unreachable(stray)),
    ])

    assert a.match.icmp_errors == 1
    (f,) = findings_of(a, "icmp_unreachable")
    assert f.first.frames == (2,)
    assert f.first.severity == "warning"
    assert findings_of(a, "late_response") == []


def test_icmp_quoting_the_query_of_an_answered_lookup_is_not_a_late_response(tmp_path):
    # The query bounced off a closed server port, yet an answer still came (another
    # backend behind the same address): nothing says the client's port was closed.
    q = query()
    a = analyze_packets(tmp_path / "query-bounced-answered.pcap", [
        (1.0, q),
        (1.0003, icmp_port_unreachable(q)),
        (1.2, response()),
    ])

    assert findings_of(a, "late_response") == []
    (lookup,) = a.lookups
    assert lookup.attempts[0].icmp_frames == (2,)
