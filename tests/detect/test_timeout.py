"""Timeouts: failed lookups (no attempt answered) whose last attempt is at least
``--timeout`` (5 s) before the capture's end. Closer to the end the answer may have come
after the capture stopped: that lookup is open, not a timeout."""

from __future__ import annotations

import pytest

from pcapdns.output.document import build
from tests.craft import (
    IP,
    UDP,
    analyze_packets,
    findings_of,
    icmp_port_unreachable,
    query,
    response,
)

#: A packet that is not DNS, only to set where the capture ends.
END = IP(src="10.0.3.7", dst="10.0.9.9") / UDP(sport=5000, dport=8080)


def test_unanswered_retry_train_long_before_the_end_is_a_timeout(tmp_path):
    a = analyze_packets(tmp_path / "timeout.pcap", [
        (1.0, query()),
        (6.0, query()),
        (11.0, query()),
        (16.0, END),
    ])

    (f,) = findings_of(a, "timeout")
    assert f.first.severity == "error"
    assert (f.first.client, f.first.server, f.first.qname, f.first.qtype) == (
        "10.0.3.7", "10.96.0.10", "example.com", "A")
    assert f.first.frames == (1, 2, 3)
    assert f.first.time == 1.0
    assert "3 queries" in f.first.detail
    assert a.match.failed_lookups == 1
    assert a.match.lookups_open_at_end == 0
    assert a.match.unanswered_queries == 3


def test_last_attempt_exactly_timeout_before_the_end_is_a_timeout(tmp_path):
    a = analyze_packets(tmp_path / "edge.pcap", [
        (1.0, query()),
        (6.0, END),
    ])

    assert len(findings_of(a, "timeout")) == 1
    assert a.match.lookups_open_at_end == 0


def test_unanswered_lookup_closer_than_timeout_to_the_end_is_open_not_a_timeout(tmp_path):
    a = analyze_packets(tmp_path / "open.pcap", [
        (1.0, query()),
        (5.9, END),
    ])

    assert findings_of(a, "timeout") == []
    assert a.match.failed_lookups == 1
    assert a.match.lookups_open_at_end == 1
    (lookup,) = a.lookups
    assert lookup.open_at_end
    summary = build(a)["summary"]
    assert summary["lookups_open_at_end"] == 1
    assert summary["failed_lookups"] == 1


def test_a_retry_near_the_end_keeps_the_whole_lookup_open(tmp_path):
    # The first attempt is 8 s old, but the retry 3 s before the end may still be answered.
    a = analyze_packets(tmp_path / "retry-open.pcap", [
        (1.0, query()),
        (6.0, query()),
        (9.0, END),
    ])

    assert findings_of(a, "timeout") == []
    assert a.match.lookups_open_at_end == 1


def test_timeout_threshold_comes_from_the_config(tmp_path):
    packets = [(1.0, query()), (3.5, END)]
    assert findings_of(analyze_packets(tmp_path / "a.pcap", packets), "timeout") == []
    a = analyze_packets(tmp_path / "b.pcap", packets, timeout=2.0)
    assert len(findings_of(a, "timeout")) == 1


def test_answered_lookup_is_not_a_timeout_however_slow(tmp_path):
    a = analyze_packets(tmp_path / "slow.pcap", [
        (1.0, query()),
        (6.0, query()),
        (11.0, query()),
        (11.003, response()),
        (30.0, END),
    ])

    assert findings_of(a, "timeout") == []
    assert a.match.failed_lookups == 0


def test_lookup_closed_by_max_wait_long_before_the_end_is_a_timeout(tmp_path):
    # The matcher forgets the query after max_wait, long before the capture ends.
    a = analyze_packets(tmp_path / "forgotten.pcap", [
        (1.0, query()),
        (100.0, END),
    ])

    assert len(findings_of(a, "timeout")) == 1


def test_icmp_port_unreachable_quoting_the_query_is_evidence_in_the_timeout(tmp_path):
    # Nothing listens on the server's port 53 (CoreDNS pod gone, stale endpoint): its host
    # bounces each query.
    q1, q2 = query(id=5), query(id=5)
    a = analyze_packets(tmp_path / "refused-port.pcap", [
        (1.0, q1),
        (1.0004, icmp_port_unreachable(q1)),
        (6.0, q2),
        (6.0004, icmp_port_unreachable(q2)),
        (12.0, END),
    ])

    assert a.match.icmp_errors == 2
    (f,) = findings_of(a, "timeout")
    assert f.first.frames == (1, 2, 3, 4)
    assert "2 ICMP unreachable" in f.first.detail
    assert findings_of(a, "icmp_unreachable") == []
    assert findings_of(a, "late_response") == []
    (lookup,) = a.lookups
    assert [t.icmp_frames for t in lookup.attempts] == [(2,), (4,)]


@pytest.mark.parametrize("answered_at", [1.001, 1.4])
def test_timeout_counts_lookups_not_queries(tmp_path, answered_at):
    a = analyze_packets(tmp_path / "mixed.pcap", [
        (1.0, query(name="up.example")),
        (answered_at, response(name="up.example")),
        (1.5, query(name="down.example")),
        (20.0, END),
    ])

    (f,) = findings_of(a, "timeout")
    assert f.first.qname == "down.example"


def test_failure_past_the_clients_own_retry_gap_is_a_timeout(tmp_path):
    # musl retries every timeout/attempts (2.5 s) and gives up 2.5 s after its last try;
    # the SRE stopped the capture 3 s after it: the lookup failed, it is not "open".
    a = analyze_packets(tmp_path / "musl-gave-up.pcap", [
        (1.0, query(id=1)),
        (3.5, query(id=1)),
        (6.5, END),
    ])

    (f,) = findings_of(a, "timeout")
    assert f.first.frames == (1, 2)
    assert a.match.lookups_open_at_end == 0
    assert a.match.lookups_failed == 1


def test_options_timeout_1_failure_a_second_before_the_end_is_a_timeout(tmp_path):
    a = analyze_packets(tmp_path / "timeout1.pcap", [
        (1.0, query(id=1)),
        (2.0, query(id=1)),
        (3.0, query(id=1)),
        (4.1, END),
    ])

    assert len(findings_of(a, "timeout")) == 1
    assert a.match.lookups_open_at_end == 0


def test_capture_ending_inside_the_clients_retry_gap_leaves_the_lookup_open(tmp_path):
    a = analyze_packets(tmp_path / "gap-open.pcap", [
        (1.0, query(id=1)),
        (3.5, query(id=1)),
        (5.0, END),
    ])

    assert findings_of(a, "timeout") == []
    assert a.match.lookups_open_at_end == 1
    assert a.match.lookups_failed == 0


def test_real_musl_failure_two_seconds_before_the_capture_stopped_is_a_timeout() -> None:
    # sample_pcaps/README.md: musl (timeout:2 attempts:2) gave up with EAI_AGAIN and the
    # capture stopped 2 s later, 3 s after its last attempt.
    from pcapdns.analysis import analyze
    from tests.conftest import SAMPLES

    a = analyze([str(SAMPLES / "musl-failed-near-end.pcap")])
    assert len(findings_of(a, "timeout")) == 2
    assert (a.match.lookups_open_at_end, a.match.lookups_failed) == (0, 2)
