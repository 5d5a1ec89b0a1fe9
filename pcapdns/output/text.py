"""The short human summary printed on a terminal by default.

Counts first, then the findings by kind (most severe first) with a few examples of each;
the JSON document has everything.
"""

from __future__ import annotations

from collections.abc import Mapping

from pcapdns.analysis import Analysis
from pcapdns.coredns_log.join import VERDICT_LABELS, JoinResult
from pcapdns.detect import AggregatedFinding
from pcapdns.output.summary import ClientRow, Summary
from pcapdns.output.timefmt import iso
from pcapdns.output.verdict import kind_groups, verdict
from pcapdns.pods import PodDirectory, lookup_label

EXAMPLES_PER_KIND = 3
TABLE_ROWS = 5
MAX_FRAMES_SHOWN = 8


def _duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.3f} s"


#: The terms of the counts lines, in a few words each (docs/analysis.md has the full text).
TERMS = (
    "terms: failed = no answer reached the client (timed out, or answered after it gave up); "
    "undecided = unanswered when the capture ended, the client may still have been waiting;",
    "  concurrent same-port A/AAAA = A and AAAA sent together from one socket (race lost: "
    "one never answered, the conntrack race); fan-out = one query sent to several servers "
    "at once (musl);",
    "  unsolicited = a response matching no query in flight; retransmission = a query sent "
    "again after no answer.",
)


def render(a: Analysis) -> str:
    s = Summary.of(a)
    said = verdict(a)
    lines = ["verdict: " + " ".join(said.sentences)]
    span = f"{iso(s.first_time)} .. {iso(s.last_time)}" if s.first_time else "no packets"
    files = "1 file" if len(a.files) == 1 else f"{len(a.files)} files"
    lines.append(f"{files}, {s.packets} packets, {span}")
    lines.append(
        f"DNS messages {s.dns_messages} (queries {s.queries}: udp {s.queries_udp}, "
        f"tcp {s.queries_tcp}; responses {s.responses}); duplicates dropped "
        f"{s.duplicates}; malformed {s.malformed}"
        # Only when there were any: the warning says what they mean.
        + (f"; late records {s.late_records}" if s.late_records else "")
    )
    lines.append(
        f"lookups {s.lookups}: failed {s.lookups_failed}, undecided at capture end "
        f"{s.lookups_open_at_end}; queries answered "
        f"{s.answered_queries}, unanswered {s.unanswered_queries}; retransmissions "
        f"{s.retransmissions}; unsolicited responses {s.unsolicited_responses}"
    )
    lat = s.latency_ms
    if lat.p50 is not None:
        lines.append(
            f"latency from first attempt: p50 {_duration(lat.p50)}, "
            f"p90 {_duration(lat.p90)}, p99 {_duration(lat.p99)}, "
            f"max {_duration(lat.max)}"
        )
    lines.append(
        f"TC responses {s.tc_responses} (followed by TCP {s.tc_followed_by_tcp}, "
        f"without {s.tc_without_tcp_retry}); concurrent same-port A/AAAA "
        f"{s.a_aaaa_same_port_concurrent} (race lost {s.a_aaaa_race_lost}); "
        f"fan-out {s.fanout_groups}; ICMP errors {s.icmp_errors}"
    )
    if s.rcodes:
        lines.append("rcodes: " + ", ".join(f"{k} {v}" for k, v in s.rcodes.items()))
    tunnels = tunnel_text(s.tunnels)
    if tunnels:
        lines.append(f"decapsulated from tunnels: {tunnels}")
    lines.extend(coredns_log_lines(a.coredns_log))
    lines.extend(pods_lines(a))
    lines.extend(_tables(s, a.pods))
    lines.extend(TERMS)
    lines.append("")
    lines.extend(_findings(a))
    return "\n".join(lines) + "\n"


def tunnel_text(tunnels: Mapping[str, int]) -> str:
    """The tunnel kinds that carried frames, with their counts ("vxlan 12, geneve 3"),
    or "" when nothing was tunnelled."""
    return ", ".join(f"{k} {n:,}" for k, n in tunnels.items() if n)


def coredns_log_lines(log: JoinResult | None) -> list[str]:
    """A line or two on the CoreDNS log, when one was given."""
    if log is None:
        return []
    x = log.index
    when = (f"times used, CoreDNS clock offset {log.clock_offset_s:+.6f} s"
            if log.times_used and log.clock_offset_s is not None
            else "times used" if log.times_used
            else "no times: log lines cannot be placed in time")
    out = [
        f"CoreDNS log: {x.query_lines} query lines ({x.other_lines} of other plugins, "
        f"{x.unparsable} unparsable); joined {log.joined}, ambiguous "
        f"{log.ambiguous_queries}, logged not captured {log.logged_not_captured}, "
        f"captured not logged {log.captured_not_logged}; {when}"
    ]
    if log.verdicts:
        out.append("  failed lookups by what CoreDNS logged: " + "; ".join(
            f"{VERDICT_LABELS[k]}: {v}" for k, v in log.verdicts.items()))
    return out


def pods_lines(a: Analysis) -> list[str]:
    """A line on the pods listing, when there is one (``--pods``, or saved with the
    capture: then it says so)."""
    pods = a.pods
    if pods is None:
        return []
    source = ("" if a.pods_source == "--pods"
              else f" (saved with the capture, named in {a.pods_source})")
    return [f"pods listing: {pods.pods} pods, {pods.services} services, "
            f"{len(pods.entries)} addresses{source}"]


def at(address: str, pods: PodDirectory | None) -> str:
    """``address (namespace/pod)`` (``address`` an IP or ``ip:port``), or the address alone
    when it is not in the listing."""
    label = lookup_label(pods, address)
    if label is None and ":" in address:  # "ip:port"
        label = lookup_label(pods, address.rsplit(":", 1)[0])
    return f"{address} ({label})" if label else address


