"""The forwarder's upstream leg: its tally per upstream server, and the cause of each
failed or slow downstream lookup.

The core links each query a forwarder sends upstream to the downstream query it was sent
for (core/src/upstream.rs: ``Transaction.upstream_of`` on the upstream query,
``Transaction.forwarded_as`` on the downstream one) and tallies the upstream leg. What a
link means for a failed downstream lookup is decided here (docs/analysis.md, "The
forwarder's upstream leg"):

* ``upstream_timeout``: an upstream query sent for it was never answered;
* ``upstream_error``: one was answered with an error code (any but NOERROR and NXDOMAIN:
  an NXDOMAIN is an answer), which the cause carries;
* ``upstream_slow``: one was answered after more than half of the downstream lookup's
  latency (after more than ``--slow`` when the downstream lookup got no answer): the time
  went upstream;
* ``local``: none of these: the forwarder failed or was slow on its own, or had no upstream
  leg for it (an answer from its cache or a local zone, or a failure before forwarding).

A lookup gets a cause only when its server is a forwarder of the capture: one of its
queries was forwarded, or its server was seen forwarding anywhere in the capture
(``Engine.is_forwarder``, asked once the capture is read: ``keep_forwarders``). A
client-side capture, which holds no upstream leg, gets none.

The upstream lookup may close after the downstream one. The core hands the detectors every
upstream-leg lookup that failed, errored, retried or took more than half of ``--slow``
(``upstream::hand_over``); one it does not hand over was answered once, quickly and without
error, and is closed at the latest ``settle_time`` after it was sent, which was at the
latest ``max_wait`` after the downstream query's last attempt. So a downstream lookup
waits for the outcomes of its upstream queries until they are known or until that time has
passed on the facts' clock (then the ones not seen were healthy), and at the latest until
the end of the capture. The waiting lookups and the outcomes seen are bounded
(``MAX_WAITING``, ``MAX_OUTCOMES``); what is forgotten early is counted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pcapdns import _core
from pcapdns.config import AnalysisConfig
from pcapdns.dns import names
from pcapdns.latency import LatencyHistogram
from pcapdns.match.records import Lookup

CauseKind = Literal["upstream_timeout", "upstream_error", "upstream_slow", "local"]

#: Response codes (RFC 1035 section 4.1.1) that answer the question: not an upstream error.
NOERROR = 0
NXDOMAIN = 3
_ANSWERS = (NOERROR, NXDOMAIN)

#: Downstream lookups waiting for their upstream outcome, at most.
MAX_WAITING = 10_000
#: Upstream outcomes remembered for downstream lookups that close later, at most.
MAX_OUTCOMES = 50_000
#: Causes kept for the document and the report (one per failed or slow lookup), at most.
MAX_CAUSES = 100_000
#: Failed or slow downstream lookups kept with their cause for the report, at most.
MAX_EXAMPLES = 200


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a downstream lookup failed or was slow."""

    kind: CauseKind
    #: The upstream server that timed out, erred or was slow (None for ``local``).
    upstream: str | None = None
    #: For ``upstream_error``: the upstream's response code name (SERVFAIL, REFUSED, ...).
    rcode: str | None = None
    #: Frames of the upstream queries (and response) that show it, in order.
    frames: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "upstream": self.upstream, "rcode": self.rcode,
                "frames": list(self.frames)}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one upstream lookup: its server, and how it ended."""

    server: str
    #: None: no answer (a timeout); else the answer's response code.
    rcode: int | None
    #: Seconds from its first query to the answer (None without one).
    latency: float | None
    #: Its query and response frames.
    frames: tuple[int, ...]
    #: False when it had no answer only because the capture ended.
    closed: bool = True


def is_upstream_leg(lookup: Lookup) -> bool:
    """Whether one of the lookup's queries was sent for a downstream query."""
    return any(t.upstream_of is not None for t in lookup.attempts)


def forwarded(lookup: Lookup) -> list[int]:
    """Frames of the first upstream query sent for each attempt of a downstream lookup."""
    return [t.forwarded_as for t in lookup.attempts if t.forwarded_as is not None]


