"""Analysis -> what the report says, as plain frozen records (no HTML here).

The template only lays these out; every sentence, count and table row is decided here, so
the structure can be tested without a browser. Strings stay raw: escaping is the template
engine's job (autoescape), and nothing here builds markup.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pcapdns import __version__, _core
from pcapdns.analysis import Analysis
from pcapdns.detect import AggregatedFinding, upstream_error
from pcapdns.detect.base import SEVERITY_RANK, Finding, FindingKind
from pcapdns.dns import names
from pcapdns.dns.message import Message, Tunnel
from pcapdns.match.records import Lookup, Orphan, Transaction
from pcapdns.output.summary import Summary
from pcapdns.output.text import tunnel_text
from pcapdns.output.timefmt import iso
from pcapdns.output.verdict import distinct as _distinct
from pcapdns.output.verdict import duration as _dur
from pcapdns.output.verdict import duration_ms as _dur_ms
from pcapdns.output.verdict import kind_rank, lower_title, verdict
from pcapdns.output.verdict import ports_text as _ports
from pcapdns.read.capture_meta import CaptureMeta
from pcapdns.report import coredns_log
from pcapdns.report.coredns_log import CoreDnsLogView
from pcapdns.report.knowledge import ADVICE, Advice, advice_for
from pcapdns.upstream import Cause

#: Occurrences shown in a finding group's evidence table, and rows at most.
EVIDENCE_OCCURRENCES = 8
EVIDENCE_ROWS = 40
#: Rows of the per-server and per-client tables.
TABLE_ROWS = 15
#: The full problem list is shown only up to this many distinct findings.
PROBLEM_LIST_MAX = 300
#: Lines of the ticket summary.
TICKET_LINES = 40
#: Names under these suffixes are inside the cluster: not for an upstream provider's ticket.
CLUSTER_SUFFIXES = ("cluster.local", "svc", "in-addr.arpa", "ip6.arpa")

#: Finding kinds whose names go into the ticket for the upstream DNS provider.
_TICKET_KINDS: dict[str, str] = {
    "servfail": "SERVFAIL", "refused": "REFUSED", "timeout": "no answer",
}


@dataclass(frozen=True, slots=True)
class CaptureContext:
    """What the capture agent recorded beside the files (capture.json), when it did."""

    #: The node (host name) the capture was made on.
    node: str | None = None
    #: What was captured: "node", "pid 1234", "netns NAME".
    target: str | None = None
    #: Interface index -> name in the captured namespace (names SLL2 interface indexes).
    interfaces: dict[int, str] = field(default_factory=dict)
    #: The resolver's search list and options in the captured namespace.
    search: tuple[str, ...] = ()
    resolver_options: tuple[str, ...] = ()
    #: Notes that change how the numbers read (kernel drops, conntrack counters).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    """One frame in an evidence table."""

    frame: int
    #: UTC time of day, to the microsecond.
    time: str
    #: UTC date.
    date: str
    #: "query", "retry", "response", "ICMP", "response (unsolicited)", or "query copy" /
    #: "response copy" (a leg: the message on another interface of the node).
    role: str
    transport: str
    client: str
    server: str
    #: DNS ID in hex, as tcpdump and Wireshark show it.
    id: str
    qname: str
    qtype: str
    #: Response code for a response; "no answer" for a query never answered; else "".
    rcode: str
    #: For a response: time since the lookup's first attempt.
    latency: str
    #: Capture interface name when known, else "".
    interface: str
    #: Anything else worth a glance (pairing, TC bit).
    note: str
    #: The overlay tunnel the frame was found in (its outer addresses are the two nodes);
    #: None outside a tunnel.
    tunnel: Tunnel | None = None


@dataclass(frozen=True, slots=True)
class FindingGroup:
    """All findings of one kind."""

    kind: FindingKind
    severity: str
    advice: Advice
    #: Times the problem was seen, and distinct (client, server, name, type) problems.
    occurrences: int
    distinct: int
    clients: tuple[str, ...]
    clients_total: int
    servers: tuple[str, ...]
    servers_total: int
    names: tuple[str, ...]
    names_total: int
    first_time: str
    last_time: str
    #: What the first few findings say, in the detectors' words.
    details: tuple[str, ...]
    rows: tuple[EvidenceRow, ...]
    #: The UTC dates the evidence rows fall on.
    dates: str
    #: Occurrences not shown in ``rows``.
    occurrences_not_shown: int
    #: The symptoms this cause accounts for on the same lookups (lower-case titles), shown
    #: under it instead of as groups of their own.
    explains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InputRow:
    name: str
    path: str
    size: int
    sha256: str
    format: str
    link_types: str
    packets: int
    first_time: str
    last_time: str
    truncated: bool


@dataclass(frozen=True, slots=True)
class TableRow:
    """A row of the per-server or per-client table."""

    address: str
    lookups: int
    failed: int
    failed_pct: str
    retransmissions: int
    #: Server: p50 and p99 latency; client: slowest answered lookup.
    latency: str
    extra: str


@dataclass(frozen=True, slots=True)
class UpstreamRow:
    """A row of the upstream servers table: a forwarder's upstream leg to one server."""

    address: str
    queries: int
    timeouts: int
    timeouts_pct: str
    retransmissions: int
    #: p50 / p99 latency of its answered lookups.
    latency: str
    #: Its answers' error codes with counts ("SERVFAIL 2, REFUSED 1").
    errors: str


