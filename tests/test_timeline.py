"""Queries and failures over time: bucket counts, exact merging, bounded size."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pcapdns.output.document import build
from pcapdns.timeline import STEPS_MS, Timeline, step_ms
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
    times = [1_700_000_000.0 + i * 7.3 for i in range(2_000)]  # about four hours
    tl = Timeline.of(times, max_buckets=50)
    start, step, queries, _ = tl.series()
    assert len(queries) <= 50
    assert sum(queries) == len(times)
    assert step * 1000 in STEPS_MS
    assert start <= times[0] < start + step
    assert start + step * len(queries) > times[-1]


def test_empty() -> None:
    assert Timeline().series() == (0.0, 0.1, [], [])
    assert Timeline.of([]).series() == (0.0, 0.1, [], [])


def test_a_retry_that_widens_the_buckets_lands_in_the_wider_bucket() -> None:
    # A lookup at 1000.0, then a failed one at 1000.05 retried 50 buckets of 0.1 s on.
    tl = Timeline.of([1000.0, 1000.05, 1005.0], [1000.05], max_buckets=10)
    start, step, queries, failed = tl.series()
    assert step == 1.0 and start == 1000.0
    assert queries == [2, 0, 0, 0, 0, 1]
    assert failed == [1, 0, 0, 0, 0, 0]


# -- hostile spans: the bucket count is capped whatever the time stamps say ----------------


@pytest.mark.parametrize("times", [
    (0.0, 2.0**32 - 1),                  # two classic-pcap records 136 years apart
    (0.0, 1.8e19),                       # 64-bit pcapng ticks counted as seconds
    (-9.2e18, 1.0, 9.2e18),              # pcapng if_tsoffset on both sides of 1970
    (1_700_000_000.0, 1_700_000_000.0),  # no span at all
], ids=["136-years", "pcapng-seconds", "both-sides-of-1970", "one-instant"])
def test_any_span_fits_in_max_buckets(times: tuple[float, ...]) -> None:
    tl = Timeline.of(list(times), list(times), max_buckets=600)
    start, step, queries, failed = tl.series()
    assert 1 <= len(queries) <= 600, len(queries)
    assert sum(queries) == sum(failed) == len(times)
    assert start <= min(times) and start + step * len(queries) > max(times)


def test_widths_past_the_table_grow_tenfold_and_divide_each_other() -> None:
    widths = [step_ms(level) for level in range(len(STEPS_MS) + 5)]
    assert widths[: len(STEPS_MS)] == list(STEPS_MS)
    assert widths[len(STEPS_MS)] == STEPS_MS[-1] * 10
    assert all(b % a == 0 for a, b in zip(widths, widths[1:], strict=False))


def test_buckets_stay_bounded_while_the_span_grows_by_random_leaps() -> None:
    rng = random.Random(5)
    times = [rng.choice([1.0, 1e3, 1e6, 1e9, 1e12]) * rng.random() for _ in range(3_000)]
    for n in (10, 100, 1_000, 3_000):
        start, step, queries, _ = Timeline.of(times[:n], max_buckets=50).series()
        assert len(queries) <= 50 and sum(queries) == n
    tl = Timeline.of(times, max_buckets=50)
    start, step, queries, _ = tl.series()
    assert len(queries) <= 50 and sum(queries) == len(times)
    assert start <= min(times) and start + step * len(queries) > max(times)


def test_two_queries_136_years_apart_warn_of_an_implausible_span(tmp_path: Path) -> None:
    a = analyze_packets(tmp_path / "centuries.pcap", [
        (0.0, query("a.example", id=1)),
        (2.0**32 - 1, query("b.example", id=2)),
    ])
    (w,) = [w for w in a.warnings if w.startswith("implausible span:")]
    assert "1970-01-01 00:00:00 to 2106-02-07 06:28:15 UTC" in w, w
    assert "136.1 years" in w, w
    assert w in build(a)["warnings"]
    assert len(a.timeline.series()[2]) <= 600


def test_a_week_long_capture_is_plausible(tmp_path: Path) -> None:
    a = analyze_packets(tmp_path / "week.pcap", [
        (1_700_000_000.0, query("a.example", id=1)),
        (1_700_000_000.0 + 7 * 86400, query("b.example", id=2)),
    ])
    assert not [w for w in a.warnings if "implausible" in w], a.warnings


def test_span_warning_reads_query_times_and_file_times_and_its_own_limit() -> None:
    from types import SimpleNamespace as NS

    tl = Timeline.of([1_700_000_000.0, 1_700_000_000.0 + 40 * 86400])
    assert tl.span_warnings([], 31 * 86400.0)
    assert not tl.span_warnings([], 41 * 86400.0)
    early = NS(first_time=-5.0, last_time=1_700_000_000.0)
    (w,) = tl.span_warnings([early], 1e12)
    assert "before 1970" in w and "1969-12-31 23:59:55" in w, w
    far = Timeline.of([0.0, 1e18])  # past the years a datetime can hold
    (w,) = far.span_warnings([], 31 * 86400.0)
    assert "1e+18 s since 1970" in w, w
