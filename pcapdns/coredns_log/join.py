"""Join a CoreDNS query log to a capture's lookups.

The analysis streams every closed lookup past ``LogJoin.every_lookup`` (the engine's
``every_lookup`` hook, used only when a log is given); each attempt's query is looked up
by key in the log's index, and only those with a logged candidate are remembered (a
claim), with counts per server and second for the others. ``finish`` then decides:

* with times (every query line has a ``--timestamps`` time): the clock offset (CoreDNS's
  clock minus the capture's) is the median, over the keys that one query and one line
  share alone, of (log time - logged duration) - query time; a query and a line of one
  key join when that difference, less the offset, is within ``WINDOW`` seconds, nearest
  first;
* without times: a key joins when one query and one line share it; a key with more
  queries or more lines is ambiguous (ID and port reuse, a client that re-sent the same
  query) and is counted, not guessed.

docs/analysis.md ("CoreDNS query logs") defines each figure.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from pcapdns.coredns_log.index import Key, LogIndex, address_key, make_key, name_key
from pcapdns.coredns_log.parse import QueryLine
from pcapdns.dns import names
from pcapdns.match.records import Lookup

#: Seconds a query and its log line may be apart once the clock offset is taken off: the
#: offset also holds the transit from the capture point to CoreDNS, and kubectl's time is
#: when the container runtime read the line, a little after CoreDNS wrote it.
WINDOW = 1.0
#: Lookups that failed or got an error rcode listed with what CoreDNS logged for them.
MAX_PROBLEM_LOOKUPS = 100
#: Such lookups judged (counted by verdict) at most, each kept as a small record until the
#: end (about 300 bytes); past them they are counted in ``not_judged``.
MAX_JUDGED = 200_000
#: (server, second) counters of queries no log line claims, for ``captured_not_logged``;
#: past this many, further ones are counted as if inside the log's span.
MAX_BUCKETS = 500_000
#: Distinct client addresses remembered (for ``logged_other_clients``).
MAX_CLIENTS = 100_000
#: Answer rcodes that make an answered lookup a problem worth CoreDNS's side of the story.
ERROR_RCODES = frozenset({1, 2, 4, 5})  # FORMERR, SERVFAIL, NOTIMP, REFUSED

Verdict = Literal[
    "lost_after_coredns", "coredns_slow", "coredns_error", "not_logged", "ambiguous",
    "not_covered", "logged",
]

#: Each verdict in a few words (the report's knowledge says what each means).
VERDICT_LABELS: dict[str, str] = {
    "lost_after_coredns": "CoreDNS answered in time, the answer was lost after it",
    "coredns_slow": "CoreDNS answered, after the client had given up",
    "coredns_error": "CoreDNS itself answered with the error",
    "not_logged": "not in CoreDNS's log",
    "ambiguous": "cannot tell (the log's lines for it are ambiguous)",
    "not_covered": "outside the log (another server, or before or after it)",
    "logged": "logged by CoreDNS with another rcode",
}


@dataclass(frozen=True, slots=True)
class LoggedAttempt:
    """One attempt of a problem lookup and what CoreDNS logged for it."""

    frame: int
    time: float
    #: True: joined to a log line; False: none; None: ambiguous (several could be it).
    logged: bool | None
    rcode: str | None
    duration_s: float | None
    #: The log line, as file:line.
    line: str | None


@dataclass(frozen=True, slots=True)
class ProblemLookup:
    """A lookup that failed (or was answered with an error rcode), with the log's side."""

    lookup: int
    time: float
    client: str
    client_port: int
    server: str
    qname: str
    qtype: str
    #: "no answer", or the answer's rcode name.
    outcome: str
    attempts: tuple[LoggedAttempt, ...]
    #: What the log says happened (docs/analysis.md lists each).
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class TransactionLog:
    """What the log says of one captured query (the transaction output's ``coredns_log``)."""

    logged: bool | None
    rcode: str | None = None
    duration_s: float | None = None
    time: float | None = None
    line: str | None = None


