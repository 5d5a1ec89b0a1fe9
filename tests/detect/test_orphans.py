"""Messages that belong to no transaction: unsolicited responses and ICMP errors that
quote no query in flight."""

from __future__ import annotations

from tests.craft import (
    analyze_packets,
    findings_of,
    icmp_port_unreachable,
    lead_in,
    query,
    response,
)


def test_response_without_a_query_is_an_unsolicited_response_finding(tmp_path):
    a = analyze_packets(tmp_path / "unsolicited.pcap", lead_in([
        (1.0, response("ghost.example", id=5, src="10.244.2.5", dst="10.0.3.7", dport=41000)),
    ]))

    (f,) = findings_of(a, "unsolicited_response")
    assert f.first.severity == "warning"
    assert (f.first.client, f.first.server, f.first.qname, f.first.qtype) == (
        "10.0.3.7", "10.244.2.5", "ghost.example", "A")
    assert f.first.frames == (2,)
    assert f.first.time == 61.0
    assert "no query in flight" in f.first.detail
    assert a.match.unsolicited_responses == 1


def test_repeated_unsolicited_responses_merge_into_one_finding(tmp_path):
    a = analyze_packets(tmp_path / "many.pcap", lead_in([
        (1.0 + i, response("ghost.example", id=i, dport=41000 + i)) for i in range(4)
    ]))

    (f,) = findings_of(a, "unsolicited_response")
    assert f.count == 4
    assert f.frames == [2, 3, 4, 5]
    assert f.last_time == 64.0


def test_icmp_quoting_a_query_already_closed_is_an_icmp_unreachable_finding(tmp_path):
    q = query(id=3)
    a = analyze_packets(tmp_path / "icmp-late.pcap", [
        (1.0, q),
        (1.002, response(id=3)),
        (40.0, icmp_port_unreachable(q)),
    ])

    (f,) = findings_of(a, "icmp_unreachable")
    assert f.first.frames == (3,)
    assert "matches no query in flight" in f.first.detail
