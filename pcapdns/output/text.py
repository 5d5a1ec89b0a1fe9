"""The short human summary printed on a terminal by default."""

from __future__ import annotations

from pcapdns.analysis import Analysis
from pcapdns.output.document import summary
from pcapdns.output.timefmt import iso

MAX_FINDINGS = 20


def render(a: Analysis) -> str:
    s = summary(a)
    lines = []
    span = f"{iso(a.first_time)} .. {iso(a.last_time)}" if a.first_time else "no packets"
    lines.append(f"{len(a.files)} file(s), {s['packets']} packets, {span}")
    lines.append(
        f"DNS messages {s['dns_messages']} (queries {s['queries']}: udp {s['queries_udp']}, "
        f"tcp {s['queries_tcp']}; responses {s['responses']}); duplicates dropped "
        f"{s['duplicates']}; malformed {s['malformed']}"
    )
    lines.append(
        f"lookups {s['lookups']}: failed {s['failed_lookups']} "
        f"(still open at capture end {s['lookups_open_at_end']}); queries answered "
        f"{s['answered_queries']}, unanswered {s['unanswered_queries']}; retransmissions "
        f"{s['retransmissions']}; unsolicited responses {s['unsolicited_responses']}"
    )
    lat = s["latency_ms"]
    if lat["p50"] is not None:
        lines.append(
            f"latency ms (from first attempt): p50 {lat['p50']}  p90 {lat['p90']}  "
            f"p99 {lat['p99']}  max {lat['max']}"
        )
    lines.append(
        f"TC responses {s['tc_responses']} (followed by TCP {s['tc_followed_by_tcp']}, "
        f"without {s['tc_without_tcp_retry']}); concurrent same-port A/AAAA "
        f"{s['a_aaaa_same_port_concurrent']} (race lost {s['a_aaaa_race_lost']}); "
        f"fan-out {s['fanout_groups']}; ICMP errors {s['icmp_errors']}"
    )
    if s["rcodes"]:
        lines.append("rcodes: " + ", ".join(f"{k} {v}" for k, v in s["rcodes"].items()))
    if a.findings:
        lines.append("")
        lines.append(f"findings ({len(a.findings)}):")
        for agg in a.findings[:MAX_FINDINGS]:
            f = agg.first
            times = f" x{agg.count}" if agg.count > 1 else ""
            frames = ",".join(str(n) for n in sorted(agg.frames)[:8])
            more = "..." if len(agg.frames) > 8 else ""
            lines.append(
                f"  {f.severity:7} {f.kind}{times}  {f.client} -> {f.server}  "
                f"{f.qname} {f.qtype}  frames {frames}{more}"
            )
            lines.append(f"          {f.detail}")
        if len(a.findings) > MAX_FINDINGS:
            lines.append(f"  ... {len(a.findings) - MAX_FINDINGS} more (use --format json)")
    else:
        lines.append("no findings")
    return "\n".join(lines) + "\n"