@dataclass(frozen=True, slots=True)
class CauseRow:
    """A failed or slow downstream lookup of a forwarder, with its cause."""

    time: str
    client: str
    server: str
    qname: str
    qtype: str
    #: What happened at the client: "no answer", "SERVFAIL", "answered after 1.5 s".
    outcome: str
    #: The cause (pcapdns.upstream: upstream_timeout, upstream_error, upstream_slow, local)
    #: and what it says in words.
    cause: str
    cause_text: str
    #: Frames of the client's queries, then of the upstream queries that show the cause.
    frames: str


@dataclass(frozen=True, slots=True)
class ProblemRow:
    severity: str
    kind: str
    time: str
    client: str
    server: str
    qname: str
    qtype: str
    count: int
    detail: str


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    clean: bool
    #: One to three sentences for the top of the page.
    verdict: tuple[str, ...]
    #: Headline figures: (label, value, tone) with tone "bad", "warn" or "".
    figures: tuple[tuple[str, str, str], ...]
    groups: tuple[FindingGroup, ...]
    ticket: str
    ticket_lines: int
    inputs: tuple[InputRow, ...]
    #: Overview counts as (label, value).
    overview: tuple[tuple[str, str], ...]
    servers: tuple[TableRow, ...]
    servers_total: int
    clients: tuple[TableRow, ...]
    clients_total: int
    problems: tuple[ProblemRow, ...]
    problems_total: int
    warnings: tuple[str, ...]
    context: CaptureContext
    version: str
    command: str
    span: str
    #: Chart inputs (the renderer draws them).
    timeline: tuple[float, float, list[int], list[int]]
    latency_buckets: list[tuple[float, float, int]]
    latency_ms: dict[str, float | None]
    rcodes: dict[str, int]
    #: A forwarder's upstream servers (empty without an upstream leg in the capture), and
    #: its failed or slow lookups with their cause (the first ``TABLE_ROWS``).
    upstream: tuple[UpstreamRow, ...] = ()
    causes: tuple[CauseRow, ...] = ()
    causes_total: int = 0
    #: No lookup on the analyzed ports (no DNS there, or only answers): the verdict judges
    #: nothing, so the page shows it in a neutral colour, neither good nor bad.
    neutral: bool = False
    #: The CoreDNS query log's section, when a log was given.
    coredns_log: CoreDnsLogView | None = None
    #: The DNAT targets behind each Service address (docs/analysis.md, "Replicas"): queries,
    #: failed, p50 / p99, and which Service and what share in ``extra``.
    replicas: tuple[TableRow, ...] = ()
    #: With a pods listing: ``namespace/pod`` of each address the page shows (the
    #: template's ``pod`` filter puts it beside the address), the listing in a line, and
    #: the clients grouped by workload (instead of ``clients``' flat list).
    pods: Mapping[str, str] = field(default_factory=dict)
    pods_line: str = ""
    workloads: tuple[WorkloadGroup, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkloadGroup:
    """A workload of the clients table: its totals and its addresses' rows."""

    #: ``namespace/Kind/name``, or the address when it is not in the listing.
    workload: str
    lookups: int
    failed: int
    failed_pct: str
    rows: tuple[TableRow, ...]
    #: Its client addresses not shown as rows.
    more: int = 0


def context_of(meta: CaptureMeta | None) -> CaptureContext:
    """What the report says about the capture itself, from capture.json."""
    if meta is None:
        return CaptureContext()
    t = meta.target
    target = {"node": "node network namespace", "pid": f"network namespace of pid {t.pid}",
              "netns": f"network namespace {t.netns}"}[t.kind]
    notes: list[str] = []
    if meta.kernel_dropped:
        received = (f" of {meta.packets_received:,} received" if meta.packets_received
                    else "")
        notes.append(
            f"tcpdump reported {meta.kernel_dropped:,} packets dropped by the kernel"
            f"{received}: some queries or answers are missing from the capture, so the "
            "unanswered, failed and retransmission counts may be inflated.")
    delta = meta.conntrack_delta()
    if delta is not None and delta.insert_failed is not None:
        if delta.insert_failed > 0:
            notes.append(
                f"conntrack insert_failed rose by {delta.insert_failed:,} on node "
                f"{meta.node} during the capture (drop by {delta.drop or 0:,}): the kernel "
                "dropped packets whose conntrack entry could not be inserted, the "
                "fingerprint of the A/AAAA race.")
        else:
            notes.append(f"conntrack insert_failed did not rise on node {meta.node} during "
                         "the capture: no conntrack insertion race there.")
    if meta.stop is None:
        notes.append("The capture agent recorded no stop time (it was killed); the last "
                     "file may end mid-record.")
    rc = meta.resolv_conf
    return CaptureContext(
        node=meta.node,
        target=target,
        interfaces=dict(meta.interfaces),
        search=rc.search if rc else (),
        resolver_options=(f"ndots:{rc.ndots}", *[o for o in rc.options
                                                 if not o.startswith("ndots:")])
        if rc else (),
        notes=tuple(notes),
    )


def build(a: Analysis, *, command: str, context: CaptureContext | None = None) -> Report:
    """What the report says about analysis ``a``; ``command`` is the command line shown.
    ``context`` defaults to what capture.json beside the inputs recorded."""
    context = context or context_of(a.capture)
    s = Summary.of(a)
    ifnames = _interface_names(a, context)
    groups = _groups(a, ifnames)
    problems = [_problem(f) for f in a.findings[:PROBLEM_LIST_MAX]]
    ticket, lines = _ticket(a, context)
    said = verdict(a)
    return Report(
        title=_title(a),
        clean=said.tone in ("ok", "warn"),
        verdict=said.sentences,
        figures=_figures(s),
        groups=tuple(groups),
        ticket=ticket,
        ticket_lines=lines,
        inputs=tuple(_input(f) for f in a.files),
        overview=_overview(a, s),
        servers=tuple(_servers(s)),
        replicas=tuple(_replicas(s)),
        servers_total=s.servers_total,
        clients=tuple(_clients(a)),
        clients_total=s.clients_total,
        problems=tuple(problems),
        problems_total=len(a.findings),
        warnings=tuple(a.warnings),
        context=context,
        version=__version__,
        command=_shown_command(command),
        span=_span(a.first_time, a.last_time),
        timeline=a.timeline.series(),
        latency_buckets=a.latency.buckets(),
        latency_ms=dict(a.latency_ms),
        rcodes=dict(sorted(a.match.rcodes.items(), key=lambda kv: -kv[1])),
        neutral=said.tone == "none",
        coredns_log=coredns_log.view(a.coredns_log, _utc),
        upstream=tuple(_upstream(s)),
        causes=tuple(_cause_row(lk, c) for lk, c in a.cause_examples[:TABLE_ROWS]),
        causes_total=sum(a.cause_counts.values()),
        pods=_pod_labels(a),
        pods_line=_pods_line(a),
        workloads=tuple(_workloads(a)),
    )


def _pod_labels(a: Analysis) -> dict[str, str]:
    """``namespace/pod`` of each address the page can show."""
    if a.pods is None:
        return {}
    from pcapdns.output.pods import seen_addresses

    out = {}
    for address in seen_addresses(a):
        label = a.pods.label(address)
        if label is not None:
            out[address] = label
    for lk, _ in a.cause_examples:
        for address in (lk.attempts[0].query.src, lk.attempts[0].query.dst):
            label = a.pods.label(address)
            if label is not None:
                out[address] = label
    for examples in a.examples.values():
        for f in examples:
            for address in (f.client, f.server, *_tunnel_nodes(f)):
                label = a.pods.label(address)
                if label is not None:
                    out[address] = label
    return out


def _tunnel_nodes(f: Finding) -> Iterator[str]:
    """The outer addresses (the nodes) of the tunnels the finding's messages were in."""
    for s in f.subjects:
        messages: tuple[Message | None, ...]
        if isinstance(s, Orphan):
            messages = (s.message,)
        else:
            messages = tuple(m for t in s.attempts for m in (t.query, t.response))
        for m in messages:
            if m is not None and m.tunnel is not None:
                yield m.tunnel.outer_src
                yield m.tunnel.outer_dst


def _pods_line(a: Analysis) -> str:
    if a.pods is None:
        return ""
    names = ", ".join(os.path.basename(p) for p in a.pods.files)
    saved = ("" if a.pods_source == "--pods"
             else " (saved by the capture agent with the capture)")
    return (f"Pod names from {names}{saved}: {a.pods.pods:,} pods, "
            f"{a.pods.services:,} services, {len(a.pods.entries):,} addresses.")


def _workloads(a: Analysis) -> list[WorkloadGroup]:
    """The clients table by workload, most failed lookups first (the first
    ``TABLE_ROWS`` workloads, a few addresses each)."""
    if a.pods is None:
        return []
    from pcapdns.output.pods import workload_rows

    out = []
    for w in workload_rows(a.breakdown, a.pods)[:TABLE_ROWS]:
        rows = []
        for client, _ in w.clients[:TABLE_ROWS]:
            t = a.breakdown.clients[client]
            extra = f"race lost {t.race_lost:,}" if t.race_lost else ""
            latency = _dur(t.max_latency) if t.answered else "-"
            rows.append(TableRow(_other(client), t.lookups, t.failed,
                                 _pct(t.failed, t.lookups), t.retransmissions, latency,
                                 extra))
        out.append(WorkloadGroup(_other(w.workload), w.lookups, w.failed,
                                 _pct(w.failed, w.lookups), tuple(rows),
                                 w.clients_total - len(rows)))
    return out


# ---------------------------------------------------------------------------- verdict


def _figures(s: Summary) -> tuple[tuple[str, str, str], ...]:
    p99 = s.latency_ms.p99
    failed = s.lookups_failed
    return (
        ("lookups", f"{s.lookups:,}", ""),
        ("failed", f"{failed:,}", "bad" if failed else ""),
        ("retransmissions", f"{s.retransmissions:,}", "warn" if s.retransmissions else ""),
        ("A/AAAA race lost", f"{s.a_aaaa_race_lost:,}", "bad" if s.a_aaaa_race_lost else ""),
        ("p99 latency", _dur_ms(p99) if p99 is not None else "-", ""),
    )


# ---------------------------------------------------------------------- finding groups


def _groups(a: Analysis, ifnames: dict[int, str]) -> list[FindingGroup]:
    by_kind: dict[str, list[AggregatedFinding]] = {}
    for agg in a.findings:
        by_kind.setdefault(agg.kind, []).append(agg)
    groups = [_group(kind, aggs, a.examples.get(kind, []), ifnames, a.causes)
              for kind, aggs in by_kind.items()]
    groups.sort(key=lambda g: (SEVERITY_RANK[g.severity], kind_rank(g.kind), -g.occurrences))
    return groups


def _group(kind: str, aggs: list[AggregatedFinding], examples: list[Finding],
           ifnames: dict[int, str], causes: dict[int, Cause] | None = None) -> FindingGroup:
    real = [x for x in aggs if x.qname != "*" or x.client]
    clients = _distinct(x.client for x in real)
    servers = _distinct(x.server for x in real)
    qnames = _distinct(x.qname for x in real)
    occurrences = sum(x.count for x in aggs)
    rows: list[EvidenceRow] = []
    shown = 0
    for f in examples[:EVIDENCE_OCCURRENCES]:
        new = _evidence(f, ifnames, causes or {})
        if rows and len(rows) + len(new) > EVIDENCE_ROWS:
            break
        rows.extend(new)
        shown += 1
    # One table in frame order: the order things happened on the wire.
    rows = sorted(dict.fromkeys(rows), key=lambda r: r.frame)
    first = aggs[0]
    return FindingGroup(
        kind=first.kind,
        severity=min((x.severity for x in aggs), key=SEVERITY_RANK.__getitem__),
        advice=advice_for(first.kind, all(x.cluster_dns for x in aggs)),
        occurrences=occurrences,
        distinct=len(aggs),
        clients=tuple(clients[:5]),
        clients_total=len(clients),
        servers=tuple(servers[:5]),
        servers_total=len(servers),
        names=tuple(qnames[:5]),
        names_total=len(qnames),
        first_time=_utc(min(x.time for x in aggs)),
        last_time=_utc(max(x.last_time for x in aggs)),
        details=tuple(dict.fromkeys(x.detail for x in aggs[:3])),
        rows=tuple(rows),
        dates=" .. ".join(dict.fromkeys(sorted({r.date for r in rows if r.date}))),
        occurrences_not_shown=max(occurrences - shown, 0),
        explains=tuple(lower_title(ADVICE[k].title) for k in dict.fromkeys(
            k for x in aggs for k in x.explains)),
    )


def _evidence(f: Finding, ifnames: dict[int, str], causes: dict[int, Cause] | None = None
              ) -> list[EvidenceRow]:
    rows: list[EvidenceRow] = []
    for s in f.subjects:
        if isinstance(s, Orphan):
            if s.message is not None:
                rows.append(_row(s.message, "response (unsolicited)", None, ifnames, s.reason))
            else:
                qtype = names.qtype_name(s.qtype) if s.qtype else ""
                rows.append(EvidenceRow(s.frame, _utc_us(s.time), _date(s.time), "ICMP", "",
                                        s.client, s.server, "", s.qname, qtype, "", "", "",
                                        s.reason))
            continue
        start = s.first.time
        cause = (causes or {}).get(s.id)
        for t in s.attempts:
            note = _query_note(t)
            if cause is not None and t.attempt == 1:
                said = _CAUSE_TEXT[cause.kind].format(up=cause.upstream, rcode=cause.rcode)
                note = "; ".join(x for x in (note, f"cause {cause.kind}: {said}") if x)
            rows.append(_row(t.query, "query" if t.attempt == 1 else "retry", None, ifnames,
                             note, answered=t.response is not None))
            p = t.pair_transaction
            if p is not None and t.pair_concurrent and f.kind == "aaaa_race_lost":
                # The other query of the socket: the race shows only with both.
                other = names.qtype_name(p.query.qtype)
                rows.append(_row(p.query, "query", None, ifnames,
                                 f"the {other} query sent with frame {t.query.frame} from the "
                                 "same socket", answered=p.response is not None))
                if p.response is not None:
                    rows.append(_row(p.response, "response",
                                     p.response.time - p.query.time, ifnames,
                                     f"answer to the {other} query"))
            if f.kind in LEG_KINDS:
                rows.extend(_leg_rows(t.query, ifnames))
            if t.response is not None:
                rows.append(_row(t.response, "response", t.response.time - start, ifnames,
                                 _response_note(t)))
                if f.kind in LEG_KINDS:
                    rows.extend(_leg_rows(t.response, ifnames))
            for frame in t.icmp_frames:
                late = frame in t.late_icmp_frames
                rows.append(EvidenceRow(frame, "", "", "ICMP", "", t.query.src, t.query.dst, "",
                                        "", "", "", "", "",
                                        "port unreachable: the answer came after the client "
                                        "closed its socket" if late else
                                        "destination unreachable for this query"))
    return rows


#: Kinds whose evidence shows the copies of each message on the node's other interfaces
#: (its legs): where the packet went is the finding.
LEG_KINDS = frozenset({"lost_in_node", "reply_not_delivered", "unexpected_source"})


def _leg_rows(m: Message, ifnames: dict[int, str]) -> list[EvidenceRow]:
    """A row for each copy of ``m`` on another interface, with the address it carried."""
    rows = []
    for leg in m.legs:
        if m.is_response:
            client, server = f"{m.dst}:{m.dport}", f"{leg.address}:{m.sport}"
            note = f"the same answer from {leg.address}" + (
                " (un-NAT'd)" if leg.address != m.src else "")
        else:
            client, server = f"{m.src}:{m.sport}", f"{leg.address}:{m.dport}"
            note = f"the same query to {leg.address}" + (
                " (after the DNAT)" if leg.address != m.dst else "")
        rows.append(EvidenceRow(
            frame=leg.frame, time=_utc_us(leg.time), date=_date(leg.time),
            role="response copy" if m.is_response else "query copy",
            transport=m.transport.upper(), client=client, server=server, id=f"0x{m.id:04x}",
            qname=m.qname if m.qname is not None else "(no question)",
            qtype=names.qtype_name(m.qtype) if m.qname is not None else "", rcode="",
            latency="", interface=ifnames.get(leg.iface, ""), note=note))
    return rows


def _row(m: Message, role: str, latency: float | None, ifnames: dict[int, str], note: str,
         answered: bool = True) -> EvidenceRow:
    query = not m.is_response
    client, server = (f"{m.src}:{m.sport}", f"{m.dst}:{m.dport}") if query else (
        f"{m.dst}:{m.dport}", f"{m.src}:{m.sport}")
    rcode = "" if query else names.rcode_name(m.flags & 0xF)
    if query and not answered:
        rcode = "no answer"
    return EvidenceRow(
        frame=m.frame,
        time=_utc_us(m.time),
        date=_date(m.time),
        role=role,
        transport=m.transport.upper(),
        client=client,
        server=server,
        id=f"0x{m.id:04x}",
        qname=m.qname if m.qname is not None else "(no question)",
        qtype=names.qtype_name(m.qtype) if m.qname is not None else "",
        rcode=rcode,
        latency=_dur(latency) if latency is not None else "",
        interface=ifnames.get(m.iface, ""),
        note=note,
        # The two nodes of the overlay, as evidence of which path the packet took.
        tunnel=m.tunnel,
    )


def _query_note(t: Transaction) -> str:
    notes = []
    if t.upstream_of is not None:
        notes.append(f"sent upstream for the client query in frame {t.upstream_of}")
    if t.forwarded_as is not None:
        notes.append(f"forwarded upstream as frame {t.forwarded_as}")
    if t.retransmission:
        notes.append(_RETRY_WORDS[t.retransmission])
    if t.pair_frame is not None and t.pair_concurrent:
        other = ("answered" + (f" in frame {t.pair_response_frame}"
                               if t.pair_response_frame else "")
                 if t.pair_answered else "not answered")
        notes.append(f"sent with frame {t.pair_frame} from the same socket ({other})")
    if t.fanout_of is not None and t.fanout_of != t.query.frame:
        notes.append(f"same query as frame {t.fanout_of}, to another server")
    return "; ".join(notes)


_RETRY_WORDS = {
    "same_id_same_port": "sent again with the same ID and port",
    "same_id_new_port": "sent again with the same ID from a new port",
    "new_id_same_port": "sent again with a new ID from the same port",
    "new_id_new_port": "sent again with a new ID from a new port",
}


def _response_note(t: Transaction) -> str:
    r = t.response
    if r is None:
        return ""
    notes = []
    if r.flags & 0x0200:
        notes.append("TC=1 (truncated)")
        if t.tc_followed_by_tcp is False:
            notes.append("no TCP retry")
        elif t.tc_followed_by_tcp:
            notes.append(f"TCP retry in frame {t.tc_next_query_frame}")
    if t.leg_fault == "reply_not_delivered":
        notes.append(f"from {r.src}, the DNAT target; never reached the pod's side")
    elif t.leg_fault == "unexpected_source":
        notes.append(f"from {r.src}, not the address asked ({t.query.dst}): the client drops "
                     "it")
    elif r.src != t.query.dst:
        notes.append(f"from {r.src}, query went to {t.query.dst} (NAT)")
    return "; ".join(notes)


# ------------------------------------------------------------------------------ ticket


def _ticket(a: Analysis, ctx: CaptureContext) -> tuple[str, int]:
    """A plain-text block for a ticket to the upstream DNS provider: failing external
    names with their response code, time (UTC, to the second), server and node."""
    cluster = tuple(s.lower().strip(".") for s in ctx.search) + CLUSTER_SUFFIXES
    rows = []
    for agg in a.findings:
        result = _TICKET_KINDS.get(agg.kind)
        if result is None or not agg.qname or agg.qname == "*" or _internal(agg.qname, cluster):
            continue
        row: tuple[Any, ...] = (agg.qname, agg.qtype, result,
                                (iso(agg.time) or "")[:19] + "Z", agg.count,
                                _with_pod(a, agg.server))
        if a.pods is not None:
            # With a pods listing the ticket also says which pod asked.
            row += (a.pods.label(agg.client) or agg.client,)
        rows.append(row)
    rows.sort(key=lambda r: (r[3], r[0]))
    node = ctx.node or "not recorded"
    head = [
        "DNS failures for external names",
        f"capture: {_span(a.first_time, a.last_time)} on node {node}",
        f"analyzed by pcapdns {__version__}",
        "",
    ]
    up_rows = _upstream_ticket_rows(a, ctx)
    if not rows and not up_rows:
        return "\n".join(head + ["No failing external names (SERVFAIL, REFUSED or no "
                                 "answer) in this capture."]), 0
    header = _TICKET_HEAD + (("client",) if a.pods is not None else ())
    lines = _ticket_table(header, rows) if rows else []
    if up_rows:
        if lines:
            lines.append("")
        lines += ["Failed upstream queries of the forwarder (DNS server) on the node:"]
        lines += _ticket_table(_UPSTREAM_TICKET_HEAD, up_rows)
    return "\n".join(head + lines), len(rows) + len(up_rows)


def _ticket_table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in [header] + rows[:TICKET_LINES]]
    if len(rows) > TICKET_LINES:
        lines.append(f"... and {len(rows) - TICKET_LINES} more (see the JSON document)")
    return lines


