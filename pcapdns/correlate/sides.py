"""Read one capture point: run the analysis over it and keep only what a correlation
needs (``SideCapture``). The analysis streams its lookups here as they close
(``analyze(every_lookup=...)``), so no side's lookups are ever held all at once: what stays
is one small record per query, at most ``CorrelateConfig.max_queries`` of them."""

from __future__ import annotations

from collections.abc import Callable

from pcapdns.analysis import Analysis, Progress, analyze
from pcapdns.config import AnalysisConfig
from pcapdns.coredns_log.index import LogIndex
from pcapdns.coredns_log.join import LogJoin
from pcapdns.correlate.records import CorrelateConfig, Packet, Query, Side, SideCapture
from pcapdns.dns.message import Message
from pcapdns.match.records import Lookup
from pcapdns.output.document import input_json


class SideReader:
    """Takes one side's lookups as they close and keeps their queries as compact records."""

    def __init__(self, side: Side, config: CorrelateConfig) -> None:
        self.side = side
        self.max_queries = config.max_queries
        self.rows: list[Query] = []
        self.lookups = 0
        #: Queries not kept because ``max_queries`` were kept already.
        self.evicted = 0
        # Addresses and names repeat from query to query, but each message brings its own
        # copy of them: one copy each is kept instead (a third of the memory on a busy node).
        self._shared: dict[str, str] = {}

    def add(self, lk: Lookup) -> None:
        self.lookups += 1
        one = self._shared.setdefault
        for t in lk.attempts:
            q, r = t.query, t.response
            if q.qname is None:
                continue  # no question: nothing to pair it on
            if len(self.rows) >= self.max_queries:
                self.evicted += 1
                continue
            name = one(q.qname, q.qname)
            self.rows.append(Query(
                packet=_packet(q, one), response=_packet(r, one) if r is not None else None,
                rcode=r.rcode if r is not None else None, id=q.id, qname=name,
                qtype=q.qtype, lookup=lk.id if self.side == "client" else 0,
                attempt=t.attempt, key=(q.id, one(name.lower(), name.lower()), q.qtype)))

    def finish(self, a: Analysis, log: LogJoin | None = None) -> SideCapture:
        """The side as read, ``a`` being the analysis that streamed its lookups here."""
        side, rows = self.side, self.rows
        self.rows, self._shared = [], {}
        rows.sort(key=lambda x: (x.packet.time, x.packet.frame))
        by_lookup: dict[int, list[int]] = {}
        if side == "client":
            for i, x in enumerate(rows):
                by_lookup.setdefault(x.lookup, []).append(i)
        warnings = [f"{side} side: {w}" for w in a.warnings]
        if self.evicted:
            warnings.append(
                f"{side} side: {self.evicted:,} queries (those closed last) were not kept, to "
                f"keep the correlation within {self.max_queries:,} queries per side: they "
                "are not judged (a lookup with earlier attempts is judged on those)")
        joined = log.finish() if log is not None else None
        if joined is not None:
            warnings.extend(f"{side} side: CoreDNS log: {w}" for w in joined.warnings)
        return SideCapture(
            side=side,
            inputs=tuple(input_json(f) for f in a.files),
            queries=tuple(rows),
            lookups=tuple(tuple(v) for v in by_lookup.values()),
            lookup_count=self.lookups,
            first_time=a.first_time,
            last_time=a.last_time,
            evicted=self.evicted,
            warnings=tuple(warnings),
            coredns_log=joined,
        )


def read_side(side: Side, paths: list[str], analysis: AnalysisConfig,
              config: CorrelateConfig, progress: Progress | None = None,
              coredns_log: LogIndex | None = None) -> SideCapture:
    """Analyze ``paths`` as one capture point; with ``coredns_log``, join CoreDNS's query
    log to its queries too (each query's log entry is kept, for the evidence).

    Raises:
        InputError: an input is missing, not a capture, or has an unsupported link type.
        CoreError: the compiled core hit a bug on the inputs.
    """
    reader = SideReader(side, config)
    log = None
    hook: Callable[[Lookup], None] = reader.add
    if coredns_log is not None:
        log = LogJoin(coredns_log, per_transaction=True, slow=analysis.slow)
        join_one, add = log.every_lookup, reader.add

        def hook(lk: Lookup) -> None:
            join_one(lk)
            add(lk)

    a = analyze(paths, analysis, progress=progress, every_lookup=hook)
    return reader.finish(a, log)


def from_analysis(side: Side, a: Analysis, config: CorrelateConfig) -> SideCapture:
    """The queries of ``a``, an analysis made with ``keep_lookups=True``, as a side."""
    reader = SideReader(side, config)
    for lk in a.lookups or ():
        reader.add(lk)
    return reader.finish(a)


def _packet(m: Message, one: Callable[[str, str], str]) -> Packet:
    return Packet(m.frame, m.time, one(m.src, m.src), m.sport, one(m.dst, m.dst), m.dport)
