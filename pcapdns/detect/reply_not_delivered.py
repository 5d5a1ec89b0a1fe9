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
from pcapdns.detect.base import Finding, Severity, finding, leg_frames
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    out = []
    answer = lookup.answer
    saved = answer is not None and not answer.undelivered and not lookup.failed
    for t in lookup.attempts:
        r = t.response
        if t.leg_fault != "reply_not_delivered" or r is None:
            continue
        q = t.query
        went = ", ".join(sorted({leg.address for leg in q.legs})) or r.src
        detail = (f"the query to {q.dst} went on to {went} after the DNAT; the answer came "
                  f"back from {r.src} (frame {r.frame}) and no copy of it with {q.dst} as its "
                  "source reached the pod's side: the client never got it")
        severity: Severity = "error"
        if saved:
            assert answer is not None and answer.response is not None
            detail += f"; another attempt was answered (frame {answer.response.frame})"
            severity = "warning"
        else:
            detail += "; no other attempt was answered: for the application this lookup failed"
        frames = [q.frame, *leg_frames(q), r.frame, *leg_frames(r)]
        out.append(finding("reply_not_delivered", severity, lookup, frames, detail + ".",
                           at=t))
    return out