def _upstream_ticket_rows(a: Analysis, ctx: CaptureContext) -> list[tuple[Any, ...]]:
    """The forwarder's failed upstream queries (``upstream_timeout``, ``upstream_error``):
    name, type, response code, time to the second, times, upstream server and the node of
    the forwarder (the capture agent's node name, else the forwarder's address)."""
    rows = []
    for agg in a.findings:
        if agg.kind == "upstream_timeout":
            result = "no answer"
        elif agg.kind == "upstream_error":
            result = upstream_error.rcode_of(agg.detail) or "error"
        else:
            continue
        if not agg.qname or agg.qname == "*":
            continue
        rows.append((agg.qname, agg.qtype, result, (iso(agg.time) or "")[:19] + "Z",
                     agg.count, _with_pod(a, agg.server), ctx.node or _with_pod(a, agg.client)))
    rows.sort(key=lambda r: (r[3], r[0]))
    return rows


def _with_pod(a: Analysis, address: str) -> str:
    """``address (namespace/pod)`` with a pods listing that names it, else the address."""
    label = a.pods.label(address) if a.pods is not None else None
    return f"{address} ({label})" if label else address


_TICKET_HEAD = ("name", "type", "result", "first seen (UTC)", "times", "server")
_UPSTREAM_TICKET_HEAD = ("name", "type", "result", "first seen (UTC)", "times", "upstream",
                         "DNS server node")


