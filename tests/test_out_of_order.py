"""Captures whose records are written out of time order, through the whole pipeline.

dumpcap recording two interfaces of a router into one pcapng writes each interface's
packets when its buffer is handed over: here the query seen on interface 0, the answer
(seen on both), and only then the query's copy from interface 1, stamped before the answer.
``reorder_window=0`` keeps file order, which is what the analysis did before it reordered.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pcapdns.analysis import Analysis, analyze
from pcapdns.cli import main
from pcapdns.config import AnalysisConfig
from pcapdns.output import text
from pcapdns.output.document import build
from tests.craft import query, response, write_eth, write_pcapng

T = 1_795_602_000.0


def two_interfaces(path: Path) -> Path:
    """A router's two interfaces in one pcapng, written interface batch by batch."""
    q = query("web.example", id=7, sport=40000)
    r = response("web.example", id=7, dport=40000)
    again = query("web.example", id=8, sport=40002)
    again_r = response("web.example", id=8, dport=40002)
    return write_pcapng(path, [
        (T, 0, q),  # frame 1: the query, interface 0
        (T + 0.0004, 1, r),  # frame 2: its answer, interface 1
        (T + 0.0001, 1, q),  # frame 3: the query's copy, interface 1, stamped before 2
        (T + 0.0005, 0, r),  # frame 4: the answer's copy, interface 0
        # The same name looked up again 3 s later, seen on interface 0 only.
        (T + 3.0, 0, again),  # frame 5
        (T + 3.0003, 0, again_r),  # frame 6
        (T + 10.0, 0, query("end.example", id=9, sport=40004)),  # frame 7
        (T + 10.0002, 0, response("end.example", id=9, dport=40004)),  # frame 8
    ])


def web(a: Analysis) -> list[list[tuple[int, int | None]]]:
    """(query frame, response frame) of each attempt of each web.example lookup."""
    assert a.lookups is not None
    return [
        [(t.query.frame, t.response.frame if t.response else None) for t in lk.attempts]
        for lk in sorted(a.lookups, key=lambda lk: lk.attempts[0].query.frame)
        if lk.attempts[0].query.qname == "web.example"
    ]


def test_in_file_order_the_copy_after_the_answer_counts_twice(tmp_path: Path) -> None:
    # What the analysis did before reordering: frame 3 follows the answer, so it is not a
    # duplicate; it becomes a query of its own whose answer (frame 4) was dropped as a copy
    # of frame 2, and the next lookup 3 s later looks like its retransmission.
    a = analyze([str(two_interfaces(tmp_path / "two-if.pcapng"))],
                AnalysisConfig(reorder_window=0.0), keep_lookups=True)
    assert (a.match.queries, a.duplicates, a.match.retransmissions) == (4, 1, 1)
    assert web(a) == [[(1, 2)], [(3, None), (5, 6)]]
    # The phantom retransmission made the next lookup look 3 s slow.
    assert any(f.first.kind == "retransmission" and "slow_response" in f.first.explains
               for f in a.findings)


def test_in_time_order_the_copy_is_a_duplicate(tmp_path: Path) -> None:
    a = analyze([str(two_interfaces(tmp_path / "two-if.pcapng"))], keep_lookups=True)
    assert (a.match.queries, a.match.responses, a.duplicates) == (3, 3, 2)
    assert (a.match.retransmissions, a.match.failed_lookups, a.late_records) == (0, 0, 0)
    assert web(a) == [[(1, 2)], [(5, 6)]], "frame numbers are the file's"
    assert a.duplicate_of == {3: 1, 4: 2}
    assert a.findings == [] and a.warnings == []


def late_query(path: Path) -> Path:
    """A single-interface capture where one query and its answer are written 2.5 s after
    their time, after frames 3 and 4, which are newer and already passed on."""
    return write_eth(path, [
        (T, query("a.example", id=1)),  # 1
        (T + 0.001, response("a.example", id=1)),  # 2
        (T + 1.0, query("x.example", id=6)),  # 3
        (T + 1.001, response("x.example", id=6)),  # 4
        (T + 3.0, query("b.example", id=2)),  # 5: frames 1 to 4 are passed on
        (T + 0.5, query("late.example", id=3)),  # 6: 2.5 s behind frame 5
        (T + 0.502, response("late.example", id=3)),  # 7: 2.498 s behind
        (T + 3.001, response("b.example", id=2)),  # 8
        (T + 3.2, query("c.example", id=4)),  # 9: 0.1 s after its answer, within the window
        (T + 3.1, response("c.example", id=4)),  # 10
        (T + 3.4, query("end.example", id=5)),  # 11
        (T + 3.401, response("end.example", id=5)),  # 12
    ])


def test_records_later_than_the_window_are_counted_and_still_analyzed(tmp_path: Path) -> None:
    cap = late_query(tmp_path / "late.pcap")
    a = analyze([str(cap)], keep_lookups=True)
    assert a.packets == 12
    assert a.late_records == 2
    # Both late records were analyzed at once, in file order, with their own times: the
    # late query still found its answer.
    assert a.lookups is not None
    pairs = {lk.attempts[0].query.qname: (lk.attempts[0].query.frame,
                                          lk.answer.response.frame if lk.answer else None)
             for lk in a.lookups}
    assert pairs["late.example"] == (6, 7)
    # c.example's response (frame 10) is stamped before its query (frame 9), within the
    # window: time order puts the response first, where it finds no query.
    assert pairs["c.example"] == (9, None)
    # It comes within --max-wait of the capture's start: counted apart, not unsolicited.
    assert (a.match.unsolicited_responses, a.match.responses_before_capture) == (0, 1)
    assert a.warnings == [
        "2 records arrived more than 500 ms out of time order (the furthest 2.500 s); "
        "each was analyzed where it was read, so a copy of a packet among them may be "
        "counted twice and an answer read before its query taken for unsolicited"
    ]
    doc = build(a)
    assert doc["summary"]["late_records"] == 2
    assert doc["warnings"] == a.warnings
    assert "; late records 2\n" in text.render(a)


def test_the_cli_warns_about_late_records(tmp_path: Path) -> None:
    cap = late_query(tmp_path / "late.pcap")
    result = CliRunner().invoke(main, ["analyze", str(cap), "--format", "json"])
    assert json.loads(result.stdout)["summary"]["late_records"] == 2
    assert "pcapdns: warning: 2 records arrived more than 500 ms out of time order" in (
        result.stderr
    ), result.stderr


def test_a_capture_in_order_has_no_late_records(tmp_path: Path) -> None:
    cap = write_eth(tmp_path / "ok.pcap", [(T, query()), (T + 0.001, response())])
    a = analyze([str(cap)])
    assert a.late_records == 0 and a.warnings == []
    assert "late records" not in text.render(a)


def test_the_capture_ends_at_its_newest_record_not_its_last_written(tmp_path: Path) -> None:
    # The last record written is stamped 0.3 s before the one written ahead of it; the
    # capture ended at the newer one, 5.2 s after the unanswered query: a timeout.
    cap = write_eth(tmp_path / "end.pcap", [
        (T, query("lost.example", id=1)),
        (T + 5.2, query("other.example", id=2, sport=40002)),
        (T + 4.9, response("other.example", id=2, dport=40002)),
    ])
    a = analyze([str(cap)])
    assert a.late_records == 0
    assert (a.match.failed_lookups, a.match.lookups_open_at_end) == (2, 1)
    assert [f.first.qname for f in a.findings if f.first.kind == "timeout"] == [
        "lost.example"]
