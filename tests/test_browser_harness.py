"""tests/browser.py sees what a page does in real headless Chromium, and leaves nothing behind.

Each test writes a small page that shows one thing (a console error, a stray request, a
tall layout) and checks the harness reports it, so the report's browser tests can trust a
clean result.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import browser
from tests.browser import (
    A4,
    BrowserError,
    PageError,
    open_page,
    pdf_pages,
    require_chromium,
    require_pdftotext,
)

#: A 1x1 transparent PNG, the kind of image a self-contained report inlines.
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
         "2mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()


def page(tmp_path: Path, body: str, title: str = "fixture") -> Path:
    path = tmp_path / "page.html"
    path.write_text(f"<!doctype html><meta charset=utf-8><title>{title}</title>\n{body}\n",
                    encoding="utf-8")
    return path


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, after checking its signature, header CRC and end chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    header = data[16:29]
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(kind + header)
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"
    width, height = struct.unpack(">II", header[:8])
    return width, height


def test_clean_page_has_no_errors_and_no_requests(tmp_path: Path) -> None:
    result = open_page(page(tmp_path, f"<h1>Clean</h1><img src='{PIXEL}'>", title="Clean"))
    assert result.title == "Clean"
    assert result.url == (tmp_path / "page.html").as_uri()
    assert result.errors == ()
    assert result.console == ()
    assert result.requests == ()
    assert result.failed_requests == ()
    assert result.pdf is None  # only when asked for


def test_console_error_is_an_error(tmp_path: Path) -> None:
    result = open_page(page(tmp_path, "<script>console.log('fine'); console.error('x')</script>"))
    assert result.errors == (PageError("console", "x"),)
    assert [(m.level, m.text) for m in result.console] == [("log", "fine"), ("error", "x")]


def test_uncaught_exception_is_an_error(tmp_path: Path) -> None:
    result = open_page(page(tmp_path, "<script>throw new TypeError('boom')</script>"))
    (error,) = result.errors
    assert error.kind == "exception"
    assert "TypeError: boom" in error.text


def test_exception_in_a_load_handler_is_seen(tmp_path: Path) -> None:
    script = "addEventListener('load', () => setTimeout(() => { throw new Error('late') }))"
    result = open_page(page(tmp_path, f"<script>{script}</script>"))
    assert [e.kind for e in result.errors] == ["exception"]
    assert "late" in result.errors[0].text


def test_remote_requests_are_listed_and_blocked(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737) and .invalid never resolves (RFC 2606).
    result = open_page(page(tmp_path, "<link rel=stylesheet href='https://example.invalid/a.css'>"
                                      "<img src='http://192.0.2.1/x.png'>"))
    assert set(result.requests) == {"https://example.invalid/a.css", "http://192.0.2.1/x.png"}
    failed = dict(result.failed_requests)
    assert set(failed) == set(result.requests)
    assert all(e.startswith("net::ERR_") for e in failed.values()), failed
    # Chromium also logs each failed load as an error.
    assert all(e.kind == "log" for e in result.errors) and len(result.errors) == 2


def test_no_request_reaches_even_a_local_server(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        urls = [f"http://127.0.0.1:{port}/x.png", f"http://localhost:{port}/y.png"]
        result = open_page(page(tmp_path, "".join(f"<img src='{u}'>" for u in urls)))
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # the page is loaded, so any connection would be queued by now
    assert set(result.requests) == set(urls)


def test_other_files_are_requests_and_inline_data_is_not(tmp_path: Path) -> None:
    (tmp_path / "style.css").write_text("body { color: red }")
    result = open_page(page(tmp_path, f"<link rel=stylesheet href='style.css'><img src='{PIXEL}'>"))
    assert result.requests == ((tmp_path / "style.css").as_uri(),)
    assert all(u.startswith("data:") for u in result.inline_requests)
    assert result.errors == ()


def test_evaluate_sees_what_the_page_script_did(tmp_path: Path) -> None:
    result = open_page(page(tmp_path, "<table></table><table></table><script>window.__pwned = 1"
                                      "</script>"),
                       evaluate=["window.__pwned === undefined",
                                 "document.querySelectorAll('table').length",
                                 "Promise.resolve({a: [1, 'b']})", "undefined", "1 / 0"])
    assert result.values == (False, 2, {"a": [1, "b"]}, None, "Infinity")


def test_an_expression_that_throws_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BrowserError, match="nope"):
        open_page(page(tmp_path, ""), evaluate=["(() => { throw new Error('nope') })()"])


def test_screenshot_is_a_png_of_the_viewport_width(tmp_path: Path) -> None:
    body = "<h1 style='color:#0a5'>pcapdns</h1><p>" + "DNS transaction " * 40 + "</p>"
    result = open_page(page(tmp_path, body), width=800, height=600)
    (tmp_path / "screenshot.png").write_bytes(result.screenshot)
    assert png_size(result.screenshot) == (800, 600)


def test_tall_page_gets_a_full_height_screenshot(tmp_path: Path) -> None:
    result = open_page(page(tmp_path, "<div style='height: 3000px; background: #ccd'></div>"),
                       width=400, height=300)
    assert result.content_size[1] > 3000
    assert png_size(result.screenshot) == (400, result.content_size[1])


def test_screenshot_height_is_capped(tmp_path: Path) -> None:
    result = open_page(page(tmp_path, "<div style='height: 50000px'></div>"), width=100)
    assert png_size(result.screenshot) == (100, browser.MAX_SCREENSHOT_HEIGHT)


def test_pdf_on_request(tmp_path: Path) -> None:
    path = page(tmp_path, "<style>@media print { .screen { display: none } }</style>"
                          "<p class=screen>screen</p><p>print</p>")
    pdf = open_page(path, pdf=True).pdf
    assert pdf is not None and pdf.startswith(b"%PDF-")


def test_print_media_applies_the_print_stylesheet(tmp_path: Path) -> None:
    path = page(tmp_path, "<style>@media print { .screen { display: none } }</style>"
                          "<p class=screen>screen</p><p>print</p>")
    shown = "getComputedStyle(document.querySelector('.screen')).display"
    assert open_page(path, evaluate=[shown]).values == ("block",)
    assert open_page(path, evaluate=[shown, "matchMedia('print').matches"],
                     media="print").values == ("none", True)


def test_pdf_pages_gives_the_text_of_each_printed_page(tmp_path: Path) -> None:
    require_pdftotext()
    path = page(tmp_path, "<p>first page</p><p style='break-before: page'>second page</p>"
                          "<div style='break-before: page; height: 1500px'>third</div>")
    pages = pdf_pages(open_page(path, pdf=True).pdf or b"")
    # Letter paper less Chromium's default margins holds 979 px: the block takes two pages.
    assert [" ".join(p.split()) for p in pages] == ["first page", "second page", "third", ""]


def test_pdf_pages_leaves_out_what_the_page_edge_cuts_off(tmp_path: Path) -> None:
    require_pdftotext()
    line = " ".join(f"word{i:03d}" for i in range(120))
    path = page(tmp_path, f"<pre style='white-space: pre'>{line}</pre>")
    (text,) = pdf_pages(open_page(path, pdf=True).pdf or b"")
    assert "word000" in text and "word119" not in text


def test_print_options_set_the_paper(tmp_path: Path) -> None:
    result = open_page(page(tmp_path, "<p>A4</p>"), pdf=True, print_options=A4)
    assert result.pdf is not None
    # 210 x 297 mm is 595.3 x 841.9 PDF points (1/72 in); Chromium rounds to its own grid.
    box = re.search(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", result.pdf)
    assert box is not None, "no MediaBox in the PDF"
    size = (float(box[1]), float(box[2]))
    assert abs(size[0] - 595.3) < 1 and abs(size[1] - 841.9) < 1, size


def test_missing_file_raises_before_starting_a_browser(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_page(tmp_path / "absent.html")


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, Path]]]:
    """(process group, profile directory) of every browser open_page starts."""
    seen: list[tuple[int, Path]] = []
    launch = browser._Browser.launch

    def recording(binary: str, profile: Path, stderr_path: Path, proxy_port: int,
                  deadline: float) -> browser._Browser:
        started = launch(binary, profile, stderr_path, proxy_port, deadline)
        seen.append((started.pid, profile))
        return started

    monkeypatch.setattr(browser._Browser, "launch", staticmethod(recording))
    yield seen


def survivors(group: int, profile: Path) -> list[int]:
    """Live (not zombie) processes in ``group`` or naming ``profile`` on their command line.

    The second catches crashpad's handler, which Chromium starts in a session of its own.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        state, _, pgid = stat.rsplit(")", 1)[1].split()[:3]
        if state != "Z" and (int(pgid) == group or os.fsencode(profile) in cmdline):
            found.append(int(entry.name))
    return found


def test_browser_is_gone_after_the_page(tmp_path: Path,
                                        launches: list[tuple[int, Path]]) -> None:
    open_page(page(tmp_path, "<p>done</p>"))
    ((group, profile),) = launches
    assert survivors(group, profile) == []
    assert not profile.exists()


def test_timeout_raises_with_stderr_and_still_cleans_up(
        tmp_path: Path, launches: list[tuple[int, Path]]) -> None:
    with pytest.raises(BrowserError, match="timed out") as raised:
        open_page(page(tmp_path, ""), evaluate=["new Promise(() => {})"], timeout=1.5)
    assert "Chromium stderr" in str(raised.value)
    ((group, profile),) = launches
    assert survivors(group, profile) == []
    assert not profile.exists()