def _internal(qname: str, cluster: Sequence[str]) -> bool:
    n = qname.lower().rstrip(".")
    return any(n == s or n.endswith("." + s) for s in cluster if s)


# ---------------------------------------------------------------------------- overview


def _input(f: Any) -> InputRow:
    return InputRow(
        name=os.path.basename(f.path),
        path=f.path,
        size=f.size,
        sha256=_sha256(f.path),
        format=f.format + (" (gzip)" if f.gzip else ""),
        link_types=", ".join(dict.fromkeys(_core.link_type_name(t) for t in f.link_types)),
        packets=f.packets,
        first_time=_utc(f.first_time) if f.first_time is not None else "-",
        last_time=_utc(f.last_time) if f.last_time is not None else "-",
        truncated=f.truncated,
    )


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    return h.hexdigest()


def _overview(a: Analysis, s: Summary) -> tuple[tuple[str, str], ...]:
    lat = s.latency_ms
    latency = " / ".join(_dur_ms(v) if v is not None else "-"
                         for v in (lat.p50, lat.p90, lat.p99, lat.max))
    tunnels = tunnel_text(s.tunnels)
    return (
        ("packets", f"{s.packets:,}"),
        ("duplicates dropped", f"{s.duplicates:,}"),
        ("malformed frames", f"{s.malformed:,}"),
        ("DNS messages", f"{s.dns_messages:,}"),
        ("queries (UDP / TCP)", f"{s.queries:,} ({s.queries_udp:,} / {s.queries_tcp:,})"),
        ("queries answered / unanswered",
         f"{s.answered_queries:,} / {s.unanswered_queries:,}"),
        ("lookups", f"{s.lookups:,}"),
        ("failed lookups", f"{s.lookups_failed:,}"),
        ("still unanswered at the capture's end (undecided)", f"{s.lookups_open_at_end:,}"),
        ("retransmissions", f"{s.retransmissions:,}"),
        ("unsolicited responses", f"{s.unsolicited_responses:,}"),
        ("latency p50 / p90 / p99 / max", latency),
        ("TC answers (then TCP / not)",
         f"{s.tc_responses:,} ({s.tc_followed_by_tcp:,} / {s.tc_without_tcp_retry:,})"),
        ("A/AAAA same-port pairs (concurrent / race lost)",
         f"{s.a_aaaa_pairs:,} ({s.a_aaaa_same_port_concurrent:,} / "
         f"{s.a_aaaa_race_lost:,})"),
        ("ICMP errors", f"{s.icmp_errors:,}"),
        ("DNS ports", _ports(a)),
        # Only for a capture of an overlay's underlay: the other reports stay as they were.
        *((("decapsulated from tunnels", tunnels),) if tunnels else ()),
    )


