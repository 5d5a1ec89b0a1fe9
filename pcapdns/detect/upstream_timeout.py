"""A forwarder's upstream query that was never answered (docs/analysis.md, "The
forwarder's upstream leg").

The query is of the upstream leg: the core linked it to a client's query the forwarder was
waiting to answer (``Transaction.upstream_of``). Its lookup gets this finding instead of a
plain ``timeout`` (the timeout detector leaves upstream-leg lookups alone: one finding per
cause), and its evidence holds the downstream queries it was sent for: the clients'
timeouts it caused are what this finding explains.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, attempt_frames, finding, ms
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    if lookup.answer is not None or lookup.open_at_end:
        return []
    downstream = [t.upstream_of for t in lookup.attempts if t.upstream_of is not None]
    if not downstream:
        return []
    q = lookup.first
    n = len(lookup.attempts)
    last = lookup.attempts[-1].query
    asked = "once" if n == 1 else f"{n} times over {ms(last.time - q.time)}"
    detail = (f"the forwarder {q.src} asked upstream server {q.dst} {asked} and got no "
              f"answer; it was asking for {len(downstream)} client quer"
              f"{'y' if len(downstream) == 1 else 'ies'} (frame "
              f"{', '.join(str(f) for f in downstream)}), which went unanswered or failed "
              "with it.")
    return [finding("upstream_timeout", "error", lookup, attempt_frames(lookup) + downstream,
                    detail)]
