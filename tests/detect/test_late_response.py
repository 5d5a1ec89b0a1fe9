"""Late answers: the client had already closed its socket, so its kernel answered the
DNS response with an ICMP port unreachable quoting it."""

from __future__ import annotations

from tests.craft import (
    CLIENT,
    DNS,
    IP,
    SERVER,
    UDP,
    analyze_packets,
    findings_of,
    icmp_port_unreachable,
    query,
    response,
    tcp_dns,
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


def test_glibc_tc_fallback_bounces_the_other_udp_answer_and_nothing_fails(tmp_path):
    # glibc sends A and AAAA over UDP; the A answer is truncated, so glibc closes the UDP
    # socket and asks both again over TCP. The AAAA's UDP answer then hits the closed port.
    name = "big.example.test"
    aaaa_udp = response(name, "AAAA", id=2, answers=())
    a = analyze_packets(tmp_path / "tc-glibc.pcap", [
        (1.0, query(name, "A", id=1)),
        (1.00001, query(name, "AAAA", id=2)),
        (1.0001, response(name, "A", id=1, tc=True)),
        (1.0003, aaaa_udp),
        (1.0004, icmp_port_unreachable(aaaa_udp)),
        (1.0005, tcp_dns([query(name, "A", id=3)[DNS], query(name, "AAAA", id=4)[DNS]],
                         sport=44000)),
        (1.0011, tcp_dns([response(name, "A", id=3, dport=44000)[DNS],
                          response(name, "AAAA", id=4, dport=44000, answers=())[DNS]],
                         src=SERVER, dst=CLIENT, sport=53, dport=44000, seq=5000)),
        (9.0, END),
    ])

    # The TCP queries are attempts of the two UDP lookups, not lookups of their own and
    # not retransmissions.
    assert (a.match.lookups, a.match.retransmissions, a.match.tcp_fallback_queries) == (2, 0, 2)
    assert sorted(len(lk.attempts) for lk in a.lookups) == [2, 2]
    assert all(lk.attempts[1].tcp_fallback for lk in a.lookups)
    assert all(lk.answer.query.transport == "tcp" for lk in a.lookups)
    assert a.match.lookups_failed == 0
    assert findings_of(a, "retransmission") == []
    (late,) = findings_of(a, "late_response")
    assert late.first.severity == "info"
    assert "answered over TCP" in late.first.detail
    assert [f.first.kind for f in a.findings if f.first.severity == "error"] == []


def test_late_answer_with_no_other_answer_is_a_failed_lookup(tmp_path):
    q = query(id=7)
    late = response(id=7)
    a = analyze_packets(tmp_path / "late-failed.pcap", [
        (1.0, q),
        (3.5, late),
        (3.5001, icmp_port_unreachable(late)),
        (20.0, END),
    ])

    (f,) = findings_of(a, "late_response")
    assert f.first.severity == "error"
    assert a.match.failed_lookups == 0  # answered on the wire (the contract's meaning)
    assert a.match.lookups_failed == 1  # but the client never got it
    assert findings_of(a, "timeout") == []  # the late answer says more than a timeout


def test_real_glibc_tc_fallback_sample_has_no_failure() -> None:
    # sample_pcaps/tc-glibc-a-aaaa-tcp.pcap: frames 25 and 40 are UDP AAAA answers that hit
    # glibc's closed UDP socket (ICMP frames 26 and 41); those lookups were answered over
    # TCP (frames 29 and 46).
    from pcapdns.analysis import analyze
    from tests.conftest import SAMPLES

    a = analyze([str(SAMPLES / "tc-glibc-a-aaaa-tcp.pcap")], keep_lookups=True)
    assert (a.match.lookups, a.match.lookups_failed, a.match.retransmissions) == (6, 0, 0)
    (late,) = findings_of(a, "late_response")
    assert late.first.severity == "info" and late.count == 2
    answers = {lk.answer.response.frame for lk in a.lookups if 25 in
               [t.response.frame for t in lk.attempts if t.response is not None]}
    assert answers == {29}
    assert not [f for f in a.findings if f.first.severity == "error"]
