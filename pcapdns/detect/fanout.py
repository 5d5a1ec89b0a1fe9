"""One query sent to several nameservers at once: the musl (Alpine) resolver's habit.

It also bypasses NodeLocal DNSCache when both the cache and kube-dns are listed.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    out = []
    # Report once per fan-out, from the attempt that is the fan-out's first query. musl
    # fans out every retry round, so a lookup can hold several fan-outs.
    for t in lookup.attempts:
        if t.fanout_of is None or t.fanout_of != t.query.frame:
            continue
        detail = (
            f"the same query (ID {t.query.id}, port {t.query.sport}) went to several "
            "servers at once"
        )
        out.append(finding("fanout", "info", lookup, [t.query.frame], detail + ".", at=t))
    return out
