"""What the core reports about a capture, as plain records for the outputs.

The Rust core (``pcapdns._core``) fills these in; the JSON document, the terminal text and
the HTML report read them. Field names are the JSON document's (a contract).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class CaptureFile:
    """What was learned about one input file while reading it (filled in as it goes)."""

    #: The path as the user gave it.
    path: str
    #: Size of the file on disk in bytes (compressed size for gzip).
    size: int
    #: "pcap" or "pcapng".
    format: str = ""
    #: True when the file is gzip-compressed.
    gzip: bool = False
    #: Link types seen, in the order their interfaces were declared.
    link_types: list[int] = field(default_factory=list)
    #: pcapng interface names by interface id (empty for classic pcap).
    interface_names: dict[int, str] = field(default_factory=dict)
    #: Records read.
    packets: int = 0
    #: Time of the first and last record read.
    first_time: float | None = None
    last_time: float | None = None
    #: True when the file ended inside a record or block.
    truncated: bool = False
    #: Human-readable problems met while reading (cut-off, skipped blocks).
    warnings: list[str] = field(default_factory=list)
    #: Bytes of the file consumed so far (compressed bytes for gzip), for progress.
    bytes_read: int = 0
    #: Records skipped because their time stamp is outside MIN_TIME .. MAX_TIME.
    bad_timestamps: int = 0


@dataclass(slots=True)
class DecodeStats:
    """Frames that did not yield DNS, by reason."""

    #: Frames whose link layer does not carry IPv4 or IPv6 (ARP, LLDP, ...).
    non_ip: int = 0
    #: IP frames that are not UDP/TCP on a DNS port, nor ICMP about one.
    not_dns: int = 0
    #: IP headers that are cut short or inconsistent.
    bad_ip: int = 0
    #: IP fragments taken into reassembly.
    fragments: int = 0
    #: ICMP errors quoting a DNS datagram.
    icmp_errors: int = 0
    #: Tunnel headers cut short or of a form not read.
    bad_tunnel: int = 0
    #: Tunnels nested deeper than the decoder opens (four levels).
    tunnel_too_deep: int = 0


@dataclass(slots=True)
class TcpStats:
    """What TCP reassembly had to skip, for the summary."""

    #: Gaps (lost segments) skipped over; a reordered segment that fills one later is
    #: still framed, but the skip stays counted.
    gaps: int = 0
    #: Bytes dropped because they could not be framed (mid-stream start, after a gap).
    unframed_bytes: int = 0
    #: Messages cut short when their connection ended or expired.
    incomplete_messages: int = 0
    #: Zero-length messages skipped.
    empty_messages: int = 0
    #: Directions of connections dropped to keep reassembly within its byte budget, and
    #: the bytes they held (their partial messages are counted in incomplete_messages).
    evicted_flows: int = 0
    evicted_bytes: int = 0


@dataclass(slots=True)
class MatchStats:
    """Counters the matcher keeps for the summary."""

    queries: int = 0
    queries_udp: int = 0
    queries_tcp: int = 0
    responses: int = 0
    answered_queries: int = 0
    unanswered_queries: int = 0
    unsolicited_responses: int = 0
    #: Responses matching no query that came within ``max_wait`` of the capture's first
    #: packet: their query was most likely sent before the capture started.
    responses_before_capture: int = 0
    #: Further messages of a multi-message TCP answer (AXFR/IXFR), not unsolicited.
    continuation_responses: int = 0
    retransmissions: int = 0
    #: TCP queries that joined a UDP lookup after a TC=1 answer (not retransmissions).
    tcp_fallback_queries: int = 0
    #: Queries with a new ID that started a parallel lookup of a name already in flight.
    parallel_lookups: int = 0
    lookups: int = 0
    failed_lookups: int = 0
    lookups_open_at_end: int = 0
    #: Lookups the capture saw fail (``Lookup.failed``): timed out, or answered only after
    #: the client had closed its port.
    lookups_failed: int = 0
    #: Of those, the lookups whose every answer bounced off the client's closed port.
    lookups_failed_late: int = 0
    tc_responses: int = 0
    tc_followed_by_tcp: int = 0
    tc_without_tcp_retry: int = 0
    #: TC=1 responses less than the fallback window before the end of the capture with no
    #: query after them: whether TCP followed cannot be known.
    tc_open_at_end: int = 0
    a_aaaa_pairs: int = 0
    a_aaaa_same_port_concurrent: int = 0
    a_aaaa_race_lost: int = 0
    fanout_groups: int = 0
    icmp_errors: int = 0
    #: Unanswered queries closed before ``max_wait`` because ``max_in_flight`` or
    #: ``max_in_flight_bytes`` was reached.
    evicted: int = 0
    #: Answered queries closed before their linger was over (``max_lingering``, or the
    #: caps above): a pair member or ICMP error arriving later was not linked to them.
    closed_early: int = 0
    rcodes: dict[str, int] = field(default_factory=dict)
