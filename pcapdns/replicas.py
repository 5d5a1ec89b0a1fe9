"""Per DNAT target (each CoreDNS pod behind a Service address): its share of the queries,
how many got no delivered answer, and its latency (docs/analysis.md, "Replicas").

The core tallies every lookup (core/src/replicas.rs); this module turns its rows into the
document's records. A query's replica is known only from its copy after kube-proxy's DNAT,
on a capture that holds both sides of a node's NAT (``tcpdump -i any``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Replica:
    """One DNAT target of a Service address."""

    #: The Service address the client asked, and the address the DNAT sent queries to.
    service: str
    address: str
    #: Queries that went to it (attempts whose copy after the DNAT carried its address).
    queries: int
    #: Its share of the Service's queries seen going to a replica (0..1, 4 decimals).
    share: float
    #: Queries without a delivered answer (not answered, or the answer never reached the
    #: client), and their share of ``queries`` (0..1, 4 decimals).
    failed: int
    failure_rate: float
    #: Query-to-answer latency of its delivered answers (ms), None without any.
    p50_ms: float | None
    p99_ms: float | None
    #: Evidence, not in the document: the first failed queries' frames, and the slowest
    #: answers' (query, response) frames.
    failed_frames: tuple[int, ...] = ()
    slowest_frames: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "address": self.address, "queries": self.queries,
                "share": self.share, "failed": self.failed,
                "failure_rate": self.failure_rate, "p50_ms": self.p50_ms,
                "p99_ms": self.p99_ms}


def from_core(rows: Iterable[Mapping[str, Any]]) -> tuple[Replica, ...]:
    """The core's rows as records, by Service address then by replica address (as text)."""
    rows = list(rows)
    per_service: dict[str, int] = {}
    for r in rows:
        per_service[r["service"]] = per_service.get(r["service"], 0) + r["queries"]
    out = [
        Replica(
            service=r["service"], address=r["address"], queries=r["queries"],
            share=round(r["queries"] / per_service[r["service"]], 4)
            if per_service[r["service"]] else 0.0,
            failed=r["failed"],
            failure_rate=round(r["failed"] / r["queries"], 4) if r["queries"] else 0.0,
            p50_ms=r["p50_ms"], p99_ms=r["p99_ms"],
            failed_frames=tuple(r["failed_frames"]),
            slowest_frames=tuple(tuple(p) for p in r["slowest_frames"]),
        )
        for r in rows
    ]
    return tuple(sorted(out, key=lambda r: (r.service, r.address)))
