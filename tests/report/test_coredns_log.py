"""The report's CoreDNS query log section: structure, and hostile text from the capture and
from the log shown as text, never as markup.

The log lines are written here in CoreDNS's ``log`` plugin format (CoreDNS cannot run on
the machine the suite runs on); names are escaped as CoreDNS writes them (``\\"``).
"""

from __future__ import annotations

from pathlib import Path

from pcapdns.analysis import analyze
from pcapdns.coredns_log import index
from pcapdns.report import html, model
from tests.browser import open_page, require_chromium
from tests.conftest import SAMPLES
from tests.craft import CLIENT
from tests.report.hostile import PAYLOADS, write_hostile_capture
from tests.report.test_html import Page


def _page(capture: Path | str, logs: list[str]) -> tuple[str, Page]:
    a = analyze([str(capture)], coredns_log=index.load(logs) if logs else None)
    text = html.render(model.build(a, command="pcapdns report x -o y"))
    p = Page()
    p.feed(text)
    return text, p


def test_section_only_with_a_log() -> None:
    _, p = _page(SAMPLES / "coredns-query-log.pcap", [])
    assert not p.all("section", id="coredns-log")
    assert not p.all("a", href="#coredns-log")


def test_sample_section_names_each_failed_lookup_and_what_coredns_logged() -> None:
    _, p = _page(SAMPLES / "coredns-query-log.pcap",
                 [str(SAMPLES / "coredns-query-log.coredns-ts.log")])
    assert p.all("a", href="#coredns-log")
    rows = p.all("tr", **{"data-verdict": "lost_after_coredns"})
    assert len(rows) == 2
    assert len(p.all("tr", **{"data-verdict": "not_logged"})) == 2
    text = p.text("coredns-log")
    assert "Log lines were placed in time" in text
    assert "frame 9: NOERROR in 0.2 ms (coredns-query-log.coredns-ts.log:7)" in text
    assert "CoreDNS answered in time, the answer was lost after it (2)" in text
    assert "Lines that did not parse" in text


def test_without_times_the_section_says_so() -> None:
    _, p = _page(SAMPLES / "coredns-query-log.pcap",
                 [str(SAMPLES / "coredns-query-log.coredns.log")])
    text = p.text("coredns-log")
    assert "cannot be placed in time" in text
    assert len(p.all("tr", **{"data-verdict": "ambiguous"})) == 2


def _hostile(tmp_path: Path) -> tuple[Path, Path]:
    """The hostile capture, and a log that answers each payload's unanswered TXT query and
    carries the payloads in errors-plugin and garbled lines."""
    cap = write_hostile_capture(tmp_path / "hostile.pcap")
    lines = []
    for i, name in enumerate(PAYLOADS):
        logged = name.replace('"', '\\"')
        # The TXT query of each payload was never answered; CoreDNS says it answered it.
        lines.append(f'[INFO] {CLIENT}:{43000 + i} - {0x180 + i} "TXT IN {logged}. udp 60 '
                     'false 512" NOERROR qr,aa,rd 60 0.0002s')
        lines.append(f"[ERROR] plugin/errors: 2 {name}. A: read udp: i/o timeout")
    lines.append("<script>window.__pwned=9</script> garbled")
    log = tmp_path / "coredns.log"
    log.write_text("\n".join(lines) + "\n")
    return cap, log


def test_hostile_names_and_log_lines_are_text(tmp_path: Path) -> None:
    cap, log = _hostile(tmp_path)
    text, p = _page(cap, [str(log)])
    assert p.scripts == 1  # the page's own
    for tag, attrs in p.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            assert not (value or "").lower().startswith("javascript:"), (tag, name, value)
        assert tag not in ("img", "iframe", "svg") or tag == "svg" and not attrs.get(
            "onload"), (tag, attrs)
    shown = p.text("coredns-log")
    assert len(p.all("tr", **{"data-verdict": "lost_after_coredns"})) == len(PAYLOADS)
    for payload in PAYLOADS:
        assert payload in shown, payload
    assert "<script>window.__pwned=9</script> garbled" in shown
    assert "&lt;script&gt;window.__pwned=9&lt;/script&gt;" in text


def test_hostile_log_does_not_run_in_a_browser(tmp_path: Path) -> None:
    require_chromium()
    cap, log = _hostile(tmp_path)
    a = analyze([str(cap)], coredns_log=index.load([str(log)]))
    page = tmp_path / "hostile.html"
    html.write(model.build(a, command="pcapdns report hostile.pcap -o hostile.html"),
               str(page))
    r = open_page(page, evaluate=[
        "window.__pwned === undefined",
        "document.querySelectorAll('script').length",
        "document.getElementById('coredns-log').innerText.includes("
        "'<script>window.__pwned=9</script> garbled')",
    ])
    assert r.values == (True, 1, True)
    assert r.errors == () and r.requests == ()
