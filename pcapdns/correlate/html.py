"""The correlation -> one self-contained HTML page (``pcapdns correlate --html``).

Built like the analysis report (pcapdns.report.html): a view model of plain frozen records
made here, one jinja2 template with autoescaping on, and the report's stylesheet inlined.
Every string from the captures (names, addresses) goes through autoescaping; the page has
no script at all, and its Content-Security-Policy forbids any.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from pcapdns import __version__
from pcapdns.coredns_log.join import JoinResult
from pcapdns.correlate.document import OFFSET_METHOD
from pcapdns.correlate.records import FATES, Correlation, Fate, LookupFate, Packet
from pcapdns.correlate.text import logged_note, offset_line, verdict
from pcapdns.dns import names
from pcapdns.output.text import coredns_log_lines
from pcapdns.output.timefmt import iso
from pcapdns.report.html import environment, stylesheet
from pcapdns.report.knowledge import FATE_ADVICE, Advice
from pcapdns.report.model import _shown_command

#: Lookups shown per fate; the JSON document lists them all.
LOOKUPS_PER_FATE = 50


@dataclass(frozen=True, slots=True)
class FrameRow:
    """One packet of a lost lookup, on either side."""

    #: "client" or "server": whose capture the frame is in.
    side: str
    attempt: int
    #: "query" or "answer".
    role: str
    frame: int
    #: Capture time on that side's clock.
    time: str | None
    #: The same instant on the client's clock (server times less the offset).
    client_time: str | None
    source: str
    destination: str
    id: int
    note: str


@dataclass(frozen=True, slots=True)
class LookupView:
    qname: str
    qtype: str
    client: str
    server: str
    time: str | None
    #: The fate of each attempt, in order.
    attempt_fates: tuple[str, ...]
    rows: tuple[FrameRow, ...]


@dataclass(frozen=True, slots=True)
class FateView:
    fate: Fate
    advice: Advice
    count: int
    lookups: tuple[LookupView, ...]
    not_shown: int


@dataclass(frozen=True, slots=True)
class InputRow:
    side: str
    #: The file's base name, shown; its path as given, in the cell's title.
    name: str
    path: str
    packets: int
    first_time: str | None
    last_time: str | None


@dataclass(frozen=True, slots=True)
class CorrelationPage:
    title: str
    span: str
    tone: str
    verdict: tuple[str, ...]
    figures: tuple[tuple[str, str, str], ...]
    clock: tuple[tuple[str, str], ...]
    fates: tuple[FateView, ...]
    servers: tuple[tuple[str, str], ...]
    inputs: tuple[InputRow, ...]
    warnings: tuple[str, ...]
    command: str
    version: str
    #: With ``--pods``: ``namespace/pod`` of the addresses shown (the ``pod`` filter).
    pods: Mapping[str, str] = field(default_factory=dict)


def build(c: Correlation, command: str = "pcapdns correlate") -> CorrelationPage:
    """The page's view model."""
    judged = sum(c.fates.values())
    lost = judged - c.fates["answered"]
    tone = "neutral" if judged == 0 else "ok" if lost == 0 else "bad"
    figures = tuple((f.replace("_", " "), f"{c.fates[f]:,}",
                     "" if f == "answered" or not c.fates[f] else
                     "warn" if f == "unknown" else "bad") for f in FATES)
    k = c.clock
    clock = [("estimate", offset_line(c).split(": ", 1)[1])]
    if k.offset is not None:
        clock += [
            ("method", f"{OFFSET_METHOD.replace('_', ' ')} of the lookups answered on both "
                       "sides, each bounded by its query's and its answer's times"),
            ("pairs", f"{k.pairs:,} used, {k.rejected:,} rejected"),
            ("interval all pairs agree on",
             "none: they disagree" if k.interval is None else
             f"{k.interval[0]:+.6f} .. {k.interval[1]:+.6f} s"),
        ]
    clock.append(("match window", f"{c.config.match_window:g} s (plus the error bound)"))
    logged = coredns_log_lines(c.server.coredns_log)
    if logged:
        clock.append(("CoreDNS log (server side)", logged[0].split(": ", 1)[1]))
    fates = []
    for fate in FATES[1:]:
        of = [lf for lf in c.lost if lf.fate == fate]
        fates.append(FateView(
            fate=fate, advice=FATE_ADVICE[fate], count=len(of),
            lookups=tuple(_lookup(lf, k.offset, c.server.coredns_log)
                          for lf in of[:LOOKUPS_PER_FATE]),
            not_shown=max(0, len(of) - LOOKUPS_PER_FATE)))
    inputs = tuple(InputRow(side=s.side, name=os.path.basename(str(i["path"])),
                            path=str(i["path"]), packets=i["packets"],
                            first_time=i["first_time"], last_time=i["last_time"])
                   for s in (c.client, c.server) for i in s.inputs)
    return CorrelationPage(
        title="Where DNS lookups were lost: two capture points",
        span=f"client {iso(c.client.first_time) or '-'} .. {iso(c.client.last_time) or '-'}",
        tone=tone,
        verdict=verdict(c),
        figures=figures,
        clock=tuple(clock),
        fates=tuple(fates),
        servers=tuple((s.client_side, ", ".join(f"{a} ({n:,} queries)"
                                                for a, n in s.server_side))
                      for s in c.servers),
        inputs=inputs,
        warnings=c.warnings,
        # Output paths cut to their base names, as in the analysis report: a local path
        # carries a user name into the ticket the page is attached to.
        command=_shown_command(command),
        version=__version__,
        pods=pod_labels(c),
    )


