"""The report's "CoreDNS query log" section: what was joined, and for each failed lookup
what CoreDNS logged for it, with what that means (``VERDICTS``).

Every string here that comes from the capture or the log is shown as text by the template
(autoescape); nothing is marked safe.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from pcapdns.coredns_log.join import VERDICT_LABELS, JoinResult, LoggedAttempt, ProblemLookup


@dataclass(frozen=True, slots=True)
class VerdictText:
    """What one verdict means in a cluster, and what to do about it."""

    meaning: str
    action: str


#: The interpretation of each verdict (docs/analysis.md, "CoreDNS query logs").
VERDICTS: dict[str, VerdictText] = {
    "lost_after_coredns": VerdictText(
        "CoreDNS received the query and wrote its answer in time, yet no answer reached "
        "the client: the answer was lost after CoreDNS, on CoreDNS's node, between the "
        "nodes, or on the client's node (the reply's reverse NAT in conntrack, a full "
        "conntrack table, a NetworkPolicy or firewall on the return path).",
        "Capture on CoreDNS's node too and compare (`pcapdns correlate`): if the answer "
        "left CoreDNS's node, look at the network and the client's node (`conntrack -S`, "
        "`dmesg` for `nf_conntrack: table full`)."),
    "coredns_slow": VerdictText(
        "CoreDNS answered, but only after the client had given up (the logged duration is "
        "past the slow threshold): CoreDNS was waiting, usually for an upstream resolver.",
        "Read the errors plugin's lines below (`plugin/errors: ... i/o timeout` names the "
        "upstream); check the `forward` plugin's upstreams and CoreDNS's CPU throttling."),
    "coredns_error": VerdictText(
        "CoreDNS itself answered with the error code the client got: the failure is at "
        "CoreDNS or behind it, not on the way.",
        "Read the errors plugin's lines below for the cause (upstream timeout or refusal, "
        "a loop, a zone that is not served); tell the upstream provider the name, the code "
        "and the time."),
    "not_logged": VerdictText(
        "CoreDNS has no line for any attempt: the query never reached CoreDNS (dropped on "
        "the client's node, by the conntrack race, a NetworkPolicy or kube-proxy's rules, "
        "or between the nodes), or CoreDNS never finished it (the log plugin writes a line "
        "only once the answer is written: a stuck or overloaded CoreDNS writes none).",
        "Make sure the logs of every CoreDNS replica were given (a query may have gone to "
        "another one); then capture on CoreDNS's node to see whether the query arrived."),
    "ambiguous": VerdictText(
        "Several log lines could be this query (the client sent it again with the same ID "
        "from the same port) and the log has no times to tell them apart.",
        "Take the log again with `kubectl logs --timestamps`."),
    "not_covered": VerdictText(
        "The lookup went to a server none of whose queries are in the log, or outside the "
        "log's time span: the log says nothing about it.",
        "Give the log of the CoreDNS replica that served it, covering the capture's time."),
    "logged": VerdictText(
        "CoreDNS logged the query with another code than the one the client got.",
        "Something between CoreDNS and the client answered or rewrote the answer (a "
        "NodeLocal DNSCache, a proxy): capture there."),
}


@dataclass(frozen=True, slots=True)
class LogLookupRow:
    """One failed lookup and what CoreDNS logged for each of its attempts."""

    lookup: int
    time: str
    client: str
    server: str
    qname: str
    qtype: str
    outcome: str
    #: Per attempt, in words ("frame 9: NOERROR in 0.2 ms, coredns.log:7").
    attempts: tuple[str, ...]
    verdict: str
    label: str


@dataclass(frozen=True, slots=True)
class CoreDnsLogView:
    #: (label, value) of the join's figures.
    figures: tuple[tuple[str, str], ...]
    #: Whether log lines could be placed in time, and the clock offset, in a sentence.
    times: str
    times_used: bool
    #: (label, count, meaning, action) of each verdict found, most frequent first.
    verdicts: tuple[tuple[str, int, str, str], ...]
    rows: tuple[LogLookupRow, ...]
    rows_omitted: int
    #: (file:line, text) of the errors plugin's first lines, and of unparsable lines.
    errors: tuple[tuple[str, str], ...]
    unparsable: tuple[tuple[str, str], ...]


def view(log: JoinResult | None, utc: Callable[[float], str]) -> CoreDnsLogView | None:
    """The section for ``log`` (None without a log); ``utc`` formats a time."""
    if log is None:
        return None
    x = log.index
    figures = (
        ("log files", f"{len(x.files)}"),
        ("query lines", f"{x.query_lines:,}"),
        ("other plugins' lines", f"{x.other_lines:,} ({x.error_lines:,} of the errors plugin)"),
        ("unparsable lines", f"{x.unparsable:,}"),
        ("joined to a captured query", f"{log.joined:,}"),
        ("ambiguous (queries / lines)", f"{log.ambiguous_queries:,} / {log.ambiguous_lines:,}"),
        ("captured, not logged", f"{log.captured_not_logged:,} "
                                 f"({log.captured_not_logged_answered:,} of them answered)"),
        ("logged, not captured", f"{log.logged_not_captured:,}"),
        ("logged for clients not in the capture", f"{log.logged_other_clients:,}"),
        ("logged outside the capture's time", f"{log.logged_outside_capture:,}"),
    )
    if log.times_used and log.clock_offset_s is not None:
        times = (f"Log lines were placed in time: CoreDNS's clock (with the transit) is "
                 f"{log.clock_offset_s * 1000:+.3f} ms from the capture's, the median of "
                 f"{log.offset_samples:,} queries that matched one line alone (spread "
                 f"{(log.offset_spread_s or 0) * 1000:.3f} ms).")
    elif log.times_used:
        times = ("Log lines have times, but no query matched one line alone: the clock "
                 "offset is unknown and times were compared as they are.")
    else:
        times = ("The log has no times (kubectl logs without --timestamps): its lines "
                 "cannot be placed in time. Queries were joined on client address and "
                 "port, DNS ID, name and type only; a key logged or sent more than once is "
                 "ambiguous and left out.")
    verdicts = tuple(
        (VERDICT_LABELS[k], n, VERDICTS[k].meaning, VERDICTS[k].action)
        for k, n in sorted(log.verdicts.items(), key=lambda kv: (-kv[1], kv[0])))
    return CoreDnsLogView(
        figures=figures, times=times, times_used=log.times_used, verdicts=verdicts,
        rows=tuple(_row(p, utc) for p in log.problems), rows_omitted=log.problems_omitted,
        errors=tuple((f"{e.file}:{e.line}", e.text) for e in x.errors),
        unparsable=tuple((f"{u.file}:{u.line}", u.text) for u in x.unparsable_examples),
    )


def _row(p: ProblemLookup, utc: Callable[[float], str]) -> LogLookupRow:
    return LogLookupRow(
        lookup=p.lookup, time=utc(p.time), client=f"{p.client}:{p.client_port}",
        server=p.server, qname=p.qname, qtype=p.qtype, outcome=p.outcome,
        attempts=tuple(_attempt(a) for a in p.attempts), verdict=p.verdict,
        label=VERDICT_LABELS[p.verdict])


def _attempt(a: LoggedAttempt) -> str:
    if a.logged is None:
        return f"frame {a.frame}: ambiguous"
    if not a.logged:
        return f"frame {a.frame}: not logged"
    ms = (a.duration_s or 0.0) * 1000
    took = f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.3f} s"
    return f"frame {a.frame}: {a.rcode} in {took} ({os.path.basename(a.line or '')})"
