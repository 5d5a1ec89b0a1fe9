"""Answers from an address the client never asked.

A resolver's UDP socket is connected to the server it asked (glibc and musl both), so the
kernel drops an answer from any other address; dig prints "reply from unexpected source".
An answer whose source is neither the queried address nor the DNAT target the query went
to (seen in the query's copies, or in other queries' to the same address) is that case: a
multi-homed server replying from another address, a DNS server on the host network, a
missing un-DNAT or SNAT. The matcher decides it (``Transaction.leg_fault``);
docs/analysis.md has the definition.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, Severity, finding, leg_frames
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    out = []
    answer = lookup.answer
    saved = answer is not None and not answer.undelivered and not lookup.failed
    for t in lookup.attempts:
        r = t.response
        if t.leg_fault != "unexpected_source" or r is None:
            continue
        q = t.query
        detail = f"the query (frame {q.frame}) was sent to {q.dst}"
        targets = sorted({leg.address for leg in q.legs} - {q.dst})
        if targets:
            detail += f" and went on to {', '.join(targets)} after the DNAT"
        detail += (f"; the answer (frame {r.frame}) came from {r.src}: the client's socket "
                   "drops an answer from an address it did not ask")
        severity: Severity = "error"
        if saved:
            assert answer is not None and answer.response is not None
            detail += f"; another attempt was answered (frame {answer.response.frame})"
            severity = "warning"
        else:
            detail += "; no other attempt was answered: for the application this lookup failed"
        frames = [q.frame, *leg_frames(q), r.frame, *leg_frames(r)]
        out.append(finding("unexpected_source", severity, lookup, frames, detail + ".",
                           at=t))
    return out
