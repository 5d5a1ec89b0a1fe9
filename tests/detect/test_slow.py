"""Slow lookups: answered more than ``--slow`` (1 s) after the first attempt; an error
above 5 s."""

from __future__ import annotations

import pytest

from pcapdns.config import AnalysisConfig
from pcapdns.detect import slow
from tests.craft import analyze_packets, findings_of, query, response


@pytest.mark.parametrize(
    ("delay", "severity"),
    [(0.9, None), (1.2, "warning"), (4.9, "warning"), (5.2, "error")],
)
def test_lookup_answered_after_the_slow_threshold_is_slow(tmp_path, delay, severity):
    a = analyze_packets(tmp_path / "slow.pcap", [
        (1.0, query()),
        (1.0 + delay, response()),
    ])

    found = findings_of(a, "slow_response")
    if severity is None:
        assert found == []
    else:
        (f,) = found
        assert f.first.severity == severity
        assert f.first.frames == (1, 2)
        assert f.first.time == 1.0


def test_slow_counts_from_the_first_attempt_of_a_retried_lookup(tmp_path):
    # Each attempt alone answers fast enough; the lookup as a whole took 2.05 s.
    a = analyze_packets(tmp_path / "retried.pcap", [
        (1.0, query(id=1)),
        (3.0, query(id=2, sport=40001)),
        (3.05, response(id=2, dport=40001)),
    ])

    (lookup,) = a.lookups
    (f,) = slow.detect(lookup, AnalysisConfig())
    assert f.frames == (1, 2, 3)
    assert "2.050 s" in f.detail
    assert "after 2 attempts" in f.detail
    # In the analysis the retransmission is the cause and the slow answer its evidence.
    assert findings_of(a, "slow_response") == []
    assert findings_of(a, "retransmission")[0].first.explains == ("slow_response",)


def test_slow_threshold_comes_from_the_config(tmp_path):
    packets = [(1.0, query()), (1.3, response())]
    assert findings_of(analyze_packets(tmp_path / "a.pcap", packets), "slow_response") == []
    a = analyze_packets(tmp_path / "b.pcap", packets, slow=0.2)
    assert len(findings_of(a, "slow_response")) == 1


def test_unanswered_lookup_is_not_slow(tmp_path):
    a = analyze_packets(tmp_path / "none.pcap", [(1.0, query()), (9.0, query("x.example"))])

    assert findings_of(a, "slow_response") == []
