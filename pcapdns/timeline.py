"""Queries and failed lookups over time, in bounded memory.

Fed with every closed lookup. Counts go into buckets aligned on the epoch; when the
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

from pcapdns.match.records import Lookup

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
    def __init__(self, max_buckets: int = 600) -> None:
        # Two at least: times on both sides of the epoch always take two buckets.
        if max_buckets < 2:
            raise ValueError(f"a timeline needs at least 2 buckets, not {max_buckets}")
        self.max_buckets = max_buckets
        self._level = 0
        self._step = STEPS_MS[0]
        #: Query messages sent (first attempts and retransmissions), by bucket.
        self._queries: dict[int, int] = {}
        #: Failed lookups (not those still open at the capture's end), by the bucket of
        #: their first attempt.
        self._failed: dict[int, int] = {}
        self._lo: int | None = None
        self._hi: int | None = None
        #: Earliest and latest query time seen, for the capture's span.
        self.first: float | None = None
        self.last: float | None = None

    @property
    def step(self) -> float:
        """Bucket width in seconds."""
        return self._step / 1000.0

    def lookup(self, lookup: Lookup) -> None:
        # Called for every lookup: the bucket is computed inline while it falls inside
        # the span seen so far, and through _bucket (which may widen it) otherwise.
        step = self._step
        lo, hi = self._lo, self._hi
        counts = self._queries
        for t in lookup.attempts:
            qt = t.query.time
            b = int(qt * 1000.0) // step
            if lo is None or hi is None or not lo <= b <= hi:
                b = self._bucket(qt)
                step, lo, hi = self._step, self._lo, self._hi
            else:
                # Inside the buckets: only a time in the first or last one can be new.
                if qt < self.first:  # type: ignore[operator]
                    self.first = qt
                elif qt > self.last:  # type: ignore[operator]
                    self.last = qt
            counts[b] = counts.get(b, 0) + 1
        if lookup.failed:
            self.add_failure(lookup.attempts[0].query.time)

    def add_query(self, t: float) -> None:
        b = self._bucket(t)
        self._queries[b] = self._queries.get(b, 0) + 1

    def add_failure(self, t: float) -> None:
        b = self._bucket(t)
        self._failed[b] = self._failed.get(b, 0) + 1

    def series(self) -> tuple[float, float, list[int], list[int]]:
        """(start, step, queries, failed): start is the UNIX time of the first bucket, step
        its width in seconds, and the lists hold one count per bucket, gaps included."""
        if self._lo is None or self._hi is None:
            return (0.0, self.step, [], [])
        span = range(self._lo, self._hi + 1)
        return (
            self._lo * self._step / 1000.0,
            self.step,
            [self._queries.get(b, 0) for b in span],
            [self._failed.get(b, 0) for b in span],
        )

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

    def _bucket(self, t: float) -> int:
        if self.first is None or t < self.first:
            self.first = t
        if self.last is None or t > self.last:
            self.last = t
        b = int(t * 1000.0) // self._step
        lo = b if self._lo is None or b < self._lo else self._lo
        hi = b if self._hi is None or b > self._hi else self._hi
        if hi - lo >= self.max_buckets:
            self._coarsen(lo, hi)
            return self._bucket(t)
        self._lo, self._hi = lo, hi
        return b

    def _coarsen(self, lo: int, hi: int) -> None:
        """Grow the bucket width until ``lo..hi`` fits, merging the counts."""
        old = self._step
        # The merged span can come out one bucket wider than this estimate; _bucket then
        # comes back for the next width.
        while (hi - lo) * old // step_ms(self._level) >= self.max_buckets:
            self._level += 1
        new = self._step = step_ms(self._level)
        for counts in (self._queries, self._failed):
            merged: dict[int, int] = {}
            for b, n in counts.items():
                k = b * old // new
                merged[k] = merged.get(k, 0) + n
            counts.clear()
            counts.update(merged)
        if self._lo is not None and self._hi is not None:
            self._lo = self._lo * old // new
            self._hi = self._hi * old // new


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
