"""Queries and failed lookups over time, in bounded memory.

Fed with every closed lookup. Counts go into buckets aligned on the epoch; when the
capture's span would need more than ``max_buckets`` buckets, the bucket width grows to the
next width in ``STEPS_MS``, each a multiple of the one before, so buckets merge exactly.
A week-long ring and a five-second capture both end with at most ``max_buckets`` counts.
"""

from __future__ import annotations

from pcapdns.match.records import Lookup

#: Bucket widths in milliseconds; each divides the next.
STEPS_MS = (100, 500, 1_000, 2_000, 10_000, 60_000, 300_000, 600_000, 3_600_000,
            21_600_000, 86_400_000)


class Timeline:
    def __init__(self, max_buckets: int = 600) -> None:
        self.max_buckets = max_buckets
        self._level = 0
        #: Query messages sent (first attempts and retransmissions), by bucket.
        self._queries: dict[int, int] = {}
        #: Failed lookups (not those still open at the capture's end), by the bucket of
        #: their first attempt.
        self._failed: dict[int, int] = {}
        self._lo: int | None = None
        self._hi: int | None = None

    @property
    def step(self) -> float:
        """Bucket width in seconds."""
        return STEPS_MS[self._level] / 1000.0

    def lookup(self, lookup: Lookup) -> None:
        # Called for every lookup: the bucket is computed inline while it falls inside
        # the span seen so far, and through _bucket (which may widen it) otherwise.
        step = STEPS_MS[self._level]
        lo, hi = self._lo, self._hi
        counts = self._queries
        for t in lookup.attempts:
            b = int(t.query.time * 1000.0) // step
            if lo is None or hi is None or not lo <= b <= hi:
                b = self._bucket(t.query.time)
                step, lo, hi = STEPS_MS[self._level], self._lo, self._hi
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
            self._lo * STEPS_MS[self._level] / 1000.0,
            self.step,
            [self._queries.get(b, 0) for b in span],
            [self._failed.get(b, 0) for b in span],
        )

    def _bucket(self, t: float) -> int:
        b = int(t * 1000.0) // STEPS_MS[self._level]
        lo = b if self._lo is None or b < self._lo else self._lo
        hi = b if self._hi is None or b > self._hi else self._hi
        if hi - lo >= self.max_buckets and self._level + 1 < len(STEPS_MS):
            self._coarsen(lo, hi)
            return self._bucket(t)
        self._lo, self._hi = lo, hi
        return b

    def _coarsen(self, lo: int, hi: int) -> None:
        """Grow the bucket width until ``lo..hi`` fits, merging the counts."""
        old = STEPS_MS[self._level]
        while (hi - lo) * old // STEPS_MS[self._level] >= self.max_buckets and (
            self._level + 1 < len(STEPS_MS)
        ):
            self._level += 1
        new = STEPS_MS[self._level]
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
