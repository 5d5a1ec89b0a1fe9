"""The facts the window detectors need about every lookup, kept without the lookup itself.

Most lookups of a capture are healthy: answered at their one attempt, quickly, with no
error. No stateless detector (``DETECTORS``) flags one, so the per-lookup path need not
build it as a Python object (``may_be_flagged`` says which ones it must). The two window
detectors also learn from the healthy lookups in between, but only a few facts:

* ``stale_port``: when each (client, port, server) was last answered, and per client the
  port of its last answer and the last answer from another port (the *answer memory*,
  ``_answered`` and ``_clients``, swept of old entries and capped); and a clock, the latest
  query time of any lookup (``latest_query``).
* ``search_expansion``: a clock, the latest first-query time of any answered lookup with a
  question name (``latest_answered_query``).

``LookupFacts`` keeps those facts for every closed lookup (``lookup_closed``), and says
which lookups the window detectors must see all the same: those they asked to watch
(``watch_client``, ``watch_port``, ``watch_name``) and the one whose clock reaches the time
they asked to be woken at (``wake_at``). The detectors read the facts back through
``answered_at``, ``other_answer``, ``forgotten`` and the clocks. Everything here is plain
numbers, strings and maps of them, so that the compiled core can keep the same facts for
every lookup, line for line, and hand Python only the lookups that matter.

The per-lookup path that gives the same findings as ``FindingCollector.lookup`` on every
lookup (tests/detect/filtered.py is its reference), for each closed lookup and orphan in
the order the matcher emits them::

    code = facts.lookup_closed(*closed_facts(lookup))
    if may_be_flagged(lookup, config) or code == WATCHED:
        collector.detect(lookup)
    elif code == TICK:
        collector.tick()
    ...
    collector.orphan(orphan)            # in its place among the lookups
    ...
    collector.finish()                  # after the last; it calls facts.finish()

with ``collector = FindingCollector(config, facts)``. The next lookup's ``lookup_closed``
comes only after the detectors were given this one: what they ask to watch while given a
lookup decides what is handed over next.
"""

from __future__ import annotations

import math

from pcapdns.config import AnalysisConfig
from pcapdns.dns.flags import TC
from pcapdns.match.records import Lookup

#: What ``lookup_closed`` asks of the caller: nothing; ...
QUIET = 0
#: ... only to let time pass in the window detectors (``FindingCollector.tick``), when the
#: lookup is not handed over anyway; ...
TICK = 1
#: ... to hand the lookup to the detectors (``FindingCollector.detect``).
WATCHED = 2

#: Seconds after a stale-port run's first failed lookup during which its port must get no
#: answer (``stale_port.WINDOW``; here because the answer memory is kept that long).
STALE_WINDOW = 60.0
#: Caps on the answer memory, for floods of ports or clients.
MAX_ANSWERED = 200_000
MAX_CLIENTS = 50_000
#: The answer memory is swept of old entries when ``_answered`` reaches a size that doubles
#: after each sweep, from this one (amortized: one map store per answer).
SWEEP_MIN = 4096

_NXDOMAIN = 3
_RCODE = 0x000F
_INF = math.inf
_Key = tuple[str, int, str]


def settle_time(config: AnalysisConfig) -> float:
    """Seconds after which every answer from a time has reached the detectors.

    An answered lookup closes at most max_wait after its answer (an unanswered earlier
    attempt waits that long), plus tc_fallback_window (a TC answer waits for the TCP retry),
    answer_linger, and the matcher's once-a-second closing.
    """
    return config.max_wait + config.tc_fallback_window + config.answer_linger + 2.0


def answer_memory(config: AnalysisConfig) -> float:
    """Seconds an answer is remembered: a failed lookup closes max_wait after its last
    attempt, which its retries put up to about retransmission_window after the first."""
    return config.max_wait + config.retransmission_window + 2.0


