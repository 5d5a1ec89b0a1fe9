"""Latency percentiles in bounded memory.

Latencies go into logarithmic buckets 0.1% wide (about 14,000 buckets from 1 microsecond
to 1,000 seconds), each keeping its count and sum, so memory does not grow with the
capture. A percentile is the mean of the values in the bucket holding that rank (nearest
rank method), which is exact when the bucket holds one distinct value and within 0.1%
otherwise. The maximum is exact.
"""

from __future__ import annotations

import math

_BASE = 1e-6  # seconds: the bottom of the first bucket
_STEP = math.log(1.001)


class LatencyHistogram:
    """The core fills the buckets (pcapdns._core); this side reads percentiles out."""

    def __init__(self) -> None:
        self._count: dict[int, int] = {}
        self._sum: dict[int, float] = {}
        self.n = 0
        self.max = 0.0

    @classmethod
    def from_core(cls, raw: list[tuple[int, int, float]], n: int, top: float
                  ) -> LatencyHistogram:
        """The histogram the core tallied: (bucket, count, sum) triples, count and max."""
        h = cls()
        for b, count, total in raw:
            h._count[b] = count
            h._sum[b] = total
        h.n = n
        h.max = top
        return h

    @classmethod
    def of(cls, seconds: list[float]) -> LatencyHistogram:
        """A histogram of ``seconds``, bucketed by the core as an analysis does."""
        from pcapdns import _core

        return cls.from_core(*_core.latency_histogram(seconds))

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100) by nearest rank, in seconds; None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(p / 100.0 * self.n))
        seen = 0
        for b in sorted(self._count):
            seen += self._count[b]
            if seen >= rank:
                return self._sum[b] / self._count[b]
        return self.max

    def buckets(self) -> list[tuple[float, float, int]]:
        """The non-empty buckets as (lower_seconds, upper_seconds, count), lowest first.

        The first bucket also holds the latencies below its lower bound of 1 microsecond.
        """
        return [
            (_BASE * math.exp(b * _STEP), _BASE * math.exp((b + 1) * _STEP), self._count[b])
            for b in sorted(self._count)
        ]

    def summary_ms(self) -> dict[str, float | None]:
        """p50, p90, p99 and max in milliseconds, rounded to microseconds."""

        def r(v: float | None) -> float | None:
            return None if v is None else round(v * 1000.0, 3)

        return {
            "p50": r(self.percentile(50)),
            "p90": r(self.percentile(90)),
            "p99": r(self.percentile(99)),
            "max": r(self.max if self.n else None),
        }
