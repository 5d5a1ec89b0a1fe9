"""The matcher's in-flight state and its counters (see pcapdns.match.matcher)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pcapdns.dns.message import Message
from pcapdns.match.records import RetransmissionKind, Transaction


class Query:
    """Mutable state of one query while it is in flight (frozen into a Transaction)."""

    __slots__ = (
        "msg", "qkey", "response", "group", "attempt", "retransmission", "fanout_of",
        "tc_next", "tc_followed", "pair", "is_a", "icmp_frames", "late_icmp_frames", "pkey", "gkey",
        "closed", "cell", "retried", "tcp_fallback",
    )

    def __init__(self, msg: Message, qkey: str) -> None:
        self.msg = msg
        self.qkey = qkey  # lower-cased question name
        self.response: Message | None = None
        self.group: Group | None = None
        self.attempt = 1
        self.retransmission: RetransmissionKind | None = None
        self.fanout_of: int | None = None
        self.tc_next: Message | None = None
        self.tc_followed: bool | None = None  # decided once, for a TC=1 UDP response
        self.pair: Query | None = None
        # Index keys, computed once (see Matcher's tables).
        self.pkey: PendingKey | None = None
        self.gkey: GroupKey | None = None
        self.is_a = False
        self.icmp_frames: list[int] = []
        self.late_icmp_frames: list[int] = []  # the subset quoting the matched response
        self.closed: Transaction | None = None
        # The slot holding this query in the unanswered queue; emptied when it is answered
        # so the queue does not keep answered queries alive.
        self.cell: list[Query | None] = [self]
        # True once a retransmission of this query was sent (the client showed it had
        # given up waiting for this one).
        self.retried = False
        # True for a TCP query that re-asks the question of an open UDP lookup after a
        # TC=1 answer to that client (RFC 7766 section 5): part of that lookup.
        self.tcp_fallback = False


class FanOut:
    """The queries of one (transport, client, port, ID, question) sent within the fan-out
    window, with a count per server address, so that "sent to another server too" costs
    O(1) however many copies there are."""

    __slots__ = ("queries", "per_server", "newest")

    def __init__(self) -> None:
        self.queries: deque[Query] = deque()
        self.per_server: dict[str, int] = {}
        self.newest = float("-inf")

    def expire(self, before: float) -> None:
        """Drop the queries sent before ``before``."""
        qs, per = self.queries, self.per_server
        while qs and qs[0].msg.time < before:
            dst = qs.popleft().msg.dst
            n = per[dst] - 1
            if n:
                per[dst] = n
            else:
                del per[dst]

    def first(self) -> Query | None:
        return self.queries[0] if self.queries else None

    def other_server(self, dst: str) -> bool:
        """Whether a query in the window went to a server other than ``dst``."""
        per = self.per_server
        return len(per) > 1 or (len(per) == 1 and dst not in per)

    def add(self, q: Query) -> None:
        self.queries.append(q)
        dst = q.msg.dst
        self.per_server[dst] = self.per_server.get(dst, 0) + 1
        self.newest = max(self.newest, q.msg.time)


@dataclass(slots=True)
class Group:
    """Attempts of one lookup while it is in flight."""

    id: int
    members: list[Query] = field(default_factory=list)
    closed: list[Transaction] = field(default_factory=list)


@dataclass(slots=True)
class MatchStats:
    """Counters the matcher keeps for the summary."""

    queries: int = 0
    queries_udp: int = 0
    queries_tcp: int = 0
    responses: int = 0
    answered_queries: int = 0
    unanswered_queries: int = 0
    unsolicited_responses: int = 0
    #: Responses matching no query that came within ``max_wait`` of the capture's first
    #: packet: their query was most likely sent before the capture started.
    responses_before_capture: int = 0
    #: Further messages of a multi-message TCP answer (AXFR/IXFR), not unsolicited.
    continuation_responses: int = 0
    retransmissions: int = 0
    #: TCP queries that joined a UDP lookup after a TC=1 answer (not retransmissions).
    tcp_fallback_queries: int = 0
    #: Queries with a new ID that started a parallel lookup of a name already in flight.
    parallel_lookups: int = 0
    lookups: int = 0
    failed_lookups: int = 0
    lookups_open_at_end: int = 0
    #: Lookups the capture saw fail (``Lookup.failed``): timed out, or answered only after
    #: the client had closed its port.
    lookups_failed: int = 0
    #: Of those, the lookups whose every answer bounced off the client's closed port.
    lookups_failed_late: int = 0
    tc_responses: int = 0
    tc_followed_by_tcp: int = 0
    tc_without_tcp_retry: int = 0
    #: TC=1 responses less than the fallback window before the end of the capture with no
    #: query after them: whether TCP followed cannot be known.
    tc_open_at_end: int = 0
    a_aaaa_pairs: int = 0
    a_aaaa_same_port_concurrent: int = 0
    a_aaaa_race_lost: int = 0
    fanout_groups: int = 0
    icmp_errors: int = 0
    #: Unanswered queries closed before ``max_wait`` because ``max_in_flight`` or
    #: ``max_in_flight_bytes`` was reached.
    evicted: int = 0
    #: Answered queries closed before their linger was over (``max_lingering``, or the
    #: caps above): a pair member or ICMP error arriving later was not linked to them.
    closed_early: int = 0
    rcodes: dict[str, int] = field(default_factory=dict)


PendingKey = tuple[str, str, int, int, str, int, int]
GroupKey = tuple[str, str, str, str, int, int]
SocketKey = tuple[str, int, str, str]
#: Retransmission kind by (same ID, same client port).
RETRANSMISSION_KIND: dict[tuple[bool, bool], RetransmissionKind] = {
    (True, True): "same_id_same_port",
    (True, False): "same_id_new_port",
    (False, True): "new_id_same_port",
    (False, False): "new_id_new_port",
}
#: One DNS ID on one TCP connection: client IP and port, server IP and port, ID.
XfrKey = tuple[str, int, str, int, int]
