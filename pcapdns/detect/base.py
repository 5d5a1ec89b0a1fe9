"""What a detector is and what it produces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

from pcapdns.config import AnalysisConfig
from pcapdns.dns import names
from pcapdns.dns.message import Message
from pcapdns.match.records import Lookup, Orphan, Transaction

FindingKind = Literal[
    "timeout",
    "retransmission",
    "truncated_no_tcp_fallback",
    "aaaa_race_lost",
    "servfail",
    "refused",
    "nxdomain",
    "slow_response",
    "fanout",
    "late_response",
    "unsolicited_response",
    "icmp_unreachable",
    "search_expansion",
    "stale_port",
    "detector_error",
    "lost_in_node",
    "reply_not_delivered",
    "unexpected_source",
    "replica_imbalance",
    "upstream_timeout",
    "upstream_error",
]

Severity = Literal["critical", "error", "warning", "info"]

#: Order of severities, most severe first (for sorting findings).
SEVERITY_RANK: dict[str, int] = {"critical": 0, "error": 1, "warning": 2, "info": 3}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, with the evidence that proves it."""

    #: What kind of problem (see docs/analysis.md for each kind).
    kind: FindingKind
    #: How bad it is.
    severity: Severity
    #: Capture time of the first frame of the evidence, seconds since the epoch.
    time: float
    #: Client IP address (the side that sent the query).
    client: str
    #: Server IP address the query was sent to.
    server: str
    #: Question name and type name ("A", "AAAA", "TYPE65534", ...).
    qname: str
    qtype: str
    #: Frame numbers (1-based, merged capture) that prove it, in time order.
    frames: tuple[int, ...]
    #: One or two sentences saying what was seen.
    detail: str
    #: The lookups (or the orphan message) the finding is about, for evidence tables. Not
    #: part of the JSON document; the collector keeps them only for the first few findings
    #: of each kind, so memory stays bounded.
    subjects: tuple[Lookup | Orphan, ...] = field(default=(), compare=False, repr=False)
    #: Kinds of the symptoms this finding's cause accounts for on the same lookup (a lost
    #: race explains the retransmission and the slow answer it caused): shown as evidence
    #: under the cause, not as problems beside it.
    explains: tuple[FindingKind, ...] = ()
    #: The server is known to be the cluster's DNS (docs/analysis.md says which facts
    #: count). Known only when the capture has been read; set on ``stale_port`` findings,
    #: whose likely cause depends on it.
    cluster_dns: bool = False


_QTYPES = names.QTYPES

# The generated __init__ of a frozen dataclass sets each field through
# object.__setattr__; the slots' own setters do the same in half the time, and a finding
# is built for every flagged lookup. The record stays frozen: only new_finding writes.
(_kind, _severity, _time, _client, _server, _qname, _qtype, _frames, _detail, _subjects,
 _explains, _cluster_dns) = (getattr(Finding, f.name).__set__ for f in fields(Finding))
assert tuple(f.name for f in fields(Finding)) == Finding.__slots__ == (
    "kind", "severity", "time", "client", "server", "qname", "qtype", "frames", "detail",
    "subjects", "explains", "cluster_dns"), "new_finding must set every field of Finding"
_new = object.__new__


def new_finding(
    kind: FindingKind, severity: Severity, time: float, client: str, server: str, qname: str,
    qtype: str, frames: tuple[int, ...], detail: str, subjects: tuple[Lookup | Orphan, ...],
    explains: tuple[FindingKind, ...] = (), cluster_dns: bool = False,
) -> Finding:
    """``Finding(...)`` by position, built the faster way."""
    f = _new(Finding)
    _kind(f, kind)
    _severity(f, severity)
    _time(f, time)
    _client(f, client)
    _server(f, server)
    _qname(f, qname)
    _qtype(f, qtype)
    _frames(f, frames)
    _detail(f, detail)
    _subjects(f, subjects)
    _explains(f, explains)
    _cluster_dns(f, cluster_dns)
    return f


#: A detector: a pure function from one lookup to the findings it proves.
Detector = Callable[[Lookup, AnalysisConfig], Sequence[Finding]]


def finding(
    kind: FindingKind,
    severity: Severity,
    lookup: Lookup,
    frames: list[int],
    detail: str,
    at: Transaction | None = None,
    subjects: tuple[Lookup, ...] | None = None,
    qtype: str | None = None,
) -> Finding:
    """Build a finding about ``lookup`` (or one of its attempts ``at``); ``subjects`` are
    the lookups its evidence shows, ``(lookup,)`` unless given; ``qtype`` is the type's
    name when it is not that of the query."""
    q = (lookup.attempts[0] if at is None else at).query
    if qtype is None:
        qtype = _QTYPES.get(q.qtype) or names.qtype_name(q.qtype)
    evidence: tuple[int, ...]
    if len(frames) == 2:  # most findings: a query and its response
        a, b = frames
        evidence = (a, b) if a < b else (b, a) if b < a else (a,)
    else:
        evidence = tuple(sorted(set(frames)))
    return new_finding(kind, severity, q.time, q.src, q.dst, q.qname or "", qtype, evidence,
                       detail, (lookup,) if subjects is None else subjects)


def attempt_frames(lookup: Lookup) -> list[int]:
    """Every query and response frame of a lookup."""
    out: list[int] = []
    for t in lookup.attempts:
        out.append(t.query.frame)
        if t.response is not None:
            out.append(t.response.frame)
    return out


def leg_frames(message: Message) -> list[int]:
    """The frames of a message's copies on the node's other interfaces (its legs)."""
    return [leg.frame for leg in message.legs]


def answer_faults(lookup: Lookup, kind: FindingKind,
                  describe: Callable[[Transaction], str]) -> list[Finding]:
    """One finding of ``kind`` per attempt whose answer never reached the client's socket
    (``Transaction.leg_fault == kind``), ``describe`` saying what the legs show: an error
    when no other attempt saved the lookup, else a warning."""
    out = []
    answer = lookup.answer
    saved = answer is not None and not answer.undelivered and not lookup.failed
    for t in lookup.attempts:
        q, r = t.query, t.response
        if t.leg_fault != kind or r is None:
            continue
        detail = describe(t)
        severity: Severity = "error"
        if saved:
            assert answer is not None and answer.response is not None
            detail += f"; another attempt was answered (frame {answer.response.frame})"
            severity = "warning"
        else:
            detail += "; no other attempt was answered: for the application this lookup failed"
        frames = [q.frame, *leg_frames(q), r.frame, *leg_frames(r)]
        out.append(finding(kind, severity, lookup, frames, detail + ".", at=t))
    return out


def ms(seconds: float) -> str:
    """A duration for a sentence: '2.3 ms', '5.004 s'."""
    if seconds < 1.0:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s"
