"""Queries the client had to send again (glibc/musl/dig retry after their timeout)."""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding, ms
from pcapdns.match.records import Lookup

_KIND_WORDS = {
    "same_id_same_port": "same ID, same port",
    "same_id_new_port": "same ID, new port",
    "new_id_same_port": "new ID, same port",
    "new_id_new_port": "new ID, new port",
}


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    for t in lookup.attempts:
        if t.retransmission:
            break
    else:
        return []
    # A TCP query after a truncated answer is an attempt of the lookup, not a resend.
    sent = [t for t in lookup.attempts if not t.tcp_fallback]
    gaps = [ms(b.query.time - a.query.time) for a, b in zip(sent, sent[1:], strict=False)]
    kinds = sorted({_KIND_WORDS[t.retransmission] for t in sent if t.retransmission})
    outcome = (
        f"answered {ms(lookup.latency)} after the first attempt"
        if lookup.latency is not None
        else "never answered"
    )
    detail = (
        f"sent {len(sent)} times ({'; '.join(kinds)}), "
        f"{', '.join(gaps)} apart; {outcome}."
    )
    frames = []
    for t in sent:
        frames.append(t.query.frame)
        if t.response is not None:
            frames.append(t.response.frame)
    return [finding("retransmission", "warning", lookup, frames, detail)]
