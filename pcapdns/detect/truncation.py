"""TC=1 answers the client never retried over TCP (RFC 7766 section 5 requires it)."""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding, ms
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    out = []
    for t in lookup.attempts:
        if t.tc_followed_by_tcp is not False or t.response is None:
            continue
        frames = [t.query.frame, t.response.frame]
        if t.tc_next_query_frame is not None:
            frames.append(t.tc_next_query_frame)
            detail = (
                "truncated (TC=1) UDP answer; the client asked again over UDP instead of TCP"
            )
        else:
            detail = (
                "truncated (TC=1) UDP answer; no TCP query for the name followed within "
                f"{ms(config.tc_fallback_window)}"
            )
        out.append(finding("truncated_no_tcp_fallback", "error", lookup, frames,
                           detail + ".", at=t))
    return out
