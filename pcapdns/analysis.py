"""The library entry point: run the whole pipeline over one capture (one or more files).

    files -> records -> DNS payloads -> messages -> (duplicates dropped) -> matcher
          -> transactions / lookups (tallied) -> detectors -> findings

Everything up to the lookups and their tallies runs in the compiled core
(``pcapdns._core.Engine``, core/ in the source tree), a step of records at a time; the
detectors, which decide what the facts mean, run here on what each step hands over. The
stages stream: nothing holds the capture in memory, and the matcher keeps only what is in
flight. ``keep_lookups=True`` (the CLI's ``--transactions``) is the one option that keeps
every lookup, because the user asked for all of them.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from pcapdns import _core
from pcapdns.breakdown import Breakdown
from pcapdns.config import AnalysisConfig
from pcapdns.coredns_log.index import LogIndex
from pcapdns.coredns_log.join import JoinResult, LogJoin
from pcapdns.detect import AggregatedFinding, FindingCollector, replica_imbalance, stale_port
from pcapdns.detect.base import Finding
from pcapdns.errors import CoreError
from pcapdns.latency import LatencyHistogram
from pcapdns.match.records import Lookup
from pcapdns.pods import PodDirectory
from pcapdns.read import capture_meta
from pcapdns.read.capture_meta import CaptureMeta
from pcapdns.replicas import Replica
from pcapdns.replicas import from_core as replica_rows
from pcapdns.stats import CaptureFile, DecodeStats, MatchStats, TcpStats
from pcapdns.timeline import Timeline
from pcapdns.upstream import Cause, UpstreamTally, tallies_from_core

#: Called now and then with (bytes read, total bytes) of the input files.
Progress = Callable[[int, int], None]

#: Records the core reads between two hand-overs to Python (progress, Ctrl-C, detectors).
#: What a step closes waits in memory until it is handed over: 8,192 records hold a few
#: MB of closed lookups (65,536 held about 30 MB more at the peak on the bench capture).
STEP_RECORDS = 1 << 13


@dataclass(slots=True)
class Analysis:
    """Everything one analysis produced; rendered by pcapdns.output."""

    config: AnalysisConfig
    #: Input files in merge order.
    files: list[CaptureFile]
    #: Frames read, all files together.
    packets: int
    #: Copies dropped as capture artifacts.
    duplicates: int
    #: Records read too far out of time order to be put back in place.
    late_records: int
    #: Frames on a DNS port whose DNS message did not decode.
    malformed: int
    #: (frame, reason) for the first few malformed frames.
    malformed_examples: list[tuple[int, str]]
    decode: DecodeStats
    tcp: TcpStats
    #: IP datagrams reassembled from fragments, and given up on.
    fragments_reassembled: int
    fragments_dropped: int
    match: MatchStats
    #: Latency percentiles of answered lookups, in milliseconds.
    latency_ms: dict[str, float | None]
    findings: list[AggregatedFinding]
    #: Lookups tallied per server and per client.
    breakdown: Breakdown
    #: Every lookup, only when asked for.
    lookups: list[Lookup] | None
    #: Frame of each dropped duplicate -> frame of the copy kept (with ``lookups`` only).
    duplicate_of: dict[int, int] | None
    #: Problems with the input that did not stop the analysis.
    warnings: list[str] = field(default_factory=list)
    #: Detector failures, by detector name.
    detector_errors: dict[str, int] = field(default_factory=dict)
    #: Latencies of answered lookups (the percentiles above come from it).
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    #: Queries and failed lookups over time.
    timeline: Timeline = field(default_factory=Timeline)
    #: The first few findings of each kind with the lookups they are about.
    examples: dict[str, list[Finding]] = field(default_factory=dict)
    #: What the capture agent recorded beside the files (capture.json), if anything.
    capture: CaptureMeta | None = None
    #: Messages the duplicate filter forgot early because of its cap.
    duplicates_evicted: int = 0
    #: Occurrences of each finding kind that are about a failed lookup (``Lookup.failed``).
    findings_on_failed: dict[str, int] = field(default_factory=dict)
    #: Incomplete IP datagrams dropped (also in ``fragments_dropped``) to keep fragment
    #: reassembly within ``max_fragment_buffer_bytes``, and the bytes they held.
    fragments_evicted: int = 0
    fragment_bytes_evicted: int = 0
    #: NXDOMAIN lookups the search-expansion detector forgot at ``max_search_tries``.
    search_tries_evicted: int = 0
    #: Client ports and clients the stale-port detector forgot at its caps.
    stale_port_evicted: int = 0
    #: The CoreDNS log joined to the lookups (``--coredns-log``), or None without one.
    coredns_log: JoinResult | None = None
    #: Per DNAT target of a Service address: queries, failures, latency (empty without
    #: a capture of both sides of a node's NAT).
    replicas: tuple[Replica, ...] = ()
    #: The forwarder's upstream leg per upstream server (empty without one).
    upstream: list[UpstreamTally] = field(default_factory=list)
    #: The cause of each failed or slow downstream lookup, by lookup id (pcapdns.upstream).
    causes: dict[int, Cause] = field(default_factory=dict)
    #: Failed or slow lookups given a cause, by cause kind.
    cause_counts: dict[str, int] = field(default_factory=dict)
    #: The first failed or slow lookups with their cause (for the report).
    cause_examples: list[tuple[Lookup, Cause]] = field(default_factory=list)
    #: Pod names of addresses (``--pods``, or the listing the agent saved beside the
    #: capture), or None without any.
    pods: PodDirectory | None = None
    #: Where ``pods`` came from: "--pods" or the capture.json that names the files.
    pods_source: str | None = None
    #: Frames (or inner frames, when tunnels nest) decapsulated, by tunnel kind
    #: ("vxlan", "geneve", ...), every kind listed.
    tunnels: dict[str, int] = field(default_factory=dict)

    @property
    def first_time(self) -> float | None:
        times = [f.first_time for f in self.files if f.first_time is not None]
        return min(times) if times else None

    @property
    def last_time(self) -> float | None:
        times = [f.last_time for f in self.files if f.last_time is not None]
        return max(times) if times else None


def analyze(
    paths: list[str],
    config: AnalysisConfig | None = None,
    *,
    keep_lookups: bool = False,
    progress: Progress | None = None,
    coredns_log: LogIndex | None = None,
    every_lookup: Callable[[Lookup], None] | None = None,
    pods: PodDirectory | None = None,
) -> Analysis:
    """Analyze the capture made of ``paths`` (files and directories); with ``coredns_log``
    (``pcapdns.coredns_log.index.load``), join every lookup to CoreDNS's query log too;
    ``every_lookup`` is called with every lookup as it closes (a consumer that streams them,
    as ``pcapdns correlate`` does, instead of keeping them all); ``pods``
    (``pcapdns.pods.load``) names the addresses, and without it the pods listing the agent
    saved beside the capture (capture.json ``pods_files``) is read, if there is one.

    Raises:
        InputError: an input is missing, not a capture, or has an unsupported link type.
        CoreError: the compiled core hit a bug (a panic) on the inputs.
    """
    config = config or AnalysisConfig()
    # The pipeline frees its objects by reference counting (the matcher breaks its own
    # cycles), so the cyclic collector has almost nothing to find; running it every 700
    # allocations, as by default, costs about a tenth of the run. Run it rarely instead.
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        return _analyze(paths, config, keep_lookups, progress, coredns_log, every_lookup,
                        pods)
    except BaseException as e:
        # A panic in the core reaches Python as pyo3's PanicException (a BaseException,
        # so that it is not swallowed by accident): the run cannot go on, but the user gets
        # one line naming the inputs, never a traceback or an abort.
        if type(e).__name__ == "PanicException":
            raise CoreError(list(paths), str(e) or "panic") from e
        raise
    finally:
        gc.set_threshold(*thresholds)


class _HookedCollector(FindingCollector):
    """The collector with the engine's ``every_lookup`` hook, which hands every lookup
    (not only those a detector may care about) to each of ``hooks`` (the CoreDNS log join,
    a caller's ``every_lookup``). Only used when there is a hook: it makes the engine build
    a Python record for every lookup."""

    def __init__(self, config: AnalysisConfig, hooks: list[Callable[[Lookup], None]]) -> None:
        super().__init__(config)
        self.hooks = hooks

    def every_lookup(self, lookup: Lookup) -> None:
        for hook in self.hooks:
            hook(lookup)


def _analyze(
    paths: list[str], config: AnalysisConfig, keep_lookups: bool, progress: Progress | None,
    coredns_log: LogIndex | None, every_lookup: Callable[[Lookup], None] | None,
    pods: PodDirectory | None = None,
) -> Analysis:
    join = None
    hooks: list[Callable[[Lookup], None]] = []
    if coredns_log is not None:
        join = LogJoin(coredns_log, per_transaction=keep_lookups, slow=config.slow)
        hooks.append(join.every_lookup)
    if every_lookup is not None:
        hooks.append(every_lookup)
    collector = _HookedCollector(config, hooks) if hooks else FindingCollector(config)
    kept: list[Lookup] | None = [] if keep_lookups else None
    # The engine hands the collector the lookups that can matter to a detector (and every
    # orphan); the others are only tallied, unless every lookup is kept.
    engine = _core.Engine(paths, config, collector, kept)
    total = engine.total_bytes
    while engine.step(STEP_RECORDS):
        if progress is not None:
            progress(engine.bytes_read, total)
    files = [CaptureFile(**f) for f in engine.files()]
    meta, meta_warnings = capture_meta.load(paths)
    end = _capture_end(files, meta)
    if end is not None:
        end = max(end, engine.newest)  # the last record written need not be the newest
    engine.finish(end)
    collector.finish()
    collector.causes.keep_forwarders(engine.is_forwarder)
    collector.fold_downstream()
    facts = engine.facts()
    replicas = replica_rows(facts["replicas"])
    start = min((c.first_time for c in files if c.first_time is not None), default=0.0)
    collector.whole_capture(replica_imbalance.detect(replicas, start))
    pods_source = "--pods" if pods is not None else None
    if pods is None and meta is not None and meta.pods_files:
        pods, pods_warnings = saved_pods(meta)
        meta_warnings = [*meta_warnings, *pods_warnings]
        pods_source = meta.path if pods is not None else None
    cluster_dns = stale_port.cluster_dns_servers(meta, set(facts["dnat_servers"]), pods)
    collector.revise("stale_port", lambda f: stale_port.name_cause(f, cluster_dns))
    if progress is not None:
        progress(total, total)
    match = MatchStats(**facts["match"])
    timeline = Timeline.from_core(*facts["timeline"])
    warnings = list(facts["open_warnings"])
    for f in files:
        warnings.extend(f.warnings)
    warnings.extend(meta_warnings)
    if pods is not None:
        warnings.extend(pods.warnings)
    if facts["late_warning"] is not None:
        warnings.append(facts["late_warning"])
    warnings.extend(timeline.span_warnings(files, config.max_plausible_span))
    for name, n in collector.evicted().items():
        if n:
            warnings.append(
                f"the {name.replace('_', ' ')} detector reached its memory cap and forgot "
                f"{n:,} entries early: some of its findings may be missing")
    warnings.extend(_matcher_warnings(match, config))
    dedupe = facts["dedupe"]
    if dedupe["evicted"]:
        warnings.append(
            f"{dedupe['evicted']:,} messages were forgotten by the duplicate filter before "
            f"its {config.duplicate_window * 1000:g} ms window was over (more than "
            f"{config.max_dedupe_entries:,} messages within it): a copy of one of them may "
            "be counted twice")
    joined = join.finish() if join is not None else None
    if joined is not None:
        warnings.extend(joined.warnings)
    warnings.extend(_upstream_warnings(facts["upstream_links"], collector.causes.evicted))
    histogram = LatencyHistogram.from_core(*facts["latency"])
    fragments = facts["fragments"]
    return Analysis(
        config=config,
        files=files,
        packets=facts["records"],
        duplicates=dedupe["duplicates"],
        late_records=facts["late"],
        malformed=facts["malformed"],
        malformed_examples=[tuple(e) for e in facts["malformed_examples"]],
        decode=DecodeStats(**facts["decode"]),
        tcp=TcpStats(**facts["tcp"]),
        fragments_reassembled=fragments["reassembled"],
        fragments_dropped=fragments["dropped"],
        match=match,
        latency_ms=histogram.summary_ms(),
        findings=collector.findings(),
        breakdown=Breakdown.from_core(*facts["breakdown"]),
        lookups=kept,
        duplicate_of=dedupe["copies"],
        warnings=warnings,
        detector_errors=dict(collector.errors),
        latency=histogram,
        timeline=timeline,
        examples=collector.examples(),
        capture=meta,
        findings_on_failed=dict(collector.on_failed),
        fragments_evicted=fragments["evicted"],
        fragment_bytes_evicted=fragments["evicted_bytes"],
        search_tries_evicted=collector.evicted().get("search_expansion", 0),
        stale_port_evicted=collector.evicted().get("stale_port", 0),
        duplicates_evicted=dedupe["evicted"],
        coredns_log=joined,
        replicas=replicas,
        upstream=tallies_from_core(facts["upstream"]),
        causes=collector.causes.by_lookup,
        cause_counts=dict(sorted(collector.causes.counts.items())),
        cause_examples=collector.causes.examples,
        pods=pods,
        pods_source=pods_source,
        tunnels=dict(facts["tunnels"]),
    )


def saved_pods(meta: CaptureMeta) -> tuple[PodDirectory | None, list[str]]:
    """The pods listing the agent saved beside the capture (``--save-pods``), and a
    warning when it cannot be read: it is a help, never a reason to stop."""
    from pcapdns import pods
    from pcapdns.errors import InputError

    try:
        return pods.load(list(meta.pods_files)), []
    except InputError as e:
        return None, [f"the pods listing named in {meta.path} is not used: {e}"]


def _upstream_warnings(links: dict[str, int], causes_evicted: int) -> list[str]:
    """What the caps of the forwarder's links cost, in words (none in a normal capture)."""
    out = []
    if links["evicted"]:
        out.append(
            f"{links['evicted']:,} queries were forgotten by the forwarder's link index "
            "before their wait was over (too many in flight): an upstream query sent for "
            "one of them is not linked to it")
    if links["links_evicted"]:
        out.append(
            f"{links['links_evicted']:,} links between a forwarder's downstream and "
            "upstream queries were dropped at their cap: some upstream queries are not "
            "tallied as such")
    if links["learn_evicted"]:
        out.append(
            f"{links['learn_evicted']:,} counts of addresses that might forward for a "
            "server from another address were forgotten at their caps: such a forwarder "
            "is learned later than it could be, its upstream queries meanwhile not linked")
    if links["servers_untallied"]:
        out.append(
            f"{links['servers_untallied']:,} upstream lookups went to more upstream "
            "servers than are tallied one by one and are left out of the upstream table")
    if causes_evicted:
        out.append(
            f"{causes_evicted:,} upstream outcomes or causes were forgotten at their caps: "
            "some failed lookups' causes may say local or be missing")
    return out


def _matcher_warnings(m: MatchStats, config: AnalysisConfig) -> list[str]:
    """What the matcher's memory caps cost, in words (none in a normal capture)."""
    out = []
    if m.evicted:
        out.append(
            f"{m.evicted:,} unanswered queries were closed before the {config.max_wait:g} s "
            f"wait was over, because more than {config.max_in_flight_bytes >> 20} MiB (or "
            f"{config.max_in_flight:,} queries) were in flight: an answer that came later "
            "for one of them is counted as unsolicited")
    if m.closed_early:
        out.append(
            f"{m.closed_early:,} answered queries were closed before their "
            f"{config.answer_linger:g} s linger was over (more than "
            f"{config.max_lingering:,} answers at once, or the memory cap): an A/AAAA "
            "partner or an ICMP error that came later was not linked to them")
    return out


def input_files(paths: list[str]) -> list[str]:
    """Every file an analysis of ``paths`` reads or may read: the paths as given, the
    files of the directories among them (those that will be skipped as not captures
    included), and the capture.json beside them. An output must be none of these.

    Raises:
        InputError: a path does not exist, or a directory holds no files.
    """
    expanded = (p for p, _ in _core.expand_paths(paths))
    return [*paths, *expanded, *capture_meta.find(paths)]


def _capture_end(files: list[CaptureFile], meta: CaptureMeta | None) -> float | None:
    """When the capture ended: its last packet, or the agent's stop time when capture.json
    has one and every ring file beside it was read.

    A capture runs on after its last DNS packet: a query left unanswered 10 s before the
    agent stopped timed out, though it is the last packet. The stop time counts only for
    the whole ring; the answer to a query near the end of one file of it may be in the next.
    """
    end = max((f.last_time for f in files if f.last_time is not None), default=None)
    if meta is None or meta.stop is None or end is None:
        return end
    ring = {os.path.realpath(p) for p in meta.ring_files()}
    read = {os.path.realpath(f.path) for f in files}
    if not ring or not ring <= read:
        return end
    return max(end, meta.stop)
