"""A reference of the per-lookup path the compiled core runs, and the proof that it finds
what the whole path finds.

The core tells the ``Facts`` (``pcapdns._core.Facts``) every lookup and hands the detectors
only the lookups that ``may_be_flagged`` picks or that the facts say are ``WATCHED``; on a
``TICK`` it lets time pass in the window detectors instead. ``FilteredCollector`` is that path in
Python: a ``FindingCollector`` that is told every lookup, as ``analyze`` tells it, and does
with it what the core would. ``TwinCollector`` runs the whole path and the filtered one side
by side and checks, when the findings are asked for, that they are the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock

from pcapdns import _core
from pcapdns.config import AnalysisConfig
from pcapdns.detect import AggregatedFinding, FindingCollector
from pcapdns.match.records import Lookup, Orphan


@dataclass(slots=True)
class Handover:
    """What the filtered path did with the lookups it was told."""

    #: Lookups closed (all told to the facts).
    lookups: int = 0
    #: Lookups handed to the detectors, and of those, the ones ``may_be_flagged`` picked
    #: and the ones only the facts asked for.
    handed: int = 0
    flagged: int = 0
    watched_only: int = 0
    #: Ticks instead of a lookup.
    ticks: int = 0

    def __iadd__(self, other: Handover) -> Handover:
        self.lookups += other.lookups
        self.handed += other.handed
        self.flagged += other.flagged
        self.watched_only += other.watched_only
        self.ticks += other.ticks
        return self


class FilteredCollector(FindingCollector):
    """A collector fed the way the core feeds one: facts for every lookup, the detectors
    only for the lookups that matter to them."""

    def __init__(self, config: AnalysisConfig) -> None:
        super().__init__(config)
        self.handover = Handover()

    def lookup(self, lookup: Lookup) -> None:
        h = self.handover
        h.lookups += 1
        # Every attempt of a lookup has the same client and server: the facts take them
        # from the first query, the stale-port detector from the answering one.
        if lookup.answer is not None:
            a, q = lookup.answer.query, lookup.first
            assert (a.src, a.dst) == (q.src, q.dst), f"lookup {lookup.id} changes addresses"
        code = self.facts.closed(lookup)
        if _core.may_be_flagged(lookup, self.config):
            h.handed += 1
            h.flagged += 1
            self.detect(lookup)
        elif code == _core.WATCHED:
            h.handed += 1
            h.watched_only += 1
            self.detect(lookup)
        elif code == _core.TICK:
            h.ticks += 1
            self.tick()


def differences(full: FindingCollector, filtered: FindingCollector) -> list[str]:
    """How the filtered collector's results differ from the whole path's (none: [])."""
    out = []
    a, b = FindingCollector.findings(full), FindingCollector.findings(filtered)
    if a != b:
        out.append(f"findings differ:\n  all lookups: {_brief(a)}\n  filtered:    {_brief(b)}")
    ea, eb = full.examples(), filtered.examples()
    if list(ea) != list(eb):
        out.append(f"example kinds differ: {list(ea)} != {list(eb)}")
    for kind in ea:
        if ea[kind] != eb.get(kind) or [subject_ids(f.subjects) for f in ea[kind]] != [
                subject_ids(f.subjects) for f in eb.get(kind, [])]:
            out.append(f"examples of {kind} differ")
    for what in ("errors", "on_failed", "_per_kind"):
        if getattr(full, what) != getattr(filtered, what):
            out.append(f"{what}: {getattr(full, what)} != {getattr(filtered, what)}")
    if full.evicted() != filtered.evicted():
        out.append(f"evicted: {full.evicted()} != {filtered.evicted()}")
    skipped = [getattr(w, "skipped", 0) for _, w in full._windows]
    if skipped != [getattr(w, "skipped", 0) for _, w in filtered._windows]:
        out.append(f"skipped: {skipped} != "
                   f"{[getattr(w, 'skipped', 0) for _, w in filtered._windows]}")
    return out


def subject_ids(subjects: tuple[Lookup | Orphan, ...]) -> list[tuple[str, int]]:
    """The lookups (by id) and orphans (by frame) an example is about."""
    return [("lookup", s.id) if isinstance(s, Lookup) else ("orphan", s.frame)
            for s in subjects]


def _brief(aggs: list[AggregatedFinding]) -> list[tuple[str, str, str, int]]:
    return [(g.first.kind, g.first.client, g.first.qname, g.count) for g in aggs]


class TwinCollector(FindingCollector):
    """The collector an analysis hands its lookups to (the core's filtered path: ``detect``,
    ``tick`` and ``orphan``), with a whole-path collector beside it that the engine tells
    every lookup (``every_lookup``); asking for the findings checks that both found the same
    (``AssertionError`` otherwise)."""

    #: Every twin made while ``twins()`` is active.
    made: list[TwinCollector] = []

    def __init__(self, config: AnalysisConfig) -> None:
        super().__init__(config)
        self.full = FindingCollector(config)
        self.handover = Handover()
        TwinCollector.made.append(self)

    def every_lookup(self, lookup: Lookup) -> None:
        self.handover.lookups += 1
        self.full.lookup(lookup)

    def detect(self, lookup: Lookup) -> None:
        h = self.handover
        h.handed += 1
        if _core.may_be_flagged(lookup, self.config):
            h.flagged += 1
        else:
            h.watched_only += 1
        super().detect(lookup)

    def tick(self) -> None:
        self.handover.ticks += 1
        super().tick()

    def orphan(self, orphan: Orphan) -> None:
        super().orphan(orphan)
        self.full.orphan(orphan)

    def finish(self) -> None:
        super().finish()
        self.full.finish()

    def fold_downstream(self) -> None:
        super().fold_downstream()
        self.full.fold_downstream()

    def revise(self, kind, change) -> None:  # type: ignore[no-untyped-def]
        super().revise(kind, change)
        self.full.revise(kind, change)

    def whole_capture(self, found) -> None:  # type: ignore[no-untyped-def]
        super().whole_capture(found)
        self.full.whole_capture(found)

    def findings(self) -> list[AggregatedFinding]:
        problems = differences(self.full, self)
        assert not problems, "the filtered path found otherwise:\n" + "\n".join(problems)
        return super().findings()


@contextmanager
def twins() -> Iterator[list[TwinCollector]]:
    """Within the block, every ``analyze`` also runs the filtered path and checks it
    finds the same; yields the twins made."""
    made: list[TwinCollector] = []
    TwinCollector.made = made
    with mock.patch("pcapdns.analysis.FindingCollector", TwinCollector):
        yield made
