"""The pod names of an analysis (``--pods``) as the outputs show them: the document's
``pods`` section, and the per-client table grouped by workload."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pcapdns.analysis import Analysis
from pcapdns.breakdown import Breakdown
from pcapdns.pods import PodDirectory

#: Workloads listed in the document and the report, most failed lookups first.
MAX_WORKLOADS = 100
#: Client addresses listed under one workload.
MAX_ADDRESSES = 20


@dataclass(frozen=True, slots=True)
class WorkloadRow:
    """The lookups of the client addresses of one workload (an address not in the listing
    is a workload of its own, named by the address)."""

    #: ``namespace/Kind/name``, or the address when it is not in the listing.
    workload: str
    #: Its client addresses seen, most failed lookups first (at most ``MAX_ADDRESSES``),
    #: each with its ``namespace/pod`` (None when not in the listing).
    clients: tuple[tuple[str, str | None], ...]
    #: All its client addresses seen.
    clients_total: int
    lookups: int
    failed: int
    race_lost: int
    retransmissions: int

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "clients": [{"client": c, "client_pod": p} for c, p in self.clients],
            "clients_total": self.clients_total,
            "lookups": self.lookups, "failed": self.failed, "race_lost": self.race_lost,
            "retransmissions": self.retransmissions,
        }


def workload_rows(breakdown: Breakdown, pods: PodDirectory) -> list[WorkloadRow]:
    """The per-client tallies summed per workload, most failed lookups first."""
    groups: dict[str, list[tuple[str, Any]]] = {}
    for client, t in breakdown.clients.items():
        e = pods.lookup(client)
        key = e.workload if e is not None else client
        groups.setdefault(key, []).append((client, t))
    rows = []
    for key, members in groups.items():
        members.sort(key=lambda m: (-m[1].failed, -m[1].lookups, m[0]))
        rows.append(WorkloadRow(
            workload=key,
            clients=tuple((c, pods.label(c)) for c, _ in members[:MAX_ADDRESSES]),
            clients_total=len(members),
            lookups=sum(t.lookups for _, t in members),
            failed=sum(t.failed for _, t in members),
            race_lost=sum(t.race_lost for _, t in members),
            retransmissions=sum(t.retransmissions for _, t in members)))
    rows.sort(key=lambda r: (-r.failed, -r.race_lost, -r.lookups, r.workload))
    return rows


def seen_addresses(a: Analysis) -> Iterable[str]:
    """Every address the outputs show: servers, clients, findings, replicas."""
    yield from a.breakdown.servers
    yield from a.breakdown.clients
    for f in a.findings:
        yield f.client
        yield f.server
    for r in a.replicas:
        yield r.service
        yield r.address
    for u in a.upstream:
        yield u.server


def section(a: Analysis) -> dict[str, Any] | None:
    """The document's ``pods`` object (docs/analysis.md), or None without a listing."""
    pods = a.pods
    if pods is None:
        return None
    found = {}
    for address in seen_addresses(a):
        e = pods.lookup(address)
        if e is not None and address not in found:
            found[address] = e.to_json()
    return {
        "source": a.pods_source,
        "files": list(pods.files),
        "pods": pods.pods,
        "services": pods.services,
        "host_network_pods": pods.host_network_pods,
        "addresses_listed": len(pods.entries),
        "addresses_evicted": pods.evicted,
        "addresses_conflicting": pods.conflicts,
        "cluster_dns": pods.cluster_dns(),
        "addresses": dict(sorted(found.items())),
        "workloads": [r.to_json() for r in workload_rows(a.breakdown, pods)[:MAX_WORKLOADS]],
    }
