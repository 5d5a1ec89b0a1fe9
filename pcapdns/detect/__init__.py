"""Stage 5: lookups -> findings.

Detectors are pure functions, one module each, listed explicitly in ``DETECTORS``. A
detector that raises does not stop the analysis: the error becomes a ``detector_error``
finding (as mitmproxy's safecall does for addons).

Every closed lookup is told to the ``Facts`` (``pcapdns._core.Facts``, core/src/facts.rs:
the answer memory and the clocks of the window detectors); the detectors need to see only
the lookups ``_core.may_be_flagged`` picks and those the facts say the window detectors
watch. ``FindingCollector.lookup`` tells the facts of one lookup and gives it to the
detectors; the engine, which tells the same facts every lookup itself, calls ``detect``
and ``tick`` instead, and gives the same findings.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pcapdns import _core
from pcapdns.config import AnalysisConfig
from pcapdns.detect import (
    aaaa_race,
    fanout,
    late_response,
    lost_in_node,
    orphans,
    rcode,
    reply_not_delivered,
    retransmission,
    slow,
    timeout,
    truncation,
    unexpected_source,
    upstream_error,
    upstream_timeout,
)
from pcapdns.detect.base import (
    SEVERITY_RANK,
    Detector,
    Finding,
    FindingKind,
    Severity,
    new_finding,
)
from pcapdns.detect.search_expansion import SearchExpansion
from pcapdns.detect.stale_port import StalePort
from pcapdns.match.records import Lookup, Orphan
from pcapdns.upstream import Causes

DETECTORS: tuple[tuple[str, Detector], ...] = (
    ("timeout", timeout.detect),
    ("retransmission", retransmission.detect),
    ("truncation", truncation.detect),
    ("aaaa_race", aaaa_race.detect),
    ("rcode", rcode.detect),
    ("slow", slow.detect),
    ("fanout", fanout.detect),
    ("late_response", late_response.detect),
    ("lost_in_node", lost_in_node.detect),
    ("reply_not_delivered", reply_not_delivered.detect),
    ("unexpected_source", unexpected_source.detect),
    ("upstream_timeout", upstream_timeout.detect),
    ("upstream_error", upstream_error.detect),
)


#: Causes and the symptoms each accounts for when both are found on one lookup, in the
#: order they are applied: the symptom then becomes evidence under its cause (the cause's
#: ``explains``), one problem per cause. A lost A/AAAA race is why the client re-sent its
#: query and why the answer came 5 s late; a timeout is why it re-sent; a retransmission
#: (the first try got no answer) is why the answer came late. An info-level finding is
#: context, not a cause. A packet lost inside the node (its legs, docs/analysis.md) is why
#: the client timed out, re-sent and got its answer late.
EXPLAINS: tuple[tuple[FindingKind, tuple[FindingKind, ...]], ...] = (
    ("lost_in_node", ("timeout", "retransmission", "slow_response")),
    ("reply_not_delivered", ("retransmission", "slow_response")),
    ("unexpected_source", ("retransmission", "slow_response")),
    ("aaaa_race_lost", ("retransmission", "slow_response")),
    ("timeout", ("retransmission",)),
    ("upstream_timeout", ("retransmission",)),
    ("upstream_error", ("retransmission", "slow_response")),
    ("late_response", ("retransmission", "slow_response")),
    ("retransmission", ("slow_response",)),
)


#: A forwarder's upstream failures and the symptoms they cause on the forwarder's clients'
#: lookups of the same question (``FindingCollector.fold_downstream``): those become evidence
#: under the upstream finding, one problem per cause.
DOWNSTREAM_SYMPTOMS: tuple[tuple[FindingKind, tuple[FindingKind, ...]], ...] = (
    ("upstream_timeout", ("timeout", "servfail", "retransmission", "slow_response")),
    ("upstream_error", ("servfail", "refused")),
)


def explain(found: list[Finding]) -> list[Finding]:
    """Fold the symptoms of one lookup's findings into their causes (see ``EXPLAINS``).

    A cause takes the most severe severity of what it explains: a retransmission that made
    an answer 5 s late is as bad as the late answer.
    """
    kinds = {f.kind for f in found}
    out = found
    for cause, symptoms in EXPLAINS:
        if cause not in kinds or not kinds.intersection(symptoms):
            continue
        causes = [f for f in out if f.kind == cause and f.severity != "info"]
        if not causes:
            continue
        absorbed = [f for f in out if f.kind in symptoms]
        worst = min((f.severity for f in (*causes, *absorbed)), key=SEVERITY_RANK.__getitem__)
        gone = tuple(dict.fromkeys(f.kind for f in absorbed))
        out = [
            new_finding(f.kind, worst, f.time, f.client, f.server, f.qname, f.qtype, f.frames,
                        f.detail, f.subjects, tuple(dict.fromkeys((*f.explains, *gone))),
                        f.cluster_dns)
            if f.kind == cause and f.severity != "info"
            else f
            for f in out
            if f.kind not in symptoms
        ]
        kinds = {f.kind for f in out}
    return out


class WindowDetector(Protocol):
    """A detector that correlates lookups with each other (bounded state, no I/O); what it
    needs of the lookups it is not fed, it reads from the shared ``Facts``."""

    def feed(self, lookup: Lookup) -> Sequence[Finding]: ...

    def tick(self) -> Sequence[Finding]: ...

    def finish(self) -> Sequence[Finding]: ...


#: Detectors that look across lookups, built fresh for each analysis.
WINDOW_DETECTORS: tuple[
    tuple[str, Callable[[AnalysisConfig, _core.Facts], WindowDetector]], ...
] = (
    ("search_expansion", SearchExpansion),
    ("stale_port", StalePort),
)


@dataclass(slots=True)
class AggregatedFinding:
    """Findings of one kind about the same client, server, name and type, merged.

    Keeps memory bounded by the number of distinct problems, not their repetitions, and
    each distinct problem small (there are up to ``max_findings_per_kind`` of each kind):
    the fields of its first finding as the document shows them, and its evidence frames
    packed, in one object; no ``Finding`` is kept (``first`` builds one).
    """

    kind: FindingKind
    #: The most severe severity of the merged findings.
    severity: Severity
    #: Time of the first occurrence; its client, server, name, type and sentence.
    time: float
    client: str
    server: str
    qname: str
    qtype: str
    detail: str
    #: Every kind the merged findings explain, in the order first found.
    explains: tuple[FindingKind, ...]
    cluster_dns: bool
    #: Time of the last occurrence.
    last_time: float
    #: The evidence frames within ``max_evidence_frames``, in the order found, packed as an
    #: array('Q')'s bytes: 8 bytes a frame instead of an int object and a pointer.
    packed: bytes = field(repr=False)
    #: How many of them are the first occurrence's.
    first_frames: int = field(repr=False)
    #: How many times the problem was seen.
    count: int = 1
    #: Evidence frames left out because of the cap.
    frames_omitted: int = 0

    @property
    def frames(self) -> list[int]:
        """Evidence frames, capped at ``max_evidence_frames``, in the order found."""
        return array("Q", self.packed).tolist()

    @property
    def first(self) -> Finding:
        """The merged problem as a ``Finding``: the first occurrence's frames (within the
        cap), the severity and explains of all; built on each call."""
        frames = tuple(array("Q", self.packed[:self.first_frames << 3]))
        return new_finding(self.kind, self.severity, self.time, self.client, self.server,
                           self.qname, self.qtype, frames, self.detail, (), self.explains,
                           self.cluster_dns)


class FindingCollector:
    """Runs every detector on each closed lookup and merges repeated findings.

    ``facts`` are the window detectors' facts about every lookup; the caller that tells
    them every lookup itself (the engine) passes the ones it tells.
    """

    def __init__(self, config: AnalysisConfig, facts: _core.Facts | None = None) -> None:
        self.config = config
        self.facts = _core.Facts(config) if facts is None else facts
        #: The aggregates of each kind by (client, server, name in lower case, type).
        self._by_kind: dict[str, dict[tuple[str, str, str, str], AggregatedFinding]] = {}
        #: Detector failures, by detector name.
        self.errors: dict[str, int] = {}
        self._windows = [(name, make(config, self.facts)) for name, make in WINDOW_DETECTORS]
        #: Distinct findings listed so far, by kind.
        self._per_kind: dict[str, int] = {}
        #: Findings of each kind (counting repeats) whose lookup failed (``Lookup.failed``),
        #: so that a summary can say how many of a problem's lookups are among the failed.
        self.on_failed: dict[str, int] = {}
        #: The first findings of each kind as found, with their subjects (evidence tables).
        self._examples: dict[str, list[Finding]] = {}
        #: Names and sentences of the aggregates, each kept once (see ``add``).
        self._strings: dict[str, str] = {}
        #: What the aggregates explain, each kept once.
        self._tuples: dict[tuple[FindingKind, ...], tuple[FindingKind, ...]] = {}
        #: The cause of each failed or slow downstream lookup of a forwarder.
        self.causes = Causes(config, self.facts)

    def evicted(self) -> dict[str, int]:
        """What each window detector forgot at its cap (its ``evicted`` count), by name."""
        return {name: getattr(w, "evicted", 0) for name, w in self._windows}

    def lookup(self, lookup: Lookup) -> None:
        """A closed lookup, every one in the order they close: its facts, then detectors."""
        try:
            self.facts.closed(lookup)
        except Exception as e:  # noqa: BLE001 - a bug in the facts must not end the run
            self._lookup_failed("lookup_facts", e, lookup)
        self.detect(lookup)

    def detect(self, lookup: Lookup) -> None:
        """Run the detectors on a closed lookup whose facts were told already: every lookup
        that ``may_be_flagged`` or that the facts said are ``WATCHED``."""
        # Each detector guarded in place (no helper call): this runs a dozen times for
        # every lookup.
        for name, window in self._windows:
            try:
                found = window.feed(lookup)
            except Exception as e:  # noqa: BLE001 - a detector bug must not end the run
                self._lookup_failed(name, e, lookup)
                continue
            for f in found:
                self.add(f)
        try:
            self.causes.feed(lookup)
        except Exception as e:  # noqa: BLE001 - a bug here must not end the run
            self._lookup_failed("upstream_cause", e, lookup)
        config = self.config
        mine: list[Finding] = []
        for name, detect in DETECTORS:
            try:
                found = detect(lookup, config)
            except Exception as e:  # noqa: BLE001 - a detector bug must not end the run
                self._lookup_failed(name, e, lookup)
                continue
            if found:
                mine.extend(found)
        if not mine:
            return
        if len(mine) > 1:
            mine = explain(mine)
        failed = lookup.failed
        for f in mine:
            if failed:
                self.on_failed[f.kind] = self.on_failed.get(f.kind, 0) + 1
            self.add(f)

    def _lookup_failed(self, name: str, e: Exception, lookup: Lookup) -> None:
        q = lookup.first
        self._detector_failed(name, e, "this lookup", q.time, q.src, q.dst, q.qname or "",
                              q.frame)

    def orphan(self, orphan: Orphan) -> None:
        try:
            found = orphans.detect(orphan)
        except Exception as e:  # noqa: BLE001 - the orphans detector is a detector too
            self._detector_failed("orphans", e, "this message", orphan.time, orphan.client,
                                  orphan.server, orphan.qname, orphan.frame)
            return
        for f in found:
            self.add(f)

    def _detector_failed(
        self, name: str, e: Exception, what: str, time: float, client: str, server: str,
        qname: str, frame: int,
    ) -> None:
        """Record a detector failure as a finding about what it was given (``what``)."""
        self.errors[name] = self.errors.get(name, 0) + 1
        self.add(
            Finding("detector_error", "warning", time, client, server, qname, "", (frame,),
                    f"detector {name} failed on {what}: {type(e).__name__}: {e}")
        )

    def whole_capture(self, found: Sequence[Finding]) -> None:
        """Findings about the capture as a whole rather than one lookup (a replica that
        stands apart), made once it has been read."""
        for f in found:
            self.add(f)

    def add(self, f: Finding) -> None:
        # Runs once per finding (tens of thousands on a busy node): one dict look-up per
        # question, and a new record only when the merged one changes. The aggregates are
        # kept in a dict per kind: the kind need not be in every key, and the dicts, each
        # filled up to the cap of its kind, grow less at each resize than one dict of all.
        config = self.config
        kind = f.kind
        if f.subjects:
            examples = self._examples.get(kind)
            if examples is None:
                examples = self._examples[kind] = []
            if len(examples) < config.max_examples_per_kind:
                examples.append(f)
        low = f.qname.lower()
        key = (f.client, f.server, low, f.qtype)
        by_key = self._by_kind.get(kind)
        if by_key is None:
            by_key = self._by_kind[kind] = {}
        agg = by_key.get(key)
        explains = f.explains
        if agg is None and self._per_kind.get(kind, 0) >= config.max_findings_per_kind:
            # Random names (tunnels, scans) would make the list grow with the capture:
            # past the cap, further problems of this kind are counted in one entry, which
            # takes their severity, time and frames but not what they explain.
            key = ("", "", "*", "")
            agg = by_key.get(key)
            explains = ()
            if agg is None:
                low = "*"
                f = Finding(kind, f.severity, f.time, "", "", "*", "", f.frames,
                            f"more {kind} findings for other clients, servers and names "
                            f"than the {config.max_findings_per_kind} listed; they are "
                            "counted here")
        frames = f.frames
        cap = config.max_evidence_frames
        if agg is None:
            self._per_kind[kind] = self._per_kind.get(kind, 0) + 1
            # The aggregate outlives the lookup: it keeps the finding's fields, not the
            # finding with its subjects. Its name and sentence are kept once for all the
            # aggregates that share them (a name has findings of several kinds, a sentence
            # repeats from client to client), and the key shares the name when it is in
            # lower case already.
            strings = self._strings
            qname = strings.setdefault(f.qname, f.qname)
            low = qname if low == qname else strings.setdefault(low, low)
            explains = f.explains
            if explains:
                explains = self._tuples.setdefault(explains, explains)
            omitted = 0
            if len(frames) > cap:
                omitted = len(frames) - cap
                frames = frames[:cap]
            by_key[(f.client, f.server, low, f.qtype)] = AggregatedFinding(
                kind, f.severity, f.time, f.client, f.server, qname, f.qtype,
                strings.setdefault(f.detail, f.detail), explains, f.cluster_dns, f.time,
                array("Q", frames).tobytes(), len(frames), 1, omitted)
            return
        agg.count += 1
        if f.time > agg.last_time:
            agg.last_time = f.time
        if explains and not set(explains) <= set(agg.explains):
            union = tuple(dict.fromkeys((*agg.explains, *explains)))
            agg.explains = self._tuples.setdefault(union, union)
        if f.severity != agg.severity and (
            SEVERITY_RANK[f.severity] < SEVERITY_RANK[agg.severity]
        ):
            agg.severity = f.severity
        room = cap - (len(agg.packed) >> 3)
        if len(frames) > room:
            room = max(room, 0)
            agg.frames_omitted += len(frames) - room
            frames = frames[:room]
        if frames:
            agg.packed += array("Q", frames).tobytes()

    def tick(self) -> None:
        """The facts' clock reached the time the window detectors asked to be woken at, on
        a lookup not handed over (the facts said ``TICK``)."""
        self._each_window("tick", "as time passed")

    def finish(self) -> None:
        """The capture ended: let the window detectors report what they still hold."""
        self._each_window("finish", "at the end")
        self.causes.finish()
        self.facts.finish()

    def _each_window(self, method: str, when: str) -> None:
        for name, window in self._windows:
            try:
                found = getattr(window, method)()
            except Exception as e:  # noqa: BLE001 - a detector bug must not end the run
                self.errors[name] = self.errors.get(name, 0) + 1
                self.add(Finding("detector_error", "warning", 0.0, "", "", "", "", (),
                                 f"detector {name} failed {when}: {type(e).__name__}: {e}"))
                continue
            for f in found:
                self.add(f)

    def fold_downstream(self) -> None:
        """Fold the findings about a forwarder's clients into the upstream failure that
        caused them (``DOWNSTREAM_SYMPTOMS``): a finding about the same question, whose
        frames include a downstream query the upstream finding's evidence names (the queries
        its upstream queries were sent for). The forwarder may ask upstream from another
        address than the one it is asked at, so the addresses are not compared: the shared
        frame says it. Its frames join the upstream finding's, its kind the upstream
        finding's ``explains``. Run once the capture is read: the upstream lookup may close
        after its clients'."""
        cap = self.config.max_evidence_frames
        for cause, symptoms in DOWNSTREAM_SYMPTOMS:
            index: dict[tuple[str, str], list[AggregatedFinding]] = {}
            for u in self._by_kind.get(cause, {}).values():
                index.setdefault((u.qname.lower(), u.qtype), []).append(u)
            if not index:
                continue
            for kind in symptoms:
                by_key = self._by_kind.get(kind, {})
                for key, a in list(by_key.items()):
                    found = index.get((a.qname.lower(), a.qtype), ())
                    frames = set(a.frames)
                    hit = next((u for u in found if frames.intersection(u.frames)), None)
                    if hit is None:
                        continue
                    u = hit
                    del by_key[key]
                    union = tuple(dict.fromkeys((*u.explains, kind, *a.explains)))
                    u.explains = self._tuples.setdefault(union, union)
                    if SEVERITY_RANK[a.severity] < SEVERITY_RANK[u.severity]:
                        u.severity = a.severity
                    have = set(u.frames)
                    extra = [f for f in a.frames if f not in have]
                    room = max(cap - (len(u.packed) >> 3), 0)
                    u.frames_omitted += max(len(extra) - room, 0) + a.frames_omitted
                    u.packed += array("Q", extra[:room]).tobytes()
                    self._move_examples(kind, cause, a, u)

    def _move_examples(self, kind: FindingKind, cause: FindingKind, a: AggregatedFinding,
                       u: AggregatedFinding) -> None:
        """The examples of the folded finding ``a`` become examples of ``u``'s kind, so
        that its evidence shows the clients' queries too."""
        examples = self._examples.get(kind)
        if not examples:
            return
        frames = set(u.frames)
        key = (a.client, a.server, a.qname.lower(), a.qtype)
        moved = [f for f in examples
                 if (f.client, f.server, f.qname.lower(), f.qtype) == key
                 and frames.intersection(f.frames)]
        if not moved:
            return
        self._examples[kind] = [f for f in examples if f not in moved]
        room = self.config.max_examples_per_kind - len(self._examples.get(cause, []))
        if room > 0:
            self._examples.setdefault(cause, []).extend(moved[:room])

    def revise(self, kind: FindingKind, change: Callable[[Finding], Finding]) -> None:
        """Let a fact known only once the capture has been read (which servers are the
        cluster's DNS) change what the findings of one kind say; they stay where they are,
        with their frames."""
        for agg in self._by_kind.get(kind, {}).values():
            f = change(agg.first)
            (agg.kind, agg.severity, agg.time, agg.client, agg.server, agg.qname, agg.qtype,
             agg.detail, agg.explains, agg.cluster_dns) = (
                f.kind, f.severity, f.time, f.client, f.server, f.qname, f.qtype, f.detail,
                f.explains, f.cluster_dns)
        if kind in self._examples:
            self._examples[kind] = [change(f) for f in self._examples[kind]]

    def examples(self) -> dict[str, list[Finding]]:
        """The first ``max_examples_per_kind`` findings of each kind, in the order found,
        with the lookups or messages they are about."""
        return {k: list(v) for k, v in self._examples.items()}

    def findings(self) -> list[AggregatedFinding]:
        """All findings, most severe first, then by time."""
        return sorted(
            (agg for by_key in self._by_kind.values() for agg in by_key.values()),
            key=lambda a: (SEVERITY_RANK[a.severity], a.time, a.kind, a.qname),
        )
