"""The library entry point: run the whole pipeline over one capture (one or more files).

    files -> records -> DNS payloads -> messages -> (duplicates dropped) -> matcher
          -> transactions / lookups -> detectors -> findings

The stages stream: nothing holds the capture in memory, and the matcher keeps only what is
in flight. ``keep_lookups=True`` (the CLI's ``--transactions``) is the one option that keeps
every lookup, because the user asked for all of them.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from pcapdns.breakdown import Breakdown
from pcapdns.config import AnalysisConfig
from pcapdns.decode.frames import Decoded, DecodeStats, FrameDecoder
from pcapdns.decode.records import Payload
from pcapdns.decode.tcp import TcpStats
from pcapdns.detect import AggregatedFinding, FindingCollector, stale_port
from pcapdns.detect.base import Finding
from pcapdns.dns.message import parse
from pcapdns.errors import DecodeError
from pcapdns.latency import LatencyHistogram
from pcapdns.match.dedupe import Deduplicator
from pcapdns.match.matcher import Matcher
from pcapdns.match.records import Lookup
from pcapdns.match.state import MatchStats
from pcapdns.read import capture_meta
from pcapdns.read.capture import CaptureFile
from pcapdns.read.capture_meta import CaptureMeta
from pcapdns.read.merge import open_inputs
from pcapdns.read.reorder import TimeOrder
from pcapdns.timeline import Timeline

#: Called now and then with (bytes read, total bytes) of the input files.
Progress = Callable[[int, int], None]

MAX_MALFORMED_EXAMPLES = 20


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
) -> Analysis:
    """Analyze the capture made of ``paths`` (files and directories).

    Raises:
        InputError: an input is missing, not a capture, or has an unsupported link type.
    """
    config = config or AnalysisConfig()
    # The pipeline frees its objects by reference counting (the matcher breaks its own
    # cycles), so the cyclic collector has almost nothing to find; running it every 700
    # allocations, as by default, costs about a tenth of the run. Run it rarely instead.
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        return _analyze(paths, config, keep_lookups, progress)
    finally:
        gc.set_threshold(*thresholds)


def _analyze(
    paths: list[str], config: AnalysisConfig, keep_lookups: bool, progress: Progress | None
) -> Analysis:
    cap = open_inputs(paths)
    decoder = FrameDecoder(config.ports, config.max_tcp_buffer_bytes,
                           config.max_fragment_buffer_bytes)
    dedupe = Deduplicator(config.duplicate_window, record_copies=keep_lookups,
                          max_entries=config.max_dedupe_entries)
    collector = FindingCollector(config)
    histogram = LatencyHistogram()
    kept: list[Lookup] | None = [] if keep_lookups else None

    breakdown = Breakdown()
    timeline = Timeline()

    def on_lookup(lookup: Lookup) -> None:
        collector.lookup(lookup)
        breakdown.lookup(lookup)
        timeline.lookup(lookup)
        latency = lookup.latency
        if latency is not None:
            histogram.add(latency)
        if kept is not None:
            kept.append(lookup)

    matcher = Matcher(config, on_lookup, collector.orphan)
    malformed = 0
    examples: list[tuple[int, str]] = []
    decode = decoder.decode
    order = TimeOrder(config.reorder_window)
    total = cap.total_bytes
    def consume(out: list[Decoded]) -> None:
        nonlocal malformed
        for item in out:
            if type(item) is Payload:
                try:
                    m = parse(item)
                except DecodeError as e:
                    malformed += 1
                    if len(examples) < MAX_MALFORMED_EXAMPLES:
                        examples.append((item.frame, str(e)))
                    continue
                if not dedupe.is_duplicate(m):
                    matcher.message(m)
            else:
                matcher.icmp(item)  # type: ignore[arg-type]

    started = False
    for ts, frame, link_type, iface, data in order.sorted(cap.records):
        if not started:  # the capture's first packet, in time order
            matcher.capture_start = ts
            started = True
        out = decode(frame, ts, link_type, iface, data)
        if progress is not None and not frame & 0x3FFF:
            progress(cap.bytes_read, total)
        if out is not None:
            consume(out)
    consume(decoder.finish())
    meta, meta_warnings = capture_meta.load(paths)
    end = _capture_end(cap.files, meta)
    if end is not None:
        end = max(end, order.newest)  # the last record written need not be the newest
    matcher.finish(end)
    collector.finish()
    cluster_dns = stale_port.cluster_dns_servers(meta, dedupe.dnat_servers)
    collector.revise("stale_port", lambda f: stale_port.name_cause(f, cluster_dns))
    if progress is not None:
        progress(total, total)
    warnings = list(cap.warnings)
    for f in cap.files:
        warnings.extend(f.warnings)
    warnings.extend(meta_warnings)
    late = order.warning()
    if late is not None:
        warnings.append(late)
    warnings.extend(timeline.span_warnings(cap.files, config.max_plausible_span))
    for name, n in collector.evicted().items():
        if n:
            warnings.append(
                f"the {name.replace('_', ' ')} detector reached its memory cap and forgot "
                f"{n:,} entries early: some of its findings may be missing")
    warnings.extend(_matcher_warnings(matcher.stats, config))
    if dedupe.evicted:
        warnings.append(
            f"{dedupe.evicted:,} messages were forgotten by the duplicate filter before its "
            f"{config.duplicate_window * 1000:g} ms window was over (more than "
            f"{config.max_dedupe_entries:,} messages within it): a copy of one of them may "
            "be counted twice")
    return Analysis(
        config=config,
        files=cap.files,
        packets=order.records,
        duplicates=dedupe.duplicates,
        late_records=order.late,
        malformed=malformed,
        malformed_examples=examples,
        decode=decoder.stats,
        tcp=decoder.tcp.stats,
        fragments_reassembled=decoder.fragments.reassembled,
        fragments_dropped=decoder.fragments.dropped,
        match=matcher.stats,
        latency_ms=histogram.summary_ms(),
        findings=collector.findings(),
        breakdown=breakdown,
        lookups=kept,
        duplicate_of=dedupe.copies,
        warnings=warnings,
        detector_errors=dict(collector.errors),
        latency=histogram,
        timeline=timeline,
        examples=collector.examples(),
        capture=meta,
        findings_on_failed=dict(collector.on_failed),
        fragments_evicted=decoder.fragments.evicted,
        fragment_bytes_evicted=decoder.fragments.evicted_bytes,
        search_tries_evicted=collector.evicted().get("search_expansion", 0),
        stale_port_evicted=collector.evicted().get("stale_port", 0),
        duplicates_evicted=dedupe.evicted,
    )


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