@dataclass(frozen=True, slots=True)
class JoinResult:
    """The log's summary section (the document's ``coredns_log``)."""

    index: LogIndex
    times_used: bool
    #: CoreDNS's clock minus the capture's (plus transit), from ``offset_samples`` pairs,
    #: with the median absolute deviation of those samples; None without times or pairs.
    clock_offset_s: float | None
    offset_spread_s: float | None
    offset_samples: int
    joined: int
    #: Captured queries and log lines left out of the join as ambiguous.
    ambiguous_queries: int
    ambiguous_lines: int
    logged_not_captured: int
    logged_other_clients: int
    logged_outside_capture: int
    captured_not_logged: int
    captured_not_logged_answered: int
    #: Servers (address:port) at least one joined query was sent to.
    servers: tuple[str, ...]
    #: Problem lookups by verdict, and the first ``MAX_PROBLEM_LOOKUPS`` of them.
    verdicts: dict[str, int]
    problems: tuple[ProblemLookup, ...]
    problems_omitted: int
    #: Problem lookups past ``MAX_JUDGED``, in no verdict.
    not_judged: int
    #: Frame of each captured query -> what the log says (only when transactions are kept).
    by_frame: dict[int, TransactionLog] | None
    warnings: tuple[str, ...]


@dataclass(slots=True)
class _Claim:
    """A captured query some log line may be."""

    frame: int
    time: float
    server: str
    answered: bool


@dataclass(slots=True)
class _Problem:
    """A lookup to judge: what the client got, where it sent the lookup, when."""

    outcome: str
    server: str
    time: float
    #: (frame, time) of each attempt.
    attempts: tuple[tuple[int, float], ...]
    #: The lookup itself, for the first ``MAX_PROBLEM_LOOKUPS`` (listed in full).
    lookup: Lookup | None


@dataclass(slots=True)
class LogJoin:
    """The collector side of the join: fed every lookup, decides at ``finish``."""

    index: LogIndex
    #: Whether every transaction's join is wanted (``--transactions``).
    per_transaction: bool = False
    #: Seconds after which a logged answer is slow (``--slow``): a failed lookup whose
    #: query CoreDNS logged as answered this late was answered after the client gave up.
    slow: float = 1.0
    claims: dict[Key, list[_Claim]] = field(default_factory=dict)
    #: (server, second, answered) -> captured queries no log line claims.
    unclaimed: Counter[tuple[str, int, bool]] = field(default_factory=Counter)
    unplaced: int = 0
    clients: set[str] = field(default_factory=set)
    first: float | None = None
    last: float | None = None
    problems: list[_Problem] = field(default_factory=list)
    problem_count: int = 0
    detailed: int = 0
    not_judged: int = 0
    _addresses: dict[str, str] = field(default_factory=dict)
    _servers: dict[tuple[str, int], str] = field(default_factory=dict)

    def _address(self, text: str) -> str:
        a = self._addresses.get(text)
        if a is None:
            if len(self._addresses) > MAX_CLIENTS:
                self._addresses.clear()
            a = self._addresses[text] = address_key(text)
        return a

    def _server(self, address: str, port: int) -> str:
        """"address:port", one string per server (interned: claims and counters share it)."""
        key = (address, port)
        text = self._servers.get(key)
        if text is None:
            if len(self._servers) > MAX_CLIENTS:
                self._servers.clear()
            text = self._servers[key] = f"{address}:{port}"
        return text

    def every_lookup(self, lookup: Lookup) -> None:
        """Take one closed lookup: remember the attempts a log line may be."""
        outcome = None
        if lookup.failed:
            outcome = "no answer"
        elif lookup.answer is not None and lookup.answer.response is not None:
            rcode = lookup.answer.response.flags & 0xF
            if rcode in ERROR_RCODES:
                outcome = names.rcode_name(rcode)
        if outcome is not None:
            self.problem_count += 1
            if len(self.problems) >= MAX_JUDGED:
                self.not_judged += 1
            else:
                first = lookup.first
                detail = self.detailed < MAX_PROBLEM_LOOKUPS
                self.detailed += detail
                self.problems.append(_Problem(
                    outcome, self._server(first.dst, first.dport), first.time,
                    tuple((t.query.frame, t.query.time) for t in lookup.attempts),
                    lookup if detail else None))
        by_key = self.index.by_key
        for t in lookup.attempts:
            q = t.query
            when = q.time
            if self.first is None or when < self.first:
                self.first = when
            if self.last is None or when > self.last:
                self.last = when
            client = self._address(q.src)
            if len(self.clients) < MAX_CLIENTS:
                self.clients.add(client)
            server = self._server(q.dst, q.dport)
            key = make_key(client, q.sport, q.id, q.qtype, name_key(q.qname or "."))
            if key in by_key:
                self.claims.setdefault(key, []).append(
                    _Claim(q.frame, q.time, server, t.response is not None))
            else:
                bucket = (server, int(q.time), t.response is not None)
                if bucket in self.unclaimed or len(self.unclaimed) < MAX_BUCKETS:
                    self.unclaimed[bucket] += 1
                else:
                    self.unplaced += 1

    def finish(self) -> JoinResult:
        return _decide(self)


