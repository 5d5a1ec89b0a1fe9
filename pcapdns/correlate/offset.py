"""The clock offset between two capture points: server clock minus client clock.

Nodes' clocks differ, often by more than a lookup takes, so the offset is estimated from
the captures themselves, the way NTP does from one exchange. A query seen on both sides
and answered on both gives two differences of capture times:

* server query time - client query time = offset + outbound delay (>= 0): an upper bound;
* server answer time - client answer time = offset - return delay (>= 0): a lower bound.

Their midpoint is the offset when the path is symmetric, and the offset lies between
them in any case. The estimate is the median of the midpoints (robust to a few odd
pairs); the bounds all pairs agree on give its error bound.

Only unambiguous queries are used: an (ID, name, type) key that occurs exactly once on each
side. A retransmission with the same ID, or an ID reused later for the same question,
makes its key ambiguous and it is left out: the estimate must come first, before any
pairing by time is possible.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from pcapdns.correlate.records import ClockOffset, OffsetPair, Query


def candidate_pairs(client: Sequence[Query], server: Sequence[Query]
                    ) -> tuple[list[OffsetPair], int]:
    """The pairs of unambiguous queries answered on both sides, and how many candidates
    were rejected because their bounds contradict each other (low > high)."""
    client_keys = Counter(q.key for q in client)
    server_keys = Counter(q.key for q in server)
    answered_server = {q.key: q for q in server
                       if q.response is not None and server_keys[q.key] == 1}
    pairs: list[OffsetPair] = []
    rejected = 0
    for c in client:
        if c.response is None or client_keys[c.key] != 1:
            continue
        s = answered_server.get(c.key)
        if s is None or s.response is None:
            continue
        high = s.packet.time - c.packet.time
        low = s.response.time - c.response.time
        if low > high:
            # The server answered before the query arrived, once any offset is taken
            # out: not the same exchange (or a capture's clock stepped).
            rejected += 1
            continue
        pairs.append(OffsetPair(low=low, high=high))
    return pairs, rejected


def estimate(pairs: Sequence[OffsetPair], rejected: int = 0) -> ClockOffset:
    """The offset from ``pairs``; an empty estimate (offset None) without any."""
    if not pairs:
        return ClockOffset(offset=None, pairs=0, rejected=rejected, error_bound=None,
                           spread=None, interval=None)
    mids = [p.midpoint for p in pairs]
    offset = statistics.median(mids)
    low = max(p.low for p in pairs)
    high = min(p.high for p in pairs)
    if low <= high:
        # Every pair holds the true offset, so their common part does; the estimate is
        # at most this far from any point of it.
        bound = max(offset - low, high - offset)
        interval: tuple[float, float] | None = (low, high)
    else:
        # The pairs do not overlap: the clocks drifted (or stepped) during the capture,
        # or a pair is not one exchange. Fall back on the widest single-pair bound.
        bound = max(max(offset - p.low, p.high - offset) for p in pairs)
        interval = None
    return ClockOffset(offset=offset, pairs=len(pairs), rejected=rejected,
                       error_bound=max(bound, 0.0), spread=max(mids) - min(mids),
                       interval=interval)
