"""The verdict: the first thing the terminal summary and the HTML report say.

Both outputs print these sentences, so "failed" means one thing everywhere: a lookup the
capture saw fail (``Lookup.failed``, the summary's ``lookups_failed``): no answer and the
client's wait over before the capture ended, or every answer bounced by the client's closed
port. Lookups still unanswered when the capture stopped are undecided and said apart.

Problems are the distinct findings after one-problem-per-cause folding (a lost race carries
its retransmission and slow answer as evidence), most severe first and causes before
symptoms; the main one gets a sentence in its own words, saying plainly whether its lookups
are among the failed ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pcapdns.analysis import Analysis
from pcapdns.detect import AggregatedFinding
from pcapdns.detect.base import SEVERITY_RANK, Finding, FindingKind
from pcapdns.match.records import Lookup
from pcapdns.report.knowledge import ADVICE

#: Kinds in the order a reader should see them at one severity: causes before the
#: symptoms they produce (a lost A/AAAA race shows up as a retransmission and a slow answer
#: too, so the race comes first).
KIND_ORDER: tuple[str, ...] = (
    "aaaa_race_lost", "stale_port", "lost_in_node", "reply_not_delivered",
    "unexpected_source", "replica_imbalance", "truncated_no_tcp_fallback", "upstream_timeout",
    "upstream_error", "timeout", "servfail",
    "refused", "late_response", "retransmission", "slow_response", "unsolicited_response",
    "icmp_unreachable", "search_expansion", "nxdomain", "fanout", "detector_error",
)

Tone = Literal["ok", "bad", "warn", "none"]


@dataclass(frozen=True, slots=True)
class KindGroup:
    """The findings of one kind, for the verdict and the report's finding groups."""

    kind: FindingKind
    #: The most severe severity among them.
    severity: str
    #: The aggregated findings, in the analysis' order.
    findings: tuple[AggregatedFinding, ...]
    #: Occurrences, all findings together.
    occurrences: int
    #: Of the occurrences, those about a lookup that failed.
    on_failed: int


@dataclass(frozen=True, slots=True)
class Verdict:
    #: "bad" (errors), "warn" (warnings, nothing failed), "ok" (nothing wrong), "none" (no
    #: lookup to judge: no DNS on the ports, or only answers).
    tone: Tone
    #: The sentences, in reading order: what happened to the lookups, then the problems.
    sentences: tuple[str, ...]
    #: Distinct problems of error severity.
    problems: int


def kind_groups(a: Analysis) -> list[KindGroup]:
    """Findings grouped by kind: most severe first, then causes before symptoms."""
    by_kind: dict[FindingKind, list[AggregatedFinding]] = {}
    for agg in a.findings:
        by_kind.setdefault(agg.kind, []).append(agg)
    groups = [
        KindGroup(
            kind=kind,
            severity=min((x.severity for x in aggs), key=SEVERITY_RANK.__getitem__),
            findings=tuple(aggs),
            occurrences=sum(x.count for x in aggs),
            on_failed=a.findings_on_failed.get(kind, 0),
        )
        for kind, aggs in by_kind.items()
    ]
    groups.sort(key=lambda g: (SEVERITY_RANK[g.severity], kind_rank(g.kind), -g.occurrences))
    return groups


def kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def verdict(a: Analysis) -> Verdict:
    m = a.match
    lookups = m.lookups
    if lookups == 0:
        if m.queries + m.responses == 0:
            ports = "port" + ("s" if len(a.config.ports) > 1 else "")
            return Verdict("none", (
                f"No DNS found on {ports} {ports_text(a)} "
                f"({count_noun(a.packets, 'packet')} read).",
                "If DNS runs on another port, use --port N."), 0)
        return Verdict("none", (
            f"{count_noun(m.queries + m.responses, 'DNS message')} but no query was seen: the "
            "capture holds only answers.",), 0)
    groups = kind_groups(a)
    errors = [g for g in groups if SEVERITY_RANK[g.severity] <= SEVERITY_RANK["error"]]
    problems = sum(len([x for x in g.findings if x.severity in ("critical", "error")])
                   for g in errors)
    failed = m.lookups_failed
    still = m.lookups_open_at_end
    out: list[str] = []
    waiting = (f" {still:,} more {'was' if still == 1 else 'were'} still unanswered when "
               "the capture ended (undecided)." if still else "")
    if failed:
        late = m.lookups_failed_late
        if late == failed:
            how = (": " + ("it" if late == 1 else "each") + " got its answer only after the "
                   "client had given up")
        elif late:
            how = (f": {failed - late:,} got no answer, {late:,} got "
                   f"{'its' if late == 1 else 'their'} answer only after the client had given up")
        else:
            how = ""
        out.append(f"{failed:,} of {count_noun(lookups, 'lookup')} failed{how}.{waiting}")
    elif errors:
        out.append(f"None of the {count_noun(lookups, 'lookup')} failed{', ' if still else ''}"
                   f"{waiting.strip().rstrip('.').lower() if still else ''}, but "
                   f"{count_noun(problems, 'problem')} {'was' if problems == 1 else 'were'} found.")
    else:
        p99 = a.latency_ms.get("p99")
        tail = f" (99% within {duration_ms(p99)})" if p99 is not None else ""
        out.append(f"No DNS failures: all {count_noun(lookups - still, 'lookup')} "
                   f"{'was' if lookups - still == 1 else 'were'} answered{tail}.{waiting}")
        for severity, lead in (("warning", "Worth a look"), ("info", "Also seen")):
            some = [g for g in groups if g.severity == severity]
            if some:
                out.append(f"{lead}: " + ", ".join(
                    f"{g.occurrences:,} × {lower_title(ADVICE[g.kind].title)}"
                    for g in some[:3]) + ".")
        tone: Tone = "warn" if any(g.severity == "warning" for g in groups) else "ok"
        return Verdict(tone, tuple(out), 0)
    if errors:
        top = errors[0]
        if failed:
            out.append(f"{count_noun(problems, 'problem')} found; the main one: "
                       + _group_sentence(top, a))
        else:
            out.append("The main one: " + _group_sentence(top, a))
        others = errors[1:]
        if others:
            out.append("Also: " + ", ".join(
                f"{g.occurrences:,} × {lower_title(ADVICE[g.kind].title)}"
                for g in others[:4]) + ".")
    return Verdict("bad", tuple(out), problems)