def join(index: LogIndex, lookups: Iterable[Lookup], *, slow: float = 1.0,
         per_transaction: bool = False) -> JoinResult:
    """Join the log ``index`` to lookups already at hand (an analysis made with
    ``keep_lookups=True``, the server side of ``pcapdns correlate``); the same result as
    ``analyze(..., coredns_log=index)`` gives in ``Analysis.coredns_log``."""
    j = LogJoin(index, per_transaction=per_transaction, slow=slow)
    for lookup in lookups:
        j.every_lookup(lookup)
    return j.finish()


def _arrival(q: QueryLine) -> float:
    """When the query reached CoreDNS by CoreDNS's clock: the line is written once the
    answer is, ``duration`` after the query arrived."""
    assert q.time is not None
    return q.time - q.duration


def _decide(j: LogJoin) -> JoinResult:
    index = j.index
    timed = index.timed
    pairs: dict[int, int] = {}  # frame -> index of the query line
    ambiguous_frames: set[int] = set()
    ambiguous_lines: set[int] = set()
    offset = spread = None
    samples: list[float] = []
    for key, claims in j.claims.items():
        lines = index.lines_of(key)
        if len(claims) == 1 and len(lines) == 1 and timed:
            samples.append(_arrival(index.queries[lines[0]]) - claims[0].time)
    if timed and samples:
        offset = statistics.median(samples)
        spread = statistics.median(abs(s - offset) for s in samples)
    for key, claims in j.claims.items():
        lines = index.lines_of(key)
        if not timed:
            if len(claims) == 1 and len(lines) == 1:
                pairs[claims[0].frame] = lines[0]
            else:
                ambiguous_frames.update(c.frame for c in claims)
                ambiguous_lines.update(lines)
            continue
        shift = offset or 0.0
        if len(claims) == 1 and len(lines) == 1:
            # The common case: one query, one line; they join if close enough in time.
            c, i = claims[0], lines[0]
            if abs(_arrival(index.queries[i]) - shift - c.time) <= WINDOW:
                pairs[c.frame] = i
            continue
        near = sorted(
            (abs(_arrival(index.queries[i]) - shift - c.time), c.frame, i)
            for c in claims for i in lines
            if abs(_arrival(index.queries[i]) - shift - c.time) <= WINDOW)
        used: set[int] = set()
        for _, frame, i in near:
            if frame not in pairs and i not in used:
                pairs[frame] = i
                used.add(i)
    joined_lines = set(pairs.values())
    servers = sorted({c.server for claims in j.claims.values() for c in claims
                      if c.frame in pairs})
    served = set(servers)
    shift = offset or 0.0
    log_span = _log_span(index, shift) if timed else None

    def covered(server: str, t: float) -> bool:
        if server not in served:
            return False
        return log_span is None or log_span[0] - WINDOW <= t <= log_span[1] + WINDOW

    not_logged = not_logged_answered = 0
    for claims in j.claims.values():
        for c in claims:
            if c.frame not in pairs and c.frame not in ambiguous_frames and covered(
                    c.server, c.time):
                not_logged += 1
                not_logged_answered += c.answered
    for (server, second, answered), n in j.unclaimed.items():
        if covered(server, second + 0.5):
            not_logged += n
            not_logged_answered += n if answered else 0
    not_logged += j.unplaced

    other_clients = outside = not_captured = 0
    for i, q in enumerate(index.queries):
        if i in joined_lines or i in ambiguous_lines:
            continue
        if address_key(q.client) not in j.clients:
            other_clients += 1
        elif (timed and j.first is not None and j.last is not None
              and not j.first - WINDOW <= _arrival(q) - shift <= j.last + WINDOW):
            outside += 1
        else:
            not_captured += 1

    verdicts: Counter[str] = Counter()
    listed = []
    for p in j.problems:
        attempts = _attempts(p, index, pairs, ambiguous_frames)
        verdict = _verdict(p, attempts, covered, j.slow)
        verdicts[verdict] += 1
        if p.lookup is not None:
            listed.append(_listed(p.lookup, p.outcome, attempts, verdict))
    problems = tuple(listed)
    by_frame = None
    if j.per_transaction:
        by_frame = {}
        for claims in j.claims.values():
            for c in claims:
                by_frame[c.frame] = _transaction(index, pairs.get(c.frame),
                                                 c.frame in ambiguous_frames)
    warnings = _warnings(index, timed, offset, len(pairs), bool(j.claims) or bool(j.unclaimed))
    return JoinResult(
        index=index, times_used=timed, clock_offset_s=_round(offset),
        offset_spread_s=_round(spread), offset_samples=len(samples), joined=len(pairs),
        ambiguous_queries=len(ambiguous_frames), ambiguous_lines=len(ambiguous_lines),
        logged_not_captured=not_captured, logged_other_clients=other_clients,
        logged_outside_capture=outside, captured_not_logged=not_logged,
        captured_not_logged_answered=not_logged_answered, servers=tuple(servers),
        verdicts=dict(sorted(verdicts.items())), problems=problems,
        problems_omitted=j.problem_count - len(problems), not_judged=j.not_judged,
        by_frame=by_frame,
        warnings=tuple(warnings),
    )


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _log_span(index: LogIndex, shift: float) -> tuple[float, float] | None:
    """The first arrival and the last line, by the capture's clock."""
    if not index.queries:
        return None
    first = min(_arrival(q) for q in index.queries) - shift
    last = max(q.time for q in index.queries if q.time is not None) - shift
    return first, last


