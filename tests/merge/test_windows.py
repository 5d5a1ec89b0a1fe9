"""Windows in which several nodes failed at once: 10 s wide, aligned on the epoch, listed
when 2 or more nodes had failed lookups in them."""

from __future__ import annotations

from pathlib import Path

from pcapdns.merge import merge
from tests.merge.helpers import node_doc, write


def _merge(tmp: Path, *docs: dict[str, object]):
    return merge([write(tmp / f"{i}.json", d) for i, d in enumerate(docs)])


def test_two_nodes_failing_in_one_window_are_listed(tmp_path: Path) -> None:
    c = _merge(tmp_path,
               node_doc("node-a", "00:00:00", "00:00:59", [("00:00:11.300000", 2),
                                                           ("00:00:42.000000", 1)]),
               node_doc("node-b", "00:00:00", "00:00:59", [("00:00:19.900000", 3)], "p1"),
               node_doc("node-c", "00:00:00", "00:00:59", [("00:00:20.000000", 1)], "p2"))
    assert c.window_seconds == 10.0
    assert c.windows == [{
        "start": "2026-12-02T00:00:10.000000Z", "end": "2026-12-02T00:00:20.000000Z",
        "failed": 5, "nodes": [{"node": "node-a", "failed": 2},
                               {"node": "node-b", "failed": 3}]}]


def test_one_node_failing_alone_is_no_window(tmp_path: Path) -> None:
    c = _merge(tmp_path,
               node_doc("node-a", "00:00:00", "00:00:59", [("00:00:11.000000", 9),
                                                           ("00:00:12.000000", 9)]),
               node_doc("node-b", "00:00:00", "00:00:59", [], "p1"))
    assert c.windows == []


def test_wider_buckets_widen_the_windows(tmp_path: Path) -> None:
    """A long capture's buckets are wider than 10 s: the window takes the widest width,
    so no bucket straddles two windows."""
    a = node_doc("node-a", "00:00:00", "05:00:00", [("00:01:00.000000", 1)])
    a["timeline"]["bucket_seconds"] = 60.0
    b = node_doc("node-b", "00:00:00", "05:00:00", [("00:01:50.000000", 4)], "p1")
    c = _merge(tmp_path, a, b)
    assert c.window_seconds == 60.0
    assert [(w["start"], w["failed"]) for w in c.windows] == [
        ("2026-12-02T00:01:00.000000Z", 5)]


def test_a_document_without_a_timeline_is_left_out_of_the_windows(tmp_path: Path) -> None:
    a = node_doc("node-a", "00:00:00", "00:00:59", [("00:00:11.000000", 1)])
    b = node_doc("node-b", "00:00:00", "00:00:59", [("00:00:12.000000", 1)], "p1")
    del b["timeline"]
    c = _merge(tmp_path, a, b)
    assert c.windows == []
    assert any("no timeline" in w for w in c.warnings)


def test_a_bucket_on_a_windows_edge_is_in_that_window(tmp_path: Path) -> None:
    c = _merge(tmp_path,
               node_doc("node-a", "00:00:00", "00:00:59", [("00:00:20.000000", 1)]),
               node_doc("node-b", "00:00:00", "00:00:59", [("00:00:29.999999", 1)], "p1"),
               node_doc("node-c", "00:00:00", "00:00:59", [("00:00:19.999999", 1)], "p2"))
    assert [(w["start"], [n["node"] for n in w["nodes"]]) for w in c.windows] == [
        ("2026-12-02T00:00:20.000000Z", ["node-a", "node-b"])]
