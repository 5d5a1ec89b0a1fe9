"""One query sent to several nameservers at once: the musl (Alpine) resolver's habit.

It also bypasses NodeLocal DNSCache when both the cache and kube-dns are listed.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    first = lookup.attempts[0]
    # Report once per fan-out, from the lookup that holds the fan-out's first query.
    if first.fanout_of is None or first.fanout_of != first.query.frame:
        return []
    detail = (
        f"the same query (ID {first.query.id}, port {first.query.sport}) went to several "
        "servers at once"
    )
    return [finding("fanout", "info", lookup, [first.query.frame], detail + ".")]
