"""The finding collector: every detector runs on every lookup, repeated findings merge,
and a detector that raises becomes a ``detector_error`` finding instead of a crash."""

from __future__ import annotations

import pcapdns.detect
from pcapdns.config import AnalysisConfig
from pcapdns.detect import DETECTORS, FindingCollector
from pcapdns.detect.base import Finding
from pcapdns.output.document import build
from tests.craft import analyze_packets, findings_of, lead_in, query, response


def _broken(lookup, config):
    raise KeyError("boom")


def test_every_detector_module_is_listed():
    assert [name for name, _ in DETECTORS] == [
        "timeout", "retransmission", "truncation", "aaaa_race", "rcode", "slow", "fanout",
        "late_response", "lost_in_node", "reply_not_delivered", "unexpected_source",
        "upstream_timeout", "upstream_error",
    ]


def test_detector_that_raises_becomes_a_detector_error_finding(tmp_path, monkeypatch):
    monkeypatch.setattr(pcapdns.detect, "DETECTORS", (("broken", _broken), *DETECTORS))
    a = analyze_packets(tmp_path / "broken.pcap", [
        (1.0, query("a.example")),
        (1.001, response("a.example", rcode=3)),
        (2.0, query("b.example")),
        (2.001, response("b.example", rcode=3)),
    ])

    errors = findings_of(a, "detector_error")
    assert sorted(f.first.qname for f in errors) == ["a.example", "b.example"]
    f = errors[0]
    assert f.first.severity == "warning"
    assert f.first.frames == (1,)
    assert "detector broken failed" in f.first.detail
    assert "KeyError" in f.first.detail
    # The other detectors still ran on the same lookups.
    assert len(findings_of(a, "nxdomain")) == 2
    assert a.detector_errors == {"broken": 2}
    assert build(a)["summary"]["detector_errors"] == {"broken": 2}


def test_detector_error_on_one_lookup_does_not_stop_the_next(tmp_path, monkeypatch):
    def fails_on_a(lookup, config):
        if lookup.first.qname == "a.example":
            raise ValueError("bad lookup")
        return []

    monkeypatch.setattr(pcapdns.detect, "DETECTORS", (("picky", fails_on_a),))
    a = analyze_packets(tmp_path / "picky.pcap", [
        (1.0, query("a.example")),
        (2.0, query("b.example")),
        (2.001, response("b.example")),
    ])

    assert a.detector_errors == {"picky": 1}
    assert a.match.lookups == 2


def _finding(time: float, frames: tuple[int, ...], kind="timeout", severity="error",
             qname="example.com") -> Finding:
    return Finding(kind, severity, time, "10.0.3.7", "10.96.0.10", qname, "A", frames, "x.")


def test_repeated_findings_about_one_client_server_and_question_merge():
    c = FindingCollector(AnalysisConfig())
    c.add(_finding(1.0, (1, 2)))
    c.add(_finding(7.0, (5, 6)))
    c.add(_finding(3.0, (3,), qname="EXAMPLE.com"))  # names compare case-insensitively

    (agg,) = c.findings()
    assert agg.count == 3
    assert agg.first.time == 1.0
    assert agg.last_time == 7.0
    assert agg.frames == [1, 2, 5, 6, 3]
    assert agg.frames_omitted == 0


def test_evidence_frames_are_capped_and_the_rest_counted():
    c = FindingCollector(AnalysisConfig(max_evidence_frames=3))
    c.add(_finding(1.0, (1, 2)))
    c.add(_finding(2.0, (3, 4)))
    c.add(_finding(3.0, (5,)))

    (agg,) = c.findings()
    assert agg.frames == [1, 2, 3]
    assert agg.frames_omitted == 2


def test_a_first_finding_over_the_frame_cap_is_cut_and_counted():
    c = FindingCollector(AnalysisConfig(max_evidence_frames=3))
    c.add(_finding(1.0, (1, 2, 3, 4, 5)))
    c.add(_finding(2.0, (6,)))

    (agg,) = c.findings()
    assert agg.frames == [1, 2, 3]
    assert agg.frames_omitted == 3
    # The aggregate keeps only what the cap allows, of the first finding too.
    assert agg.first.frames == (1, 2, 3)


