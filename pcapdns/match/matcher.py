"""Stage 4: DNS messages -> transactions and lookups, with a bounded state machine.

Messages arrive in capture-time order. The matcher keeps only what is in flight:

``_pending``     unmatched queries by (transport, client IP, client port, ID, question);
``_groups``      the newest query of each (transport, client, server, question), to chain
                 retransmissions into lookups;
``_fanout``      recent queries by (transport, client, port, ID, question), to see one query
                 sent to several servers;
``_a_waiting`` / ``_aaaa_recent``   recent A and AAAA queries per socket, to pair them;
``_tc_waiting``  TC=1 responses waiting for the client's next query for that question;
``_by_id``       the newest query per (client, port, ID), to attach ICMP errors;
``_in_flight``   every query not yet closed, in time order.

A query is closed ``max_wait + pair_after + 1`` seconds after it was sent, when nothing can
change its outcome any more: a response later than ``max_wait`` is unsolicited, and every
correlation window (retransmission 11 s, TC fallback 5 s, pairing 0.5 s, fan-out 50 ms) is
shorter. Memory therefore grows with the queries of the last ``max_wait`` seconds, never
with the length of the capture; ``max_in_flight`` caps it even for a flood.

Closing a query emits its ``Transaction``; closing the last query of a lookup emits the
``Lookup``. The end of the capture closes everything still open (``finish``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pcapdns.config import AnalysisConfig
from pcapdns.dns import names
from pcapdns.dns.message import Message
from pcapdns.decode.records import IcmpQuote
from pcapdns.match.records import Lookup, Orphan, RetransmissionKind, Transaction


class _Query:
    """Mutable state of one query while it is in flight (frozen into a Transaction)."""

    __slots__ = (
        "msg", "qkey", "response", "group", "attempt", "retransmission", "fanout_of",
        "tc_next", "tc_followed", "pair", "is_a", "icmp_frames", "closed",
    )

    def __init__(self, msg: Message, qkey: str) -> None:
        self.msg = msg
        self.qkey = qkey  # lower-cased question name
        self.response: Message | None = None
        self.group: _Group | None = None
        self.attempt = 1
        self.retransmission: RetransmissionKind | None = None
        self.fanout_of: int | None = None
        self.tc_next: Message | None = None
        self.tc_followed: bool | None = None  # decided once, for a TC=1 UDP response
        self.pair: _Query | None = None
        self.is_a = False
        self.icmp_frames: list[int] = []
        self.closed: Transaction | None = None


@dataclass(slots=True)
class _Group:
    """Attempts of one lookup while it is in flight."""

    id: int
    members: list[_Query] = field(default_factory=list)
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
    #: Further messages of a multi-message TCP answer (AXFR/IXFR), not unsolicited.
    continuation_responses: int = 0
    retransmissions: int = 0
    lookups: int = 0
    failed_lookups: int = 0
    lookups_open_at_end: int = 0
    tc_responses: int = 0
    tc_followed_by_tcp: int = 0
    tc_without_tcp_retry: int = 0
    a_aaaa_pairs: int = 0
    a_aaaa_same_port_concurrent: int = 0
    a_aaaa_race_lost: int = 0
    fanout_groups: int = 0
    icmp_errors: int = 0
    #: Queries closed early because ``max_in_flight`` was reached.
    evicted: int = 0
    rcodes: dict[str, int] = field(default_factory=dict)


_PendingKey = tuple[str, str, int, int, str, int, int]
_GroupKey = tuple[str, str, str, str, int, int]
_SocketKey = tuple[str, int, str, str]


class Matcher:
    """Feed messages in time order with ``message``; closed records go to the callbacks."""

    def __init__(
        self,
        config: AnalysisConfig,
        on_lookup: Callable[[Lookup], None],
        on_orphan: Callable[[Orphan], None],
    ) -> None:
        self.config = config
        self.on_lookup = on_lookup
        self.on_orphan = on_orphan
        self.stats = MatchStats()
        self.now = float("-inf")
        self._close_after = config.max_wait + config.pair_after + 1.0
        self._pending: dict[_PendingKey, list[_Query]] = {}
        self._groups: dict[_GroupKey, _Query] = {}
        self._fanout: dict[_PendingKey, list[_Query]] = {}
        self._a_waiting: dict[_SocketKey, list[_Query]] = {}
        self._aaaa_recent: dict[_SocketKey, list[_Query]] = {}
        self._tc_waiting: dict[tuple[str, str, int], _Query] = {}
        self._by_id: dict[tuple[str, int, int], _Query] = {}
        self._in_flight: deque[_Query] = deque()
        self._answered_xfr: dict[_PendingKey, _Query] = {}
        self._next_lookup = 1
        self._last_close = float("-inf")
        #: End of the capture, known once ``finish`` is called.
        self._at_end: float | None = None

    # -- input ---------------------------------------------------------------------------

    def message(self, m: Message) -> None:
        if m.time > self.now:
            self.now = m.time
            if self.now - self._last_close >= 1.0:
                self._close_due()
        if m.flags & 0x8000:
            self._response(m)
        else:
            self._query(m)

    def icmp(self, e: IcmpQuote) -> None:
        """An ICMP error quoting a DNS datagram: evidence for the query it concerns."""
        self.stats.icmp_errors += 1
        if len(e.data) < 2:
            self._icmp_orphan(e, "quotes too little of the DNS message to identify it")
            return
        ident = int.from_bytes(e.data[:2], "big")
        is_response = len(e.data) >= 3 and bool(e.data[2] & 0x80)
        if is_response:  # server -> client datagram bounced by the client
            key = (e.dst, e.dport, ident)
        else:  # client -> server query bounced by the server's host
            key = (e.src, e.sport, ident)
        q = self._by_id.get(key)
        if q is None or q.closed is not None:
            self._icmp_orphan(e, "matches no query in flight")
            return
        q.icmp_frames.append(e.frame)

    def _icmp_orphan(self, e: IcmpQuote, reason: str) -> None:
        self.on_orphan(
            Orphan("icmp_unmatched", None, e.frame, e.time, e.dst, e.src, "", 0,
                   f"ICMP type {e.icmp_type} code {e.icmp_code} from {e.reporter} {reason}")
        )

    # -- queries -------------------------------------------------------------------------

    def _query(self, m: Message) -> None:
        cfg = self.config
        st = self.stats
        st.queries += 1
        if m.transport == "udp":
            st.queries_udp += 1
        else:
            st.queries_tcp += 1
        qkey = m.qname.lower() if m.qname is not None else ""
        q = _Query(m, qkey)
        src, t = m.src, m.time
        pkey = (m.transport, src, m.sport, m.id, qkey, m.qtype, m.qclass)
        self._pending.setdefault(pkey, []).append(q)
        self._by_id[(src, m.sport, m.id)] = q

        # Retransmission: same transport, client, server and question as the previous
        # query of the group, while that one is unanswered, within the window.
        gkey = (m.transport, src, m.dst, qkey, m.qtype, m.qclass)
        prev = self._groups.get(gkey)
        if (
            prev is not None
            and prev.response is None
            and prev.group is not None
            and t - prev.msg.time <= cfg.retransmission_window
        ):
            q.group = prev.group
            q.attempt = prev.attempt + 1
            same_id = prev.msg.id == m.id
            same_port = prev.msg.sport == m.sport
            q.retransmission = (
                ("same_id" if same_id else "new_id")
                + ("_same_port" if same_port else "_new_port")
            )  # type: ignore[assignment]
            st.retransmissions += 1
        else:
            q.group = _Group(self._next_lookup)
            self._next_lookup += 1
        q.group.members.append(q)
        self._groups[gkey] = q

        # Fan-out: the same query to another server within the window.
        fl = self._fanout.get(pkey)
        if fl is not None:
            fl[:] = [o for o in fl if t - o.msg.time <= cfg.fanout_window]
            others = [o for o in fl if o.msg.dst != m.dst]
            if others:
                first = fl[0]
                if first.fanout_of is None:
                    first.fanout_of = first.msg.frame
                    st.fanout_groups += 1
                q.fanout_of = first.fanout_of
            fl.append(q)
        else:
            self._fanout[pkey] = [q]

        # TC fallback: this is the client's next query for a truncated question.
        tkey = (src, qkey, m.qtype)
        tq = self._tc_waiting.pop(tkey, None)
        if tq is not None:
            tq.tc_next = m
            self._resolve_tc(tq)

        if m.transport == "udp" and m.qtype in (names.A, names.AAAA):
            self._pair(q)
        self._in_flight.append(q)
        if len(self._in_flight) > cfg.max_in_flight:
            st.evicted += 1
            self._close(self._in_flight.popleft())

    def _pair(self, q: _Query) -> None:
        """Pair each A query with the earliest unpaired AAAA from the same socket."""
        cfg = self.config
        m = q.msg
        skey = (m.src, m.sport, m.dst, q.qkey)
        if m.qtype == names.A:
            q.is_a = True
            recent = self._aaaa_recent.get(skey)
            if recent:
                recent[:] = [o for o in recent if o.pair is None
                             and m.time - o.msg.time <= cfg.pair_before]
                if recent:
                    self._link(q, recent.pop(0))
                    return
            self._a_waiting.setdefault(skey, []).append(q)
        else:
            waiting = self._a_waiting.get(skey)
            if waiting:
                waiting[:] = [o for o in waiting if o.pair is None
                              and m.time - o.msg.time <= cfg.pair_after]
                if waiting:
                    self._link(waiting.pop(0), q)
                    return
            self._aaaa_recent.setdefault(skey, []).append(q)

    def _link(self, a: _Query, aaaa: _Query) -> None:
        a.pair = aaaa
        aaaa.pair = a
        self.stats.a_aaaa_pairs += 1

    # -- responses -----------------------------------------------------------------------

    def _response(self, m: Message) -> None:
        st = self.stats
        st.responses += 1
        qkey = m.qname.lower() if m.qname is not None else ""
        pkey = (m.transport, m.dst, m.dport, m.id, qkey, m.qtype, m.qclass)
        lst = self._pending.get(pkey)
        q = None
        if lst:
            oldest = m.time - self.config.max_wait
            live = [o for o in lst if o.msg.time <= m.time and o.msg.time >= oldest]
            for o in reversed(live):
                if o.msg.dst == m.src:
                    q = o
                    break
            else:
                q = live[-1] if live else None
            if q is not None:
                lst.remove(q)
                if not lst:
                    del self._pending[pkey]
        if q is None:
            xfr = self._answered_xfr.get(pkey)
            if m.transport == "tcp" and xfr is not None and xfr.closed is None:
                st.continuation_responses += 1
                return
            st.unsolicited_responses += 1
            self.on_orphan(
                Orphan("unsolicited_response", m, m.frame, m.time, m.dst, m.src,
                       m.qname or "", m.qtype,
                       "no query in flight with this client port, ID and question")
            )
            return
        q.response = m
        st.answered_queries += 1
        rname = names.rcode_name(m.flags & 0xF)
        st.rcodes[rname] = st.rcodes.get(rname, 0) + 1
        if m.transport == "tcp" and m.qtype in (names.AXFR, names.IXFR):
            self._answered_xfr[pkey] = q
        if m.flags & 0x0200 and m.transport == "udp":
            st.tc_responses += 1
            self._tc_waiting[(m.dst, q.qkey, m.qtype)] = q

    def _resolve_tc(self, q: _Query) -> None:
        """Decide, once, whether a TC=1 response was followed by a TCP query."""
        if q.tc_followed is not None or q.response is None:
            return
        nxt = q.tc_next
        q.tc_followed = (
            nxt is not None
            and nxt.transport == "tcp"
            and nxt.time - q.response.time <= self.config.tc_fallback_window
        )
        if q.tc_followed:
            self.stats.tc_followed_by_tcp += 1
        else:
            self.stats.tc_without_tcp_retry += 1

    # -- closing -------------------------------------------------------------------------

    def _close_due(self) -> None:
        self._last_close = self.now
        limit = self.now - self._close_after
        flight = self._in_flight
        while flight and flight[0].msg.time < limit:
            self._close(flight.popleft())
        # Forget short-lived correlation state that no query refers to any more.
        for table in (self._fanout, self._a_waiting, self._aaaa_recent):
            for k in [k for k, v in table.items() if not v or v[-1].closed is not None]:
                del table[k]
        for k in [k for k, v in self._answered_xfr.items() if v.closed is not None]:
            del self._answered_xfr[k]

    def _close(self, q: _Query) -> None:
        m = q.msg
        st = self.stats
        pkey = (m.transport, m.src, m.sport, m.id, q.qkey, m.qtype, m.qclass)
        lst = self._pending.get(pkey)
        if lst is not None and q in lst:
            lst.remove(q)
            if not lst:
                del self._pending[pkey]
        gkey = (m.transport, m.src, m.dst, q.qkey, m.qtype, m.qclass)
        if self._groups.get(gkey) is q:
            del self._groups[gkey]
        bkey = (m.src, m.sport, m.id)
        if self._by_id.get(bkey) is q:
            del self._by_id[bkey]
        if q.response is None:
            st.unanswered_queries += 1
        elif q.response.flags & 0x0200 and m.transport == "udp":
            tkey = (m.src, q.qkey, m.qtype)
            if self._tc_waiting.get(tkey) is q:
                del self._tc_waiting[tkey]
            self._resolve_tc(q)
        concurrent = race = False
        pair_answered = None
        if q.is_a and q.pair is not None:
            other = q.pair
            pair_answered = other.response is not None
            concurrent = q.response is None or other.msg.time < q.response.time
            if concurrent:
                st.a_aaaa_same_port_concurrent += 1
                race = (q.response is None) != (other.response is None)
                if race:
                    st.a_aaaa_race_lost += 1
        tx = Transaction(
            query=m,
            response=q.response,
            lookup_id=q.group.id if q.group else 0,
            attempt=q.attempt,
            retransmission=q.retransmission,
            fanout_of=q.fanout_of,
            tc_followed_by_tcp=q.tc_followed,
            tc_next_query_frame=q.tc_next.frame if q.tc_next is not None else None,
            pair_frame=q.pair.msg.frame if q.pair is not None else None,
            pair_concurrent=concurrent,
            pair_race_lost=race,
            pair_answered=pair_answered,
            icmp_frames=tuple(q.icmp_frames),
        )
        q.closed = tx
        # Drop references that would keep closed queries alive through the pair link.
        if q.pair is not None and q.pair.closed is not None:
            q.pair.pair = None
            q.pair = None
        g = q.group
        if g is None:
            return
        g.closed.append(tx)
        if g.members and g.members[-1] is q:
            self._emit(g)

    def _emit(self, g: _Group) -> None:
        attempts = tuple(sorted(g.closed, key=lambda t: (t.query.time, t.query.frame)))
        answered = [t for t in attempts if t.response is not None]
        answer = min(answered, key=lambda t: t.response.time) if answered else None  # type: ignore[union-attr]
        st = self.stats
        st.lookups += 1
        open_at_end = False
        if answer is None:
            st.failed_lookups += 1
            if self._at_end is not None and (
                self._at_end - attempts[-1].query.time < self.config.timeout
            ):
                open_at_end = True
                st.lookups_open_at_end += 1
        self.on_lookup(Lookup(g.id, attempts, answer, open_at_end))

    def finish(self, end_time: float | None) -> None:
        """The capture ended at ``end_time``: close everything still in flight."""
        self._at_end = end_time if end_time is not None else self.now
        while self._in_flight:
            self._close(self._in_flight.popleft())
        self._tc_waiting.clear()
