"""Every time limit and window the analysis uses, in one frozen object.

The definitions behind the defaults are in docs/analysis.md; nothing in the matcher or the
detectors hard-codes a limit.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    #: UDP/TCP ports that carry DNS; a packet is DNS when either port is in this set.
    ports: frozenset[int] = field(default_factory=lambda: frozenset({53}))
    #: A failed lookup is a ``timeout`` finding when its last attempt is at least this many
    #: seconds before the end of the capture (``--timeout``).
    timeout: float = 5.0
    #: A lookup answered after more than this many seconds is ``slow_response`` (``--slow``).
    slow: float = 1.0
    #: Records are put back in time order when written up to this many seconds late
    #: (dumpcap hands an interface's packets over up to 250 ms after stamping them;
    #: ``tcpdump -i any`` reorders by microseconds to milliseconds). 0 keeps file order.
    reorder_window: float = 0.5
    #: Two copies of one DNS message within this many seconds can be duplicates.
    duplicate_window: float = 0.050
    #: A query repeated no more than this many seconds after the previous unanswered one is
    #: a retransmission (glibc's default 5 s timeout x 2 attempts, plus slack).
    retransmission_window: float = 11.0
    #: A query with a new DNS ID sent less than this many seconds after the previous
    #: unanswered query of its group starts a parallel lookup, not a retransmission: no
    #: resolver retries that fast (glibc and musl wait at least a second, dig at least
    #: its +timeout), while browsers and phones do ask one name twice at once.
    retransmission_min_gap: float = 0.100
    #: A TC=1 response is followed by TCP when the client's next query for the same name and
    #: type goes over TCP within this many seconds.
    tc_fallback_window: float = 5.0
    #: An AAAA query pairs with an A query sent from this many seconds before ...
    pair_before: float = 0.005
    #: ... to this many seconds after it.
    pair_after: float = 0.500
    #: One query sent to several servers within this many seconds is a fan-out.
    fanout_window: float = 0.050
    #: A query still unanswered this many seconds after it was sent is closed as unanswered;
    #: a response arriving later is unsolicited. Bounds the matcher's memory by time.
    max_wait: float = 30.0
    #: An answered query stays open this many seconds after its response, for the A/AAAA
    #: pairing window and for an ICMP error about a late answer.
    answer_linger: float = 1.0
    #: Hard cap on queries in flight; beyond it the oldest are closed early (and counted).
    max_in_flight: int = 1_000_000
    #: Cap on the memory the queries in flight hold (estimated per query: its bytes and
    #: the state around it, about 1.8 KB a query; 256 MiB is about 145,000 queries). Past
    #: it, answered queries are closed before their linger ends, then the oldest unanswered
    #: ones are evicted; both are counted and warned about.
    max_in_flight_bytes: int = 256 * 1024 * 1024
    #: At most this many answered queries wait out their linger at once; past it the
    #: oldest close early (a burst with one time stamp closes nothing by time).
    max_lingering: int = 50_000
    #: The duplicate filter remembers at most this many messages of its window; past it the
    #: oldest are forgotten early (counted in ``duplicates_evicted``, with a warning).
    max_dedupe_entries: int = 100_000
    #: At most this many distinct findings of one kind are listed; further ones are
    #: counted in a single entry per kind (qname "*"), so memory stays bounded.
    max_findings_per_kind: int = 5000
    #: At most this many frame numbers are kept as evidence in one finding.
    max_evidence_frames: int = 50
    #: The first this many findings of each kind keep the lookups they are about, for the
    #: report's evidence tables.
    max_examples_per_kind: int = 20
    #: A capture whose time stamps span more than this many seconds gets an "implausible
    #: span" warning: rings run for minutes to days, so a longer span means records with a
    #: wrong time (a clock that was not set, damaged or crafted records).
    max_plausible_span: float = 31 * 86400.0
    #: The search-expansion detector keeps at most this many NXDOMAIN lookups (all clients
    #: together) as possible search-suffix tries; beyond it the oldest are forgotten and
    #: counted (``search_tries_evicted``).
    max_search_tries: int = 20_000
    #: TCP reassembly holds at most this many bytes (partial messages and segments waiting
    #: beyond gaps, all connections together); beyond it the least recently active
    #: connections are dropped and counted (``tcp_flows_evicted``).
    max_tcp_buffer_bytes: int = 64 * 1024 * 1024
    #: IP fragment reassembly holds at most this many bytes (all incomplete datagrams
    #: together); beyond it the oldest datagrams are dropped and counted
    #: (``fragmented_datagrams_evicted``).
    max_fragment_buffer_bytes: int = 32 * 1024 * 1024
