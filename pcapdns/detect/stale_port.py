"""A client port that stopped getting answers while the client's other ports still do.

A **stale port** (docs/analysis.md) is a run of at least ``MIN_FAILED`` failed lookups from
one client IP and UDP source port to one server, after the first of which that port gets no
answer from that server for ``WINDOW`` seconds (or until the capture ends), while lookups
from the same client's other ports are answered. An answer on the port inside that time
ends the run: the failures before it were losses, not a stuck port.

That is what a client pinned to a stale conntrack or IPVS entry looks like after a CoreDNS
pod was deleted (IPVS kept such UDP entries for about 5 minutes on kernels before the fix),
but only when the server is the cluster's DNS. The same shape comes from any per-flow state
on the way to a server (a NAT, a firewall, a load balancer), so the finding states the fact,
and ``name_cause`` adds the Kubernetes cause once the analysis knows the server is the
cluster's DNS (``cluster_dns_servers``: hard facts only).

Lookups reach the detector when they close, not in time order: an answered one about a
second after its answer, a failed one ``max_wait`` after its last attempt. So an answer
on a port is remembered until every failure that may precede it has been fed, and a run is
judged ``settle`` seconds after its window, when every answer from the window has been fed.

The answers and the clock are facts about every lookup, kept by ``pcapdns._core.Facts``
(core/src/facts.rs) so that a healthy lookup need not reach this detector: it is given the
failed lookups, the answers it asked to watch (``watch_client`` for a client with waiting
runs, ``watch_port`` for a port with a run) and a ``tick`` when the clock reaches the first
due time (``wake_at``). The facts' answer memory is bounded by time and by caps (what
they drop is counted in their ``answers_evicted``, this detector's ``evicted``); this
detector's own state, all bounded too (the failed lookups a cap or a forgotten answer leaves
unjudged are counted in ``skipped``):

``_runs``      failed lookups on a (client, port, server) since its last answer;
``_waiting``   per client, its runs that no answer from another port has confirmed yet;
``_due``       when each run is to be judged, oldest first (judged as time passes, never by
               a pass over every run).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from pcapdns import _core
from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding, ms
from pcapdns.match.records import Lookup
from pcapdns.pods import PodDirectory
from pcapdns.read.capture_meta import CaptureMeta

#: Seconds after a run's first failed lookup during which the port must get no answer.
WINDOW = _core.STALE_WINDOW
#: Distinct failed lookups in a run before the port is called stale.
MIN_FAILED = 3
#: Failed lookups kept per run as the finding's evidence (the rest are counted).
MAX_EVIDENCE = 20
#: Cap on the runs, for floods of stuck ports (the facts cap the answers and clients).
MAX_RUNS = 10_000

_INF = math.inf
_Key = tuple[str, int, str]


@dataclass(slots=True)
class _Run:
    """Failed lookups on one (client, port, server) with no answer on it since the first."""

    key: _Key
    #: First attempt of the earliest failed lookup, and of the latest.
    start: float
    last: float
    #: Failed lookups in the run.
    count: int
    #: The first ``MAX_EVIDENCE`` of them.
    lookups: list[Lookup]
    #: When the run is to be judged (or, once reported, forgotten).
    due: float
    #: The client's lookups from another port were answered within the window.
    others: bool = False
    #: Time of an answer on the port after the window: failures after it are not this run's.
    recovered: float = _INF
    #: Reported: later failures on the port belong to the same stuck period.
    reported: bool = False


class StalePort:
    """Window detector: feed lookups as they close; reports each stuck period of a port once.

    With ``facts`` (shared with the other window detectors, told of every lookup by the
    caller) it is fed only the lookups the facts say it watches; without, it keeps facts of
    its own from every lookup it is fed.
    """

    def __init__(self, config: AnalysisConfig, facts: _core.Facts | None = None) -> None:
        self.config = config
        self._own_facts = facts is None
        self.facts = _core.Facts(config) if facts is None else facts
        self._settle = self.facts.settle_time
        # A failure older than the facts' answer memory may have had an answer after it
        # that is forgotten.
        self._memory = self.facts.answer_memory
        self._runs: dict[_Key, _Run] = {}
        self._waiting: dict[str, dict[_Key, _Run]] = {}
        self._due: deque[tuple[float, _Key]] = deque()
        #: Failed lookups not judged: fed too late, or when the state was full.
        self.skipped = 0
        #: The wake time last asked of the facts, which keep it until asked again (no other
        #: detector asks): asked again only when it changes, not at every lookup.
        self._wake: float | None = None

    @property
    def evicted(self) -> int:
        """Answer memory entries (client ports and clients) dropped at the facts' caps."""
        return self.facts.answers_evicted

    def feed(self, lookup: Lookup) -> list[Finding]:
        if self._own_facts:
            self.facts.closed(lookup)
        answer = lookup.answer
        if answer is not None:
            if answer.response is not None and answer.query.transport == "udp":
                self._answer(answer.query.src, answer.query.sport, answer.query.dst,
                             answer.response.time)
        elif not lookup.open_at_end and lookup.attempts[0].query.transport == "udp":
            self._failure(lookup)
        return self.tick()

    def tick(self) -> list[Finding]:
        """Time passed (the facts' clock reached the wake time asked for): judge the runs
        that are due, and ask to be woken at the next due time."""
        due = self._due
        out = self._judge_due() if due and due[0][0] <= self.facts.latest_query else []
        wake = due[0][0] if due else _INF
        if wake != self._wake:
            self._wake = wake
            self.facts.wake_at(wake)
        return out

    # -- answers ---------------------------------------------------------------------------

    def _answer(self, client: str, port: int, server: str, t: float) -> None:
        """An answer on (client, port, server) at ``t``, which the facts hold already."""
        waiting = self._waiting.get(client)
        if waiting is not None:
            self._confirm(client, waiting, port, t)
        key = (client, port, server)
        run = self._runs.get(key)
        if run is not None:
            self._answer_on_run(key, run, t)

    def _confirm(self, client: str, waiting: dict[_Key, _Run], port: int, t: float) -> None:
        """An answer to ``client`` on ``port`` at ``t``: the runs of its other ports whose
        window holds ``t`` are not an outage of the whole client."""
        for key in [k for k, run in waiting.items()
                    if k[1] != port and run.start <= t <= run.start + WINDOW]:
            waiting.pop(key).others = True
        if not waiting:
            del self._waiting[client]
            self.facts.unwatch_client(client)

    def _drop(self, run: _Run) -> None:
        """Forget a run (judged, or ended by an answer)."""
        del self._runs[run.key]
        self.facts.unwatch_port(*run.key)
        client = run.key[0]
        waiting = self._waiting.get(client)
        if waiting is not None and waiting.pop(run.key, None) is not None and not waiting:
            del self._waiting[client]
            self.facts.unwatch_client(client)

    def _answer_on_run(self, key: _Key, run: _Run, t: float) -> None:
        if run.reported:
            self._drop(run)  # the port works again; a later stuck period is new
        elif t > run.start + WINDOW:
            run.recovered = min(run.recovered, t)
        elif t >= run.start:
            # Answered inside the window: the failures before the answer were losses. Those
            # past the evidence cap were fed last, so they are taken to come after it.
            keep = [lk for lk in run.lookups if lk.first.time > t]
            if not keep:
                self._drop(run)
                return
            run.count = len(keep) + run.count - len(run.lookups)
            run.lookups = keep
            run.start = min(lk.first.time for lk in keep)
            run.due = run.start + WINDOW + self._settle
            self._due.append((run.due, key))
            run.others = False
            self._check_others(run)

    # -- failures --------------------------------------------------------------------------

    def _failure(self, lookup: Lookup) -> None:
        q = lookup.first
        port = q.sport
        for a in lookup.attempts:
            if a.query.sport != port:
                return  # a resolver that changes ports cannot be stuck on one
        f = q.time
        facts = self.facts
        if f < facts.latest_query - self._memory or f <= facts.forgotten:
            self.skipped += 1  # an answer after it may already be forgotten
            return
        key = (q.src, port, q.dst)
        if facts.answered_at(*key) >= f:
            return  # the port was answered after it
        run = self._runs.get(key)
        if run is None:
            if len(self._runs) >= MAX_RUNS:
                self.skipped += 1
                return
            due = f + WINDOW + self._settle
            run = self._runs[key] = _Run(key, f, f, 0, [], due)
            facts.watch_port(*key)
            self._due.append((due, key))
        elif f > run.recovered:
            # After the port recovered: a new run, which has to wait for this one to be
            # judged (rare: the port failed again within a minute of working again).
            self.skipped += 1
            return
        run.count += 1
        run.last = max(run.last, f)
        if f < run.start:
            run.start = f  # judged a little late then, never early
        if not run.reported and len(run.lookups) < MAX_EVIDENCE:
            run.lookups.append(lookup)
        if not run.others:
            self._check_others(run)

    def _check_others(self, run: _Run) -> None:
        """Whether another port of the client was answered in the run's window, from the
        answers fed so far; if not yet, the run waits for one (``_confirm``)."""
        client, port, _ = run.key
        other = self.facts.other_answer(client, port)
        if run.start <= other <= run.start + WINDOW:
            run.others = True
            return
        waiting = self._waiting.get(client)
        if waiting is None:
            waiting = self._waiting[client] = {}
            self.facts.watch_client(client)
        waiting[run.key] = run

    # -- judging ---------------------------------------------------------------------------

    def _judge_due(self) -> list[Finding]:
        out: list[Finding] = []
        due, now = self._due, self.facts.latest_query
        while due and due[0][0] <= now:
            when, key = due.popleft()
            run = self._runs.get(key)
            if run is None or run.due != when:
                continue  # judged already, or moved by an answer
            if run.reported:
                # Forget a reported run once its port has been quiet for a window.
                if run.last + WINDOW + self._settle > now:
                    run.due = run.last + WINDOW + self._settle
                    due.append((run.due, key))
                else:
                    self._drop(run)
                continue
            f = self._judge(run)
            if f is None:
                self._drop(run)
                continue
            out.append(f)
            run.reported = True
            run.lookups = []
            run.due = max(run.last, run.start + WINDOW) + WINDOW + self._settle
            due.append((run.due, key))
        return out

    def _judge(self, run: _Run, at_end: bool = False) -> Finding | None:
        """The finding for a run whose window is over (or cut by the capture's end)."""
        if run.count < MIN_FAILED or not run.others:
            return None  # no other port answered either: an outage, not one stuck port
        return _finding(run, cut_short=at_end and self.facts.latest_query < run.start + WINDOW)

    def finish(self) -> list[Finding]:
        """The capture ended: judge the runs still waiting (every lookup is in now)."""
        out = []
        for run in self._runs.values():
            if not run.reported:
                f = self._judge(run, at_end=True)
                if f is not None:
                    out.append(f)
        self._runs.clear()
        self._waiting.clear()
        self._due.clear()
        if self._own_facts:
            self.facts.finish()  # the collector finishes shared facts after every detector
        return out