def test_frame_numbers_past_32_bits_are_kept_whole():
    c = FindingCollector(AnalysisConfig())
    c.add(_finding(1.0, (1,)))
    c.add(_finding(2.0, (2**40, 2**63 + 1)))

    (agg,) = c.findings()
    assert agg.frames == [1, 2**40, 2**63 + 1]


def test_aggregates_keep_one_copy_of_each_name_and_sentence():
    # Equal strings built apart, as two lookups' names and two detectors' sentences are.
    def text(s: str) -> str:
        return "".join(list(s))

    c = FindingCollector(AnalysisConfig())
    c.add(Finding("timeout", "error", 1.0, "10.0.3.7", "10.96.0.10", text("example.com"),
                  "A", (1,), text("lost.")))
    c.add(Finding("nxdomain", "info", 2.0, "10.0.3.8", "10.96.0.10", text("example.com"),
                  "A", (2,), text("lost.")))

    a, b = c.findings()
    assert a.first.qname is b.first.qname
    assert a.first.detail is b.first.detail
    # The key holds the name itself when it is lower case already, not a lowered copy.
    keys = [k for by_key in c._by_kind.values() for k in by_key]
    assert all(k[2] is a.first.qname for k in keys)


def test_findings_are_ordered_most_severe_first_then_by_time():
    c = FindingCollector(AnalysisConfig())
    c.add(_finding(5.0, (9,), kind="nxdomain", severity="info"))
    c.add(_finding(4.0, (8,), kind="slow_response", severity="warning"))
    c.add(_finding(3.0, (7,), kind="timeout", severity="error", qname="b.example"))
    c.add(_finding(2.0, (6,), kind="servfail", severity="error"))

    assert [(f.first.kind, f.first.time) for f in c.findings()] == [
        ("servfail", 2.0), ("timeout", 3.0), ("slow_response", 4.0), ("nxdomain", 5.0),
    ]


def test_aggregated_finding_in_the_json_document_says_how_often(tmp_path):
    a = analyze_packets(tmp_path / "json.pcap", [
        (1.0, query(id=1)),
        (1.001, response(id=1, rcode=2)),
        (2.0, query(id=2)),
        (2.001, response(id=2, rcode=2, answers=())),
    ])

    (doc,) = [f for f in build(a)["findings"] if f["kind"] == "servfail"]
    assert doc["count"] == 2
    assert doc["frames"] == [1, 2, 3, 4]
    assert doc["frames_omitted"] == 0
    assert "Seen 2 times" in doc["detail"]


def test_orphan_detector_that_raises_becomes_a_detector_error_finding(tmp_path, monkeypatch):
    monkeypatch.setattr(pcapdns.detect.orphans, "detect", lambda orphan: 1 / 0)
    a = analyze_packets(tmp_path / "orphan-broken.pcap", lead_in([
        (1.0, response("ghost.example", id=5, dport=41000)),
        (2.0, query()),
        (2.001, response(rcode=3)),
    ]))

    (f,) = findings_of(a, "detector_error")
    assert f.first.frames == (2,)
    assert f.first.qname == "ghost.example"
    assert "detector orphans failed" in f.first.detail
    assert "ZeroDivisionError" in f.first.detail
    assert a.detector_errors == {"orphans": 1}
    assert len(findings_of(a, "nxdomain")) == 1


def test_findings_of_one_kind_are_capped_and_the_rest_counted():
    from pcapdns.config import AnalysisConfig
    from pcapdns.detect import FindingCollector
    from pcapdns.detect.base import Finding

    c = FindingCollector(AnalysisConfig(max_findings_per_kind=3))
    for i in range(10):
        c.add(Finding("nxdomain", "info", float(i), "10.0.0.1", "10.96.0.10",
                      f"random{i}.example", "A", (i + 1,), "NXDOMAIN"))
    out = c.findings()
    assert len(out) == 4
    rest = [a for a in out if a.first.qname == "*"]
    assert len(rest) == 1 and rest[0].count == 7
    assert sum(a.count for a in out) == 10
