"""Read one capture point: run the analysis over it and keep only what a correlation
needs (``SideCapture``), so the analysis' lookups are freed as soon as a side is read."""

from __future__ import annotations

from collections.abc import Callable

from pcapdns.analysis import Analysis, Progress, analyze
from pcapdns.config import AnalysisConfig
from pcapdns.correlate.records import CorrelateConfig, Packet, Query, Side, SideCapture
from pcapdns.dns.message import Message
from pcapdns.output.document import input_json


def read_side(side: Side, paths: list[str], analysis: AnalysisConfig,
              config: CorrelateConfig, progress: Progress | None = None) -> SideCapture:
    """Analyze ``paths`` as one capture point.

    Raises:
        InputError: an input is missing, not a capture, or has an unsupported link type.
        CoreError: the compiled core hit a bug on the inputs.
    """
    return from_analysis(
        side, analyze(paths, analysis, keep_lookups=True, progress=progress), config)


def from_analysis(side: Side, a: Analysis, config: CorrelateConfig) -> SideCapture:
    """The queries of ``a`` as compact records, in time order, at most
    ``config.max_queries`` of them (the latest are forgotten and counted)."""
    rows: list[Query] = []
    lookups = a.lookups or []
    a.lookups = None
    lookup_count = len(lookups)
    # Addresses and names repeat from query to query, but each message brings its own copy
    # of them: one copy each is kept instead (a third of the memory on a busy node).
    shared: dict[str, str] = {}
    one = shared.setdefault
    while lookups:
        # Taken from the end, so that each lookup is freed as soon as its records are made.
        lk = lookups.pop()
        for t in lk.attempts:
            q, r = t.query, t.response
            if q.qname is None:
                continue  # no question: nothing to pair it on
            name = one(q.qname, q.qname)
            rows.append(Query(
                packet=_packet(q, one), response=_packet(r, one) if r is not None else None,
                rcode=r.rcode if r is not None else None, id=q.id, qname=name,
                qtype=q.qtype, lookup=lk.id if side == "client" else 0,
                attempt=t.attempt, key=(q.id, one(name.lower(), name.lower()), q.qtype)))
    del shared
    rows.sort(key=lambda x: (x.packet.time, x.packet.frame))
    evicted = max(0, len(rows) - config.max_queries)
    if evicted:
        del rows[config.max_queries:]
    by_lookup: dict[int, list[int]] = {}
    if side == "client":
        for i, x in enumerate(rows):
            by_lookup.setdefault(x.lookup, []).append(i)
    warnings = [f"{side} side: {w}" for w in a.warnings]
    if evicted:
        warnings.append(
            f"{side} side: {evicted:,} queries (the latest) were forgotten to keep the "
            f"correlation within {config.max_queries:,} queries per side: they are not "
            "judged (a lookup with earlier attempts is judged on those)")
    return SideCapture(
        side=side,
        inputs=tuple(input_json(f) for f in a.files),
        queries=tuple(rows),
        lookups=tuple(tuple(v) for v in by_lookup.values()),
        lookup_count=lookup_count,
        first_time=a.first_time,
        last_time=a.last_time,
        evicted=evicted,
        warnings=tuple(warnings),
    )


def _packet(m: Message, one: Callable[[str, str], str]) -> Packet:
    return Packet(m.frame, m.time, one(m.src, m.src), m.sport, one(m.dst, m.dst), m.dport)