def _finding(run: _Run, cut_short: bool) -> Finding:
    run.lookups.sort(key=lambda lk: lk.first.time)
    first = run.lookups[0]
    q = first.first
    frames = [t.query.frame for lk in run.lookups for t in lk.attempts]
    over = f" over {ms(run.last - run.start)}" if run.last > run.start else ""
    until = ("before the capture ended" if cut_short
             else f"for at least {WINDOW:g} s after the first of them")
    detail = (
        f"{run.count} lookups from {q.src}:{q.sport} to {q.dst} failed{over}, and that port got no "
        f"answer from {q.dst} {until}, while the same client's lookups from other ports "
        "were answered."
    )
    return finding("stale_port", "error", first, frames, detail, subjects=tuple(run.lookups))


# -- the server's role, known only at the end of the analysis ------------------------------


def cluster_dns_servers(meta: CaptureMeta | None, dnat: Collection[str],
                        pods: PodDirectory | None = None) -> dict[str, str]:
    """Server addresses known to be the cluster's DNS, each with the fact that shows it.

    Only facts count, never the look of an address: a DNAT seen in the capture (the same
    query before and after kube-proxy rewrote its destination, ``Deduplicator.dnat_servers``:
    the Service address and the pod behind it), and the nameservers of a resolv.conf recorded
    in capture.json whose search list holds a ``svc`` domain (kubelet writes
    ``<namespace>.svc.<cluster domain>`` into a pod's resolv.conf when it points the pod at
    the cluster's DNS), and the CoreDNS pods and kube-dns Service of a pods listing
    (``--pods``: recognized by their ``k8s-app`` label).
    """
    out: dict[str, str] = {}
    if pods is not None:
        out.update(pods.cluster_dns())
    for address in sorted(dnat):
        out.setdefault(address, "a DNAT of DNS queries to or from it was seen in the capture")
    rc = meta.resolv_conf if meta is not None else None
    if rc is not None and any("svc" in d.lower().split(".") for d in rc.search):
        for address in rc.nameservers:
            out.setdefault(address, "a nameserver in the captured pod's resolv.conf")
    return out


def name_cause(f: Finding, cluster_dns: Mapping[str, str]) -> Finding:
    """``f`` with the Kubernetes cause, when its server is known to be the cluster's DNS."""
    why = cluster_dns.get(f.server)
    if f.kind != "stale_port" or why is None or f.cluster_dns:
        return f
    return replace(
        f,
        cluster_dns=True,
        detail=(f"{f.detail} {f.server} is the cluster's DNS ({why}): the likely cause is a "
                "stale conntrack or IPVS entry for this port that still points at a DNS pod "
                "that was removed."),
    )
