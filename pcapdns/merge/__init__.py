"""``pcapdns merge``: the per-node analysis documents of a cluster joined into one view.

The capture agent runs on every node (a DaemonSet) and, with ``--analyze``, writes the
node's analysis document beside its ring. ``merge`` reads those documents (load), refuses
the inputs that would be counted twice (checks), adds them up per node, server, replica and
client (cluster), and finds the windows in which several nodes failed at once (windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pcapdns.merge import checks, cluster, windows
from pcapdns.merge.load import MergeError, NodeDoc, load
from pcapdns.merge.pods import has_pods
from pcapdns.merge.windows import MIN_NODES
from pcapdns.output.timefmt import iso

__all__ = ["MIN_NODES", "Cluster", "MergeError", "merge"]


@dataclass(frozen=True, slots=True)
class Cluster:
    """The merged view; ``document.build`` writes it field by field."""

    docs: tuple[NodeDoc, ...]
    #: "workload" when the documents name pods (``pods``), else "client" (addresses).
    grouping: Literal["workload", "client"]
    totals: dict[str, int]
    #: Frames decapsulated, per tunnel type, over all inputs.
    tunnels: dict[str, int]
    findings: dict[str, dict[str, int]]
    nodes: list[dict[str, Any]]
    servers: list[dict[str, Any]]
    replicas: list[dict[str, Any]]
    clients: list[dict[str, Any]]
    failing_names: list[dict[str, Any]]
    window_seconds: float
    windows: list[dict[str, Any]]
    first_time: str | None
    last_time: str | None
    warnings: tuple[str, ...]


def merge(paths: Sequence[str]) -> Cluster:
    """Read, check and add up the documents at ``paths``.

    Raises:
        MergeError: an input cannot be read or is not an analysis document, or the inputs
            would count lookups twice (checks).
    """
    docs = tuple(load(p) for p in paths)
    warnings = checks.check(docs)
    warnings += _truncated_tables(docs)
    first_last: dict[str, tuple[float, float]] = {}
    spans: list[tuple[float, float]] = []
    for d in docs:
        sp = checks.span(d)
        if sp is None:
            continue
        spans.append(sp)
        first, last = first_last.get(d.node, (sp[0], sp[1]))
        first_last[d.node] = (min(first, sp[0]), max(last, sp[1]))
    by_workload = any(has_pods(d.doc) for d in docs)
    w = windows.width(docs)
    return Cluster(
        docs=docs,
        grouping="workload" if by_workload else "client",
        totals=cluster.totals(docs),
        tunnels=cluster.tunnels(docs),
        findings=cluster.findings_by_kind(docs),
        nodes=cluster.nodes(docs, {n: (iso(a) or "", iso(b) or "")
                                   for n, (a, b) in first_last.items()}),
        servers=cluster.servers(docs),
        replicas=cluster.replicas(docs),
        clients=cluster.clients(docs, by_workload),
        failing_names=cluster.failing_names(docs),
        window_seconds=w,
        windows=windows.windows(docs, w),
        first_time=iso(min(s[0] for s in spans)) if spans else None,
        last_time=iso(max(s[1] for s in spans)) if spans else None,
        warnings=tuple(warnings),
    )


def _truncated_tables(docs: Sequence[NodeDoc]) -> list[str]:
    """The per-server and per-client tables of a document list at most 100 rows: the
    cluster's rows add up the rows listed, so a longer tail is said, not hidden."""
    out = []
    for d in docs:
        s = d.doc["summary"]
        for key, total in (("servers", "servers_total"), ("clients", "clients_total")):
            n = s.get(total)
            if isinstance(n, int) and n > len(s.get(key) or []):
                out.append(f"{d.path}: lists {len(s[key])} of its {n} {key}; the cluster's "
                           f"{key} add up those listed")
    return out