def _servers(s: Summary) -> list[TableRow]:
    # The summary's rows are the busiest servers first; the report shows the first few.
    out = []
    for row in s.servers[:TABLE_ROWS]:
        lat = row.latency_ms
        latency = (f"{_dur_ms(lat.p50)} / {_dur_ms(lat.p99)}" if lat.p50 is not None
                   else "-")
        codes = ", ".join(f"{k} {v:,}" for k, v in (("SERVFAIL", row.servfail),
                                                     ("REFUSED", row.refused),
                                                     ("NXDOMAIN", row.nxdomain)) if v)
        out.append(TableRow(_other(row.server), row.lookups, row.failed,
                            _pct(row.failed, row.lookups), row.retransmissions, latency,
                            codes))
    return out


def _replicas(s: Summary) -> list[TableRow]:
    out = []
    for r in s.replicas[:TABLE_ROWS]:
        latency = (f"{_dur_ms(r.p50_ms)} / {_dur_ms(r.p99_ms)}" if r.p50_ms is not None
                   else "-")
        out.append(TableRow(_other(r.address), r.queries, r.failed, _pct(r.failed, r.queries),
                            0, latency, f"behind {r.service}, {r.share:.0%} of its queries"))
    return out


def _upstream(s: Summary) -> list[UpstreamRow]:
    out = []
    for row in s.upstream[:TABLE_ROWS]:
        lat = row.latency_ms
        latency = (f"{_dur_ms(lat.p50)} / {_dur_ms(lat.p99)}" if lat.p50 is not None
                   else "-")
        errors = ", ".join(f"{k} {v:,}" for k, v in row.rcodes.items()
                           if k not in ("NOERROR", "NXDOMAIN"))
        out.append(UpstreamRow(row.server, row.queries, row.timeouts,
                               _pct(row.timeouts, row.queries), row.retransmissions,
                               latency, errors))
    return out