def _group_sentence(g: KindGroup, a: Analysis) -> str:
    """A sentence about the first example of a group, in the words of its kind, and how its
    lookups relate to the failed ones."""
    examples = a.examples.get(g.kind, [])
    first = examples[0] if examples else None
    lookup = _first_lookup(first)
    n = g.occurrences
    scope = _scope(g, a)
    if g.kind == "aaaa_race_lost" and first is not None and lookup is not None:
        q = lookup.first
        retries = [t for t in lookup.attempts if t.retransmission is not None]
        retry = retries[0].query.time - q.time if retries else None
        wait = (f"the client waited {duration(retry)} before retrying" if retry is not None
                else "the client got no answer for it")
        return (f"{count_noun(n, 'lookup')} hit the same-port A/AAAA race{scope}. For example, the "
                f"{first.qtype} query for {first.qname} from {q.src}:{q.sport} to {q.dst} "
                f"was never answered and {wait}.")
    if g.kind == "timeout" and first is not None and lookup is not None:
        tries = len(lookup.attempts)
        span = lookup.attempts[-1].query.time - lookup.first.time
        over = f", {tries} tries over {duration(span)}" if tries > 1 else ""
        return (f"{count_noun(n, 'lookup')} got no answer at all, e.g. {first.qname} {first.qtype} "
                f"from {first.client} to {first.server}{over}.")
    if g.kind == "truncated_no_tcp_fallback" and first is not None:
        return (f"{count_noun(n, 'answer')} {'was' if n == 1 else 'were'} truncated (TC) and never "
                f"asked again over TCP{scope}, e.g. {first.qname} {first.qtype} from "
                f"{first.server}.")
    if g.kind in ("servfail", "refused") and first is not None:
        code = g.kind.upper()
        servers = distinct(x.server for x in g.findings)
        return (f"{count_noun(n, 'answer')} {'was' if n == 1 else 'were'} {code} from "
                f"{listing(servers, len(servers))}{scope}, e.g. {first.qname} {first.qtype}.")
    if g.kind == "slow_response" and first is not None and lookup is not None:
        return (f"{count_noun(n, 'lookup')} {'was' if n == 1 else 'were'} answered only after more "
                f"than {a.config.slow:g} s{scope}, e.g. {first.qname} {first.qtype} from "
                f"{first.client} after {duration(lookup.latency or 0.0)}.")
    if g.kind == "stale_port" and first is not None:
        return f"One client port got no answers: {first.detail}"
    if g.kind == "retransmission" and first is not None and lookup is not None:
        return (f"{count_noun(n, 'lookup')} needed the client to send its query again{scope}, e.g. "
                f"{first.qname} {first.qtype} from {first.client} to {first.server}: "
                f"{first.detail}")
    title = ADVICE[g.kind].title
    if first is not None:
        return f"{title} ({n:,}{scope.replace(';', ',', 1)}): {first.detail}"
    return f"{title}: {n:,}{scope}."


def _scope(g: KindGroup, a: Analysis) -> str:
    """Whether a group's lookups are among the failed ones, so that "173 failed … 3,634 hit
    the race" cannot read as if the 3,634 were among the 173."""
    failed = a.match.lookups_failed
    if failed == 0:
        return ""  # the verdict already said that nothing failed
    if g.kind in ("timeout", "unsolicited_response", "icmp_unreachable", "detector_error",
                  "stale_port", "replica_imbalance"):
        return ""  # timeouts are the failures themselves; the others are not lookups
    one = g.occurrences == 1
    if g.on_failed == 0:
        return ("; it is not one of the " if one else "; none of them is among the ") + (
            f"{failed:,} failed: {'it' if one else 'each'} was answered in the end")
    if g.on_failed >= g.occurrences:
        return ("; it is one of the " if one else "; all of them are among the ") + (
            f"{failed:,} failed")
    return f"; {g.on_failed:,} of them are among the {failed:,} failed"


def _first_lookup(f: Finding | None) -> Lookup | None:
    if f is None:
        return None
    for s in f.subjects:
        if isinstance(s, Lookup):
            return s
    return None


def distinct(values: Iterable[str]) -> list[str]:
    """Distinct non-empty values, most frequent first."""
    counts: dict[str, int] = {}
    for v in values:
        if v:
            counts[v] = counts.get(v, 0) + 1
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def listing(items: Sequence[str], total: int) -> str:
    """The first three of ``items`` and how many more of ``total`` there are."""
    shown = ", ".join(items[:3])
    return shown + (f" and {total - 3:,} more" if total > 3 else "")


def ports_text(a: Analysis) -> str:
    return ", ".join(str(p) for p in sorted(a.config.ports))


def count_noun(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def lower_title(title: str) -> str:
    """A title inside a sentence: first letter lower-cased unless it is an acronym."""
    return title if title[:2].isupper() else title[:1].lower() + title[1:]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1.0 else f"{seconds:.3f} s"


def duration_ms(ms: float | None) -> str:
    return "-" if ms is None else duration(ms / 1000.0)
