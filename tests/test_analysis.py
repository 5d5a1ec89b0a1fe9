"""The whole pipeline's own decisions: when the capture ended."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from pcapdns.analysis import analyze
from tests.craft import query, response, write_eth
from tests.read.test_capture_meta import META


def _ring(folder: Path, stop: str | None) -> Path:
    """Two ring files; the last DNS packet is a query 3 s after an unanswered one."""
    folder.mkdir()
    write_eth(folder / "dns.pcap0", [(1_795_602_000.0, query("a.example", id=1)),
                                     (1_795_602_000.001, response("a.example", id=1))])
    write_eth(folder / "dns.pcap1", [(1_795_602_010.0, query("lost.example", id=2)),
                                     (1_795_602_013.0, query("b.example", id=3,
                                                             sport=40001))])
    meta = copy.deepcopy(META)
    meta["tcpdump"]["command"] = ["tcpdump", "-i", "any", "-w", str(folder / "dns.pcap"),
                                  "port 53"]
    meta["stop"] = stop
    (folder / "capture.json").write_text(json.dumps(meta))
    return folder


# 1_795_602_013 is 2026-11-25T10:20:13Z; the agent stopped 20 s later.
STOP = "2026-11-25T10:20:33.000000Z"


def test_the_agents_stop_time_ends_the_capture(tmp_path: Path) -> None:
    a = analyze([str(_ring(tmp_path / "ring", STOP))])
    # lost.example (13 s before the stop) and b.example (20 s) timed out; neither is open.
    assert (a.match.failed_lookups, a.match.lookups_open_at_end) == (2, 0)
    assert {f.first.qname for f in a.findings if f.first.kind == "timeout"} == {
        "lost.example", "b.example"}


def test_without_a_stop_time_the_last_packet_ends_it(tmp_path: Path) -> None:
    a = analyze([str(_ring(tmp_path / "ring", None))])
    assert (a.match.failed_lookups, a.match.lookups_open_at_end) == (2, 2)


def test_part_of_a_ring_ends_at_its_last_packet(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "ring", STOP)
    a = analyze([str(ring / "dns.pcap0")])  # the next file may hold the answers
    assert a.capture is not None
    assert a.match.lookups_open_at_end == 0 and a.match.failed_lookups == 0
    b = analyze([str(ring / "dns.pcap1")])
    assert (b.match.failed_lookups, b.match.lookups_open_at_end) == (2, 2)