def _lookup(lf: LookupFate, offset: float | None, log: JoinResult | None) -> LookupView:
    first = lf.attempts[0].client
    rows: list[FrameRow] = []
    for a in lf.attempts:
        c, s = a.client, a.server
        rows.append(_row("client", c.attempt, "query", c.packet, None, c.id,
                         "sent by the client"))
        if c.response is not None:
            rows.append(_row("client", c.attempt, "answer", c.response, None, c.id,
                             "reached the client"))
        if s is None:
            continue
        rows.append(_row("server", c.attempt, "query", s.packet, offset, s.id,
                         "arrived at the server" + logged_note(a, log)))
        if s.response is not None:
            rcode = names.rcode_name(s.rcode) if s.rcode is not None else "?"
            rows.append(_row("server", c.attempt, "answer", s.response, offset, s.id,
                             f"{rcode} left the server"))
    return LookupView(
        qname=first.qname, qtype=names.qtype_name(first.qtype), client=first.packet.src,
        server=first.packet.dst, time=iso(first.packet.time),
        attempt_fates=tuple(a.fate for a in lf.attempts), rows=tuple(rows))


def _row(side: str, attempt: int, role: str, p: Packet, offset: float | None, id: int,
         note: str) -> FrameRow:
    on_client = p.time if side == "client" else (p.time - offset if offset is not None
                                                 else None)
    return FrameRow(side=side, attempt=attempt, role=role, frame=p.frame, time=iso(p.time),
                    client_time=iso(on_client), source=f"{p.src}:{p.sport}",
                    destination=f"{p.dst}:{p.dport}", id=id, note=note)


def render(c: Correlation, command: str = "pcapdns correlate") -> str:
    """The page for ``c``, as text."""
    return environment().get_template("correlation.html.j2").render(
        p=build(c, command), css=stylesheet())


def pod_labels(c: Correlation) -> dict[str, str]:
    """``namespace/pod`` of each address the page shows, by address (no port)."""
    if c.pods is None:
        return {}
    seen = [a for lf in c.lost for a in (lf.attempts[0].client.packet.src,
                                          lf.attempts[0].client.packet.dst)]
    seen += [a.rsplit(":", 1)[0] for s in c.servers
             for a in (s.client_side, *(x for x, _ in s.server_side))]
    for lf in c.lost:
        for a in lf.attempts:
            if a.server is not None:
                seen += [a.server.packet.src, a.server.packet.dst]
    return {a: label for a in seen if (label := c.pods.label(a)) is not None}
