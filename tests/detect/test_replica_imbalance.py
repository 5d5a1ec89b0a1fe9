"""One CoreDNS replica standing apart from the others behind one Service address."""

from __future__ import annotations

from pcapdns.detect import replica_imbalance
from pcapdns.replicas import Replica, from_core

SVC = "10.96.0.10"


def _replica(address: str, queries: int, failed: int = 0, p99: float | None = 2.0,
             service: str = SVC) -> Replica:
    return Replica(service, address, queries, 0.5, failed, round(failed / queries, 4),
                   1.0 if p99 is not None else None, p99, (11, 12), ((21, 22),))


def _kinds(rows):
    return [(f.server, f.severity) for f in replica_imbalance.detect(rows)]


def test_a_replica_failing_far_more_than_the_others_stands_apart():
    rows = [_replica("10.244.1.5", 100, failed=1), _replica("10.244.2.5", 100, failed=20)]
    (f,) = replica_imbalance.detect(rows)
    assert (f.kind, f.server, f.severity, f.client, f.qname) == (
        "replica_imbalance", "10.244.2.5", "error", "", "")
    assert "20.0% of its queries failed, the other replicas at most 1.0%" in f.detail
    assert f.frames == (11, 12, 21, 22)


def test_a_ratio_alone_or_a_difference_alone_is_not_enough():
    # Three times worse, but only 0.2 points: healthy.
    assert _kinds([_replica("a", 1000, failed=1), _replica("b", 1000, failed=3)]) == []
    # 6 points worse, but not three times: both failing alike.
    assert _kinds([_replica("a", 100, failed=10), _replica("b", 100, failed=16)]) == []
    # 20 times slower, but 38 ms: fast enough.
    assert _kinds([_replica("a", 50, p99=2.0), _replica("b", 50, p99=40.0)]) == []
    # 150 ms slower, but not three times.
    assert _kinds([_replica("a", 50, p99=200.0), _replica("b", 50, p99=350.0)]) == []


def test_a_slow_replica_is_a_warning():
    assert _kinds([_replica("a", 50, p99=1.4), _replica("b", 50, p99=304.4)]) == [
        ("b", "warning")]


def test_a_handful_of_queries_says_nothing():
    assert _kinds([_replica("a", 100), _replica("b", 19, failed=19)]) == []
    # One replica alone has nothing to stand apart from.
    assert _kinds([_replica("a", 100, failed=50)]) == []


def test_replicas_are_compared_within_their_service_only():
    rows = [_replica("a", 100), _replica("b", 100, failed=30, service="10.96.0.11")]
    assert _kinds(rows) == []


def test_shares_and_rates_from_the_core_rows():
    core = [
        {"service": SVC, "address": "10.244.2.5", "queries": 30, "failed": 3, "answered": 27,
         "p50_ms": 1.0, "p99_ms": 3.0, "failed_frames": [5], "slowest_frames": [(7, 8)]},
        {"service": SVC, "address": "10.244.1.5", "queries": 10, "failed": 0, "answered": 10,
         "p50_ms": 1.0, "p99_ms": 2.0, "failed_frames": [], "slowest_frames": []},
    ]
    rows = from_core(core)
    assert [(r.address, r.share, r.failure_rate) for r in rows] == [
        ("10.244.1.5", 0.25, 0.0), ("10.244.2.5", 0.75, 0.1)]
    assert rows[1].to_json() == {
        "service": SVC, "address": "10.244.2.5", "queries": 30, "share": 0.75, "failed": 3,
        "failure_rate": 0.1, "p50_ms": 1.0, "p99_ms": 3.0}
