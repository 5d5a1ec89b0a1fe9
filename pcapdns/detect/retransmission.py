"""Queries the client had to send again (glibc/musl/dig retry after their timeout)."""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, attempt_frames, finding, ms
from pcapdns.match.records import Lookup

_KIND_WORDS = {
    "same_id_same_port": "same ID, same port",
    "same_id_new_port": "same ID, new port",
    "new_id_same_port": "new ID, same port",
    "new_id_new_port": "new ID, new port",
}


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    if len(lookup.attempts) < 2:
        return []
    gaps = [
        ms(b.query.time - a.query.time)
        for a, b in zip(lookup.attempts, lookup.attempts[1:], strict=False)
    ]
    kinds = sorted({_KIND_WORDS[t.retransmission] for t in lookup.attempts if t.retransmission})
    outcome = (
        f"answered {ms(lookup.latency)} after the first attempt"
        if lookup.latency is not None
        else "never answered"
    )
    detail = (
        f"sent {len(lookup.attempts)} times ({'; '.join(kinds)}), "
        f"{', '.join(gaps)} apart; {outcome}."
    )
    return [finding("retransmission", "warning", lookup, attempt_frames(lookup), detail)]
