"""The terminal summary of a cluster: a verdict line, then per node, replica, client and
failing name, and the windows in which several nodes failed at once."""

from __future__ import annotations

from pcapdns.merge import MIN_NODES, Cluster
from pcapdns.output.text import tunnel_text


def _shown(text: str) -> str:
    """``text`` with control characters written as escapes: node names and paths come from
    the documents, and an escape sequence in one must not drive the reader's terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def verdict(c: Cluster) -> tuple[str, str]:
    """(tone, sentence): "bad" when lookups failed, "warn" when only error findings or
    warnings, "ok" when nothing is wrong, "none" without lookups. The same sentence opens
    the text and the HTML page."""
    t = c.totals
    n_nodes = len(c.nodes)
    nodes = f"{n_nodes} node{'s' if n_nodes != 1 else ''}"
    if t["lookups"] == 0:
        return "none", f"no DNS lookups in the {nodes}' documents."
    failing = [n for n in c.nodes if n["lookups_failed"]]
    errors = sum(v["occurrences"] for k, v in c.findings.items()
                 if k in _error_kinds(c))
    if t["lookups_failed"]:
        s = (f"{t['lookups_failed']} of {t['lookups']} lookups failed across the cluster, "
             f"on {len(failing)} of {nodes}")
        if c.windows:
            worst = max(c.windows, key=lambda w: (len(w["nodes"]), w["failed"]))
            s += (f"; {len(c.windows)} window{'s' if len(c.windows) != 1 else ''} of "
                  f"{c.window_seconds:g} s in which {MIN_NODES} or more nodes failed at once "
                  f"(the worst from {worst['start']}: {len(worst['nodes'])} nodes, "
                  f"{worst['failed']} lookups)")
        else:
            s += "; no two nodes failed within the same window"
        if c.failing_names:
            top = c.failing_names[0]
            s += f". Most failing name: {top['qname']} {top['qtype']} ({top['failures']})"
        return "bad", s + "."
    if errors:
        return "warn", (f"none of the {t['lookups']} lookups on {nodes} failed, but "
                        f"{errors} error finding{'s' if errors != 1 else ''} stand.")
    return "ok", f"all {t['lookups']} lookups on {nodes} were answered."


def _error_kinds(c: Cluster) -> set[str]:
    return {str(f.get("kind")) for d in c.docs for f in d.doc["findings"]
            if isinstance(f, dict) and f.get("severity") == "error"}


def render(c: Cluster) -> str:
    _, sentence = verdict(c)
    t = c.totals
    lines = [f"verdict: {sentence}",
             f"{len(c.docs)} documents, {len(c.nodes)} nodes, {c.first_time or '-'} .. "
             f"{c.last_time or '-'}",
             f"lookups {t['lookups']}: failed {t['lookups_failed']}, undecided at capture end "
             f"{t['lookups_open_at_end']}; retransmissions {t['retransmissions']}"]
    decap = tunnel_text(c.tunnels)
    if decap:
        lines.append(f"decapsulated from tunnels: {decap}")
    lines += [f"warning: {w}" for w in c.warnings]
    lines += ["", "nodes:"]
    for n in c.nodes:
        lines.append(f"  {n['node']}  {n['lookups']} lookups, {n['lookups_failed']} failed "
                     f"({_pct(n['lookups_failed'], n['lookups'])}); {n['first_time'] or '-'} "
                     f".. {n['last_time'] or '-'}")
    if c.replicas:
        lines += ["", "CoreDNS replicas (DNAT targets):"]
        for r in c.replicas:
            lines.append(f"  {r['service']} -> {r['address']}  {r['queries']} queries "
                         f"({100 * r['share']:.0f}%), {r['failed']} failed "
                         f"({100 * r['failure_rate']:.1f}%), seen from {len(r['nodes'])} "
                         "node(s)")
    lines += ["", "servers:"]
    for s in c.servers:
        lines.append(f"  {s['server']}  {s['lookups']} lookups, {s['failed']} failed, "
                     f"servfail {s['servfail']}, refused {s['refused']}")
    label = "workload" if c.grouping == "workload" else "client address"
    lines += ["", f"clients (by {label}):"]
    for r in c.clients[:20]:
        lines.append(f"  {r['client']}  {r['failed']} of {r['lookups']} lookups failed; "
                     f"nodes: {', '.join(r['nodes'])}")
    if c.failing_names:
        lines += ["", "top failing names (error findings, all nodes):"]
        for r in c.failing_names:
            lines.append(f"  {r['qname']} {r['qtype']}  {r['failures']}  "
                         f"({', '.join(f'{k} {v}' for k, v in r['kinds'].items())}); nodes: "
                         f"{', '.join(r['nodes'])}")
    lines += ["", f"windows of {c.window_seconds:g} s with failures on {MIN_NODES} or more "
                  "nodes:"]
    if not c.windows:
        lines.append("  none")
    for w in c.windows:
        nodes = ", ".join(f"{n['node']} {n['failed']}" for n in w["nodes"])
        lines.append(f"  {w['start']} .. {w['end']}  {w['failed']} failed: {nodes}")
    if c.findings:
        lines += ["", "findings by kind (occurrences, all nodes):"]
        for k, v in c.findings.items():
            lines.append(f"  {k:<28} {v['occurrences']}")
    return "\n".join(_shown(line) for line in lines) + "\n"
