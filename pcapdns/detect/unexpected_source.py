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
from pcapdns.detect.base import Finding, answer_faults
from pcapdns.match.records import Lookup, Transaction


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    return answer_faults(lookup, "unexpected_source", _describe)


def _describe(t: Transaction) -> str:
    q, r = t.query, t.response
    assert r is not None
    detail = f"the query (frame {q.frame}) was sent to {q.dst}"
    targets = sorted({leg.address for leg in q.legs} - {q.dst})
    if targets:
        detail += f" and went on to {', '.join(targets)} after the DNAT"
    return detail + (f"; the answer (frame {r.frame}) came from {r.src}: the client's socket "
                     "drops an answer from an address it did not ask")
