"""Lookups whose answer carried an error response code (RFC 1035 section 4.1.1)."""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, FindingKind, Severity, finding, ms
from pcapdns.match.records import Lookup

_KINDS: dict[int, tuple[FindingKind, Severity, str]] = {
    2: ("servfail", "error", "SERVFAIL: the server or its upstream failed"),
    5: ("refused", "error", "REFUSED: the server will not answer this query"),
    3: ("nxdomain", "info", "NXDOMAIN: the name does not exist"),
}


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    t = lookup.answer
    if t is None:
        return []
    r = t.response
    if r is None:
        return []
    entry = _KINDS.get(r.flags & 0xF)
    if entry is None:
        return []
    kind, severity, words = entry
    if kind != "nxdomain" and any(a.upstream_of is not None for a in lookup.attempts):
        return []  # a forwarder's upstream query: upstream_error says it
    aa = " (authoritative)" if r.flags & 0x0400 else ""
    latency = r.time - lookup.attempts[0].query.time  # lookup.latency, with t its answer
    detail = f"{words}{aa}; answered by {r.src} in {ms(latency or 0.0)}."
    return [finding(kind, severity, lookup, [t.query.frame, r.frame], detail, at=t)]
