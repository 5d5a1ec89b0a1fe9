"""Two capture points: where was a lookup lost?

A capture on the client's node and one on the DNS server's node (CoreDNS) are analyzed
each on its own, then compared: the clock offset between the two is estimated from the
lookups both saw (``offset``), each client query is paired with the query that arrived at
the server (``fates``), and each lookup the client got no answer for is given the place it
was lost: before the server, at the server, or on the way back.

    client capture -> analysis -> queries --\\
                                             offset -> pairs -> fates -> Correlation
    server capture -> analysis -> queries --/
"""

from __future__ import annotations

import gc
from dataclasses import replace

from pcapdns.analysis import Progress
from pcapdns.config import AnalysisConfig
from pcapdns.coredns_log.index import LogIndex
from pcapdns.correlate import fates, offset, sides
from pcapdns.correlate.records import CorrelateConfig, Correlation, SideCapture
from pcapdns.pods import PodDirectory


def correlate(client_paths: list[str], server_paths: list[str],
              analysis: AnalysisConfig | None = None,
              config: CorrelateConfig | None = None,
              progress: Progress | None = None,
              coredns_log: LogIndex | None = None,
              pods: PodDirectory | None = None) -> Correlation:
    """Correlate the client-side capture ``client_paths`` with the server-side capture
    ``server_paths`` (each: files, a ring or a directory, as ``analyze`` takes them); with
    ``coredns_log``, join CoreDNS's query log to the server side's queries; ``pods``
    (``pcapdns.pods.load``) names the addresses in the outputs.

    Raises:
        InputError: an input is missing, not a capture, or has an unsupported link type.
        CoreError: the compiled core hit a bug on the inputs.
    """
    analysis = analysis or AnalysisConfig()
    config = config or CorrelateConfig()
    # Millions of small records stay alive to the end and hold no cycles: the cyclic
    # collector, run every 700 allocations as by default, would walk them again and again
    # (half the time of a correlation of 200,000 lookups). Run it rarely, as the analysis
    # does.
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        client = sides.read_side("client", client_paths, analysis, config, progress)
        server = sides.read_side("server", server_paths, analysis, config, progress,
                                 coredns_log)
        return replace(combine(client, server, config), pods=pods)
    finally:
        gc.set_threshold(*thresholds)


def combine(client: SideCapture, server: SideCapture,
            config: CorrelateConfig | None = None) -> Correlation:
    """The correlation of two sides already read."""
    config = config or CorrelateConfig()
    pairs, rejected = offset.candidate_pairs(client.queries, server.queries)
    clock = offset.estimate(pairs, rejected)
    counts, lost, elsewhere, servers, paired = fates.judge(client, server, clock, config)
    warnings = [*client.warnings, *server.warnings]
    if clock.offset is None:
        warnings.append(
            "no query was seen answered on both sides, so the clocks of the two capture "
            "points cannot be compared: every lookup the client got no answer for is "
            "unknown (were the captures made at the same time, of the same DNS server?)")
    elif clock.interval is None:
        warnings.append(
            f"the {clock.pairs:,} queries seen on both sides disagree on the clock offset "
            f"(spread {clock.spread:.6f} s): a clock drifted or stepped during the capture; "
            "the error bound is the widest single query's")
    if client.queries and clock.offset is not None and paired == 0:
        warnings.append("no client query was paired with a server query")
    if elsewhere:
        warnings.append(
            f"{elsewhere:,} client lookups went to servers none of whose queries reached "
            "the server capture; they are not judged")
    return Correlation(config=config, client=client, server=server, clock=clock,
                       fates=counts, lost=tuple(lost), other_server_lookups=elsewhere,
                       servers=servers, paired=paired, warnings=tuple(warnings))
