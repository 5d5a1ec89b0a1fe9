"""The report in real headless Chromium: no console errors, no request to anything, no
injected script run; the interactive parts work; tables fit a wide screen; a print cuts
neither the ticket summary nor a chart; a capture without DNS reads as neither good nor bad.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from pcapdns.analysis import analyze
from pcapdns.report import html, model
from tests.browser import A4, LETTER, open_page, pdf_pages, require_chromium, require_pdftotext
from tests.conftest import ROOT, SAMPLES
from tests.craft import query, response, write_eth
from tests.report.hostile import write_hostile_capture
from tests.report.wide import write_wide_capture

#: Screenshots land here when set (to look at them), else in the test's temporary directory.
SHOTS = os.environ.get("PCAPDNS_SCREENSHOTS")
#: A wide screen: the evidence tables must fit it without scrolling sideways.
WIDE_SCREEN = 1400
#: The page margin of the print stylesheet (checked against report.css below).
PAGE_MARGIN_MM = 14


def _report(paths: list[Path], out: Path) -> Path:
    """The report of ``paths``, made with a command line that names ``out`` in full, as a
    user's would (``pcapdns report /home/.../x.pcap -o /home/.../x.html``)."""
    command = shlex.join(["pcapdns", "report", *map(str, paths), "-o", str(out)])
    html.write(model.build(analyze([str(p) for p in paths]), command=command), str(out))
    return out


def _capture(tmp_path: Path, name: str) -> Path:
    """A bundled sample by name; "wide": long names, IPv6, a full ticket summary;
    "hostile": names of 70 bytes and more in the ticket summary, so its lines are long."""
    if name == "wide":
        return write_wide_capture(tmp_path / "wide.pcapng")
    if name == "hostile":
        return write_hostile_capture(tmp_path / "hostile.pcap")
    return SAMPLES / f"{name}.pcap"


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


def test_footer_names_the_output_file_but_not_its_directory(tmp_path: Path) -> None:
    require_chromium()
    out = tmp_path / "private-dir" / "race.html"
    out.parent.mkdir()
    page = _report([SAMPLES / "aaaa-same-port-race.pcap"], out)
    r = open_page(page, evaluate=["document.querySelector('footer').innerText",
                                  "document.documentElement.outerHTML"])
    footer, whole = r.values
    assert "-o race.html" in footer, footer
    # Local paths carry user names into the tickets a report is attached to.
    assert str(out.parent) not in whole and "private-dir" not in whole


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


#: Per scrolling box of the page: the table in it, its scroll width and its visible width.
_OVERFLOW = """Array.from(document.querySelectorAll('.scroll')).map(box => [
    box.querySelector('table').className + ' in #' + box.closest('section').id,
    box.scrollWidth, box.clientWidth])"""


@pytest.mark.parametrize("capture", ["aaaa-same-port-race", "ndots-search-expansion", "wide"])
def test_tables_fit_a_wide_screen_without_scrolling_sideways(tmp_path: Path,
                                                             capture: str) -> None:
    require_chromium()
    page = _report([_capture(tmp_path, capture)], tmp_path / f"{capture}.html")
    r = open_page(page, width=WIDE_SCREEN, evaluate=[
        _OVERFLOW, "document.documentElement.scrollWidth",
        # Long notes wrap rather than widen their column: some take several lines.
        "Math.max(...Array.from(document.querySelectorAll('td.note'),"
        " td => td.getClientRects()[0].height / parseFloat(getComputedStyle(td).lineHeight)))",
    ])
    boxes, page_width, note_lines = r.values
    _shot(tmp_path, f"{capture}-{WIDE_SCREEN}.png", r.screenshot)
    assert any(name.startswith("evidence") for name, _, _ in boxes)
    wider = [(name, scroll, client) for name, scroll, client in boxes if scroll > client]
    assert wider == [], f"tables wider than their box at {WIDE_SCREEN} px: {wider}"
    assert page_width <= WIDE_SCREEN
    assert note_lines >= 2
    assert r.errors == ()


def _printable_width(paper: dict[str, float]) -> int:
    """CSS pixels across the printed page inside the print stylesheet's margins."""
    css = (ROOT / "pcapdns/report/templates/report.css").read_text()
    assert f"@page {{ margin: {PAGE_MARGIN_MM}mm; }}" in css
    return int((paper["paperWidth"] - 2 * PAGE_MARGIN_MM / 25.4) * 96)


