"""Answers that came back after the client had closed its socket.

The client's kernel answers such a datagram with ICMP port unreachable quoting it; the
ICMP error is the evidence that the answer was too late to be used.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding, ms
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    out = []
    for t in lookup.attempts:
        if not t.late_icmp_frames or t.response is None:
            continue
        if t.fanout_of is not None:
            # A fan-out resolver (musl) takes the first answer and closes its socket; the
            # other servers' answers bounce by design.
            continue
        latency = t.latency or 0.0
        detail = (
            f"the answer arrived {ms(latency)} after the query, after the client had given "
            "up and closed its port (ICMP port unreachable): for the application this "
            "query failed"
        )
        out.append(finding("late_response", "error", lookup,
                           [t.query.frame, t.response.frame, *t.late_icmp_frames],
                           detail + ".", at=t))
    return out
