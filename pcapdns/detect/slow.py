"""Lookups answered, but only after more than ``config.slow`` seconds from the first try."""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, Severity, finding, ms
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    t = lookup.answer
    if t is None or t.response is None:
        return []
    latency = t.response.time - lookup.attempts[0].query.time  # lookup.latency
    if latency <= config.slow:
        return []
    detail = f"answered {ms(latency)} after the first query (threshold {ms(config.slow)})"
    if len(lookup.attempts) > 1:
        detail += f", after {len(lookup.attempts)} attempts"
    # As slow as a resolver timeout: the client waited it out (a retry, a stall).
    severity: Severity = "error" if latency >= config.timeout else "warning"
    return [finding("slow_response", severity, lookup,
                    [lookup.attempts[0].query.frame, t.query.frame, t.response.frame],
                    detail + ".")]