#: What the print must keep whole: the ticket's text; per chart, its caption and the
#: lowest text drawn in it. And, laid out for print, each box that could stick out past
#: the right edge of the page's content: (what, its right edge, how much its own content
#: overflows it).
_PRINTED = """(() => {
  const charts = Array.from(document.querySelectorAll('figure.chart'), f => {
    const texts = Array.from(f.querySelectorAll('svg text'));
    const lowest = texts.reduce((a, b) =>
        b.getBoundingClientRect().bottom > a.getBoundingClientRect().bottom ? b : a);
    return [f.querySelector('figcaption').textContent, lowest.textContent];
  });
  const boxes = Array.from(
      document.querySelectorAll('main table, #ticket-text, figure.chart svg'),
      e => [e.id || e.getAttribute('class'), e.getBoundingClientRect().right,
            e.scrollWidth - e.clientWidth]);
  return {ticket: document.getElementById('ticket-text').textContent, charts, boxes,
          main: document.querySelector('main').getBoundingClientRect().right};
})()"""


def _bare(text: str) -> str:
    """Text without any whitespace: how a line wraps in print is not under test."""
    return "".join(text.split())


@pytest.mark.parametrize(("capture", "paper"), [
    ("aaaa-same-port-race", LETTER), ("wide", LETTER), ("wide", A4), ("hostile", A4),
], ids=["race-letter", "wide-letter", "wide-a4", "long-ticket-lines-a4"])
def test_print_cuts_neither_the_ticket_nor_a_chart(tmp_path: Path, capture: str,
                                                   paper: dict[str, float]) -> None:
    require_chromium()
    require_pdftotext()
    page = _report([_capture(tmp_path, capture)], tmp_path / f"{capture}.html")
    r = open_page(page, width=_printable_width(paper), media="print", pdf=True,
                  print_options=paper, evaluate=[_PRINTED])
    assert r.pdf is not None
    (tmp_path / f"{capture}.pdf").write_bytes(r.pdf)
    printed: dict[str, Any] = r.values[0]
    pages = [_bare(p) for p in pdf_pages(r.pdf)]
    # Nothing sticks out past the right edge of the page, where the printer would cut it.
    outside = [(what, right, over) for what, right, over in printed["boxes"]
               if right > printed["main"] + 0.5 or over > 0]
    assert outside == [], f"wider than the printed page ({printed['main']} px): {outside}"
    # The whole ticket summary on one page: not split by a page break, no line cut off.
    ticket = _bare(printed["ticket"])
    assert [i for i, text in enumerate(pages) if ticket in text], (
        "the ticket summary is not whole on any one printed page")
    # Each chart on one page: its caption and its lowest text on the same one.
    assert len(printed["charts"]) == 3
    for caption, lowest in printed["charts"]:
        (where,) = [i for i, text in enumerate(pages) if _bare(caption) in text]
        after = pages[where].split(_bare(caption), 1)[1]
        assert _bare(lowest) in after, (
            f"chart {caption!r} is split: {lowest!r} is not on page {where + 1} with it")


def test_no_dns_on_the_ports_is_neutral_and_points_to_port(tmp_path: Path) -> None:
    require_chromium()
    # Only mDNS on 5353: nothing on the default port 53.
    cap = write_eth(tmp_path / "mdns.pcap", [
        (100.0, query("printer.local", dport=5353)),
        (100.001, response("printer.local", sport=5353)),
    ])
    page = _report([cap], tmp_path / "mdns.html")
    r = open_page(page, evaluate=[
        "document.getElementById('verdict').className",
        "getComputedStyle(document.getElementById('verdict')).backgroundColor",
        "getComputedStyle(document.getElementById('verdict')).borderLeftColor",
        "document.getElementById('verdict').innerText",
    ])
    classes, background, border, text = r.values
    assert "neutral" in classes.split() and "ok" not in classes.split()
    for colour in (background, border):
        red, green, blue = map(int, re.findall(r"\d+", colour)[:3])
        # Grey: no channel stands out, so it reads as neither green (good) nor red (bad).
        assert max(red, green, blue) - min(red, green, blue) <= 12, colour
    assert "No DNS found on port 53" in text
    assert "If DNS runs on another port, use --port N." in text
    _shot(tmp_path, "no-dns.png", r.screenshot)


def test_injected_pod_names_do_not_run(tmp_path: Path) -> None:
    """--pods with hostile names: shown as text in a real browser, never run."""
    require_chromium()
    from pcapdns import pods
    from tests.report.hostile import write_hostile_pods

    cap = write_hostile_capture(tmp_path / "hostile.pcap")
    listing = pods.load([str(write_hostile_pods(tmp_path / "pods.json"))])
    out = tmp_path / "hostile-pods.html"
    html.write(model.build(analyze([str(cap)], pods=listing), command="pcapdns report"),
               str(out))
    r = open_page(out, evaluate=[
        "window.__pwned === undefined",
        "document.querySelectorAll('script').length",
        "document.body.innerText.includes('<script>window.__pwned=6</script>')",
    ])
    assert r.values == (True, 1, True)
    assert r.errors == () and r.requests == ()