def needs_cause(lookup: Lookup, config: AnalysisConfig) -> bool:
    """A downstream lookup that failed (``Lookup.failed``), was answered with an error code,
    or was answered after more than ``--slow``."""
    if lookup.failed:
        return True
    a = lookup.answer
    if a is None or a.response is None:
        return False
    if a.response.flags & 0xF not in _ANSWERS:
        return True
    latency = lookup.latency
    return latency is not None and latency > config.slow


def outcome(lookup: Lookup) -> Outcome:
    """The outcome of an upstream-leg lookup."""
    frames: list[int] = []
    for t in lookup.attempts:
        frames.append(t.query.frame)
        if t.response is not None:
            frames.append(t.response.frame)
    a = lookup.answer
    rcode = a.response.flags & 0xF if a is not None and a.response is not None else None
    return Outcome(lookup.first.dst, rcode, lookup.latency, tuple(sorted(frames)),
                   closed=rcode is not None or not lookup.open_at_end)


def decide(lookup: Lookup, outcomes: list[Outcome], config: AnalysisConfig) -> Cause:
    """The cause of a failed or slow downstream lookup from its upstream outcomes (those of
    the upstream lookups handed over; the others were answered quickly, without error)."""
    for o in outcomes:
        if o.rcode is None and o.closed:
            return Cause("upstream_timeout", o.server, None, o.frames)
    for o in outcomes:
        if o.rcode is not None and o.rcode not in _ANSWERS:
            return Cause("upstream_error", o.server, names.rcode_name(o.rcode), o.frames)
    latency = lookup.latency
    limit = config.slow if latency is None else latency / 2
    for o in outcomes:
        if o.latency is not None and o.latency > limit:
            return Cause("upstream_slow", o.server, None, o.frames)
    return Cause("local")


@dataclass(slots=True)
class _Waiting:
    lookup: Lookup
    #: Upstream frames whose outcome is not known yet.
    frames: set[int]
    #: Facts' clock time after which the unknown outcomes are healthy ones.
    deadline: float
    outcomes: list[Outcome] = field(default_factory=list)


