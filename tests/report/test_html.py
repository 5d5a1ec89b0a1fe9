"""The HTML page: structure checked with an HTML parser, escaping of hostile names,
self-containment and determinism."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from pcapdns.analysis import analyze
from pcapdns.report import html, model
from tests.conftest import SAMPLES
from tests.report.hostile import PAYLOADS, write_hostile_capture


class Page(HTMLParser):
    """Every element with its attributes, the text under each id, and the scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts = 0
        self._stack: list[tuple[str, str | None]] = []
        self.text_by_id: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.elements.append((tag, a))
        if tag == "script":
            self.scripts += 1
        if tag not in ("meta", "br", "img", "input", "link", "hr", "path", "rect", "line",
                       "use", "stop", "circle", "polyline", "polygon", "ellipse"):
            self._stack.append((tag, a.get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            t, _ = self._stack.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._stack:
            if ident:
                self.text_by_id.setdefault(ident, []).append(data)

    def text(self, ident: str) -> str:
        return " ".join("".join(self.text_by_id.get(ident, [])).split())

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements
                if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]


def _page(paths: list[str], command: str = "pcapdns report x -o y") -> tuple[str, Page]:
    text = html.render(model.build(analyze(paths), command=command))
    p = Page()
    p.feed(text)
    return text, p


def test_race_report_structure() -> None:
    text, p = _page([str(SAMPLES / "aaaa-same-port-race.pcap")])
    assert "same-port A/AAAA race" in p.text("verdict")
    groups = [a["data-kind"] for a in p.all("article")]
    # One problem per cause: the retransmission and the slow answer are the race's
    # evidence, said under it, and their advice does not compete with the race's.
    assert groups == ["aaaa_race_lost"]
    assert "also accounts for the retransmitted queries and slow answers" in p.text(
        "finding-aaaa_race_lost")
    assert "Likely causes" in p.text("finding-aaaa_race_lost")
    assert "single-request-reopen" in p.text("finding-aaaa_race_lost")
    # Five evidence rows in the race group: the A and its answer, the lost AAAA, its
    # retry and the answer.
    race = text.split('id="finding-aaaa_race_lost"')[1].split("</article>")[0]
    assert len(re.findall(r"<tr class=\"role-", race)) == 5
    assert "No failing external names" in p.text("ticket-text")
    assert "aaaa-same-port-race.pcap" in p.text("overview")
    assert len(p.all("svg")) >= 3  # timeline, latency, rcodes, inline


def test_self_contained() -> None:
    text, p = _page([str(SAMPLES / "dnat-service-any.pcap")])
    for tag, attr in (("link", "href"), ("img", "src"), ("script", "src"), ("iframe", "src"),
                      ("object", "data"), ("embed", "src"), ("source", "src")):
        for a in p.all(tag):
            value = a.get(attr)
            assert value is None or value.startswith(("data:", "#")), (tag, value)
    assert not re.search(r"url\((?!['\"]?(data:|#))", text), "stylesheet loads a URL"
    assert "@import" not in text
    assert "@media print" in text
    csp = p.all("meta", **{"http-equiv": "Content-Security-Policy"})
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")


def test_hostile_names_are_text_not_markup(tmp_path: Path) -> None:
    cap = write_hostile_capture(tmp_path / "hostile.pcap")
    text, p = _page([str(cap)], command="pcapdns report '<b>x</b>' -o y")
    assert p.scripts == 1  # the page's own
    for tag, attrs in p.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            assert not (value or "").lower().startswith("javascript:"), (tag, name, value)
        assert tag not in ("img", "iframe", "a") or tag == "a" and (
            attrs.get("href") or "").startswith("#"), (tag, attrs)
    visible = p.text("findings") + p.text("problems") + p.text("ticket-text")
    for payload in PAYLOADS:
        shown = payload.replace(" ", "\\032")
        assert shown in visible, payload
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert "<b>x</b>" not in text


def test_deterministic(tmp_path: Path) -> None:
    path = [str(SAMPLES / "ndots-search-expansion.pcap")]
    a, _ = _page(path)
    b, _ = _page(path)
    assert a == b


def test_write_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text("old")
    r = model.build(analyze([str(SAMPLES / "clean-glibc-getent.pcap")]), command="c")
    out.chmod(0o640)
    html.write(r, str(out))
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
    assert out.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode
    new = tmp_path / "new.html"
    html.write(r, str(new))
    assert new.stat().st_mode & 0o777 == 0o600  # a new one is private, like the capture


def test_every_corpus_capture_renders(corpus: Path) -> None:
    """Real captures from other projects (odd link types, tunnels, damaged files): the
    report renders for every one the analysis accepts, and stays small."""
    from pcapdns.errors import PcapdnsError

    rendered = 0
    for path in sorted(corpus.iterdir()):
        if ".expected." in path.name or not path.name.endswith((".pcap", ".pcapng", ".gz")):
            continue
        try:
            a = analyze([str(path)])
        except PcapdnsError:
            continue  # unusable input is the CLI's one-line error, tested elsewhere
        page = html.render(model.build(a, command="pcapdns report"))
        assert page.startswith("<!DOCTYPE html>"), path.name
        assert len(page.encode()) < 2_000_000, path.name
        rendered += 1
    assert rendered >= 150


def test_upstream_section(tmp_path: Path) -> None:
    _, p = _page([str(SAMPLES / "forwarder-upstream-leg.pcap")])
    assert p.all("section", id="upstream")
    assert p.all("a", href="#upstream")
    text = p.text("upstream")
    assert "10.250.1.1" in text and "upstream_timeout" in text and "local" in text
    _, p = _page([str(SAMPLES / "timeout-dropped.pcap")])
    assert not p.all("section", id="upstream")


def test_hostile_names_in_the_upstream_section_are_text(tmp_path: Path) -> None:
    from scapy.all import DNS, DNSQR, IP, UDP

    from tests.craft import write_eth

    name = "<script>window.__pwned=1</script>.example"
    fwd, up = "10.244.0.5", "10.0.0.2"

    def q(src: str, dst: str, sport: int, id: int):
        return IP(src=src, dst=dst) / UDP(sport=sport, dport=53) / DNS(
            id=id, rd=1, qd=DNSQR(qname=name))

    cap = write_eth(tmp_path / "hostile-upstream.pcap", [
        (1.0, q("10.0.3.7", fwd, 40000, 1)), (1.0002, q(fwd, up, 50000, 2)),
        (40.0, IP(src="10.0.3.8", dst=fwd) / UDP(sport=41000, dport=53) / DNS(
            id=3, rd=1, qd=DNSQR(qname="end.example"))),
    ])
    text, p = _page([str(cap)])
    assert "upstream_timeout" in p.text("upstream")
    assert "<script>window.__pwned" not in text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text


def test_hostile_pod_names_are_text_not_markup(tmp_path: Path) -> None:
    """--pods: names from the listing are escaped wherever the page shows them."""
    from pcapdns import pods
    from tests.report.hostile import POD_PAYLOADS, write_hostile_pods

    cap = write_hostile_capture(tmp_path / "hostile.pcap")
    listing = pods.load([str(write_hostile_pods(tmp_path / "pods.json"))])
    text = html.render(model.build(analyze([str(cap)], pods=listing), command="c"))
    p = Page()
    p.feed(text)
    assert p.scripts == 1
    for tag, attrs in p.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
        assert tag not in ("img", "iframe", "b"), (tag, attrs)
    visible = p.text("findings") + p.text("problems")
    for payload in POD_PAYLOADS:
        assert payload in visible, payload
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J" in text  # the control character shown as an escape
    assert 'class="pod"' in text and "Clients by workload" in text


def test_tunnel_evidence_names_the_nodes(tmp_path: Path) -> None:
    """The overlay's outer addresses are shown as the nodes the pods listing names (each
    pod's hostIP), escaped; without a listing, as addresses."""
    import json

    from pcapdns import pods
    from tests.pods.listing import pod

    cap = SAMPLES / "overlay-vxlan-underlay.pcap"
    plain = html.render(model.build(analyze([str(cap)]), command="c"))
    assert "in vxlan from node 10.250.50.2 to node 10.250.50.1" in plain
    listing = tmp_path / "pods.json"
    listing.write_text(json.dumps({"kind": "List", "items": [
        pod("default", "web", "10.250.60.1", "node-a", host_ip="10.250.50.1"),
        pod("default", "dns", "10.250.60.2", "<b>node-b</b>", host_ip="10.250.50.2")]}))
    named = html.render(model.build(
        analyze([str(cap)], pods=pods.load([str(listing)])), command="c"))
    assert ("in vxlan from 10.250.50.2 (node &lt;b&gt;node-b&lt;/b&gt;) to 10.250.50.1 "
            "(node node-a)") in named
    assert "<b>node-b</b>" not in named
