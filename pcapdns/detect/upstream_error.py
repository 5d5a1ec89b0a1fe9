"""A forwarder's upstream query answered with an error code (SERVFAIL, REFUSED, ...; not
NXDOMAIN, which answers the question), which the forwarder passes on to its clients
(docs/analysis.md, "The forwarder's upstream leg").

The query is of the upstream leg (``Transaction.upstream_of``). Its lookup gets this
finding instead of a plain ``servfail`` or ``refused`` (the rcode detector leaves
upstream-leg lookups alone for those codes: one finding per cause).
"""

from __future__ import annotations

import re

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding, ms
from pcapdns.dns import names
from pcapdns.match.records import Lookup

#: Response codes that answer the question (RFC 1035 section 4.1.1): NOERROR, NXDOMAIN.
_ANSWERS = (0, 3)
#: The finding's sentence names the code in these words (``rcode_of`` reads it back).
_ANSWERED = re.compile(r"^upstream server \S+ answered (\S+) to the forwarder ")


def rcode_of(detail: str) -> str | None:
    """The response code name an ``upstream_error`` finding's sentence names."""
    m = _ANSWERED.match(detail)
    return m.group(1) if m else None


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    t = lookup.answer
    if t is None or t.response is None:
        return []
    r = t.response
    rcode = r.flags & 0xF
    if rcode in _ANSWERS:
        return []
    downstream = [a.upstream_of for a in lookup.attempts if a.upstream_of is not None]
    if not downstream:
        return []
    q = lookup.first
    latency = r.time - q.time  # lookup.latency, with t its answer
    detail = (f"upstream server {r.src} answered {names.rcode_name(rcode)} to the forwarder "
              f"{q.src} in {ms(latency)}; it was asking for the client quer"
              f"{'y' if len(downstream) == 1 else 'ies'} at frame "
              f"{', '.join(str(f) for f in downstream)}.")
    return [finding("upstream_error", "error", lookup,
                    [t.query.frame, r.frame, *downstream], detail, at=t)]
