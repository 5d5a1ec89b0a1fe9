"""The JSON document (schema ``pcapdns.analysis/1``), field by field as documented in
docs/analysis.md. Field names are a contract: add, never rename."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from pcapdns import __version__, _core
from pcapdns.analysis import Analysis
from pcapdns.coredns_log.join import JoinResult
from pcapdns.detect import AggregatedFinding
from pcapdns.dns import names
from pcapdns.dns.message import Leg, Tunnel
from pcapdns.match.records import Lookup, Transaction
from pcapdns.output import coredns_log, jsontext
from pcapdns.output import pods as pods_out
from pcapdns.output.summary import Summary
from pcapdns.output.timefmt import iso
from pcapdns.pods import PodDirectory, lookup_label
from pcapdns.read.capture_meta import CaptureMeta
from pcapdns.timeline import Timeline
from pcapdns.upstream import Cause

SCHEMA = "pcapdns.analysis/1"


def build(a: Analysis) -> dict[str, Any]:
    """The whole document as plain Python data."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "pcapdns_version": __version__,
        "inputs": [_input(f) for f in a.files],
        "summary": Summary.of(a).to_json(),
        "findings": [_finding(f, a.pods) for f in a.findings],
        "warnings": list(a.warnings),
        "capture": capture(a.capture),
        "coredns_log": coredns_log.section(a.coredns_log),
        "pods": pods_out.section(a),
        "timeline": timeline(a.timeline),
    }
    if a.lookups is not None:
        doc["transactions"] = transactions(a.lookups, a.coredns_log, a.causes, a.pods)
        doc["duplicate_frames"] = {
            str(k): v for k, v in sorted((a.duplicate_of or {}).items())
        }
    return doc


def dumps(a: Analysis) -> str:
    return jsontext.dumps(build(a)) + "\n"


def write(a: Analysis, out: TextIO) -> None:
    """Write the document to ``out`` a piece at a time.

    Same text as ``dumps``, but findings and transactions are encoded one by one, so a
    capture with many of them never holds the whole document in memory at once.
    """
    head: dict[str, Any] = {
        "schema": SCHEMA,
        "pcapdns_version": __version__,
        "inputs": [_input(f) for f in a.files],
        "summary": Summary.of(a).to_json(),
    }
    out.write("{\n")
    for key, value in head.items():
        out.write(f"  {json.dumps(key)}: {_indent(value)},\n")
    _write_list(out, "findings", (_finding(f, a.pods) for f in a.findings))
    out.write(",\n")
    out.write(f'  "warnings": {_indent(list(a.warnings))},\n')
    out.write(f'  "capture": {_indent(capture(a.capture))},\n')
    out.write(f'  "coredns_log": {_indent(coredns_log.section(a.coredns_log))},\n')
    out.write(f'  "pods": {_indent(pods_out.section(a))},\n')
    out.write(f'  "timeline": {_indent(timeline(a.timeline))}')
    if a.lookups is not None:
        out.write(",\n")
        rows = ((lk, t) for lk in a.lookups for t in lk.attempts)
        ordered = sorted(rows, key=lambda pair: pair[1].query.frame)
        _write_list(out, "transactions",
                    (_transaction(lk, t, a.coredns_log, a.causes.get(lk.id), a.pods)
                     for lk, t in ordered))
        dup = {str(k): v for k, v in sorted((a.duplicate_of or {}).items())}
        out.write(f',\n  "duplicate_frames": {_indent(dup)}')
    out.write("\n}\n")


def _indent(value: Any) -> str:
    """JSON for a value nested one level deep in the document, indented as ``dumps`` does."""
    return jsontext.dumps(value, "\n  ")


def _write_list(out: TextIO, key: str, items: Iterator[dict[str, Any]]) -> None:
    out.write(f"  {json.dumps(key)}: [")
    first = True
    for item in items:
        out.write("\n    " if first else ",\n    ")
        out.write(jsontext.dumps(item, "\n    "))
        first = False
    out.write("]" if first else "\n  ]")


def _input(f: Any) -> dict[str, Any]:
    return {
        "path": f.path,
        "packets": f.packets,
        "link_type": ",".join(dict.fromkeys(_core.link_type_name(t) for t in f.link_types)),
        "first_time": iso(f.first_time),
        "last_time": iso(f.last_time),
        "truncated": f.truncated,
        "format": f.format,
        "gzip": f.gzip,
        "size": f.size,
        "interfaces": {str(k): v for k, v in sorted(f.interface_names.items())},
    }


#: One input file as the documents list it (the correlation's document too).
input_json = _input


def _finding(agg: AggregatedFinding, pods: PodDirectory | None = None) -> dict[str, Any]:
    detail = agg.detail
    if agg.count > 1:
        detail += f" Seen {agg.count} times, last at {iso(agg.last_time)}."
    return {
        "kind": agg.kind,
        "severity": agg.severity,
        "time": iso(agg.time),
        "client": agg.client,
        "server": agg.server,
        "qname": agg.qname,
        "qtype": agg.qtype,
        "frames": sorted(agg.frames),
        "detail": detail,
        "count": agg.count,
        "last_time": iso(agg.last_time),
        "frames_omitted": agg.frames_omitted,
        "explains": list(agg.explains),
        # Added with --pods (null without): namespace/pod of the client and server.
        "client_pod": lookup_label(pods, agg.client),
        "server_pod": lookup_label(pods, agg.server),
    }


