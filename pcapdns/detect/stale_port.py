"""A client port that stopped getting answers while the client's other ports still do.

After a CoreDNS pod is deleted, a client that keeps reusing one UDP source port can stay
stuck on a conntrack or IPVS entry that still points at the dead pod (IPVS kept such
entries for about 5 minutes on kernels before the fix). On the wire: several lookups from
one (client, port) fail while the same client's lookups from other ports are answered.

This detector keeps state across lookups, bounded by ``WINDOW`` seconds.
"""

from __future__ import annotations

from collections import deque

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding
from pcapdns.match.records import Lookup

#: Failures and answers count together when they are this close in time.
WINDOW = 60.0
#: Distinct failed lookups on one port before it is called stale.
MIN_FAILED = 3
#: Ports remembered per client for "answered elsewhere".
MAX_PORTS = 16


class StalePort:
    """Window detector: feed lookups as they close; reports each stuck port once per run
    of failures."""

    def __init__(self, config: AnalysisConfig) -> None:
        self.config = config
        #: Failed lookups by (client, port, server), oldest first.
        self._failed: dict[tuple[str, int, str], deque[Lookup]] = {}
        #: Last time a lookup was answered, by client and port (a few ports per client).
        self._answered: dict[str, dict[int, float]] = {}
        self._now = float("-inf")
        self._fed = 0

    def feed(self, lookup: Lookup) -> list[Finding]:
        q = lookup.first
        self._now = max(self._now, q.time)
        self._fed += 1
        if not self._fed % 4096:
            self._expire()
        if q.transport != "udp":
            return []
        if lookup.answered:
            answered = self._answered.setdefault(q.src, {})
            answered.pop(q.sport, None)
            answered[q.sport] = q.time
            if len(answered) > MAX_PORTS:
                del answered[next(iter(answered))]  # the least recently answered port
            return []
        if lookup.open_at_end or any(t.query.sport != q.sport for t in lookup.attempts):
            return []  # a resolver that changes ports cannot be stuck on one
        key = (q.src, q.sport, q.dst)
        failed = self._failed.setdefault(key, deque())
        failed.append(lookup)
        while failed and failed[0].first.time < q.time - WINDOW:
            failed.popleft()
        if len(failed) < MIN_FAILED or not self._others_answered(q.src, q.sport, failed):
            return []
        run = list(failed)
        failed.clear()
        return [self._finding(run)]

    def _others_answered(self, client: str, port: int, failed: deque[Lookup]) -> bool:
        start = failed[0].first.time - WINDOW
        return any(
            t >= start and p != port for p, t in self._answered.get(client, {}).items()
        )

    def _finding(self, run: list[Lookup]) -> Finding:
        run.sort(key=lambda lk: lk.first.time)
        q = run[0].first
        frames = [t.query.frame for lk in run for t in lk.attempts]
        span = run[-1].first.time - q.time
        detail = (
            f"{len(run)} lookups from {q.src}:{q.sport} to {q.dst} failed within "
            f"{span:.1f} s while the same client's lookups from other ports were answered: "
            "the path for this one source port is stuck (a stale conntrack or IPVS entry "
            "pointing at a removed DNS pod)"
        )
        return finding("stale_port", "error", run[0], frames, detail + ".", subjects=tuple(run))

    def _expire(self) -> None:
        limit = self._now - 2 * WINDOW
        for key in list(self._failed):
            entries = self._failed[key]
            while entries and entries[0].first.time < limit:
                entries.popleft()
            if not entries:
                del self._failed[key]
        for client in list(self._answered):
            if max(self._answered[client].values()) < limit:
                del self._answered[client]

    def finish(self) -> list[Finding]:
        self._failed.clear()
        self._answered.clear()
        return []

