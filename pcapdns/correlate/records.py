"""The records of a correlation of two capture points (docs/analysis.md, "Two capture
points", has the definitions).

What the correlation keeps of each side is small on purpose: one ``Packet`` per DNS
message of interest and one ``Query`` per query (a few tuples of numbers and strings),
not the analysis' ``Lookup`` objects, which are dropped as soon as a side is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from pcapdns.coredns_log.join import JoinResult
from pcapdns.pods import PodDirectory

#: Where a lookup (or one attempt of it) ended, seen from two capture points.
Fate = Literal["answered", "lost_before_server", "lost_at_server", "lost_after_server",
               "unknown"]

#: Every fate, in the order of the path a query takes (and the order of every output).
FATES: tuple[Fate, ...] = ("answered", "lost_before_server", "lost_at_server",
                           "lost_after_server", "unknown")

Side = Literal["client", "server"]


@dataclass(frozen=True, slots=True)
class CorrelateConfig:
    """The limits of a correlation (defaults documented in docs/analysis.md)."""

    #: A client query and a server query with the same ID and question pair up when the
    #: server's time, less the clock offset, is within this many seconds (plus the offset's
    #: error bound) of the client's. Longer than a one-way trip between nodes, shorter than
    #: the 1 s any resolver waits before it sends a query again.
    match_window: float = 0.5
    #: Queries kept per side; the queries beyond it (those closed last) are not kept, and
    #: are counted.
    max_queries: int = 2_000_000


class Packet(NamedTuple):
    """One DNS message as one capture point saw it: the evidence shown on each side.
    A NamedTuple: one is kept per query and per response."""

    #: Frame number in that side's (merged) capture.
    frame: int
    #: Capture time on that side's clock, seconds since the epoch.
    time: float
    src: str
    sport: int
    dst: str
    dport: int


class Query(NamedTuple):
    """One query (an attempt of a lookup) and the response seen for it on the same side."""

    #: The query packet.
    packet: Packet
    #: The matched response on the same side, or None.
    response: Packet | None
    #: Response code of ``response`` (None without one).
    rcode: int | None
    #: DNS header ID.
    id: int
    #: The question name as captured (presentation form) and its type.
    qname: str
    qtype: int
    #: Lookup id on the client side (the analysis' ``Lookup.id``), 0 on the server side.
    lookup: int
    #: 1 for a lookup's first query, 2 for its first retransmission, ...
    attempt: int
    #: What survives NAT, the key the two sides are paired on: the ID and the question
    #: (the name lower-cased: names compare case-insensitively, RFC 4343, and a resolver
    #: may randomize the case, 0x20). Made once, since every step looks it up.
    key: tuple[int, str, int]


@dataclass(frozen=True, slots=True)
class SideCapture:
    """What the correlation keeps of one capture point."""

    side: Side
    #: The analysis' input files, as the JSON document's ``inputs`` shows them.
    inputs: tuple[dict, ...]
    #: Every query kept, in time order.
    queries: tuple[Query, ...]
    #: The client side's lookups, each a tuple of indexes into ``queries`` (empty on the
    #: server side, whose lookups are not judged).
    lookups: tuple[tuple[int, ...], ...]
    #: Lookups the analysis found on this side.
    lookup_count: int
    #: Time of the side's first and last packet (its own clock), None when empty.
    first_time: float | None
    last_time: float | None
    #: Queries forgotten at ``max_queries``.
    evicted: int
    #: The analysis' warnings about this side's input.
    warnings: tuple[str, ...]
    #: CoreDNS's query log joined to this side's queries (``--coredns-log``), or None.
    coredns_log: JoinResult | None = None


@dataclass(frozen=True, slots=True)
class OffsetPair:
    """One query seen on both sides and answered on both: the bounds it puts on the
    offset. ``low`` = server answer time - client answer time = offset - return delay;
    ``high`` = server query time - client query time = offset + outbound delay."""

    low: float
    high: float

    @property
    def midpoint(self) -> float:
        return (self.low + self.high) / 2


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """The estimate of the server's clock minus the client's, and how good it is."""

    #: Seconds; None when no query was seen answered on both sides.
    offset: float | None
    #: Pairs the estimate is made of (unambiguous queries answered on both sides).
    pairs: int
    #: Candidate pairs left out: a server answer before its query arrived once the clock
    #: difference is taken out (the two are not the same exchange).
    rejected: int
    #: The true offset lies within this many seconds of ``offset`` when the clocks did not
    #: drift apart during the capture (None without an estimate).
    error_bound: float | None
    #: Highest minus lowest midpoint of the pairs: jitter and drift between the clocks.
    spread: float | None
    #: The bounds every pair agrees on, [max low, min high]; None when they do not overlap.
    interval: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class AttemptFate:
    """One attempt of a client lookup, with what each side saw of it."""

    #: The client-side query and its response there.
    client: Query
    #: The server-side query paired with it, or None.
    server: Query | None
    fate: Fate
    #: Server query time - offset - client query time (outbound delay, up to the offset's
    #: error), when paired.
    delay: float | None


@dataclass(frozen=True, slots=True)
class LookupFate:
    """One client lookup and where it ended."""

    #: Lookup id on the client side.
    lookup: int
    fate: Fate
    attempts: tuple[AttemptFate, ...]


@dataclass(frozen=True, slots=True)
class ServerPairing:
    """A client-side destination and the server-side addresses its queries arrived at
    (a service IP and the DNS pod behind it, after DNAT)."""

    #: ip:port the client sent to.
    client_side: str
    #: ip:port on the server side, with the queries paired to each.
    server_side: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Correlation:
    """Everything a correlation produced; rendered by pcapdns.correlate.document/text/html."""

    config: CorrelateConfig
    client: SideCapture
    server: SideCapture
    clock: ClockOffset
    #: Client lookups by fate (every fate present).
    fates: dict[Fate, int]
    #: Each client lookup not answered at the client, in time order.
    lost: tuple[LookupFate, ...]
    #: Client lookups to a destination none of whose queries reached the server capture
    #: (another resolver): not judged, not in ``fates``.
    other_server_lookups: int
    #: Where the client's queries went and where they arrived.
    servers: tuple[ServerPairing, ...]
    #: Client queries paired with a server query.
    paired: int
    warnings: tuple[str, ...]
    #: Pod names of addresses (``--pods``), or None.
    pods: PodDirectory | None = None
