"""Answers that came back after the client had closed its socket.

The client's kernel answers such a datagram with ICMP port unreachable quoting it; the
ICMP error is the evidence that the answer was too late to be used.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, Severity, finding, ms
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    out = []
    answer = lookup.answer
    # The lookup still got its answer from another attempt (glibc closes its UDP socket
    # when a truncated answer sends it to TCP, so the other UDP answer bounces).
    saved = answer is not None and not answer.late_icmp_frames
    for t in lookup.attempts:
        if not t.late_icmp_frames or t.response is None:
            continue
        if t.fanout_of is not None:
            # A fan-out resolver (musl) takes the first answer and closes its socket; the
            # other servers' answers bounce by design.
            continue
        latency = t.latency or 0.0
        detail = (
            f"the answer arrived {ms(latency)} after the query, after the client had closed "
            "its port (ICMP port unreachable)"
        )
        if saved:
            assert answer is not None and answer.response is not None
            how = "over TCP" if answer.query.transport == "tcp" else "by another attempt"
            detail += (f"; the lookup was answered {how} (frame {answer.response.frame}), "
                       "so nothing failed")
            severity: Severity = "info"
        else:
            detail += "; no other attempt was answered: for the application this lookup failed"
            severity = "error"
        out.append(finding("late_response", severity, lookup,
                           [t.query.frame, t.response.frame, *t.late_icmp_frames],
                           detail + ".", at=t))
    return out