#: What each cause says, in words.
_CAUSE_TEXT = {
    "upstream_timeout": "the upstream server {up} never answered the forwarder",
    "upstream_error": "the upstream server {up} answered {rcode}, passed on",
    "upstream_slow": "the upstream server {up} took most of the time",
    "local": "the forwarder itself: its upstream leg was fine, or there was none",
}


def _cause_row(lk: Lookup, c: Cause) -> CauseRow:
    q = lk.first
    a = lk.answer
    if a is None or a.response is None:
        outcome = "no answer"
    elif a.response.flags & 0xF not in (0, 3):
        outcome = names.rcode_name(a.response.flags & 0xF)
    else:
        outcome = f"answered after {_dur(lk.latency or 0.0)}"
    client_frames = [t.query.frame for t in lk.attempts]
    return CauseRow(
        time=_utc(q.time), client=q.src, server=q.dst, qname=q.qname or "",
        qtype=names.qtype_name(q.qtype), outcome=outcome, cause=c.kind,
        cause_text=_CAUSE_TEXT[c.kind].format(up=c.upstream, rcode=c.rcode),
        frames=", ".join(str(f) for f in (*client_frames, *c.frames)))


def _clients(a: Analysis) -> list[TableRow]:
    # In the summary's order, but from the tallies: the summary's ``max_latency_ms`` is
    # already rounded to microseconds, and rounding it again to 0.1 ms could move the last
    # digit away from what the unrounded latency gives.
    rows = sorted(a.breakdown.clients.items(),
                  key=lambda kv: (-kv[1].failed, -kv[1].race_lost, -kv[1].lookups, kv[0]))
    out = []
    for client, t in rows[:TABLE_ROWS]:
        extra = f"race lost {t.race_lost:,}" if t.race_lost else ""
        latency = _dur(t.max_latency) if t.answered else "-"
        out.append(TableRow(_other(client), t.lookups, t.failed, _pct(t.failed, t.lookups),
                            t.retransmissions, latency, extra))
    return out


