"""The report in real headless Chromium: no console errors, no request to anything, no
injected script run; the interactive parts work; a screenshot and a print are made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pcapdns.analysis import analyze
from pcapdns.report import html, model
from tests.browser import open_page, require_chromium
from tests.conftest import SAMPLES
from tests.report.hostile import write_hostile_capture

#: Screenshots land here when set (to look at them), else in the test's temporary directory.
SHOTS = os.environ.get("PCAPDNS_SCREENSHOTS")


def _report(paths: list[Path], out: Path) -> Path:
    html.write(model.build(analyze([str(p) for p in paths]), command="pcapdns report"),
               str(out))
    return out


def _shot(tmp_path: Path, name: str, png: bytes) -> Path:
    where = Path(SHOTS) if SHOTS else tmp_path
    where.mkdir(parents=True, exist_ok=True)
    path = where / name
    path.write_bytes(png)
    return path


@pytest.mark.parametrize("sample", ["aaaa-same-port-race", "servfail-refused",
                                    "clean-glibc-getent"])
def test_report_opens_cleanly(tmp_path: Path, sample: str) -> None:
    require_chromium()
    page = _report([SAMPLES / f"{sample}.pcap"], tmp_path / f"{sample}.html")
    r = open_page(page, evaluate=[
        "document.querySelectorAll('#verdict p').length",
        "document.querySelectorAll('#charts svg').length",
        "document.getElementById('ticket-text').textContent.length > 0",
    ], pdf=True)
    assert r.errors == ()
    assert r.requests == ()
    assert r.failed_requests == ()
    assert r.values[0] >= 1 and r.values[1] == 3 and r.values[2] is True
    assert r.screenshot.startswith(b"\x89PNG")
    assert r.pdf is not None and r.pdf.startswith(b"%PDF")
    _shot(tmp_path, f"{sample}.png", r.screenshot)


def test_injected_names_do_not_run(tmp_path: Path) -> None:
    require_chromium()
    page = _report([write_hostile_capture(tmp_path / "hostile.pcap")],
                   tmp_path / "hostile.html")
    r = open_page(page, evaluate=[
        "window.__pwned === undefined",
        "document.querySelectorAll('script').length",
        "document.body.innerText.includes('<script>window.__pwned=1</script>.evil.test')",
    ])
    assert r.values == (True, 1, True)
    assert r.errors == ()
    assert r.requests == ()
    _shot(tmp_path, "hostile.png", r.screenshot)


def test_problem_table_sorts_and_filters(tmp_path: Path) -> None:
    require_chromium()
    page = _report([write_hostile_capture(tmp_path / "hostile.pcap")], tmp_path / "p.html")
    rows = "Array.from(document.querySelectorAll('#problem-table tbody tr'))"
    r = open_page(page, evaluate=[
        f"{rows}.length",
        # Sort by "times" descending, twice clicked: ascending then descending.
        "(() => { const th = document.querySelectorAll('#problem-table th')[7];"
        " th.click(); th.click(); return th.getAttribute('aria-sort'); })()",
        f"{rows}.map(r => +r.cells[7].textContent).every((v, i, a) => !i || a[i-1] >= v)",
        "(() => { const f = document.getElementById('problem-filter');"
        " f.value = 'svg/onload'; f.dispatchEvent(new Event('input'));"
        f" return {rows}.filter(r => !r.hidden).length; }})()",
    ])
    total, sort, ordered, shown = r.values
    assert total >= 12
    assert sort == "descending" and ordered is True
    assert 1 <= shown < total
    assert r.errors == ()
