"""Answers that reached the node from the DNAT target and never reached the pod.

On a capture of every interface of a node, an answer from a CoreDNS pod is seen arriving
with that pod's address as its source, and once more, un-NAT'd, with the Service address
as its source on the pod's side. When the first copy is there and the second is not, the
node lost the answer on its way back (a drop in FORWARD, rp_filter, a conntrack entry gone
before the answer came). The client never got it. The matcher decides it
(``Transaction.leg_fault``); docs/analysis.md has the definition.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, answer_faults
from pcapdns.match.records import Lookup, Transaction


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    return answer_faults(lookup, "reply_not_delivered", _describe)


def _describe(t: Transaction) -> str:
    q, r = t.query, t.response
    assert r is not None
    went = ", ".join(sorted({leg.address for leg in q.legs})) or r.src
    return (f"the query to {q.dst} went on to {went} after the DNAT; the answer came back "
            f"from {r.src} (frame {r.frame}) and no copy of it with {q.dst} as its source "
            "reached the pod's side: the client never got it")
