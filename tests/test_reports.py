"""The example reports in reports/ are what the current code makes from the samples.

Charts are compared by presence only: their SVG is matplotlib's drawing and may differ by
a coordinate between matplotlib versions, while everything the report says must not.
Regenerate with ``python3 reports/make_reports.py`` and review the diff.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("make_reports", ROOT / "reports" /
                                               "make_reports.py")
assert _spec and _spec.loader
make_reports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_reports)

_SVG = re.compile(r"<svg\b.*?</svg>", re.S)


def _without_charts(page: str) -> str:
    return _SVG.sub("<svg/>", page)


@pytest.mark.parametrize("page", make_reports.pages(), ids=lambda p: Path(p[0]).stem)
def test_example_report_is_current(page, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    path, make = page
    committed = ROOT / path
    assert committed.exists(), f"{committed} missing: run python3 reports/make_reports.py"
    fresh = make()
    assert _without_charts(fresh) == _without_charts(committed.read_text()), (
        f"{committed.name} is stale: run python3 reports/make_reports.py")
    assert len(fresh.encode()) < 2_000_000


def test_every_report_has_its_sample() -> None:
    made = {path for path, _ in make_reports.pages()}
    present = {f"reports/{p.name}" for p in (ROOT / "reports").glob("*.html")}
    assert present == made
    assert os.access(ROOT / "reports" / "make_reports.py", os.R_OK)