def _tables(s: Summary, pods: PodDirectory | None = None) -> list[str]:
    """The busiest servers, the replicas behind a Service address, and the clients with the
    most failed lookups (by workload with a pods listing)."""
    lines = []
    servers = s.servers[:TABLE_ROWS]
    if servers:
        lines.append("servers: " + "; ".join(
            f"{at(row.server, pods)} {row.lookups} lookups, "
            f"{_share(row.failed, row.lookups)} failed, "
            f"p99 {_duration(row.latency_ms.p99)}"
            for row in servers
        ))
    if len(s.replicas) > 1:
        # Only when there is something to compare: one replica says nothing a server does.
        lines.append("replicas (DNAT targets): " + "; ".join(
            f"{at(r.service, pods)} -> {at(r.address, pods)} {r.queries} queries "
            f"({r.share:.0%}), "
            f"{_share(r.failed, r.queries)} failed, p50 {_duration(r.p50_ms)}, "
            f"p99 {_duration(r.p99_ms)}"
            for r in s.replicas[:TABLE_ROWS]
        ))
    hurting = [row for row in s.clients if row.failed or row.race_lost][:TABLE_ROWS]
    if pods is not None:
        lines.extend(_workloads(s, pods))
    elif hurting:
        lines.append("clients with failures: " + "; ".join(
            f"{row.client} {row.failed} of {row.lookups} lookups failed"
            + (f", A/AAAA race lost {row.race_lost}x" if row.race_lost else "")
            for row in hurting
        ))
    if s.upstream:
        lines.append("upstream (the forwarder's queries): " + "; ".join(
            f"{row.server} {row.queries} lookups, {row.timeouts} unanswered"
            + "".join(f", {k} {v}" for k, v in row.rcodes.items()
                      if k not in ("NOERROR", "NXDOMAIN"))
            + f", p99 {_duration(row.latency_ms.p99)}"
            for row in s.upstream[:TABLE_ROWS]
        ))
    if s.causes:
        lines.append("causes of the forwarder's failed or slow lookups: " + ", ".join(
            f"{k} {v}" for k, v in s.causes.items()))
    return lines


def _workloads(s: Summary, pods: PodDirectory) -> list[str]:
    """The clients with failures, grouped by workload (an address not in the listing is a
    group of its own)."""
    from pcapdns.output.pods import WorkloadRow

    rows: dict[str, list[ClientRow]] = {}
    for row in s.clients:
        if row.failed or row.race_lost:
            rows.setdefault(row.client_workload or row.client, []).append(row)
    groups = [WorkloadRow(workload=k, clients=tuple((r.client, r.client_pod) for r in v),
                          clients_total=len(v), lookups=sum(r.lookups for r in v),
                          failed=sum(r.failed for r in v),
                          race_lost=sum(r.race_lost for r in v),
                          retransmissions=sum(r.retransmissions for r in v))
              for k, v in rows.items()]
    groups.sort(key=lambda g: (-g.failed, -g.race_lost, -g.lookups, g.workload))
    if not groups:
        return []
    return ["clients with failures, by workload: " + "; ".join(
        f"{g.workload} {g.failed} of {g.lookups} lookups failed"
        + (f", A/AAAA race lost {g.race_lost}x" if g.race_lost else "")
        + " [" + ", ".join(c if p is None or g.workload == c else f"{c} {p}"
                           for c, p in g.clients[:TABLE_ROWS])
        + (", ..." if len(g.clients) > TABLE_ROWS else "") + "]"
        for g in groups[:TABLE_ROWS])]


def _share(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _findings(a: Analysis) -> list[str]:
    if not a.findings:
        return ["no findings"]
    by_kind: dict[str, list[AggregatedFinding]] = {
        g.kind: list(g.findings) for g in kind_groups(a)
    }
    kinds = list(by_kind)  # most severe first, causes before symptoms
    lines = ["findings by kind (causes first):"]
    for kind in kinds:
        group = by_kind[kind]
        clients = len({g.client for g in group})
        names = len({g.qname.lower() for g in group})
        scope = (f"  ({clients} client{'s' if clients != 1 else ''}, "
                 f"{names} name{'s' if names != 1 else ''})")
        if all(not g.client and not g.qname for g in group):
            # About a server, not about lookups of some clients (replica_imbalance).
            servers = len({g.server for g in group})
            scope = f"  ({servers} server{'s' if servers != 1 else ''})"
        lines.append(
            f"  {group[0].severity:7} {kind:26} {sum(g.count for g in group):6}{scope}")
    lines.append("")
    lines.append(f"examples (up to {EXAMPLES_PER_KIND} per kind; --format json has all):")
    for kind in kinds:
        group = by_kind[kind]
        for agg in group[:EXAMPLES_PER_KIND]:
            times = f" x{agg.count}" if agg.count > 1 else ""
            shown = sorted(agg.frames)[:MAX_FRAMES_SHOWN]
            more = "..." if len(agg.frames) > MAX_FRAMES_SHOWN else ""
            lines.append(
                f"  {kind}{times}  {at(agg.client, a.pods)} -> {at(agg.server, a.pods)}  "
                f"{agg.qname} {agg.qtype}  "
                f"frames {','.join(map(str, shown))}{more}"
            )
            lines.append(f"      {agg.detail}")
            if agg.explains:
                lines.append("      also explains: " + ", ".join(agg.explains))
        if len(group) > EXAMPLES_PER_KIND:
            lines.append(f"  ... {len(group) - EXAMPLES_PER_KIND} more {kind}")
    return lines
