"""The summary: counts over the whole capture, as one typed record.

The JSON document, the terminal text and the HTML report all render this one record, so a
count means the same thing in each. Field names are the keys of the document's ``summary``
object and fields are in its key order: that object is a contract (docs/analysis.md), so
fields are added, never renamed or reordered. ``Summary.to_json`` is the only place the
record becomes plain JSON data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pcapdns.analysis import Analysis
from pcapdns.breakdown import Breakdown
from pcapdns.output.timefmt import iso
from pcapdns.pods import PodDirectory, lookup_label
from pcapdns.replicas import Replica

#: Rows of the per-server and per-client tables in the summary.
MAX_ROWS = 100


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency of answered lookups, from each lookup's first attempt, in milliseconds
    rounded to microseconds; all None without an answered lookup. Percentiles are exact
    to 0.1%."""

    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, ms: Mapping[str, float | None]) -> Latency:
        """From a histogram's ``summary_ms()``."""
        return cls(p50=ms["p50"], p90=ms["p90"], p99=ms["p99"], max=ms["max"])


@dataclass(frozen=True, slots=True)
class Skipped:
    """Frames and bytes that did not yield DNS, by reason."""

    #: Frames whose link layer does not carry IPv4 or IPv6 (ARP, LLDP, ...).
    non_ip_frames: int
    #: IP frames that are not UDP/TCP on a DNS port, nor ICMP about one.
    not_dns_frames: int
    #: IP headers that are cut short or inconsistent.
    bad_ip_frames: int
    #: IP fragments taken into reassembly.
    ip_fragments: int
    #: Fragmented datagrams put back together.
    fragments_reassembled: int
    #: Fragmented datagrams given up on (timed out, too many in flight, inconsistent, over
    #: 65,535 bytes, left incomplete at the end, or evicted: those are in
    #: ``fragmented_datagrams_evicted`` too).
    fragmented_datagrams_dropped: int
    #: Gaps (lost segments) in TCP streams skipped over.
    tcp_gaps: int
    #: TCP bytes dropped because they could not be framed (mid-stream start, after a gap).
    tcp_unframed_bytes: int
    #: DNS messages over TCP cut short when their connection ended, expired or was
    #: evicted.
    tcp_incomplete_messages: int
    #: Tunnel headers cut short or of a form not read (GRE source routing, a VXLAN header
    #: without its I flag), and tunnels nested deeper than four levels, not opened; both
    #: also in ``not_dns_frames``.
    bad_tunnel_frames: int = 0
    tunnels_too_deep: int = 0


@dataclass(frozen=True, slots=True)
class MalformedExample:
    """One of the first malformed messages."""

    #: Its frame number.
    frame: int
    #: What did not decode (short header, bad label, compression loop, ...).
    problem: str


@dataclass(frozen=True, slots=True)
class ServerRow:
    """Lookups sent to one server address (the first query's destination); ``*`` holds
    the servers past the ones tallied one by one."""

    server: str
    #: Lookups whose first query went to this server.
    lookups: int
    #: Of those, answered.
    answered: int
    #: Of those, failed as in ``lookups_failed`` (not those open at the capture's end).
    failed: int
    #: Retransmissions in those lookups.
    retransmissions: int
    #: Lookups answered SERVFAIL, NXDOMAIN, REFUSED.
    servfail: int
    nxdomain: int
    refused: int
    #: Latency of its answered lookups.
    latency_ms: Latency
    #: ``namespace/pod`` (or ``namespace/service``) of the address, with ``--pods``; None
    #: without, or when it is not in the listing.
    server_pod: str | None = None


