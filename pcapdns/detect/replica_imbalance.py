"""One CoreDNS replica that fails or answers slowly where the others do not.

Compared among the replicas of one Service address that each received at least
``MIN_QUERIES`` queries, a replica stands well apart (docs/analysis.md, "Replicas") when
its failure rate is at least ``RATIO`` times the highest of the others' AND at least
``FAILURE_POINTS`` above it, or its p99 latency is at least ``RATIO`` times the highest of
the others' AND at least ``P99_MS`` above it. Both a ratio and a difference: a replica at
0.3% against 0.1% is three times worse and still healthy, one 20 ms slower than another
at 1 ms is twenty times slower and still fast.
"""

from __future__ import annotations

from collections.abc import Sequence

from pcapdns.detect.base import Finding, new_finding
from pcapdns.replicas import Replica

#: Queries a replica must have received to be compared: a handful of lookups does not say
#: that a replica is worse.
MIN_QUERIES = 20
#: How many times worse than the worst other replica.
RATIO = 3.0
#: ... and by how much: failure rate (0..1) and p99 latency (ms).
FAILURE_POINTS = 0.05
P99_MS = 100.0


def detect(replicas: Sequence[Replica], time: float = 0.0) -> list[Finding]:
    """The replicas that stand well apart; ``time`` dates the findings (the capture's
    start)."""
    out: list[Finding] = []
    services = sorted({r.service for r in replicas})
    for service in services:
        rows = [r for r in replicas if r.service == service and r.queries >= MIN_QUERIES]
        if len(rows) < 2:
            continue
        for r in rows:
            others = [o for o in rows if o is not r]
            reasons = []
            worst_rate = max(o.failure_rate for o in others)
            failing = (r.failure_rate >= RATIO * worst_rate
                       and r.failure_rate - worst_rate >= FAILURE_POINTS)
            if failing:
                reasons.append(f"{r.failure_rate:.1%} of its queries failed, the other "
                               f"replicas at most {worst_rate:.1%}")
            p99s = [o.p99_ms for o in others if o.p99_ms is not None]
            slow = (r.p99_ms is not None and bool(p99s)
                    and r.p99_ms >= RATIO * max(p99s) and r.p99_ms - max(p99s) >= P99_MS)
            if slow:
                reasons.append(f"its p99 latency is {r.p99_ms:g} ms, the other replicas' "
                               f"at most {max(p99s):g} ms")
            if not reasons:
                continue
            frames = list(r.failed_frames) + [f for pair in r.slowest_frames for f in pair]
            detail = (f"replica {r.address} behind {service} got {r.queries} queries "
                      f"({r.share:.0%} of them): " + "; ".join(reasons) + ".")
            out.append(new_finding("replica_imbalance", "error" if failing else "warning",
                                   time, "", r.address, "", "", tuple(sorted(set(frames))),
                                   detail, ()))
    return out