class LookupFacts:
    """The answer memory and the clocks, fed every closed lookup in the order they close.

    Bounded like the detectors it serves: answers older than ``answer_memory`` and clients
    without an answer for ``STALE_WINDOW + settle_time`` are swept; over ``MAX_ANSWERED`` or
    ``MAX_CLIENTS`` the oldest are dropped and counted in ``answers_evicted``.
    """

    def __init__(self, config: AnalysisConfig) -> None:
        self._memory = answer_memory(config)
        self._client_memory = STALE_WINDOW + settle_time(config)
        #: Latest query time of any lookup closed so far (its last attempt's).
        self.latest_query = -_INF
        #: Latest first-query time of any answered lookup with a question name.
        self.latest_answered_query = -_INF
        #: (client, port, server) -> time of its last answer over UDP.
        self._answered: dict[_Key, float] = {}
        self._sweep_at = SWEEP_MIN
        #: client -> [port of its last answer, time of that answer, time of the last answer
        #: from any other port]: enough to tell whether some other port was answered.
        self._clients: dict[str, list[float]] = {}
        #: Answers up to this time may have been dropped under the cap.
        self.forgotten = -_INF
        #: Answer memory entries dropped under the caps.
        self.answers_evicted = 0
        #: What the detectors asked to see: clients with stale-port runs waiting for another
        #: port's answer, (client, port, server) with a run, (client, qtype, qclass, first
        #: label) of search-suffix tries, and the ``latest_query`` time to wake them at.
        self._clients_watched: set[str] = set()
        self._ports_watched: set[_Key] = set()
        self._names_watched: set[tuple[str, int, int, str]] = set()
        self._wake = _INF

    # -- every closed lookup -----------------------------------------------------------------

    def lookup_closed(
        self, client: str, server: str, first_time: float, last_time: float,
        qname: str | None, qtype: int, qclass: int, failed_udp: bool, answered: bool,
        answer_udp: bool, answer_port: int, answer_time: float, rcode: int,
    ) -> int:
        """Take the facts of one closed lookup; say what the caller must do with it
        (``QUIET``, ``TICK`` or ``WATCHED``). ``closed_facts`` builds the arguments from a
        ``Lookup``; see it for what each means.

        Called for every lookup in the order they close, each after the detectors were
        given the one before (when it was handed over): the answer depends on what they
        asked to watch then.
        """
        # The sweep that the previous answer made due runs now, not when the answer was
        # added, so that the detectors saw the memory with that answer before the sweep
        # (they read it only while given the lookup, and the sweep reads only the facts).
        if len(self._answered) >= self._sweep_at:
            self._sweep()
        if last_time > self.latest_query:
            self.latest_query = last_time
        watched = failed_udp  # the stale-port detector starts and grows runs from these
        if answered:
            if answer_udp:
                self._answer(client, answer_port, server, answer_time)
                if (client in self._clients_watched
                        or (client, answer_port, server) in self._ports_watched):
                    watched = True
            if qname is not None:
                if first_time > self.latest_answered_query:
                    self.latest_answered_query = first_time
                if rcode == _NXDOMAIN:
                    watched = True  # maybe a search-suffix try of a later name
                elif self._names_watched and (
                        (client, qtype, qclass, first_label(qname)) in self._names_watched):
                    watched = True  # maybe the name its tries were for
        if watched:
            return WATCHED
        return TICK if self.latest_query >= self._wake else QUIET

    def _answer(self, client: str, port: int, server: str, t: float) -> None:
        key = (client, port, server)
        answered = self._answered
        if answered.get(key, -_INF) < t:
            answered[key] = t
        c = self._clients.get(client)
        if c is None:
            self._clients[client] = [port, t, -_INF]
        elif c[0] == port:
            c[1] = max(c[1], t)
        elif t >= c[1]:
            c[0], c[1], c[2] = port, t, c[1]
        elif t > c[2]:
            c[2] = t

    def _sweep(self) -> None:
        """Drop answers too old to matter; over a cap, the oldest ones, remembering how far
        back answers may be missing."""
        now = self.latest_query
        answered = {k: t for k, t in self._answered.items() if t >= now - self._memory}
        if len(answered) > MAX_ANSWERED:
            cut = sorted(answered.values())[len(answered) - MAX_ANSWERED // 2]
            self.forgotten = max(self.forgotten, cut)
            self.answers_evicted += len(answered)
            answered = {k: t for k, t in answered.items() if t > cut}
            self.answers_evicted -= len(answered)
        self._answered = answered
        self._sweep_at = max(SWEEP_MIN, 2 * len(answered))
        limit = now - self._client_memory
        clients = {k: c for k, c in self._clients.items() if c[1] >= limit}
        if len(clients) > MAX_CLIENTS:
            # Keep the clients answered last; a run of a dropped one is not reported. Ties
            # go by address, so that which are kept does not depend on the map's order.
            recent = sorted(clients.items(), key=lambda kv: (kv[1][1], kv[0]))
            recent = recent[-MAX_CLIENTS // 2:]
            self.answers_evicted += len(clients) - len(recent)
            clients = dict(recent)
        self._clients = clients

    def finish(self) -> None:
        """The capture ended (after the detectors' own ``finish``): forget everything but
        the clocks and the counts, what the detectors watch included."""
        if len(self._answered) >= self._sweep_at:
            self._sweep()  # the last answer's, so that the count is the same
        self._answered.clear()
        self._clients.clear()
        self._clients_watched.clear()
        self._ports_watched.clear()
        self._names_watched.clear()
        self._wake = _INF

    # -- what the detectors read ----------------------------------------------------------

    def answered_at(self, client: str, port: int, server: str) -> float:
        """Time of the last UDP answer on (client, port, server) remembered, else -inf."""
        return self._answered.get((client, port, server), -_INF)

    def other_answer(self, client: str, port: int) -> float:
        """Time of the last answer to ``client`` on a port other than ``port`` (the last
        answer, when that was not on ``port``; else the last one before that port's),
        else -inf."""
        c = self._clients.get(client)
        if c is None:
            return -_INF
        return c[2] if c[0] == port else c[1]

    # -- what the detectors ask to see ----------------------------------------------------

    def watch_client(self, client: str) -> None:
        """Hand over every lookup answered over UDP to ``client``."""
        self._clients_watched.add(client)

    def unwatch_client(self, client: str) -> None:
        self._clients_watched.discard(client)

    def watch_port(self, client: str, port: int, server: str) -> None:
        """Hand over every lookup answered over UDP on (client, port, server)."""
        self._ports_watched.add((client, port, server))

    def unwatch_port(self, client: str, port: int, server: str) -> None:
        self._ports_watched.discard((client, port, server))

    def watch_name(self, client: str, qtype: int, qclass: int, label: str) -> None:
        """Hand over every answered lookup from ``client`` for ``qtype`` and ``qclass``
        whose name's ``first_label`` is ``label``."""
        self._names_watched.add((client, qtype, qclass, label))

    def unwatch_name(self, client: str, qtype: int, qclass: int, label: str) -> None:
        self._names_watched.discard((client, qtype, qclass, label))

    def wake_at(self, t: float) -> None:
        """Ask for a ``TICK`` (at least) once ``latest_query`` reaches ``t`` (inf: never);
        replaces the time asked before."""
        self._wake = t


def first_label(qname: str) -> str:
    """The first label of a name as the search-expansion detector compares names: ASCII
    lower case (names are ASCII in presentation form), any final dots stripped, up to the
    first dot ("" for the root)."""
    return qname.lower().rstrip(".").split(".", 1)[0]


def closed_facts(lookup: Lookup) -> tuple[
    str, str, float, float, str | None, int, int, bool, bool, bool, int, float, int
]:
    """The arguments of ``LookupFacts.lookup_closed`` for ``lookup``, in order:

    ``client``, ``server``  the addresses of its queries (every attempt of a lookup has the
                            same two); ``first_time``, ``last_time`` its first and last
                            attempt's query time; ``qname`` (None: no question),
                            ``qtype``, ``qclass`` its first query's question;
    ``failed_udp``          no attempt answered, the client's wait was over before the
                            capture ended (not ``open_at_end``), and the first attempt went
                            over UDP;
    ``answered``            an attempt answered (``lookup.answer`` with its response);
                            then ``answer_udp``, ``answer_port``, ``answer_time``, ``rcode``
                            are that attempt's transport, client port, response time and
                            response code (the flags' low 4 bits); else False, 0, 0.0, 0.
    """
    attempts = lookup.attempts
    q = attempts[0].query
    answer = lookup.answer
    r = None if answer is None else answer.response
    if answer is None or r is None:
        failed = answer is None and not lookup.open_at_end and q.transport == "udp"
        return (q.src, q.dst, q.time, attempts[-1].query.time, q.qname, q.qtype, q.qclass,
                failed, False, False, 0, 0.0, 0)
    a = answer.query
    return (q.src, q.dst, q.time, attempts[-1].query.time, q.qname, q.qtype, q.qclass,
            False, True, a.transport == "udp", a.sport, r.time, r.flags & _RCODE)


def may_be_flagged(lookup: Lookup, config: AnalysisConfig) -> bool:
    """Whether a stateless detector (``DETECTORS``) may find something in ``lookup``.

    A superset of what they flag, in facts the core has for every lookup: False only for a
    lookup answered at its one attempt, with response code 0, no TC bit, within
    ``config.slow``, not a retransmission or part of a fan-out, no A/AAAA race lost, and no
    ICMP error about it. Such a lookup gets no finding from any of them.
    """
    answer = lookup.answer
    attempts = lookup.attempts
    if answer is None or len(attempts) != 1:
        return True  # failed, open at the end, retried or retried over TCP
    r = answer.response
    if r is None or r.flags & (TC | _RCODE):
        return True
    t = attempts[0]
    return (r.time - t.query.time > config.slow or t.retransmission is not None
            or t.fanout_of is not None or t.pair_race_lost or bool(t.icmp_frames))
