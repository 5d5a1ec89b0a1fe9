"""Queries and failed lookups over time, in bounded memory.

The core (pcapdns._core) counts every closed lookup into buckets aligned on the epoch; when the
capture's span would need more than ``max_buckets`` buckets, the bucket width grows to the
next width in ``STEPS_MS``, each a multiple of the one before, so buckets merge exactly.
Past the last width the next one is ten times the one before, with no end: a week-long
ring, a five-second capture and two packets 136 years apart (a damaged record, a clock
that was never set) all end with at most ``max_buckets`` counts, and a lookup costs O(1)
amortized (the buckets are merged at most once per width, and the widths grow tenfold).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

#: Bucket widths in milliseconds; each divides the next. After the last one, each width is
#: ten times the one before (3,640 days, 36,400 days, ...).
STEPS_MS = (100, 500, 1_000, 2_000, 10_000, 60_000, 300_000, 600_000, 3_600_000,
            21_600_000, 86_400_000, 604_800_000, 2_419_200_000, 31_449_600_000)


def step_ms(level: int) -> int:
    """The bucket width of ``level``, in milliseconds."""
    if level < len(STEPS_MS):
        return STEPS_MS[level]
    return STEPS_MS[-1] * 10 ** (level - len(STEPS_MS) + 1)


class Timeline:
    """The buckets the core counted (pcapdns._core), for the chart and the span warning."""

    def __init__(self, start: float = 0.0, step: float = STEPS_MS[0] / 1000.0,
                 queries: list[int] | None = None, failed: list[int] | None = None,
                 first: float | None = None, last: float | None = None) -> None:
        self.start = start
        #: Bucket width in seconds.
        self.step = step
        #: Query messages sent (first attempts and retransmissions), by bucket.
        self.queries = queries or []
        #: Failed lookups (not those still open at the capture's end), by the bucket of
        #: their first attempt.
        self.failed = failed or []
        #: Earliest and latest query time seen, for the capture's span.
        self.first = first
        self.last = last

    @classmethod
    def from_core(cls, start: float, step: float, queries: list[int], failed: list[int],
                  first: float | None, last: float | None) -> Timeline:
        return cls(start, step, queries, failed, first, last)

    @classmethod
    def of(cls, queries: list[float], failures: list[float] = (),  # type: ignore[assignment]
           max_buckets: int = 600) -> Timeline:
        """A timeline of these query and failure times, bucketed by the core as an
        analysis does (``max_buckets`` at most)."""
        from pcapdns import _core

        return cls.from_core(*_core.timeline_series(list(queries), list(failures),
                                                    max_buckets))

    def series(self) -> tuple[float, float, list[int], list[int]]:
        """(start, step, queries, failed): start is the UNIX time of the first bucket, step
        its width in seconds, and the lists hold one count per bucket, gaps included."""
        return (self.start, self.step, list(self.queries), list(self.failed))

    def span_warnings(self, files: Iterable[_Span], limit: float) -> list[str]:
        """A warning when the capture (``files`` and the queries seen) spans more than
        ``limit`` seconds, or has times before 1970: its time stamps are not to be trusted,
        and neither are the durations and rates computed from them."""
        times = [t for f in files for t in (f.first_time, f.last_time) if t is not None]
        times += [t for t in (self.first, self.last) if t is not None]
        if not times:
            return []
        first, last = min(times), max(times)
        if last - first <= limit and first >= 0.0:
            return []
        why = (f"longer than any capture runs (more than {_duration(limit)})"
               if last - first > limit else "before 1970")
        return [
            f"implausible span: the capture's time stamps run from {_when(first)} to "
            f"{_when(last)} UTC, {_duration(last - first)}, {why}; some records carry a "
            "wrong time (a clock that was not set, damaged or crafted records), so times, "
            "durations and rates in this analysis may be wrong; the timeline's buckets are "
            f"{_duration(self.step)} wide"
        ]


class _Span(Protocol):
    """What span_warnings reads of a capture file."""

    first_time: float | None
    last_time: float | None


def _when(t: float) -> str:
    try:
        return datetime.fromtimestamp(math.floor(t), UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{t:.6g} s since 1970"  # past the years a datetime can hold


def _duration(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400.0), ("hours", 3600.0),
                       ("minutes", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.4g} {unit}"
    return f"{seconds:.4g} s"