def _transaction(index: LogIndex, line: int | None, ambiguous: bool) -> TransactionLog:
    if line is None:
        return TransactionLog(None if ambiguous else False)
    q = index.queries[line]
    return TransactionLog(True, q.rcode_name, q.duration, q.time, q.where)


def _attempts(p: _Problem, index: LogIndex, pairs: dict[int, int],
              ambiguous: set[int]) -> list[LoggedAttempt]:
    """What the log says of each attempt of ``p``."""
    out = []
    for frame, when in p.attempts:
        line = pairs.get(frame)
        if line is not None:
            q = index.queries[line]
            out.append(LoggedAttempt(frame, when, True, q.rcode_name, q.duration, q.where))
        else:
            out.append(LoggedAttempt(frame, when, None if frame in ambiguous else False,
                                     None, None, None))
    return out


def _verdict(p: _Problem, attempts: list[LoggedAttempt],
             covered: Callable[[str, float], bool], slow: float) -> Verdict:
    """What the log says happened to the lookup (docs/analysis.md lists the verdicts)."""
    logged = [a for a in attempts if a.logged]
    if p.outcome != "no answer" and logged:
        return "coredns_error" if any(a.rcode == p.outcome for a in logged) else "logged"
    if logged:
        late = any(a.duration_s is not None and a.duration_s >= slow for a in logged)
        return "coredns_slow" if late else "lost_after_coredns"
    if any(a.logged is None for a in attempts):
        return "ambiguous"
    return "not_logged" if covered(p.server, p.time) else "not_covered"


def _listed(lk: Lookup, outcome: str, attempts: list[LoggedAttempt],
            verdict: Verdict) -> ProblemLookup:
    first = lk.first
    return ProblemLookup(lk.id, first.time, first.src, first.sport, first.dst,
                         first.qname or ".", names.qtype_name(first.qtype), outcome,
                         tuple(attempts), verdict)


def _warnings(index: LogIndex, timed: bool, offset: float | None, joined: int,
              any_queries: bool) -> list[str]:
    out = []
    if index.query_lines and not timed:
        out.append(
            "the CoreDNS log has no times (kubectl logs without --timestamps): its lines "
            "cannot be placed in time, so queries were joined on client address and port, "
            "DNS ID, name and type only, and keys seen more than once were left out as "
            "ambiguous")
    if timed and offset is None and index.query_lines:
        out.append(
            "no captured query matched exactly one CoreDNS log line, so the clock offset "
            "between the capture and CoreDNS could not be estimated; times were compared "
            "as they are")
    if index.evicted:
        out.append(
            f"the CoreDNS log had more query lines than pcapdns keeps "
            f"({len(index.queries):,}): the {index.evicted:,} after them were not joined")
    if index.query_lines and any_queries and joined == 0:
        out.append(
            "no captured query joined a CoreDNS log line: the log may be of another "
            "replica or another time, or the client's address or port was rewritten "
            "(masquerade) between the capture point and CoreDNS")
    return out