def capture(meta: CaptureMeta | None) -> dict[str, Any] | None:
    """What the capture agent recorded (capture.json beside the inputs), or None."""
    if meta is None:
        return None
    delta = meta.conntrack_delta()
    rc = meta.resolv_conf
    return {
        "file": meta.path,
        "node": meta.node,
        "target": meta.target.kind,
        "pid": meta.target.pid,
        "netns": meta.target.netns,
        "start": iso(meta.start),
        "stop": iso(meta.stop),
        "stop_reason": meta.stop_reason,
        "tcpdump_command": list(meta.tcpdump_command),
        "tcpdump_version": meta.tcpdump_version,
        "packets_received": meta.packets_received,
        "kernel_dropped": meta.kernel_dropped,
        "interface_names": {str(k): v for k, v in sorted(meta.interfaces.items())},
        "resolv_conf": None if rc is None else {
            "nameservers": list(rc.nameservers), "search": list(rc.search),
            "ndots": rc.ndots, "options": list(rc.options),
        },
        "conntrack_insert_failed_rise": delta.insert_failed if delta else None,
        "conntrack_drop_rise": delta.drop if delta else None,
    }


def timeline(t: Timeline) -> dict[str, Any]:
    """Failed lookups over time, only the buckets that have some: what ``pcapdns merge``
    lines up across nodes to find the moments several of them failed at once. Sparse,
    because most buckets of a healthy capture hold no failure."""
    start, step, _, failed = t.series()
    return {
        "bucket_seconds": step,
        "failed": [{"time": iso(start + i * step), "lookups": n}
                   for i, n in enumerate(failed) if n],
    }


def transactions(lookups: list[Lookup], log: JoinResult | None = None,
                 causes: dict[int, Cause] | None = None,
                 pods: PodDirectory | None = None) -> list[dict[str, Any]]:
    causes = causes or {}
    rows = [_transaction(lk, t, log, causes.get(lk.id), pods)
            for lk in lookups for t in lk.attempts]
    rows.sort(key=lambda r: r["query_frame"])
    return rows


def _transaction(lk: Lookup, t: Transaction, log: JoinResult | None = None,
                 cause: Cause | None = None,
                 pods: PodDirectory | None = None) -> dict[str, Any]:
    q, r = t.query, t.response
    latency = t.latency
    lookup_latency = lk.latency
    # The answer records are decoded only here, when the user asked for transactions.
    answers = _core.answer_section(r.data) if r else None
    row = {
        "lookup": lk.id,
        "attempt": t.attempt,
        "transport": q.transport,
        "client": q.src,
        "client_port": q.sport,
        "server": q.dst,
        "server_port": q.dport,
        "id": q.id,
        "qname": q.qname,
        "qtype": names.qtype_name(q.qtype),
        "qclass": names.qclass_name(q.qclass),
        "query_frame": q.frame,
        "query_time": iso(q.time),
        "query_interface": q.iface,
        "response_frame": r.frame if r else None,
        "response_time": iso(r.time) if r else None,
        "response_from": r.src if r else None,
        "response_interface": r.iface if r else None,
        "rcode": names.rcode_name(r.flags & 0xF) if r else None,
        "tc": bool(r.flags & 0x0200) if r else None,
        "answers": r.ancount if r else None,
        "answer_records": list(answers.records) if answers is not None else None,
        "answer_records_error": answers.error if answers is not None else None,
        "latency_ms": round(latency * 1000, 3) if latency is not None else None,
        "lookup_latency_ms": (
            round(lookup_latency * 1000, 3) if lookup_latency is not None else None
        ),
        "retransmission": t.retransmission,
        "fanout_of": t.fanout_of,
        "tc_followed_by_tcp": t.tc_followed_by_tcp,
        "pair_frame": t.pair_frame,
        "pair_concurrent": t.pair_concurrent,
        "pair_race_lost": t.pair_race_lost,
        "icmp_frames": list(t.icmp_frames),
        "tcp_fallback": t.tcp_fallback,
        "query_legs": [_leg(g) for g in q.legs],
        "response_legs": [_leg(g) for g in r.legs] if r else [],
        "leg_fault": t.leg_fault,
        "upstream_of": t.upstream_of,
        "forwarded_as": t.forwarded_as,
        "tunnel": _tunnel(t.tunnel, pods),
        "cause": cause.kind if cause is not None else None,
        "cause_upstream": cause.upstream if cause is not None else None,
        "cause_rcode": cause.rcode if cause is not None else None,
        "cause_frames": list(cause.frames) if cause is not None else None,
    }
    if log is not None:
        # Only with a log: what CoreDNS logged for this query.
        row["coredns_log"] = coredns_log.transaction(log, q.frame)
    if pods is not None:
        # Only with --pods: namespace/pod of the client and the server (None: not listed).
        row["client_pod"] = pods.label(q.src)
        row["server_pod"] = pods.label(q.dst)
    return row


def _tunnel(t: Tunnel | None, pods: PodDirectory | None) -> dict[str, str | None] | None:
    """The overlay tunnel a transaction was decapsulated from: the two nodes, named too
    with --pods (a pod's hostIP names its node)."""
    if t is None:
        return None
    row: dict[str, str | None] = {"type": t.type, "outer_src": t.outer_src,
                                  "outer_dst": t.outer_dst}
    if pods is not None:
        row["outer_src_pod"] = pods.label(t.outer_src)
        row["outer_dst_pod"] = pods.label(t.outer_dst)
    return row


def _leg(g: Leg) -> dict[str, Any]:
    """A copy of a message on another interface of the node (docs/analysis.md)."""
    return {"frame": g.frame, "time": iso(g.time), "interface": g.iface, "address": g.address}
