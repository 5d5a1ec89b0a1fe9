"""Adding per-node documents up into the cluster view (schema ``pcapdns.cluster/1``).

Every count is a sum of the inputs' counts: per node, per DNS server address, per CoreDNS
replica (a DNAT target behind a Service address), per client workload (or address), and per
finding kind. Nothing is re-derived from packets, so the cluster view says exactly what the
per-node documents say, added up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pcapdns.merge.load import NodeDoc
from pcapdns.merge.pods import workload_of

#: Summary counts added up per node and for the cluster.
TOTALS = ("packets", "queries", "responses", "lookups", "lookups_failed", "failed_lookups",
          "lookups_open_at_end", "retransmissions", "unanswered_queries")
SERVER_COUNTS = ("lookups", "answered", "failed", "retransmissions", "servfail", "nxdomain",
                 "refused")
CLIENT_COUNTS = ("lookups", "answered", "failed", "retransmissions", "race_lost", "servfail",
                 "nxdomain", "refused")
#: How many failing names the cluster view lists.
TOP_NAMES = 20


def _int(row: dict[str, Any], key: str) -> int:
    """A count of a document; anything but a whole number counts 0 (an older document
    without the field)."""
    v = row.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _rows(summary: dict[str, Any], key: str) -> Iterable[dict[str, Any]]:
    return (r for r in summary.get(key) or [] if isinstance(r, dict))


def totals(docs: Sequence[NodeDoc]) -> dict[str, int]:
    return {k: sum(_int(d.doc["summary"], k) for d in docs) for k in TOTALS}


def tunnels(docs: Sequence[NodeDoc]) -> dict[str, int]:
    """Per tunnel type, the frames decapsulated (each summary's ``tunnels``), added up; the
    types are those the inputs name, in their order, zeros included."""
    out: dict[str, int] = {}
    for d in docs:
        t = d.doc["summary"].get("tunnels")
        if not isinstance(t, dict):
            continue
        for k in t:
            if isinstance(k, str):
                out[k] = out.get(k, 0) + _int(t, k)
    return out


def findings_by_kind(docs: Sequence[NodeDoc]) -> dict[str, dict[str, int]]:
    """Per kind: distinct findings and their occurrences (each finding's ``count``)."""
    out: dict[str, dict[str, int]] = {}
    for d in docs:
        for f in d.doc["findings"]:
            if not isinstance(f, dict) or not isinstance(f.get("kind"), str):
                continue
            row = out.setdefault(f["kind"], {"findings": 0, "occurrences": 0})
            row["findings"] += 1
            row["occurrences"] += max(_int(f, "count"), 1)
    return dict(sorted(out.items()))


def nodes(docs: Sequence[NodeDoc], first_last: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """One row per node, its documents added up; most failed lookups first."""
    by_node: dict[str, list[NodeDoc]] = {}
    for d in docs:
        by_node.setdefault(d.node, []).append(d)
    rows: list[dict[str, Any]] = []
    for node, group in by_node.items():
        first, last = first_last.get(node, ("", ""))
        kinds = findings_by_kind(group)
        rows.append({
            "node": node,
            "documents": [d.path for d in group],
            "first_time": first or None,
            "last_time": last or None,
            **totals(group),
            "kernel_dropped": sum(_int(d.doc.get("capture") or {}, "kernel_dropped")
                                  for d in group),
            "tunnels": {k: n for k, n in tunnels(group).items() if n},
            "findings": {k: v["occurrences"] for k, v in kinds.items()},
        })
    rows.sort(key=lambda r: (-int(r["lookups_failed"]), -int(r["lookups"]), str(r["node"])))
    return rows


def servers(docs: Sequence[NodeDoc]) -> list[dict[str, Any]]:
    """Per DNS server address (the summary's ``servers`` rows), busiest first."""
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        for r in _rows(d.doc["summary"], "servers"):
            addr = str(r.get("server", ""))
            row = out.setdefault(addr, {"server": addr, **dict.fromkeys(SERVER_COUNTS, 0),
                                        "nodes": []})
            for k in SERVER_COUNTS:
                row[k] += _int(r, k)
            _add_node(row, d.node)
    return sorted(out.values(), key=lambda r: (-r["lookups"], r["server"]))


def replicas(docs: Sequence[NodeDoc]) -> list[dict[str, Any]]:
    """Per CoreDNS replica (DNAT target behind a Service address): queries and failures
    added up; share and failure rate computed again from the sums."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for d in docs:
        for r in _rows(d.doc["summary"], "replicas"):
            key = (str(r.get("service", "")), str(r.get("address", "")))
            row = out.setdefault(key, {"service": key[0], "address": key[1], "queries": 0,
                                       "failed": 0, "nodes": []})
            row["queries"] += _int(r, "queries")
            row["failed"] += _int(r, "failed")
            _add_node(row, d.node)
    per_service: dict[str, int] = {}
    for (service, _), row in out.items():
        per_service[service] = per_service.get(service, 0) + row["queries"]
    for (service, _), row in out.items():
        total = per_service[service]
        row["share"] = round(row["queries"] / total, 4) if total else 0.0
        row["failure_rate"] = round(row["failed"] / row["queries"], 4) if row["queries"] else 0.0
    return sorted(out.values(), key=lambda r: (r["service"], r["address"]))


def clients(docs: Sequence[NodeDoc], by_workload: bool) -> list[dict[str, Any]]:
    """Per client workload (when the documents name pods) or per client address; most
    failed lookups first. An address no document names a pod for stays an address."""
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        pods = d.doc.get("pods")
        for r in _rows(d.doc["summary"], "clients"):
            addr = str(r.get("client", ""))
            name = (workload_of(pods, addr) if by_workload else None) or addr
            row = out.setdefault(name, {"client": name, "addresses": [],
                                        **dict.fromkeys(CLIENT_COUNTS, 0), "nodes": []})
            for k in CLIENT_COUNTS:
                row[k] += _int(r, k)
            if addr not in row["addresses"]:
                row["addresses"].append(addr)
            _add_node(row, d.node)
    return sorted(out.values(), key=lambda r: (-r["failed"], -r["lookups"], r["client"]))


def failing_names(docs: Sequence[NodeDoc], limit: int = TOP_NAMES) -> list[dict[str, Any]]:
    """The names with the most error findings' occurrences, all nodes together."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for d in docs:
        for f in d.doc["findings"]:
            if not isinstance(f, dict) or f.get("severity") != "error":
                continue
            qname = f.get("qname")
            if not isinstance(qname, str) or not qname:
                continue  # a replica's finding names no question
            key = (qname, str(f.get("qtype", "")))
            row = out.setdefault(key, {"qname": key[0], "qtype": key[1], "failures": 0,
                                       "kinds": {}, "nodes": []})
            n = max(_int(f, "count"), 1)
            row["failures"] += n
            kind = str(f.get("kind", ""))
            row["kinds"][kind] = row["kinds"].get(kind, 0) + n
            _add_node(row, d.node)
    rows = sorted(out.values(), key=lambda r: (-r["failures"], r["qname"], r["qtype"]))
    for row in rows:
        row["kinds"] = dict(sorted(row["kinds"].items()))
    return rows[:limit]


def _add_node(row: dict[str, Any], node: str) -> None:
    if node not in row["nodes"]:
        row["nodes"].append(node)
        row["nodes"].sort()
