"""What merge refuses (it would count lookups twice, or cannot read an input) and what it
only warns about."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pcapdns.merge import MergeError, merge
from tests.merge.fleet import documents
from tests.merge.helpers import node_doc, write


def _refused(paths: list[str]) -> str:
    with pytest.raises(MergeError) as e:
        merge(paths)
    return str(e.value)


def test_the_same_document_twice_is_refused(tmp_path: Path) -> None:
    doc = str(documents()[0])
    assert _refused([doc, doc]).endswith("each document is merged once")
    os.link(doc, tmp_path / "again.json")
    assert "the same file as" in _refused([doc, str(tmp_path / "again.json")])


def test_two_documents_of_one_capture_file_are_refused(tmp_path: Path) -> None:
    """A copy of a document (collected twice, under two names) analyzes the same ring."""
    doc = documents()[0]
    shutil.copyfile(doc, tmp_path / "copy.json")
    message = _refused([str(doc), str(tmp_path / "copy.json")])
    assert message == (f"{tmp_path / 'copy.json'}: analyzes the same capture file "
                       f"(node-a/node-legs-faults.pcap) as {doc}; its lookups would be "
                       "counted twice")


def test_one_nodes_overlapping_captures_are_refused(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", node_doc("node-a", "00:00:00", "00:00:30"))
    b = write(tmp_path / "b.json", node_doc("node-a", "00:00:20", "00:00:50", capture_file="p1"))
    assert _refused([a, b]) == (f"{b}: node node-a's capture overlaps that of {a} in time; "
                                "the lookups of the overlap would be counted twice")


def test_one_nodes_consecutive_captures_are_one_node(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", node_doc("node-a", "00:00:00", "00:00:30"))
    b = write(tmp_path / "b.json", node_doc("node-a", "00:01:00", "00:01:30", capture_file="p1"))
    c = merge([a, b])
    (node,) = c.nodes
    assert node["documents"] == [a, b]
    assert (node["first_time"], node["last_time"]) == ("2026-12-02T00:00:00.000000Z",
                                                       "2026-12-02T00:01:30.000000Z")


def test_different_nodes_may_overlap(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", node_doc("node-a", "00:00:00", "00:00:30"))
    b = write(tmp_path / "b.json", node_doc("node-b", "00:00:00", "00:00:30", capture_file="p1"))
    assert len(merge([a, b]).nodes) == 2


def test_different_versions_are_warned_about_and_added_up(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", node_doc("node-a", "00:00:00", "00:00:30", version="0.1.0"))
    b = write(tmp_path / "b.json", node_doc("node-b", "00:00:00", "00:00:30", capture_file="p1",
                                            version="0.2.0"))
    c = merge([a, b])
    assert c.warnings == ("documents written by different pcapdns versions (0.1.0, 0.2.0): "
                          "added up, but a definition may differ between them",)
    assert c.totals["lookups"] == 2 * 48


def test_a_document_without_node_or_timeline_is_named_and_warned_about(tmp_path: Path) -> None:
    doc = node_doc(None, "00:00:00", "00:00:30")
    del doc["timeline"]
    a = write(tmp_path / "nodeless.json", doc)
    c = merge([a])
    assert c.nodes[0]["node"] == "nodeless.json"
    assert c.warnings == (
        f"{a}: no timeline (written by pcapdns 0.1.0); left out of the windows",
        f"{a}: no capture agent record (capture.json); the node is named after the file")


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "empty; not an analysis document"),
    (b"\xff\xfe{}", "not JSON (not UTF-8 text)"),
    (b"{\"schema\": \"pcapdns.analysis/1\", \"summary\": {", "truncated JSON (ends at byte 45)"),
    (b"[1, 2] x", "not JSON (Extra data at line 1)"),
    (b"[1, 2]", "not a pcapdns analysis document (no schema field)"),
    (b'{"schema": "pcapdns.correlation/1"}',
     "schema 'pcapdns.correlation/1', not pcapdns.analysis/1; merge joins analysis documents "
     "only"),
    (b'{"schema": "pcapdns.cluster/1"}',
     "schema 'pcapdns.cluster/1', not pcapdns.analysis/1; merge joins analysis documents only"),
    (b'{"schema": "pcapdns.analysis/1", "pcapdns_version": "0.1.0", "inputs": [], '
     b'"summary": {"lookups": "7"}, "findings": []}',
     "not a pcapdns analysis document (missing or wrong: summary.lookups, "
     "summary.lookups_failed, summary.servers, summary.clients, summary.replicas)"),
])
def test_an_unusable_input_is_one_line_naming_it(tmp_path: Path, content: bytes,
                                                 problem: str) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(content)
    assert _refused([str(path)]) == f"{path}: {problem}"


def test_a_cut_off_document_is_truncated(tmp_path: Path) -> None:
    text = documents()[0].read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(text[: len(text) // 2])
    assert _refused([str(path)]).startswith(f"{path}: truncated JSON")


def test_a_missing_file(tmp_path: Path) -> None:
    assert _refused([str(tmp_path / "nope.json")]) == (
        f"{tmp_path / 'nope.json'}: cannot read: No such file or directory")


def test_the_documents_are_json(tmp_path: Path) -> None:
    for p in documents():
        assert json.loads(p.read_text())["schema"] == "pcapdns.analysis/1"
