"""The correlation's terminal summary: the verdict first, then the clock offset, the
fates, and the lookups the client got no answer for, a few per fate (the JSON document has
them all)."""

from __future__ import annotations

from pcapdns.coredns_log.join import JoinResult
from pcapdns.correlate.records import FATES, AttemptFate, Correlation, Fate, LookupFate
from pcapdns.dns import names
from pcapdns.output.text import at, coredns_log_lines
from pcapdns.output.timefmt import iso
from pcapdns.output.verdict import count_noun, duration
from pcapdns.pods import PodDirectory

#: Lookups listed per fate.
EXAMPLES_PER_FATE = 10

#: What each place of loss is called inside a sentence.
PLACE: dict[Fate, str] = {
    "lost_before_server": "lost before reaching the server",
    "lost_at_server": "reached the server and got no answer from it",
    "lost_after_server": "answered by the server, the answer lost on the way back",
    "unknown": "could not be placed",
}


def verdict(c: Correlation) -> tuple[str, ...]:
    """The verdict sentences, shared by the text and the HTML report."""
    judged = sum(c.fates.values())
    if judged == 0:
        return ("The client capture holds no lookup to judge.",)
    lost = judged - c.fates["answered"]
    if lost == 0:
        return (f"All {count_noun(judged, 'client lookup')} "
                f"{'was' if judged == 1 else 'were'} answered.",)
    parts = [f"{c.fates[f]:,} {PLACE[f]}" for f in FATES[1:] if c.fates[f]]
    out = [f"{lost:,} of {count_noun(judged, 'client lookup')} got no answer: "
           + "; ".join(parts) + "."]
    if c.clock.offset is None:
        out.append("The two clocks could not be compared (no lookup answered on both sides), "
                   "so no lookup could be placed.")
    return tuple(out)


def offset_line(c: Correlation) -> str:
    k = c.clock
    if k.offset is None:
        return "clock offset: unknown (no lookup was seen answered on both sides)"
    agree = "" if k.interval is not None else "; the pairs disagree (drift?)"
    return (f"clock offset (server - client): {k.offset:+.6f} s, within ±{k.error_bound:.6f} "
            f"s (from {count_noun(k.pairs, 'lookup')} answered on both sides; spread "
            f"{k.spread:.6f} s{agree})")


def render(c: Correlation) -> str:
    lines = ["verdict: " + " ".join(verdict(c))]
    for side in (c.client, c.server):
        span = (f"{iso(side.first_time)} .. {iso(side.last_time)}" if side.first_time
                else "no packets")
        lines.append(f"{side.side}: {count_noun(len(side.inputs), 'file')}, "
                     f"{len(side.queries):,} {'query' if len(side.queries) == 1 else 'queries'}, "
                     f"{count_noun(side.lookup_count, 'lookup')}, {span}")
    lines.append(offset_line(c))
    lines.append("fates: " + ", ".join(f"{f} {c.fates[f]:,}" for f in FATES))
    if c.servers:
        lines.append("servers: " + "; ".join(
            f"{at(s.client_side, c.pods)} -> "
            + ", ".join(f"{at(a, c.pods)} ({n:,})" for a, n in s.server_side)
            for s in c.servers))
    if c.other_server_lookups:
        lines.append(f"not judged: {count_noun(c.other_server_lookups, 'lookup')} to other "
                     "servers")
    lines.extend("server side " + line if i == 0 else line
                 for i, line in enumerate(coredns_log_lines(c.server.coredns_log)))
    for w in c.warnings:
        lines.append(f"warning: {w}")
    log = c.server.coredns_log
    for fate in FATES[1:]:
        of = [lf for lf in c.lost if lf.fate == fate]
        if not of:
            continue
        lines.append("")
        lines.append(f"{fate} ({len(of):,}): {count_noun(len(of), 'lookup')} {PLACE[fate]}")
        for lf in of[:EXAMPLES_PER_FATE]:
            lines.extend(_lookup(lf, log, c.pods))
        if len(of) > EXAMPLES_PER_FATE:
            lines.append(f"  ... and {len(of) - EXAMPLES_PER_FATE:,} more (the JSON document "
                         "lists them all)")
    return "\n".join(lines) + "\n"


def _lookup(lf: LookupFate, log: JoinResult | None,
            pods: PodDirectory | None = None) -> list[str]:
    q = lf.attempts[0].client
    head = (f"  {q.qname} {names.qtype_name(q.qtype)} from {at(q.packet.src, pods)} to "
            f"{at(q.packet.dst, pods)} "
            f"at {iso(q.packet.time)}, {count_noun(len(lf.attempts), 'attempt')}")
    return [head, *(f"    {_attempt(a)}{logged_note(a, log)}" for a in lf.attempts)]


def logged_note(a: AttemptFate, log: JoinResult | None) -> str:
    """What CoreDNS's log says of the server side's copy of the query (with a log)."""
    if log is None or a.server is None:
        return ""
    t = (log.by_frame or {}).get(a.server.packet.frame)
    if t is None or t.logged is False:
        return "; not in CoreDNS's log"
    if t.logged is None:
        return "; CoreDNS's log has more than one line it may be"
    took = f" in {duration(t.duration_s)}" if t.duration_s is not None else ""
    return f"; CoreDNS logged {t.rcode or '?'}{took}"


def _attempt(a: AttemptFate) -> str:
    c, s = a.client, a.server
    p = c.packet
    out = (f"attempt {c.attempt} ({a.fate}): client frame {p.frame} "
           f"{p.src}:{p.sport} > {p.dst}:{p.dport} id {c.id}")
    if c.response is not None:
        return out + f", answered (client frame {c.response.frame})"
    if s is None:
        return out + "; not seen at the server"
    sp = s.packet
    # The delay is the estimate's: within the offset's error bound, it can be below zero.
    out += (f"; server frame {sp.frame} {sp.src}:{sp.sport} > {sp.dst}:{sp.dport}"
            f", one-way {(a.delay or 0.0) * 1000:+.3f} ms")
    if s.response is None:
        return out + ", no answer left"
    rcode = names.rcode_name(s.rcode) if s.rcode is not None else "?"
    return (out + f", answer {rcode} left in server frame {s.response.frame} "
            f"{duration(s.response.time - sp.time)} later, never reached the client")
