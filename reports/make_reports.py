#!/usr/bin/env python3
"""Regenerate the example reports in this directory from the bundled sample captures.

    python3 reports/make_reports.py

One HTML report per capture in sample_pcaps/, named after it (a sample that comes with a
CoreDNS query log is reported with its log joined, as ``--coredns-log`` does), and one
correlation page per two-capture-point sample (``pcapdns correlate --html``), named
``NAME.correlation.html``, and one cluster page (``pcapdns merge --html``),
``cluster.html``, merging the per-node documents of the sample fleet in
tests/merge/fleet/. Paths are relative to the repository root, so the reports say
``sample_pcaps/NAME.pcap`` wherever they were made, and the same inputs always give the
same files (tests/test_reports.py checks that).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pcapdns.analysis import analyze  # noqa: E402
from pcapdns.coredns_log import index  # noqa: E402
from pcapdns.correlate import correlate  # noqa: E402
from pcapdns.correlate import html as correlation_html  # noqa: E402
from pcapdns.merge import html as cluster_html  # noqa: E402
from pcapdns.merge import merge  # noqa: E402
from pcapdns.report import html, model  # noqa: E402

#: Samples reported with their CoreDNS query log joined.
LOGS = {"sample_pcaps/coredns-query-log.pcap": ["sample_pcaps/coredns-query-log.coredns-ts.log"]}

#: Two-capture-point samples: (client side, server side).
CORRELATIONS = [("sample_pcaps/two-points-lost.pcap", "sample_pcaps/two-points-lost.server.pcap")]


def samples() -> list[str]:
    """Capture paths, relative to the repository root."""
    return sorted(f"sample_pcaps/{p.name}" for p in (ROOT / "sample_pcaps").glob("*.pcap"))


def report_path(capture: str) -> str:
    return f"reports/{Path(capture).stem}.html"


def render(capture: str) -> str:
    """The report for one sample, as ``pcapdns report`` writes it; run from ROOT."""
    out = report_path(capture)
    logs = LOGS.get(capture, [])
    options = "".join(f" --coredns-log {log}" for log in logs)
    r = model.build(analyze([capture], coredns_log=index.load(logs) if logs else None),
                    command=f"pcapdns report {capture} -o {out}{options}")
    return html.render(r)


def correlation_path(client: str) -> str:
    return f"reports/{Path(client).stem}.correlation.html"


def render_correlation(client: str, server: str) -> str:
    """The page ``pcapdns correlate --html`` writes for one two-point sample; from ROOT."""
    out = correlation_path(client)
    return correlation_html.render(
        correlate([client], [server]),
        command=f"pcapdns correlate --client {client} --server {server} --html {out}")


#: The cluster page: the per-node documents it merges (tests/merge/fleet.py makes them).
CLUSTER_DOCS = [f"tests/merge/fleet/{node}/analysis.json"
                for node in ("node-a", "node-b", "node-c", "node-d", "node-e", "node-f",
                             "node-g")]
CLUSTER_PAGE = "reports/cluster.html"


def render_cluster() -> str:
    """The page ``pcapdns merge --html`` writes for the sample fleet; from ROOT."""
    return cluster_html.render(
        merge(CLUSTER_DOCS),
        command=f"pcapdns merge {' '.join(CLUSTER_DOCS)} --html {CLUSTER_PAGE}")


def pages() -> list[tuple[str, Callable[[], str]]]:
    """Every page this script makes: (path, how to make it)."""
    out: list[tuple[str, Callable[[], str]]] = [
        (report_path(c), partial(render, c)) for c in samples()]
    out += [(correlation_path(c), partial(render_correlation, c, s)) for c, s in CORRELATIONS]
    out.append((CLUSTER_PAGE, render_cluster))
    return out


def main() -> int:
    os.chdir(ROOT)
    for out, make in pages():
        text = make()
        Path(out).write_text(text, encoding="utf-8")
        print(f"{out}: {len(text.encode()):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