def _problem(agg: AggregatedFinding) -> ProblemRow:
    return ProblemRow(agg.severity, agg.kind, _utc(agg.time), agg.client, agg.server,
                      agg.qname, agg.qtype, agg.count, agg.detail)


def _interface_names(a: Analysis, ctx: CaptureContext) -> dict[int, str]:
    if ctx.interfaces:
        return dict(ctx.interfaces)
    out: dict[int, str] = {}
    for f in a.files:
        for k, v in f.interface_names.items():
            out.setdefault(k, v)
    return out


#: Options whose value is a file the command writes.
_OUTPUT_OPTIONS = ("-o", "--output", "--html")


def _shown_command(command: str) -> str:
    """``command`` with each output file (``-o``, ``--output``, ``--html``) cut to its base
    name: the directory, often under a home directory, would carry a user name into the
    tickets a report is attached to. A command that does not parse as shell words is
    shown as its first word only, since where its output path is cannot be told."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command.split(" ", 1)[0]
    shown: list[str] = []
    value_next = False
    for i, word in enumerate(words):
        if value_next:
            word, value_next = os.path.basename(word), False
        elif word == "--":  # the rest are input paths, whatever they look like
            shown.extend(words[i:])
            break
        elif word in _OUTPUT_OPTIONS:
            value_next = True
        elif word.startswith(("--output=", "--html=")):
            option, _, value = word.partition("=")
            word = f"{option}={os.path.basename(value)}"
        elif word.startswith("-o"):  # -oFILE, click's short form
            word = "-o" + os.path.basename(word[2:])
        shown.append(word)
    return shlex.join(shown)


def _title(a: Analysis) -> str:
    if a.capture is not None:
        # A capture directory: its name says when, the header says where.
        folder = os.path.basename(os.path.dirname(os.path.abspath(a.capture.path)))
        return f"DNS report: {folder}"
    if not a.files:
        return "DNS capture report"
    first = os.path.basename(a.files[0].path)
    more = f" and {len(a.files) - 1} more" if len(a.files) > 1 else ""
    return f"DNS report: {first}{more}"


# ----------------------------------------------------------------------------- wording


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _other(address: str) -> str:
    return "all others" if address == "*" else address


def _utc(t: float | None) -> str:
    return (iso(t) or "-").replace("T", " ")[:23] + ("Z" if t is not None else "")


def _utc_us(t: float) -> str:
    """Time of day to the microsecond; the evidence table's caption gives the date."""
    return (iso(t) or "")[11:-1]


def _date(t: float) -> str:
    return (iso(t) or "")[:10]


def _span(first: float | None, last: float | None) -> str:
    if first is None or last is None:
        return "no packets"
    a, b = _utc(first)[:19], _utc(last)[:19]
    if a[:10] == b[:10]:
        b = b[11:]
    return f"{a} .. {b} UTC ({_dur(last - first)})"
