"""Stage 4: DNS messages -> transactions and lookups, with a bounded state machine.

Messages arrive in capture-time order. The matcher keeps only what is in flight:

``_pending``     unmatched queries by (transport, client IP, client port, ID, question),
                 in the order sent (a dict used as an ordered set: O(1) removal);
``_pending_to``  the same, by server address too, for the preferred match;
``_groups``      the newest query of each (transport, client, server, question), to chain
                 retransmissions into lookups;
``_fanout``      recent queries by (transport, client, port, ID, question), to see one query
                 sent to several servers (a window with a count per server: O(1) a query);
``_a_waiting`` / ``_aaaa_recent``   recent A and AAAA queries per socket, to pair them;
``_tc_waiting``  TC=1 responses waiting for the client's next query for that question;
``_tc_seen``     when each (client, name) last got a TC=1 answer over UDP, so that the TCP
                 queries that follow join the UDP lookups they re-ask;
``_by_id``       the newest query per (client, port, ID), to attach ICMP errors;
``_unanswered``  queries not yet answered, in time order;
``_answered`` / ``_answered_tc``   answered queries waiting out their last window;
``_xfr``         zone transfers (AXFR/IXFR over TCP) whose answer is still arriving.

A query is closed when nothing can change what it says any more:

* unanswered: ``max_wait`` after it was sent (a later response is unsolicited);
* answered: ``answer_linger`` (1 s) after its response, which covers the A/AAAA pairing
  window (0.5 s) and the ICMP error a closed client port sends right after a late answer;
* answered with TC=1 over UDP: ``tc_fallback_window`` after the response, to see the TCP
  retry.

Memory therefore grows with the unanswered queries of the last ``max_wait`` seconds and
the answered ones of the last second, never with the length of the capture;
``max_in_flight`` caps it even for a flood.

Closing a query emits its ``Transaction``; when every attempt of a lookup is closed, the
``Lookup`` is emitted. Cross-query facts are decided by whichever query closes second: the
A/AAAA pair's concurrency and race are set on the pair member that closes last. The end of
the capture closes everything still open (``finish``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from pcapdns.config import AnalysisConfig
from pcapdns.dns import names
from pcapdns.dns.flags import QR, TC
from pcapdns.dns.message import Message
from pcapdns.match.records import Lookup, Orphan, Transaction
from pcapdns.match.state import (
    RETRANSMISSION_KIND,
    FanOut,
    Group,
    GroupKey,
    MatchStats,
    PendingKey,
    Query,
    SocketKey,
    XfrKey,
)
from pcapdns.records import IcmpQuote

#: Estimated memory of one query in flight beyond its DNS bytes: the message record, its
#: state, the index entries and the lookup it starts (measured with tracemalloc: about
#: 1.7 KB a query with 60,000 unanswered queries in flight).
QUERY_BYTES = 1700
#: ... and of the response matched to it.
RESPONSE_BYTES = 400


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
        # A response exactly max_wait late still matches; close a little after that.
        self._unanswered_close = config.max_wait + 0.5
        # A key holds one query, or an ordered set of them when several share it (most
        # keys hold one: a dict per key would cost four times the memory).
        self._pending: dict[PendingKey, Query | dict[Query, None]] = {}
        self._pending_to: dict[tuple[PendingKey, str], Query | dict[Query, None]] = {}
        self._groups: dict[GroupKey, Query] = {}
        self._fanout: dict[PendingKey, Query | FanOut] = {}
        # One query per socket, or a deque when several wait (a deque costs 600 bytes).
        self._a_waiting: dict[SocketKey, Query | deque[Query]] = {}
        self._aaaa_recent: dict[SocketKey, Query | deque[Query]] = {}
        self._tc_waiting: dict[tuple[str, str, int], list[Query]] = {}
        self._tc_seen: dict[tuple[str, str], float] = {}
        self._by_id: dict[tuple[str, int, int], Query] = {}
        self._unanswered: deque[list[Query | None]] = deque()
        self._answered: deque[tuple[float, Query]] = deque()
        self._answered_tc: deque[tuple[float, Query]] = deque()
        #: Queries not yet closed, and what they hold in memory (estimated, bytes).
        self.open = 0
        self.bytes = 0
        #: Question (name, type) and time of the last message of each transfer in progress.
        self._xfr: dict[XfrKey, tuple[str, int, float]] = {}
        self._next_lookup = 1
        self._last_close = float("-inf")
        #: End of the capture, known once ``finish`` is called.
        self._at_end: float | None = None
        #: Time of the capture's first packet, set by the caller before the first message:
        #: a response without a query soon after it answers a query sent before the capture.
        self.capture_start: float | None = None

    # -- input ---------------------------------------------------------------------------

    def message(self, m: Message) -> None:
        self._advance(m.time)
        if m.flags & QR:
            self._response(m)
        else:
            self._query(m)

    def _advance(self, t: float) -> None:
        """Capture time moved on to ``t``: close what can no longer change (once a second)."""
        if t > self.now:
            self.now = t
            if self.now - self._last_close >= 1.0:
                self._close_due()

    def icmp(self, e: IcmpQuote) -> None:
        """An ICMP error quoting a DNS datagram: evidence for the query it concerns."""
        # Time moves on for ICMP too: an error long after a query was closed must not be
        # pinned on it because no DNS message came in between.
        self._advance(e.time)
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
        if is_response and q.response is not None:
            # The client bounced an answer it was sent: its port was closed, the answer late.
            # An error quoting the query instead says the server's port was closed.
            q.late_icmp_frames.append(e.frame)

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
        q = Query(m, qkey)
        src, t = m.src, m.time
        pkey = q.pkey = (m.transport, src, m.sport, m.id, qkey, m.qtype, m.qclass)
        _put(self._pending, pkey, q)
        _put(self._pending_to, (pkey, m.dst), q)
        self._by_id[(src, m.sport, m.id)] = q

        # Retransmission: same transport, client, server and question as the previous
        # query of the group, while that one is unanswered, within the window.
        gkey = q.gkey = (m.transport, src, m.dst, qkey, m.qtype, m.qclass)
        prev = self._groups.get(gkey)
        fallback = self._tcp_fallback_of(m, qkey) if m.transport == "tcp" else None
        if (
            prev is not None
            and prev.response is None
            and prev.group is not None
            and t - prev.msg.time <= cfg.retransmission_window
            # A new ID right after the previous query is a second lookup asked in
            # parallel (browsers, phones), not a resolver's retry.
            and (prev.msg.id == m.id or t - prev.msg.time >= cfg.retransmission_min_gap)
        ):
            q.group = prev.group
            q.attempt = prev.attempt + 1
            q.retransmission = RETRANSMISSION_KIND[
                (prev.msg.id == m.id, prev.msg.sport == m.sport)
            ]
            prev.retried = True
            st.retransmissions += 1
        elif fallback is not None:
            # The TCP retry after a truncated answer is the same lookup asked again, not a
            # retransmission (that definition keeps the transport in its key).
            q.group = fallback.group
            q.attempt = max(o.attempt for o in fallback.group.members) + 1  # type: ignore[union-attr]
            q.tcp_fallback = True
            st.tcp_fallback_queries += 1
        else:
            if prev is not None and prev.response is None and prev.group is not None and (
                t - prev.msg.time < cfg.retransmission_min_gap
            ):
                st.parallel_lookups += 1
            q.group = Group(self._next_lookup)
            self._next_lookup += 1
        q.group.members.append(q)  # type: ignore[union-attr]
        self._groups[gkey] = q

        # Fan-out: the same query to another server within the window.
        fan = self._fanout.get(pkey)
        if fan is None:
            self._fanout[pkey] = q  # one query: no window object until a second one
        else:
            if type(fan) is Query:
                one = fan
                fan = self._fanout[pkey] = FanOut()
                fan.add(one)
            fan.expire(t - cfg.fanout_window)  # type: ignore[union-attr]
            first = fan.first()  # type: ignore[union-attr]
            if first is not None and fan.other_server(m.dst):  # type: ignore[union-attr]
                if first.fanout_of is None:
                    first.fanout_of = first.msg.frame
                    st.fanout_groups += 1
                q.fanout_of = first.fanout_of
            fan.add(q)  # type: ignore[union-attr]

        # TC fallback: this is the client's next query for a truncated question.
        # Several TC answers can wait for the same retry (musl asks every nameserver).
        for tq in self._tc_waiting.pop((src, qkey, m.qtype), ()):
            # A query after the window is not the fallback: that is "nothing within 5 s".
            if tq.response is not None and t - tq.response.time <= cfg.tc_fallback_window:
                tq.tc_next = m
            self._resolve_tc(tq)

        if m.transport == "udp" and m.qtype in (names.A, names.AAAA):
            self._pair(q)
        self._unanswered.append(q.cell)
        self.open += 1
        self.bytes += QUERY_BYTES + len(m.data)
        if self.open > cfg.max_in_flight or self.bytes > cfg.max_in_flight_bytes:
            self._make_room()

    def _tcp_fallback_of(self, m: Message, qkey: str) -> Query | None:
        """The open UDP query whose lookup this TCP query re-asks, if any.

        After a TC=1 answer a resolver asks again over TCP (RFC 7766 section 5); glibc
        closes its UDP socket and re-asks both A and AAAA, so the query for the other type
        follows too, although its own UDP answer was not truncated.
        """
        seen = self._tc_seen.get((m.src, qkey))
        if seen is None or m.time - seen > self.config.tc_fallback_window:
            return None
        udp = self._groups.get(("udp", m.src, m.dst, qkey, m.qtype, m.qclass))
        if udp is None or udp.group is None or udp.closed is not None:
            return None
        if any(o.tcp_fallback for o in udp.group.members):
            return None  # already re-asked; a second TCP query is that one's business
        return udp

    def _pair(self, q: Query) -> None:
        """Pair each A query with the earliest unpaired AAAA from the same socket."""
        cfg = self.config
        m = q.msg
        skey = (m.src, m.sport, m.dst, q.qkey)
        if m.qtype == names.A:
            q.is_a = True
            partner = self._take(self._aaaa_recent, skey, m.time - cfg.pair_before)
            if partner is not None:
                self._link(q, partner)
            else:
                _enqueue(self._a_waiting, skey, q)
        else:
            partner = self._take(self._a_waiting, skey, m.time - cfg.pair_after)
            if partner is not None:
                self._link(partner, q)
            else:
                _enqueue(self._aaaa_recent, skey, q)

    @staticmethod
    def _take(
        table: dict[SocketKey, Query | deque[Query]], key: SocketKey, since: float
    ) -> Query | None:
        """Remove and return the earliest unpaired open query in ``table[key]`` sent at or
        after ``since``; forget entries that are too old to pair (amortized O(1))."""
        held = table.get(key)
        if held is None:
            return None
        if type(held) is Query:
            del table[key]
            ok = held.pair is None and held.closed is None and held.msg.time >= since
            return held if ok else None  # type: ignore[return-value]
        lst: deque[Query] = held  # type: ignore[assignment]
        while lst and (lst[0].pair is not None or lst[0].closed is not None
                       or lst[0].msg.time < since):
            lst.popleft()
        q = lst.popleft() if lst else None
        if not lst:
            del table[key]
        return q

    def _link(self, a: Query, aaaa: Query) -> None:
        a.pair = aaaa
        aaaa.pair = a
        self.stats.a_aaaa_pairs += 1

    # -- responses -----------------------------------------------------------------------

    def _response(self, m: Message) -> None:
        st = self.stats
        st.responses += 1
        qkey = m.qname.lower() if m.qname is not None else ""
        pkey = (m.transport, m.dst, m.dport, m.id, qkey, m.qtype, m.qclass)
        oldest = m.time - self.config.max_wait
        # The newest query sent to the response's source, else the newest to any server
        # (kube-proxy DNAT rewrote the address).
        q = _newest(self._pending_to.get((pkey, m.src)), m.time, oldest)
        if q is None:
            q = _newest(self._pending.get(pkey), m.time, oldest)
        if q is not None:
            self._unpend(q)
        if q is None and m.qname is None:
            q = self._questionless_match(m)
        if q is None:
            if m.transport == "tcp" and self._continues_xfr(m, qkey):
                st.continuation_responses += 1
                return
            start = self.capture_start
            if start is not None and m.time - start <= self.config.max_wait:
                # Its query may well have gone out before the capture started (or sits in
                # an overwritten file of a ring): not the server's fault.
                st.responses_before_capture += 1
                return
            st.unsolicited_responses += 1
            self.on_orphan(
                Orphan("unsolicited_response", m, m.frame, m.time, m.dst, m.src,
                       m.qname or "", m.qtype,
                       "no query in flight with this client port, ID and question")
            )
            return
        q.response = m
        q.cell[0] = None
        self.bytes += RESPONSE_BYTES + len(m.data)
        if m.flags & TC and m.transport == "udp":
            self._answered_tc.append((m.time + self.config.tc_fallback_window + 0.5, q))
        else:
            self._answered.append((m.time + self.config.answer_linger, q))
            if len(self._answered) > self.config.max_lingering:
                # A burst (often with one time stamp: nothing closes by time) must not
                # hold every answered query: close the oldest by count too.
                self._close_early(self._answered)
        if self.bytes > self.config.max_in_flight_bytes:
            self._make_room()
        st.answered_queries += 1
        rname = names.rcode_name(m.flags & 0xF)
        st.rcodes[rname] = st.rcodes.get(rname, 0) + 1
        if m.transport == "tcp" and m.qtype in (names.AXFR, names.IXFR):
            self._xfr[(m.dst, m.dport, m.src, m.sport, m.id)] = (qkey, m.qtype, m.time)
        if m.flags & TC and m.transport == "udp":
            st.tc_responses += 1
            self._tc_waiting.setdefault((m.dst, q.qkey, m.qtype), []).append(q)
            self._tc_seen[(m.dst, q.qkey)] = m.time

    def _continues_xfr(self, m: Message, qkey: str) -> bool:
        """Whether ``m`` is a further message of a zone transfer on its connection.

        A transfer answers in many messages with the query's ID (RFC 5936 section 2.2) and
        may take far longer than the query stays open, so it is followed by connection, not
        by query. Later messages may leave the question out (section 2.2.1; BIND does).
        """
        key = (m.dst, m.dport, m.src, m.sport, m.id)
        xfr = self._xfr.get(key)
        if xfr is None or m.time - xfr[2] > self.config.max_wait:
            return False
        if m.qname is not None and (qkey, m.qtype) != xfr[:2]:
            return False
        self._xfr[key] = (xfr[0], xfr[1], m.time)
        return True

    def _questionless_match(self, m: Message) -> Query | None:
        """A response without a question section (allowed for FORMERR, NOTIMP and the like,
        RFC 1035 4.1.2 and RFC 6891 7) matches the newest unanswered query from the same
        client port with the same ID."""
        q = self._by_id.get((m.dst, m.dport, m.id))
        if (
            q is None
            or q.response is not None
            or q.closed is not None
            or q.msg.transport != m.transport
            or q.msg.time > m.time
            or q.msg.time < m.time - self.config.max_wait
        ):
            return None
        self._unpend(q)
        return q

    def _resolve_tc(self, q: Query) -> None:
        """Decide, once, whether a TC=1 response was followed by a TCP query."""
        if q.tc_followed is not None or q.response is None:
            return
        nxt = q.tc_next
        window = self.config.tc_fallback_window
        if nxt is None and self._at_end is not None and self._at_end - q.response.time < window:
            # The capture stopped before the client's time to retry was up: undecided.
            self.stats.tc_open_at_end += 1
            return
        q.tc_followed = (
            nxt is not None
            and nxt.transport == "tcp"
            and nxt.time - q.response.time <= window
        )
        if q.tc_followed:
            self.stats.tc_followed_by_tcp += 1
        else:
            self.stats.tc_without_tcp_retry += 1

    # -- closing -------------------------------------------------------------------------

    def _close_due(self) -> None:
        self._last_close = now = self.now
        for queue in (self._answered, self._answered_tc):
            while queue and queue[0][0] < now:
                q = queue.popleft()[1]
                if q.closed is None:
                    self._close(q)
        limit = now - self._unanswered_close
        flight = self._unanswered
        while flight:
            oldest = flight[0][0]
            if oldest is None or oldest.closed is not None:
                flight.popleft()
            elif oldest.msg.time < limit:
                flight.popleft()
                self._close(oldest)
            else:
                break
        self._sweep(now)
        if self._tc_seen:
            window = self.config.tc_fallback_window
            for seen in [k for k, v in self._tc_seen.items() if now - v > window]:
                del self._tc_seen[seen]
        # A transfer silent for max_wait is over (its connection is long closed).
        for k in [k for k, v in self._xfr.items() if now - v[2] > self.config.max_wait]:
            del self._xfr[k]

    def _make_room(self) -> None:
        """Over ``max_in_flight`` or ``max_in_flight_bytes``: close answered queries before
        their linger is over (they only wait for a late pair or ICMP error), oldest first;
        then the oldest unanswered queries (evicted: an answer after it is unsolicited)."""
        cfg = self.config
        while self.open > cfg.max_in_flight or self.bytes > cfg.max_in_flight_bytes:
            if not (self._close_early(self._answered) or self._close_early(self._answered_tc)
                    or self._evict_oldest()):
                return

    def _close_early(self, queue: deque[tuple[float, Query]]) -> bool:
        """Close the oldest query still open in ``queue`` (answered ones) before its time."""
        while queue:
            q = queue.popleft()[1]
            if q.closed is None:
                self.stats.closed_early += 1
                self._close(q)
                return True
        return False

    def _evict_oldest(self) -> bool:
        """Close the oldest unanswered query now."""
        while self._unanswered:
            q = self._unanswered.popleft()[0]
            if q is not None and q.closed is None:
                self.stats.evicted += 1
                self._close(q)
                return True
        return False

    def _unpend(self, q: Query) -> None:
        """Remove ``q`` from the queries waiting for a response (O(1))."""
        pkey = q.pkey
        _drop(self._pending, pkey, q)  # type: ignore[arg-type]
        _drop(self._pending_to, (pkey, q.msg.dst), q)  # type: ignore[arg-type]

    def _sweep(self, now: float) -> None:
        """Forget fan-out and pairing windows that went quiet (once a second: each key was
        created by a query of the last second or so, so this is O(1) a query)."""
        cfg = self.config
        limit = now - cfg.fanout_window
        self._fanout = {k: v for k, v in self._fanout.items()
                        if (v.msg.time if type(v) is Query else v.newest) >= limit}  # type: ignore[union-attr]
        limit = now - max(cfg.pair_after, cfg.pair_before)
        for table in (self._a_waiting, self._aaaa_recent):
            for k in [k for k, v in table.items()
                      if (v.msg.time if type(v) is Query else v[-1].msg.time  # type: ignore[union-attr,index]
                          if v else limit - 1) < limit]:
                del table[k]

    def _forget(self, q: Query) -> None:
        """Remove a closing query from every index that may still point at it."""
        m = q.msg
        self._unpend(q)
        # The fan-out and pairing windows drop closed queries as they expire (a query
        # closes long after those windows), and _sweep forgets keys that went quiet.
        gkey = q.gkey
        if self._groups.get(gkey) is q:  # type: ignore[arg-type]
            del self._groups[gkey]  # type: ignore[arg-type]
        bkey = (m.src, m.sport, m.id)
        if self._by_id.get(bkey) is q:
            del self._by_id[bkey]
        if q.response is not None and q.response.flags & TC and m.transport == "udp":
            tkey = (m.src, q.qkey, m.qtype)
            waiting = self._tc_waiting.get(tkey)
            if waiting is not None and q in waiting:
                waiting.remove(q)
                if not waiting:
                    del self._tc_waiting[tkey]
            self._resolve_tc(q)

    def _close(self, q: Query) -> None:
        m = q.msg
        self.open -= 1
        self.bytes -= QUERY_BYTES + len(m.data)
        if q.response is not None:
            self.bytes -= RESPONSE_BYTES + len(q.response.data)
        q.cell[0] = None
        self._forget(q)
        if q.response is None:
            self.stats.unanswered_queries += 1
        concurrent = race = False
        pair_answered = None
        pair_response_frame = None
        other = q.pair
        if other is not None and other.closed is not None:
            # Both members are final now: decide the pair here, on the one closing last.
            pair_answered = other.response is not None
            if other.response is not None:
                pair_response_frame = other.response.frame
            a, aaaa = (q, other) if q.is_a else (other, q)
            concurrent = a.response is None or aaaa.msg.time < a.response.time
            if concurrent:
                self.stats.a_aaaa_same_port_concurrent += 1
                race = (a.response is None) != (aaaa.response is None)
                lost = a if a.response is None else aaaa
                if race and not lost.retried and self._at_end is not None and (
                    self._at_end - lost.msg.time < self.config.timeout
                ):
                    # Its answer may have come after the capture stopped. A retry of the
                    # lost query shows the client gave up on it: that race is decided.
                    race = False
                if race:
                    self.stats.a_aaaa_race_lost += 1
            other.pair = None  # break the cycle; both are closed
        tx = Transaction(
            query=m,
            response=q.response,
            lookup_id=q.group.id if q.group else 0,
            attempt=q.attempt,
            retransmission=q.retransmission,
            fanout_of=q.fanout_of,
            tc_followed_by_tcp=q.tc_followed,
            tc_next_query_frame=q.tc_next.frame if q.tc_next is not None else None,
            pair_frame=other.msg.frame if other is not None else None,
            pair_concurrent=concurrent,
            pair_race_lost=race,
            pair_answered=pair_answered,
            icmp_frames=tuple(q.icmp_frames),
            late_icmp_frames=tuple(q.late_icmp_frames),
            pair_response_frame=pair_response_frame,
            pair_transaction=other.closed if pair_answered is not None and other else None,
            tcp_fallback=q.tcp_fallback,
        )
        q.closed = tx
        g = q.group
        if g is None:
            return
        g.closed.append(tx)
        if len(g.closed) == len(g.members):
            self._emit(g)

    def _emit(self, g: Group) -> None:
        closed = g.closed
        if len(closed) == 1:  # most lookups: one query, nothing to order
            attempts: tuple[Transaction, ...] = (closed[0],)
            answer = closed[0] if closed[0].response is not None else None
        else:
            attempts = tuple(sorted(closed, key=lambda t: (t.query.time, t.query.frame)))
            answer = _usable_answer(attempts)
        st = self.stats
        st.lookups += 1
        open_at_end = False
        if answer is None:
            st.failed_lookups += 1
            if self._at_end is not None and self._may_still_wait(attempts):
                open_at_end = True
                st.lookups_open_at_end += 1
        lookup = Lookup(g.id, attempts, answer, open_at_end)
        if lookup.failed:
            st.lookups_failed += 1
            if answer is not None:
                st.lookups_failed_late += 1
        # Break the query <-> group reference cycles now, so that memory is freed by
        # reference counting instead of waiting for the cyclic garbage collector.
        for q in g.members:
            q.group = None
        g.members.clear()
        g.closed.clear()
        self.on_lookup(lookup)

    def _may_still_wait(self, attempts: tuple[Transaction, ...]) -> bool:
        """Whether the client may still have been waiting for an answer when the capture
        ended: less than ``timeout`` had passed since its last attempt, and less than the
        wait it showed itself between its last two attempts. SREs stop a capture right
        after the failure they reproduced, and a client with ``options timeout:1`` gives up
        long before the default 5 s."""
        assert self._at_end is not None
        since = self._at_end - attempts[-1].query.time
        if since >= self.config.timeout:
            return False
        retries = [t for t in attempts if t.retransmission is not None]
        if retries:
            last = retries[-1]
            before = [t for t in attempts if t.query.time <= last.query.time and t is not last]
            if before and since >= last.query.time - before[-1].query.time:
                return False
        return True

    def finish(self, end_time: float | None) -> None:
        """The capture ended at ``end_time``: close everything still in flight."""
        self._at_end = end_time if end_time is not None else self.now
        still_open = {id(q): q for _, q in self._answered if q.closed is None}
        still_open.update((id(q), q) for _, q in self._answered_tc if q.closed is None)
        still_open.update((id(c[0]), c[0]) for c in self._unanswered if c[0] is not None)
        for q in sorted(still_open.values(), key=lambda q: (q.msg.time, q.msg.frame)):
            if q.closed is None:
                self._close(q)
        self._unanswered.clear()
        self._answered.clear()
        self._answered_tc.clear()
        self._tc_waiting.clear()
        self._xfr.clear()
        self._fanout.clear()
        self._a_waiting.clear()
        self._aaaa_recent.clear()


def _usable_answer(attempts: tuple[Transaction, ...]) -> Transaction | None:
    """The attempt whose answer the client could use first.

    A truncated UDP answer followed by the TCP retry, and an answer the client's closed
    port bounced (ICMP port unreachable), reached the wire but not the application: the
    earliest other answer is the one that ended the wait. When there is none, the earliest
    answer of any kind stands (the lookup was answered on the wire).
    """
    answered = [t for t in attempts if t.response is not None]
    if not answered:
        return None
    fallback = any(t.tcp_fallback for t in attempts)
    usable = [
        t for t in answered
        if not t.late_icmp_frames
        and not (fallback and t.query.transport == "udp"
                 and t.response.flags & TC)  # type: ignore[union-attr]
    ]
    return min(usable or answered, key=lambda t: t.response.time)  # type: ignore[union-attr]


def _enqueue(table: dict, key: object, q: Query) -> None:
    """Append ``q`` under ``key``: the query itself, or a deque once there are two."""
    held = table.get(key)
    if held is None:
        table[key] = q
    elif type(held) is Query:
        table[key] = deque((held, q))
    else:
        held.append(q)


def _put(table: dict, key: object, q: Query) -> None:
    """Add ``q`` under ``key``: the query itself, or an ordered set once there are two."""
    held = table.get(key)
    if held is None:
        table[key] = q
    elif type(held) is Query:
        table[key] = {held: None, q: None}
    else:
        held[q] = None


def _drop(table: dict, key: object, q: Query) -> None:
    """Remove ``q`` from under ``key`` (O(1))."""
    held = table.get(key)
    if held is q:
        del table[key]
    elif held is not None and type(held) is not Query:
        held.pop(q, None)
        if not held:
            del table[key]


def _newest(queries: Query | dict[Query, None] | None, t: float,
            oldest: float) -> Query | None:
    """The newest query in ``queries`` (in the order sent) sent at or before ``t`` and not
    before ``oldest``. Usually the last one; a record read out of time order may be newer."""
    if queries is None:
        return None
    if type(queries) is Query:
        qt = queries.msg.time  # type: ignore[union-attr]
        return queries if oldest <= qt <= t else None  # type: ignore[return-value]
    for q in reversed(queries):  # type: ignore[arg-type]
        qt = q.msg.time
        if qt <= t:
            return q if qt >= oldest else None
    return None
