"""A client port stuck on a stale conntrack/IPVS entry: several lookups from one port fail
while the same client's other ports are answered."""

from __future__ import annotations

from tests.craft import analyze_packets, findings_of, query, response


def _stuck(n_failed: int, answered_elsewhere: bool = True, port_changes: bool = False) -> list:
    packets = []
    for i in range(n_failed):
        packets.append((10.0 + i * 2, query(f"svc{i}.example", id=100 + i,
                                            sport=53000 + (i if port_changes else 0))))
    if answered_elsewhere:
        packets += [(11.0, query("ok.example", id=7, sport=40001)),
                    (11.001, response("ok.example", id=7, dport=40001))]
    packets.append((60.0, query("end.example", id=9, sport=40002)))
    return sorted(packets, key=lambda p: p[0])


def test_three_failures_on_one_port_while_others_work(tmp_path):
    a = analyze_packets(tmp_path / "stale.pcap", _stuck(3))

    (f,) = findings_of(a, "stale_port")
    assert f.first.severity == "error"
    assert f.first.client == "10.0.3.7" and f.first.server == "10.96.0.10"
    assert "10.0.3.7:53000" in f.first.detail and "3 lookups" in f.first.detail
    assert len(f.first.frames) == 3


def test_two_failures_are_not_enough(tmp_path):
    a = analyze_packets(tmp_path / "two.pcap", _stuck(2))
    assert findings_of(a, "stale_port") == []


def test_nothing_answered_anywhere_is_an_outage_not_a_stale_port(tmp_path):
    a = analyze_packets(tmp_path / "outage.pcap", _stuck(4, answered_elsewhere=False))
    assert findings_of(a, "stale_port") == []
    assert len(findings_of(a, "timeout")) == 4


def test_failures_on_different_ports_are_not_a_stale_port(tmp_path):
    a = analyze_packets(tmp_path / "ports.pcap", _stuck(4, port_changes=True))
    assert findings_of(a, "stale_port") == []
