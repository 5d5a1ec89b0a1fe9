"""Queries that died inside the node between the pod's interface and kube-proxy's DNAT.

On a capture of every interface of a node (``tcpdump -i any``) a pod's query shows up once
on the pod's side, to the Service address, and once more after the DNAT, to a CoreDNS pod.
When other queries to the same Service address show that second leg and an unanswered one
does not, the node dropped it: the conntrack insert race (two packets of one socket, often
an A and an AAAA query, racing for the same conntrack entry) or a drop in the FORWARD path.
The matcher decides it (``Transaction.leg_fault``); docs/analysis.md has the definition.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, Severity, finding, leg_frames
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    out = []
    answer = lookup.answer
    for t in lookup.attempts:
        if t.leg_fault != "lost_in_node":
            continue
        q = t.query
        detail = (f"the query to {q.dst} was captured on the pod's side (frame {q.frame}, "
                  f"interface {q.iface}) and no copy of it left the node's NAT, while other "
                  "queries to that address went on to a DNAT target")
        severity: Severity = "error"
        if answer is not None and answer.response is not None and not lookup.failed:
            detail += (f"; a later attempt was answered (frame {answer.response.frame}), "
                       "after the client's wait")
            severity = "warning"
        else:
            detail += "; no attempt was answered"
        out.append(finding("lost_in_node", severity, lookup, [q.frame, *leg_frames(q)],
                           detail + ".", at=t))
    return out
