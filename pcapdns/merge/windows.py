"""The time windows in which several nodes failed at once.

Each document's ``timeline.failed`` lists the buckets holding failed lookups. The cluster
is cut into windows of ``WINDOW_SECONDS`` aligned on the epoch (or wider, to the widest
bucket of the inputs: the analysis' bucket widths each divide the next, so a bucket falls
in exactly one window), and a window is listed when at least ``MIN_NODES`` nodes had failed
lookups in it. One node failing alone is that node's problem, and its report says so; the
same minute going bad on several nodes points at what they share (CoreDNS, its upstream,
the network between them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pcapdns.merge.checks import parse_time
from pcapdns.merge.load import NodeDoc
from pcapdns.output.timefmt import iso

#: Window width, in seconds: a resolver's whole retry cycle (glibc: 5 s timeout, 2
#: attempts) fits in it, so one incident's failures on two nodes land in one window.
WINDOW_SECONDS = 10.0
#: Nodes that must fail within a window for it to be listed.
MIN_NODES = 2


def width(docs: Sequence[NodeDoc]) -> float:
    """The window width: WINDOW_SECONDS, or the widest bucket of the inputs when wider."""
    steps = [t.get("bucket_seconds") for t in (d.doc.get("timeline") for d in docs)
             if isinstance(t, dict)]
    return max([WINDOW_SECONDS, *(s for s in steps if isinstance(s, (int, float)))])


def windows(docs: Sequence[NodeDoc], w: float) -> list[dict[str, Any]]:
    """The windows in which MIN_NODES or more nodes had failed lookups, in time order."""
    failed: dict[int, dict[str, int]] = {}
    for d in docs:
        t = d.doc.get("timeline")
        if not isinstance(t, dict):
            continue
        for b in t.get("failed") or []:
            if not isinstance(b, dict):
                continue
            at = parse_time(b.get("time"))
            n = b.get("lookups")
            if at is None or not isinstance(n, int) or n <= 0:
                continue
            # In whole microseconds, as the times are written: a bucket that starts on a
            # window's edge is in that window, whatever the float division would round to.
            index = round(at * 1e6) // round(w * 1e6)
            per_node = failed.setdefault(index, {})
            per_node[d.node] = per_node.get(d.node, 0) + n
    out = []
    for index in sorted(failed):
        per_node = failed[index]
        if len(per_node) < MIN_NODES:
            continue
        out.append({
            "start": iso(index * w),
            "end": iso((index + 1) * w),
            "failed": sum(per_node.values()),
            "nodes": [{"node": n, "failed": c} for n, c in sorted(per_node.items())],
        })
    return out
