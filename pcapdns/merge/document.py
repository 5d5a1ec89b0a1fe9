"""The cluster document (schema ``pcapdns.cluster/1``), field by field as documented in
docs/analysis.md ("The whole cluster"). Field names are a contract: add, never rename."""

from __future__ import annotations

from typing import Any, TextIO

from pcapdns import __version__
from pcapdns.merge import MIN_NODES, Cluster
from pcapdns.output import jsontext

SCHEMA = "pcapdns.cluster/1"


def build(c: Cluster) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "pcapdns_version": __version__,
        "inputs": [{
            "path": d.path,
            "node": d.node,
            "node_from": "capture" if d.node_from_capture else "file",
            "pcapdns_version": d.doc["pcapdns_version"],
            "first_time": d.doc["summary"].get("first_time"),
            "last_time": d.doc["summary"].get("last_time"),
            "captures": [i.get("path") for i in d.doc["inputs"] if isinstance(i, dict)],
        } for d in c.docs],
        "first_time": c.first_time,
        "last_time": c.last_time,
        "grouping": c.grouping,
        "totals": c.totals,
        "tunnels": c.tunnels,
        "findings": c.findings,
        "nodes": c.nodes,
        "servers": c.servers,
        "replicas": c.replicas,
        "clients": c.clients,
        "failing_names": c.failing_names,
        "window_seconds": c.window_seconds,
        "window_min_nodes": MIN_NODES,
        "windows": c.windows,
        "warnings": list(c.warnings),
    }


def dumps(c: Cluster) -> str:
    return jsontext.dumps(build(c)) + "\n"


def write(c: Cluster, out: TextIO) -> None:
    out.write(dumps(c))
