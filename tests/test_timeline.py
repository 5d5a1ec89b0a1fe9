"""Queries and failures over time: bucket counts, exact merging, bounded size."""

from __future__ import annotations

from pathlib import Path

from pcapdns.timeline import STEPS_MS, Timeline
from tests.craft import analyze_packets, query, response


def test_counts_queries_and_failed_lookups_per_bucket(tmp_path: Path) -> None:
    a = analyze_packets(tmp_path / "t.pcap", [
        (100.00, query("ok.example", id=1)),
        (100.01, response("ok.example", id=1)),
        (100.20, query("lost.example", id=2)),
        (105.20, query("lost.example", id=2)),   # retransmission, 5 s later
        (120.00, query("end.example", id=3)),    # open at the capture's end: not failed
    ])
    start, step, queries, failed = a.timeline.series()
    assert step == 0.1
    assert start == 100.0
    assert len(queries) == len(failed) == 201
    assert sum(queries) == 4
    assert queries[0] == queries[2] == queries[52] == queries[200] == 1
    assert sum(failed) == 1 and failed[2] == 1


def test_merges_buckets_exactly_and_stays_bounded() -> None:
    tl = Timeline(max_buckets=50)
    times = [1_700_000_000.0 + i * 7.3 for i in range(2_000)]  # about four hours
    for t in times:
        tl.add_query(t)
    start, step, queries, _ = tl.series()
    assert len(queries) <= 50
    assert sum(queries) == len(times)
    assert step * 1000 in STEPS_MS
    assert start <= times[0] < start + step
    assert start + step * len(queries) > times[-1]


def test_empty() -> None:
    assert Timeline().series() == (0.0, 0.1, [], [])


def test_a_retry_that_widens_the_buckets_lands_in_the_wider_bucket() -> None:
    from types import SimpleNamespace as NS

    def lookup(*times: float, failed: bool = False) -> NS:
        return NS(attempts=[NS(query=NS(time=t)) for t in times],
                  answer=None if failed else object(), open_at_end=False, failed=failed)

    tl = Timeline(max_buckets=10)
    tl.lookup(lookup(1000.0))
    tl.lookup(lookup(1000.05, 1005.0, failed=True))  # the retry is 50 buckets of 0.1 s on
    start, step, queries, failed = tl.series()
    assert step == 1.0 and start == 1000.0
    assert queries == [2, 0, 0, 0, 0, 1]
    assert failed == [1, 0, 0, 0, 0, 0]
