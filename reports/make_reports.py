#!/usr/bin/env python3
"""Regenerate the example reports in this directory from the bundled sample captures.

    python3 reports/make_reports.py

One HTML report per capture in sample_pcaps/, named after it. Paths are relative to the
repository root, so the reports say ``sample_pcaps/NAME.pcap`` wherever they were made,
and the same inputs always give the same files (tests/test_reports.py checks that).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pcapdns.analysis import analyze  # noqa: E402
from pcapdns.report import html, model  # noqa: E402


def samples() -> list[str]:
    """Capture paths, relative to the repository root."""
    return sorted(f"sample_pcaps/{p.name}" for p in (ROOT / "sample_pcaps").glob("*.pcap"))


def report_path(capture: str) -> str:
    return f"reports/{Path(capture).stem}.html"


def render(capture: str) -> str:
    """The report for one sample, as ``pcapdns report`` writes it; run from ROOT."""
    out = report_path(capture)
    r = model.build(analyze([capture]), command=f"pcapdns report {capture} -o {out}")
    return html.render(r)


def main() -> int:
    os.chdir(ROOT)
    for capture in samples():
        out = report_path(capture)
        text = render(capture)
        Path(out).write_text(text, encoding="utf-8")
        print(f"{out}: {len(text.encode()):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