class Causes:
    """Assigns each failed or slow downstream lookup its cause, as lookups are handed to
    the detectors (``feed``, in the order they close), and the rest at ``finish``."""

    def __init__(self, config: AnalysisConfig, facts: _core.Facts) -> None:
        self.config = config
        self.facts = facts
        #: Seconds after a downstream query's last attempt by which every upstream lookup
        #: sent for it has closed (see the module's text).
        self._wait = config.max_wait + facts.settle_time
        #: Lookup id -> cause, for the document (``MAX_CAUSES``).
        self.by_lookup: dict[int, Cause] = {}
        #: The first failed or slow downstream lookups with their cause, for the report.
        self.examples: list[tuple[Lookup, Cause]] = []
        #: Lookups given a cause, by cause kind.
        self.counts: dict[str, int] = {}
        #: Outcome of each upstream query frame seen (oldest first).
        self._outcomes: OrderedDict[int, Outcome] = OrderedDict()
        #: Waiting downstream lookups in the order they closed, and by upstream frame.
        self._waiting: OrderedDict[int, _Waiting] = OrderedDict()
        self._by_frame: dict[int, list[int]] = {}
        #: What the caps made this forget early.
        self.evicted = 0
        #: ``local`` causes of lookups none of whose queries was forwarded, until
        #: ``keep_forwarders`` knows whether their server forwards at all: (lookup id,
        #: server), and the first few with their lookup.
        self._unsure: list[tuple[int, str]] = []
        self._unsure_examples: list[tuple[Lookup, Cause]] = []

    def feed(self, lookup: Lookup) -> None:
        """A closed lookup handed to the detectors."""
        if is_upstream_leg(lookup):
            self._outcome(lookup)
        if needs_cause(lookup, self.config):
            self._downstream(lookup)
        self._expire()

    def _outcome(self, lookup: Lookup) -> None:
        o = outcome(lookup)
        for t in lookup.attempts:
            frame = t.query.frame
            self._outcomes[frame] = o
            for lid in self._by_frame.pop(frame, ()):
                w = self._waiting.get(lid)
                if w is not None and frame in w.frames:
                    w.frames.discard(frame)
                    w.outcomes.append(o)
                    if not w.frames:
                        self._resolve(lid)
        while len(self._outcomes) > MAX_OUTCOMES:
            self._outcomes.popitem(last=False)
            self.evicted += 1

    def _downstream(self, lookup: Lookup) -> None:
        frames = forwarded(lookup)
        known = [self._outcomes[f] for f in frames if f in self._outcomes]
        unknown = {f for f in frames if f not in self._outcomes}
        if not unknown:
            self._record(lookup, decide(lookup, known, self.config))
            return
        if len(self._waiting) >= MAX_WAITING:
            self.evicted += 1
            self._resolve(next(iter(self._waiting)))
        deadline = lookup.attempts[-1].query.time + self._wait
        self._waiting[lookup.id] = _Waiting(lookup, unknown, deadline, known)
        for f in unknown:
            self._by_frame.setdefault(f, []).append(lookup.id)

    def _expire(self) -> None:
        if not self._waiting:
            return
        now = self.facts.latest_query
        while self._waiting:
            lid, w = next(iter(self._waiting.items()))
            if w.deadline >= now:
                break
            self._resolve(lid)

    def _resolve(self, lid: int) -> None:
        w = self._waiting.pop(lid)
        for f in w.frames:
            ids = self._by_frame.get(f)
            if ids is not None:
                if lid in ids:
                    ids.remove(lid)
                if not ids:
                    del self._by_frame[f]
        self._record(w.lookup, decide(w.lookup, w.outcomes, self.config))

    def _record(self, lookup: Lookup, cause: Cause) -> None:
        if cause.kind == "local" and not forwarded(lookup):
            # A forwarder's lookup only if its server forwards: known at the end.
            if len(self._unsure) < MAX_CAUSES:
                self._unsure.append((lookup.id, lookup.first.dst))
            else:
                self.evicted += 1
            if len(self._unsure_examples) < MAX_EXAMPLES:
                self._unsure_examples.append((lookup, cause))
            return
        self._keep(lookup.id, lookup, cause)

    def _keep(self, lid: int, lookup: Lookup | None, cause: Cause) -> None:
        self.counts[cause.kind] = self.counts.get(cause.kind, 0) + 1
        if len(self.by_lookup) < MAX_CAUSES:
            self.by_lookup[lid] = cause
        else:
            self.evicted += 1
        if lookup is not None and len(self.examples) < MAX_EXAMPLES:
            self.examples.append((lookup, cause))

    def keep_forwarders(self, is_forwarder: Callable[[str], bool]) -> None:
        """The capture is read: keep the ``local`` causes of the lookups whose server was
        seen forwarding (``is_forwarder``), and drop the others (not a forwarder's)."""
        local = Cause("local")
        servers: dict[str, bool] = {}
        for lid, server in self._unsure:
            if servers.setdefault(server, is_forwarder(server)):
                self._keep(lid, None, local)
        for lookup, cause in self._unsure_examples:
            if servers.get(lookup.first.dst) and len(self.examples) < MAX_EXAMPLES:
                self.examples.append((lookup, cause))
        self.examples.sort(key=lambda e: e[0].first.time)
        self._unsure.clear()
        self._unsure_examples.clear()

    def finish(self) -> None:
        """The capture ended: every waiting lookup gets its cause from what is known."""
        while self._waiting:
            self._resolve(next(iter(self._waiting)))


@dataclass(frozen=True, slots=True)
class UpstreamTally:
    """One upstream server's lookups of the upstream leg, as the core tallied them."""

    server: str
    #: Upstream-leg lookups (a first query and its retransmissions count once).
    queries: int
    retransmissions: int
    answered: int
    #: Not answered, the forwarder's wait over before the capture ended.
    timeouts: int
    #: Not answered when the capture ended, within the wait.
    open_at_end: int
    #: Answers by response code name.
    rcodes: dict[str, int]
    latency: LatencyHistogram


def tallies_from_core(rows: list[tuple[str, dict[str, Any]]]) -> list[UpstreamTally]:
    """The core's upstream tally (``Engine.facts()["upstream"]``), by server address."""
    out = []
    for server, r in rows:
        rcodes = {names.rcode_name(c): n for c, n in r["rcodes"]}
        out.append(UpstreamTally(
            server=server, queries=r["queries"], retransmissions=r["retransmissions"],
            answered=r["answered"], timeouts=r["timeouts"], open_at_end=r["open"],
            rcodes=dict(sorted(rcodes.items())),
            latency=LatencyHistogram.from_core(*r["latency"])))
    return out
