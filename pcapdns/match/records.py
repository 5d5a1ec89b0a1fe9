"""Stage 4 output: transactions (one query and its response) and lookups (attempts).

Definitions (docs/analysis.md has the full text):

* A **transaction** is one query and the response matched to it, if any.
* A **lookup** is a first query and its retransmissions: the same transport, client IP,
  server IP and question, each sent no more than ``retransmission_window`` after the
  previous one while that one was still unanswered, plus the TCP query that re-asks its
  question after a TC=1 answer. Latency counts from the FIRST attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from pcapdns.dns.message import Message, Tunnel

LegFault = Literal["lost_in_node", "reply_not_delivered", "unexpected_source"]

RetransmissionKind = Literal[
    "same_id_same_port", "same_id_new_port", "new_id_same_port", "new_id_new_port"
]


class Transaction(NamedTuple):
    """One query and, when one was matched, its response.

    A NamedTuple, not a frozen dataclass, like ``Message``: one is built for every query,
    and a tuple is built in a fifth of the time.
    """

    #: The query as captured.
    query: Message
    #: The matched response, or None when none came within ``max_wait``.
    response: Message | None
    #: Id of the lookup this query belongs to (sequential from 1 in order of first query).
    lookup_id: int
    #: 1 for the first query of the lookup, 2 for the first retransmission, ...
    attempt: int
    #: For a retransmission: whether the DNS ID and the client port changed; else None.
    retransmission: RetransmissionKind | None
    #: Frame of the first query of the fan-out this query belongs to (same client IP, port,
    #: ID and question sent to several servers at once), or None.
    fanout_of: int | None
    #: For a TC=1 UDP response: whether the client's next query for the name and type went
    #: over TCP within ``tc_fallback_window`` (None when the response is not TC=1 UDP).
    tc_followed_by_tcp: bool | None
    #: Frame of the client's next query for the same name and type after a TC response.
    tc_next_query_frame: int | None
    #: Frame of the query this one is paired with (A with AAAA from the same socket), or None.
    pair_frame: int | None
    #: True when the pair is concurrent: the AAAA was sent before the A's response arrived
    #: (or the A was never answered). Set on the member of the pair closed last, since only
    #: then are both outcomes known; False on the other member.
    pair_concurrent: bool
    #: On the member closed last of a concurrent pair: True when exactly one of the two was
    #: unanswered (the conntrack race).
    pair_race_lost: bool
    #: On the member closed last: whether the other query of the pair was answered; else None.
    pair_answered: bool | None
    #: Frames of ICMP destination-unreachable errors quoting this query or its response.
    icmp_frames: tuple[int, ...]
    #: Of ``icmp_frames``, those quoting the matched response: the client's port was closed
    #: when the answer came (a late answer). The others quote the query (server port closed).
    late_icmp_frames: tuple[int, ...] = ()
    #: Frame of the paired query's response, when the pair was decided on this member and
    #: the paired query was answered; else None.
    pair_response_frame: int | None = None
    #: The paired query's own transaction, when the pair was decided on this member (it
    #: closed first): the evidence of a race shows both queries of the socket.
    pair_transaction: Transaction | None = None
    #: True for a TCP query that re-asked the question of its lookup after the client got
    #: a TC=1 answer over UDP (for this question or for its A/AAAA partner: glibc re-asks
    #: both). It is an attempt of the same lookup, not a retransmission.
    tcp_fallback: bool = False
    #: With ``pair_race_lost``: whether the client sent the lost query again (it had given
    #: up on it, so the race stands however soon the capture ended).
    pair_lost_retried: bool = False
    #: What the legs of the query and its answer inside the node say went wrong:
    #: "lost_in_node" (no copy of the unanswered query left the node's NAT),
    #: "reply_not_delivered" (the answer came from the DNAT target and no un-NAT'd copy
    #: reached the pod's side) or "unexpected_source" (the answer came from an address the
    #: client never asked); None when nothing did or nothing shows (docs/analysis.md).
    leg_fault: LegFault | None = None
    #: For a query of a forwarder's upstream leg: frame of the downstream query it was sent
    #: for (the same question, asked of the forwarder by another client while the
    #: forwarder waited; docs/analysis.md), else None.
    upstream_of: int | None = None
    #: For a downstream query the forwarder asked upstream: frame of the first upstream
    #: query sent for it, else None.
    forwarded_as: int | None = None
    #: The outermost tunnel the query (else its answer) was found in, or None.
    tunnel: Tunnel | None = None

    @property
    def answered(self) -> bool:
        return self.response is not None

    @property
    def undelivered(self) -> bool:
        """The answer was captured but never reached the client's socket."""
        return self.response is not None and self.leg_fault is not None

    @property
    def latency(self) -> float | None:
        """Seconds from this query to its response (not from the lookup's first attempt)."""
        if self.response is None:
            return None
        return self.response.time - self.query.time


class Lookup(NamedTuple):
    """A first query and its retransmissions, with the outcome (a NamedTuple for the same
    reason as ``Transaction``)."""

    #: Sequential id, in order of first query.
    id: int
    #: All attempts, in the order they were sent.
    attempts: tuple[Transaction, ...]
    #: The attempt whose answer the client could use first: the earliest response that is
    #: neither a truncated UDP answer followed by TCP nor one the client bounced (ICMP port
    #: unreachable) nor one that never reached its socket (``leg_fault``); failing those,
    #: the earliest response; None when no attempt was answered.
    answer: Transaction | None
    #: True when the lookup failed but the capture ended before the client's wait after its
    #: last attempt was over (less than ``timeout``, and less than the gap the client left
    #: between its own attempts): it may still have been answered after the capture stopped.
    #: Decided by pcapdns.policy from ``end`` and the attempts.
    open_at_end: bool
    #: The capture's end, when the lookup was still in flight then; None when it was closed
    #: while the capture went on.
    end: float | None = None

    @property
    def first(self) -> Message:
        return self.attempts[0].query

    @property
    def answered(self) -> bool:
        return self.answer is not None

    @property
    def failed(self) -> bool:
        """The capture saw this lookup fail: no attempt was answered and the client's wait
        was over before the capture ended, or every answer came after the client had closed
        its port (ICMP port unreachable; not the other servers of a fan-out, whose answers
        bounce by design), or never reached the client's socket (``leg_fault``). What the
        terminal, the report and the tables call failed."""
        answer = self.answer
        if answer is None:
            return not self.open_at_end
        return (bool(answer.late_icmp_frames) and answer.fanout_of is None) or (
            answer.leg_fault is not None)

    @property
    def retransmissions(self) -> int:
        """Attempts that are retransmissions (not the first, not a TCP fallback)."""
        return sum(1 for t in self.attempts if t.retransmission is not None)

    @property
    def latency(self) -> float | None:
        """Seconds from the FIRST attempt to the response of ``answer``."""
        if self.answer is None or self.answer.response is None:
            return None
        return self.answer.response.time - self.attempts[0].query.time


@dataclass(frozen=True, slots=True)
class Orphan:
    """A message that belongs to no transaction: an unsolicited response or an ICMP error
    quoting a DNS datagram that matched no query."""

    kind: Literal["unsolicited_response", "icmp_unmatched"]
    #: The response, for ``unsolicited_response``.
    message: Message | None
    #: Frame and time of the orphan.
    frame: int
    time: float
    client: str
    server: str
    qname: str
    qtype: int
    #: Why it matched nothing, in words.
    reason: str
