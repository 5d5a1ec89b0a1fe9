"""The conntrack insertion race behind 5-second stalls.

glibc sends A and AAAA from one UDP socket at once; both packets are NEW to conntrack at
the same instant and one insert can fail, so the kernel drops it (``insert_failed`` rises).
On the wire: a concurrent A/AAAA pair from one client port where exactly one is answered.
The matcher decides the pair on the member that closes last, so the finding is built from
that transaction whichever side was lost.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding
from pcapdns.dns import names
from pcapdns.match.records import Lookup


def detect(lookup: Lookup, config: AnalysisConfig) -> list[Finding]:
    out = []
    for t in lookup.attempts:
        if not t.pair_race_lost or t.pair_frame is None:
            continue
        own = names.qtype_name(t.query.qtype)
        other = "AAAA" if t.query.qtype == names.A else "A"
        lost = other if t.answered else own
        frames = [t.query.frame, t.pair_frame]
        if t.response is not None:
            frames.append(t.response.frame)
        if t.pair_response_frame is not None:
            frames.append(t.pair_response_frame)
        detail = (
            f"A and AAAA sent together from {t.query.src}:{t.query.sport}; "
            f"the {lost} query got no answer while the other was answered"
        )
        if not t.answered:
            # The resolver's own retries of the lost query are the stall the user saw.
            later = [a for a in lookup.attempts
                     if a.query.time > t.query.time and a.retransmission is not None]
            frames += [a.query.frame for a in later]
            frames += [a.response.frame for a in later if a.response is not None]
            if later and lookup.latency is not None:
                detail += (
                    f"; the resolver re-sent it {_times(len(later))} and had its answer "
                    f"{lookup.latency:.3f} s after the first try"
                )
            elif later:
                detail += f"; {len(later)} retries were not answered either"
        # Name the lost query's type, whichever member carries the decision, so that one
        # race pattern always merges into the same finding.
        out.append(finding("aaaa_race_lost", "error", lookup, frames, detail + ".", at=t,
                           qtype=lost))
    return out


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"
