"""The cluster page: one self-contained page, its sections by structure, and every string
from the documents escaped."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pcapdns.merge import html, merge
from tests.merge.fleet import documents
from tests.merge.helpers import node_doc, write
from tests.report.hostile import PAYLOADS


def _page(paths: list[str]) -> str:
    return html.render(merge(paths), command="pcapdns merge a.json --html /home/u/c.html")


def test_sections_and_rows() -> None:
    page = _page([str(p) for p in documents()])
    for section in ("verdict", "windows", "nodes", "replicas", "clients", "names", "inputs"):
        assert f'<section id="{section}"' in page, section
    nodes = re.search(r'<table class="tally nodes">.*?</table>', page, re.S)
    assert nodes and nodes.group(0).count("<tr>") == 1 + 7
    windows = re.search(r'<table class="tally windows">.*?</table>', page, re.S)
    assert windows and windows.group(0).count("<tr>") == 1 + 1
    assert "node-e (1), node-f (1), node-g (1)" in windows.group(0)
    replicas = re.search(r'<table class="tally replicas">.*?</table>', page, re.S)
    assert replicas and replicas.group(0).count("<tr>") == 1 + 3
    assert "13 of 95 lookups failed across the cluster" in page
    assert "<script" not in page and "script-src 'none'" in page
    # The output path is cut to its base name, as in the analysis report.
    assert "pcapdns merge a.json --html c.html" in page


def test_hostile_names_are_text(tmp_path: Path) -> None:
    """Node names, addresses, DNS names and paths from the documents never become markup."""
    payload = PAYLOADS[0]
    docs = []
    for i, p in enumerate(PAYLOADS[:3]):
        doc = node_doc(p, "00:00:00", "00:00:59", [("00:00:11.000000", 1)],
                       capture_file=f"dns.pcap{i}")
        doc["findings"] = [{"kind": "timeout", "severity": "error", "qname": q, "qtype": "A",
                            "count": 1} for q in PAYLOADS]
        doc["summary"]["clients"][0]["client"] = PAYLOADS[1]
        doc["summary"]["replicas"][0]["address"] = PAYLOADS[2]
        docs.append(write(tmp_path / f"{PAYLOADS[3]}{i}.json", doc))
    page = _page(docs)
    body = page.split("<body>", 1)[1]
    for p in PAYLOADS:
        assert p not in body, p
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in body
    assert "<img" not in body and "<svg" not in body and "<a/" not in body
    json.dumps(payload)


def test_hostile_names_do_not_run_in_a_browser(tmp_path: Path) -> None:
    from tests.browser import open_page, require_chromium

    require_chromium()
    docs = []
    for i, p in enumerate(PAYLOADS[:3]):
        doc = node_doc(p, "00:00:00", "00:00:59", [("00:00:11.000000", 1)],
                       capture_file=f"dns.pcap{i}")
        doc["findings"] = [{"kind": "timeout", "severity": "error", "qname": q, "qtype": "A",
                            "count": 1} for q in PAYLOADS]
        docs.append(write(tmp_path / f"{i}.json", doc))
    page = tmp_path / "cluster.html"
    page.write_text(_page(docs))
    r = open_page(page, evaluate=[
        "window.__pwned === undefined",
        "document.querySelectorAll('script').length",
        "document.querySelector('#nodes').innerText.includes('<script>window.__pwned=1"
        "</script>.evil.test')",
        "document.querySelectorAll('#windows tbody tr').length",
    ])
    assert r.values == (True, 0, True, 1), r.values
    assert r.errors == () and r.requests == ()


def test_decapsulated_column_only_when_a_node_decapsulated(tmp_path: Path) -> None:
    plain = _page([str(p) for p in documents()])
    assert "<th>decapsulated</th>" not in plain
    a = node_doc("node-a", "10:00:00", "10:01:00")
    b = node_doc("node-b", "10:00:00", "10:01:00", capture_file="b.pcap0")
    a["summary"]["tunnels"] = {"vxlan": 1200, "geneve": 0}
    b["summary"]["tunnels"] = {"vxlan": 0, "geneve": 0}
    page = _page([write(tmp_path / "a.json", a), write(tmp_path / "b.json", b)])
    nodes = re.search(r'<table class="tally nodes">.*?</table>', page, re.S)
    assert nodes and "<th>decapsulated</th>" in nodes.group(0)
    assert "<td>vxlan 1,200</td>" in nodes.group(0) and "<td>–</td>" in nodes.group(0)