@dataclass(frozen=True, slots=True)
class ClientRow:
    """Lookups made by one client address; ``*`` holds the clients past the ones tallied
    one by one."""

    client: str
    #: Lookups it made.
    lookups: int
    #: Of those, answered.
    answered: int
    #: Of those, failed as in ``lookups_failed``.
    failed: int
    #: Retransmissions in those lookups.
    retransmissions: int
    #: Concurrent same-port A/AAAA pairs of its that lost the race.
    race_lost: int
    #: Lookups answered SERVFAIL, NXDOMAIN, REFUSED.
    servfail: int
    nxdomain: int
    refused: int
    #: Its slowest answered lookup from the first attempt, in milliseconds rounded to
    #: microseconds; None when none was answered.
    max_latency_ms: float | None
    #: With ``--pods``: ``namespace/pod`` of the address and its workload
    #: (``namespace/Kind/name``); None without, or when it is not in the listing.
    client_pod: str | None = None
    client_workload: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamRow:
    """A forwarder's upstream leg to one upstream server (the lookups the core linked to a
    downstream query, docs/analysis.md)."""

    server: str
    #: Upstream-leg lookups sent to it (a first query and its retransmissions count once).
    queries: int
    #: Retransmissions in those lookups.
    retransmissions: int
    #: Of the lookups, answered.
    answered: int
    #: Of the lookups, never answered, the forwarder's wait over before the capture ended.
    timeouts: int
    #: Of the lookups, unanswered when the capture ended, within the wait.
    open_at_end: int
    #: Answers by response code name, in name order.
    rcodes: Mapping[str, int]
    #: Latency of its answered lookups.
    latency_ms: Latency


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over the whole capture (docs/analysis.md, "summary")."""

    #: Frames read, all files together.
    packets: int
    #: ``queries`` + ``responses``, after duplicates are dropped.
    dns_messages: int
    #: Copies of a DNS message captured again, dropped before anything else.
    duplicates: int
    #: DNS messages on a DNS port that did not decode (short header, bad label,
    #: compression loop, name over 255 bytes).
    malformed: int
    #: DNS messages with QR=0 and QR=1.
    queries: int
    responses: int
    #: Queries by transport.
    queries_udp: int
    queries_tcp: int
    #: Queries matched to a response.
    answered_queries: int
    #: Queries never matched.
    unanswered_queries: int
    #: Responses that matched no query.
    unsolicited_responses: int
    #: Queries that are retransmissions of an earlier one.
    retransmissions: int
    #: Lookups in which no query was answered (timeouts and ``lookups_open_at_end``
    #: together); not what the outputs call failed, which is ``lookups_failed``.
    failed_lookups: int
    #: Matched UDP responses with TC=1.
    tc_responses: int
    #: Of those, followed by a TCP query for the name and type.
    tc_followed_by_tcp: int
    #: Of those, not followed by TCP.
    tc_without_tcp_retry: int
    #: Concurrent same-port A/AAAA pairs.
    a_aaaa_same_port_concurrent: int
    #: Concurrent pairs with exactly one side unanswered (the conntrack race).
    a_aaaa_race_lost: int
    #: Queries sent to several servers at once.
    fanout_groups: int
    #: Matched responses by response code name, in name order.
    rcodes: Mapping[str, int]
    #: Latency of answered lookups, from the first attempt.
    latency_ms: Latency
    # Added fields (not in the first contract; never renamed).
    #: Lookups (first query plus retransmissions and TCP fallback).
    lookups: int
    #: Lookups with no answer whose client may still have been waiting when the capture
    #: ended: neither answered nor failed.
    lookups_open_at_end: int
    #: TC=1 responses less than 5 s before the capture's end with no query after them:
    #: in neither ``tc_followed_by_tcp`` nor ``tc_without_tcp_retry``.
    tc_open_at_end: int
    #: A/AAAA pairs formed (concurrent or not).
    a_aaaa_pairs: int
    #: ICMP errors quoting a DNS datagram.
    icmp_errors: int
    #: Further messages of multi-message TCP answers (AXFR/IXFR).
    continuation_responses: int
    #: Unanswered queries closed before ``--max-wait`` because too many were in flight.
    evicted_in_flight: int
    #: Answered queries closed before their linger was over (too many lingering, or the
    #: in-flight cap reached).
    closed_early: int
    #: Messages the duplicate filter forgot before its 50 ms window was over.
    duplicates_evicted: int
    #: Records read after a newer record had already been analyzed (out of time order
    #: by more than the reorder window).
    late_records: int
    #: Frames and bytes that did not yield DNS, by reason.
    skipped: Skipped
    #: The first 20 malformed messages.
    malformed_examples: tuple[MalformedExample, ...]
    #: Distinct server addresses seen in lookups.
    servers_total: int
    #: Up to ``MAX_ROWS`` servers, busiest first.
    servers: tuple[ServerRow, ...]
    #: Distinct client addresses seen in lookups.
    clients_total: int
    #: Up to ``MAX_ROWS`` clients, most failed lookups first.
    clients: tuple[ClientRow, ...]
    #: Detectors that failed, with counts (normally empty).
    detector_errors: Mapping[str, int]
    #: Time span of the whole capture, seconds since the epoch (ISO 8601 in the JSON).
    first_time: float | None = field(metadata={"json": iso})
    last_time: float | None = field(metadata={"json": iso})
    #: Responses matching no query within ``--max-wait`` of the capture's first packet:
    #: their query was sent before the capture started; not unsolicited.
    responses_before_capture: int
    #: TCP queries that joined a UDP lookup after a TC=1 answer; not lookups of their own,
    #: not retransmissions.
    tcp_fallback_queries: int
    #: Queries with a new ID sent less than 100 ms after an unanswered query for the same
    #: question: a second lookup asked in parallel, not a retransmission.
    parallel_lookups: int
    #: Lookups the capture saw fail: no answer and the client's wait over before the
    #: capture ended, or every answer bounced by the client's closed port. What the
    #: terminal, the report and the server and client rows call failed.
    lookups_failed: int
    # State dropped to stay within its budget (AnalysisConfig.max_*), never decoded.
    #: TCP connection directions dropped to keep reassembly within its budget, and the
    #: bytes they held.
    tcp_flows_evicted: int
    tcp_bytes_evicted: int
    #: Incomplete IP datagrams dropped to keep fragment reassembly within its budget, and
    #: the bytes they held.
    fragmented_datagrams_evicted: int
    fragment_bytes_evicted: int
    #: NXDOMAIN lookups the search-expansion detector forgot at its cap.
    search_tries_evicted: int
    #: Client ports and clients the stale-port detector forgot at its caps.
    stale_port_evicted: int
    #: Records skipped because their time stamp is outside 1970-01-01 .. 2200-01-01 UTC.
    bad_timestamps: int
    #: Per DNAT target of a Service address (each CoreDNS pod behind it): its share of the
    #: queries, failures and latency; empty without a capture of both sides of the NAT.
    replicas: tuple[Replica, ...] = field(
        metadata={"json": lambda rows: [r.to_json() for r in rows]})
    #: A forwarder's upstream leg per upstream server, by address (empty when the capture
    #: has none).
    upstream: tuple[UpstreamRow, ...] = ()
    #: Failed or slow downstream lookups by cause (``upstream_timeout``, ``upstream_error``,
    #: ``upstream_slow``, ``local``), in name order.
    causes: Mapping[str, int] = field(default_factory=dict)
    #: Frames decapsulated from overlay tunnels, by kind ("vxlan", "geneve", "ipip",
    #: "ip6in4", "ip4in6", "ip6in6", "gre", "erspan", "pptp", "gre_udp", "teredo"); an
    #: inner frame of a nested tunnel counts at each level. Every kind is listed.
    tunnels: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, a: Analysis) -> Summary:
        """The summary of analysis ``a``."""
        m = a.match
        return cls(
            packets=a.packets,
            dns_messages=m.queries + m.responses,
            duplicates=a.duplicates,
            malformed=a.malformed,
            queries=m.queries,
            responses=m.responses,
            queries_udp=m.queries_udp,
            queries_tcp=m.queries_tcp,
            answered_queries=m.answered_queries,
            unanswered_queries=m.unanswered_queries,
            unsolicited_responses=m.unsolicited_responses,
            retransmissions=m.retransmissions,
            failed_lookups=m.failed_lookups,
            tc_responses=m.tc_responses,
            tc_followed_by_tcp=m.tc_followed_by_tcp,
            tc_without_tcp_retry=m.tc_without_tcp_retry,
            a_aaaa_same_port_concurrent=m.a_aaaa_same_port_concurrent,
            a_aaaa_race_lost=m.a_aaaa_race_lost,
            fanout_groups=m.fanout_groups,
            rcodes=MappingProxyType(dict(sorted(m.rcodes.items()))),
            latency_ms=Latency.of(a.latency_ms),
            lookups=m.lookups,
            lookups_open_at_end=m.lookups_open_at_end,
            tc_open_at_end=m.tc_open_at_end,
            a_aaaa_pairs=m.a_aaaa_pairs,
            icmp_errors=m.icmp_errors,
            continuation_responses=m.continuation_responses,
            evicted_in_flight=m.evicted,
            closed_early=m.closed_early,
            duplicates_evicted=a.duplicates_evicted,
            late_records=a.late_records,
            skipped=Skipped(
                non_ip_frames=a.decode.non_ip,
                not_dns_frames=a.decode.not_dns,
                bad_ip_frames=a.decode.bad_ip,
                ip_fragments=a.decode.fragments,
                fragments_reassembled=a.fragments_reassembled,
                fragmented_datagrams_dropped=a.fragments_dropped,
                tcp_gaps=a.tcp.gaps,
                tcp_unframed_bytes=a.tcp.unframed_bytes,
                tcp_incomplete_messages=a.tcp.incomplete_messages,
                bad_tunnel_frames=a.decode.bad_tunnel,
                tunnels_too_deep=a.decode.tunnel_too_deep,
            ),
            malformed_examples=tuple(MalformedExample(f, p) for f, p in a.malformed_examples),
            servers_total=len(a.breakdown.servers),
            servers=_servers(a.breakdown, a.pods),
            clients_total=len(a.breakdown.clients),
            clients=_clients(a.breakdown, a.pods),
            detector_errors=MappingProxyType(dict(a.detector_errors)),
            first_time=a.first_time,
            last_time=a.last_time,
            responses_before_capture=m.responses_before_capture,
            tcp_fallback_queries=m.tcp_fallback_queries,
            parallel_lookups=m.parallel_lookups,
            lookups_failed=m.lookups_failed,
            tcp_flows_evicted=a.tcp.evicted_flows,
            tcp_bytes_evicted=a.tcp.evicted_bytes,
            fragmented_datagrams_evicted=a.fragments_evicted,
            fragment_bytes_evicted=a.fragment_bytes_evicted,
            search_tries_evicted=a.search_tries_evicted,
            stale_port_evicted=a.stale_port_evicted,
            bad_timestamps=sum(f.bad_timestamps for f in a.files),
            replicas=a.replicas,
            upstream=tuple(
                UpstreamRow(server=u.server, queries=u.queries,
                            retransmissions=u.retransmissions, answered=u.answered,
                            timeouts=u.timeouts, open_at_end=u.open_at_end,
                            rcodes=MappingProxyType(u.rcodes),
                            latency_ms=Latency.of(u.latency.summary_ms()))
                for u in a.upstream[:MAX_ROWS]),
            causes=MappingProxyType(dict(a.cause_counts)),
            tunnels=MappingProxyType(dict(a.tunnels)),
        )

    def to_json(self) -> dict[str, Any]:
        """The document's ``summary`` object: each field under its own name, in field
        order."""
        out = _json(self)
        assert isinstance(out, dict)
        return out


def _json(value: Any) -> Any:
    """A summary record as plain JSON data: a record becomes an object of its fields (a
    field whose metadata names a ``json`` function is written through it), a tuple a list,
    a mapping an object."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: f.metadata.get("json", _json)(getattr(value, f.name))
            for f in dataclasses.fields(value)
        }
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    return value


