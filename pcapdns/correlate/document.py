"""The correlation's JSON document (schema ``pcapdns.correlation/1``), field by field as
docs/analysis.md ("Two capture points") documents it. Field names are a contract: add,
never rename."""

from __future__ import annotations

from typing import Any, TextIO

from pcapdns import __version__
from pcapdns.coredns_log.join import JoinResult
from pcapdns.correlate.records import AttemptFate, Correlation, LookupFate, Packet, Query
from pcapdns.dns import names
from pcapdns.output import coredns_log, jsontext
from pcapdns.output.timefmt import iso
from pcapdns.pods import PodDirectory

SCHEMA = "pcapdns.correlation/1"

#: Method of the clock-offset estimate, as the document names it.
OFFSET_METHOD = "median_of_midpoints"


def build(c: Correlation) -> dict[str, Any]:
    """The whole document as plain Python data."""
    clock = c.clock
    return {
        "schema": SCHEMA,
        "pcapdns_version": __version__,
        "inputs": {"client": list(c.client.inputs), "server": list(c.server.inputs)},
        "clock_offset_s": _seconds(clock.offset),
        "clock_offset": {
            "pairs": clock.pairs,
            "rejected": clock.rejected,
            "error_bound_s": _seconds(clock.error_bound),
            "spread_s": _seconds(clock.spread),
            "interval_s": (None if clock.interval is None
                           else [_seconds(clock.interval[0]), _seconds(clock.interval[1])]),
            "method": OFFSET_METHOD if clock.offset is not None else None,
        },
        "match_window_s": c.config.match_window,
        "fates": dict(c.fates),
        "sides": {side.side: {
            "first_time": iso(side.first_time),
            "last_time": iso(side.last_time),
            "queries": len(side.queries),
            "lookups": side.lookup_count,
            "queries_evicted": side.evicted,
        } for side in (c.client, c.server)},
        "queries_paired": c.paired,
        "lookups_to_other_servers": c.other_server_lookups,
        "servers": [{"client_side": s.client_side,
                     "server_side": [{"address": a, "queries": n} for a, n in s.server_side]}
                    for s in c.servers],
        "lookups": [lookup_json(lf, c.server.coredns_log, c.pods) for lf in c.lost],
        "coredns_log": coredns_log.section(c.server.coredns_log),
        "warnings": list(c.warnings),
        "pods": pods_section(c),
    }


def dumps(c: Correlation) -> str:
    return jsontext.dumps(build(c)) + "\n"


def write(c: Correlation, out: TextIO) -> None:
    out.write(dumps(c))


def pods_section(c: Correlation) -> dict[str, Any] | None:
    """With ``--pods``: the listing read, and what it names of the addresses shown (the
    lookups' clients and servers, the servers' addresses on both sides); else None."""
    pods = c.pods
    if pods is None:
        return None
    seen = [a for lf in c.lost for a in (lf.attempts[0].client.packet.src,
                                          lf.attempts[0].client.packet.dst)]
    seen += [a for s in c.servers for a in (s.client_side, *(x for x, _ in s.server_side))]
    found = {a: e.to_json() for a in seen if (e := pods.lookup(a)) is not None}
    return {"files": list(pods.files), "pods": pods.pods, "services": pods.services,
            "addresses": dict(sorted(found.items()))}


def lookup_json(lf: LookupFate, log: JoinResult | None = None,
                pods: PodDirectory | None = None) -> dict[str, Any]:
    first = lf.attempts[0].client
    out = {
        "lookup": lf.lookup,
        "fate": lf.fate,
        "qname": first.qname,
        "qtype": names.qtype_name(first.qtype),
        "client": first.packet.src,
        "server": first.packet.dst,
        "time": iso(first.packet.time),
        "attempts": [_attempt(a, log) for a in lf.attempts],
    }
    if pods is not None:
        # Only with --pods: namespace/pod of the client and the server (None: not listed).
        out["client_pod"] = pods.label(first.packet.src)
        out["server_pod"] = pods.label(first.packet.dst)
    return out


def _attempt(a: AttemptFate, log: JoinResult | None) -> dict[str, Any]:
    c, s = a.client, a.server
    out = {
        "attempt": c.attempt,
        "fate": a.fate,
        "id": c.id,
        "client_query": _packet(c.packet),
        "client_response": _response(c),
        "server_query": _packet(s.packet) if s is not None else None,
        "server_response": _response(s) if s is not None else None,
        "delay_s": _seconds(a.delay),
    }
    if log is not None:
        # What CoreDNS logged for the server side's copy of the query (with --coredns-log).
        out["server_coredns_log"] = (coredns_log.transaction(log, s.packet.frame)
                                     if s is not None else None)
    return out


def _response(q: Query) -> dict[str, Any] | None:
    if q.response is None:
        return None
    out = _packet(q.response)
    out["rcode"] = names.rcode_name(q.rcode) if q.rcode is not None else None
    return out


def _packet(p: Packet) -> dict[str, Any]:
    """A packet as its own side saw it (times on that side's clock)."""
    return {"frame": p.frame, "time": iso(p.time), "src": p.src, "sport": p.sport,
            "dst": p.dst, "dport": p.dport}


def _seconds(x: float | None) -> float | None:
    """Seconds to the microsecond, the resolution of a pcap time stamp."""
    return None if x is None else round(x, 6)
