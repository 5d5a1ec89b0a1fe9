"""The CoreDNS log's parts of the JSON document: the ``coredns_log`` section (null without
a log) and each transaction's ``coredns_log`` (only with a log). docs/analysis.md
("CoreDNS query logs") defines every field."""

from __future__ import annotations

from typing import Any

from pcapdns.coredns_log.join import JoinResult, ProblemLookup, TransactionLog
from pcapdns.output.timefmt import iso


def section(log: JoinResult | None) -> dict[str, Any] | None:
    if log is None:
        return None
    x = log.index
    return {
        "files": [{"path": f.path, "lines": f.lines, "query_lines": f.query_lines,
                   "other_lines": f.other_lines, "unparsable": f.unparsable}
                  for f in x.files],
        "lines": x.lines,
        "query_lines": x.query_lines,
        "other_plugin_lines": x.other_lines,
        "error_lines": x.error_lines,
        "error_examples": [{"line": f"{e.file}:{e.line}", "time": iso(e.time),
                            "text": e.text} for e in x.errors],
        "unparsable": x.unparsable,
        "unparsable_examples": [{"line": f"{u.file}:{u.line}", "text": u.text}
                                for u in x.unparsable_examples],
        "query_lines_not_kept": x.evicted,
        "times_used": log.times_used,
        "clock_offset_s": log.clock_offset_s,
        "clock_offset_spread_s": log.offset_spread_s,
        "clock_offset_samples": log.offset_samples,
        "joined": log.joined,
        "ambiguous_queries": log.ambiguous_queries,
        "ambiguous_lines": log.ambiguous_lines,
        "logged_not_captured": log.logged_not_captured,
        "logged_other_clients": log.logged_other_clients,
        "logged_outside_capture": log.logged_outside_capture,
        "captured_not_logged": log.captured_not_logged,
        "captured_not_logged_answered": log.captured_not_logged_answered,
        "servers": list(log.servers),
        "failed_lookups": log.verdicts,
        "lookups": [_problem(p) for p in log.problems],
        "lookups_omitted": log.problems_omitted,
        "lookups_not_judged": log.not_judged,
        "warnings": list(log.warnings),
    }


def _problem(p: ProblemLookup) -> dict[str, Any]:
    return {
        "lookup": p.lookup,
        "time": iso(p.time),
        "client": p.client,
        "client_port": p.client_port,
        "server": p.server,
        "qname": p.qname,
        "qtype": p.qtype,
        "outcome": p.outcome,
        "verdict": p.verdict,
        "attempts": [{"frame": a.frame, "logged": a.logged, "rcode": a.rcode,
                      "duration_s": a.duration_s, "line": a.line} for a in p.attempts],
    }


def transaction(log: JoinResult, frame: int) -> dict[str, Any]:
    """What the log says of the query at ``frame``."""
    t = (log.by_frame or {}).get(frame) or TransactionLog(False)
    return {"logged": t.logged, "rcode": t.rcode, "duration_s": t.duration_s,
            "time": iso(t.time), "line": t.line}