def _servers(b: Breakdown, pods: PodDirectory | None = None) -> tuple[ServerRow, ...]:
    rows = sorted(b.servers.items(), key=lambda kv: (-kv[1].lookups, kv[0]))[:MAX_ROWS]
    return tuple(
        ServerRow(
            server=server,
            lookups=t.lookups,
            answered=t.answered,
            failed=t.failed,
            retransmissions=t.retransmissions,
            servfail=t.servfail,
            nxdomain=t.nxdomain,
            refused=t.refused,
            latency_ms=Latency.of(t.latency.summary_ms()),
            server_pod=lookup_label(pods, server),
        )
        for server, t in rows
    )


def _clients(b: Breakdown, pods: PodDirectory | None = None) -> tuple[ClientRow, ...]:
    rows = sorted(b.clients.items(),
                  key=lambda kv: (-kv[1].failed, -kv[1].race_lost, -kv[1].lookups, kv[0]))
    return tuple(
        ClientRow(
            client=client,
            lookups=t.lookups,
            answered=t.answered,
            failed=t.failed,
            retransmissions=t.retransmissions,
            race_lost=t.race_lost,
            servfail=t.servfail,
            nxdomain=t.nxdomain,
            refused=t.refused,
            max_latency_ms=round(t.max_latency * 1000.0, 3) if t.answered else None,
            client_pod=lookup_label(pods, client),
            client_workload=_workload(pods, client),
        )
        for client, t in rows[:MAX_ROWS]
    )


def _workload(pods: PodDirectory | None, address: str) -> str | None:
    e = pods.lookup(address) if pods is not None else None
    return e.workload if e is not None else None
