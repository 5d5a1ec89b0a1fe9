"""The correlation's HTML page: per fate the lookups with the frames of both sides and
what the fate means; every captured string is text, never markup."""

from __future__ import annotations

from pathlib import Path

from pcapdns.correlate import correlate, html
from tests.browser import open_page, require_chromium
from tests.conftest import SAMPLES
from tests.correlate.scenario import write_sides
from tests.report.hostile import PAYLOADS
from tests.report.test_html import Page

REACHES = ("before", "at", "after")


def _hostile_sides(tmp_path: Path) -> tuple[Path, Path]:
    lookups = [("ok.test", 1, 0.0, "answered")]
    for i, payload in enumerate(PAYLOADS):
        lookups.append((payload, 10 + i, 1.0 + i, REACHES[i % 3]))
    lookups.append(("end.test", 2, 20.0, "answered"))
    return write_sides(tmp_path, lookups, offset=-4.0)


def _page(client: Path, server: Path, command: str = "pcapdns correlate") -> tuple[str, Page]:
    text = html.render(correlate([str(client)], [str(server)]), command=command)
    p = Page()
    p.feed(text)
    return text, p


def test_sample_page_structure() -> None:
    text, p = _page(SAMPLES / "two-points-lost.pcap", SAMPLES / "two-points-lost.server.pcap")
    assert p.scripts == 0
    assert "script-src 'none'" in text
    fates = {a["data-fate"] for a in p.all("article")}
    assert fates == {"lost_before_server", "lost_at_server", "lost_after_server", "unknown"}
    # One table per lost lookup: the client's frames, and the server's where it got there.
    for fate, arrived, left in (("lost_before_server", 0, 0), ("lost_at_server", 2, 0),
                                ("lost_after_server", 2, 2)):
        section = p.text(f"fate-{fate}")
        assert section.count("sent by the client") == 2, (fate, section)
        assert section.count("arrived at the server") == arrived, (fate, section)
        assert section.count("NOERROR left the server") == left, (fate, section)
    assert "conntrack" in p.text("fate-lost_before_server")
    assert "CoreDNS" in p.text("fate-lost_at_server")
    assert "un-DNAT" in p.text("fate-lost_after_server")
    assert "+12.5" in p.text("clock")


def test_hostile_names_are_text_not_markup(tmp_path: Path) -> None:
    client, server = _hostile_sides(tmp_path)
    text, p = _page(client, server, command="pcapdns correlate '<b>x</b>' -o y")
    assert p.scripts == 0
    for tag, attrs in p.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            assert not (value or "").lower().startswith("javascript:"), (tag, name, value)
        assert tag not in ("img", "iframe", "svg"), (tag, attrs)
    visible = " ".join(p.text(f"fate-lost_{x}") for x in
                       ("before_server", "at_server", "after_server"))
    for payload in PAYLOADS:
        assert payload.replace(" ", "\\032") in visible, payload
    # Names may wrap after their dots (<wbr>), and are escaped.
    assert "&lt;script&gt;window.<wbr>__pwned=1&lt;/script&gt;" in text
    assert "<b>x</b>" not in text


def test_hostile_names_do_not_run_in_a_browser(tmp_path: Path) -> None:
    require_chromium()
    client, server = _hostile_sides(tmp_path)
    page = tmp_path / "c.html"
    page.write_text(html.render(correlate([str(client)], [str(server)])))
    r = open_page(page, evaluate=[
        "window.__pwned === undefined",
        "document.querySelectorAll('script').length",
        "document.body.innerText.includes('<script>window.__pwned=1</script>.evil.test')",
    ])
    assert r.values == (True, 0, True)
    assert r.errors == () and r.requests == ()


def test_output_directories_stay_out_of_the_page(tmp_path: Path) -> None:
    out = tmp_path / "private-dir" / "c.html"
    text, _ = _page(SAMPLES / "two-points-lost.pcap", SAMPLES / "two-points-lost.server.pcap",
                    command=f"pcapdns correlate --client a --server b --html {out}")
    assert "private-dir" not in text and "--html c.html" in text


def test_every_fate_has_its_advice() -> None:
    from pcapdns.correlate.records import FATES
    from pcapdns.report.knowledge import FATE_ADVICE

    assert set(FATE_ADVICE) == set(FATES)
    for fate in FATES[1:]:
        advice = FATE_ADVICE[fate]
        assert advice.title and advice.meaning and advice.causes and advice.fixes, fate
