"""Lookups that were never answered.

A failed lookup (no attempt answered) is a ``timeout`` when its last attempt was sent at
least ``config.timeout`` seconds before the capture ended; a later one may have been
answered after the capture stopped and is left out (``Lookup.open_at_end``).
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, attempt_frames, finding, ms
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    if lookup.answer is not None or lookup.open_at_end:
        return []
    if any(t.upstream_of is not None for t in lookup.attempts):
        return []  # a forwarder's upstream query: upstream_timeout says it
    n = len(lookup.attempts)
    first, last = lookup.attempts[0].query, lookup.attempts[-1].query
    icmp = [f for t in lookup.attempts for f in t.icmp_frames]
    if n == 1:
        detail = "the query was never answered (no retry seen)"
    else:
        detail = f"{n} queries over {ms(last.time - first.time)}, none answered"
    if icmp:
        detail += f"; {len(icmp)} ICMP unreachable error(s) came back instead"
    return [finding("timeout", "error", lookup, attempt_frames(lookup) + icmp, detail + ".")]
