"""Error response codes on a lookup's answer (RFC 1035 section 4.1.1): SERVFAIL, REFUSED
and NXDOMAIN findings; ``rcodes`` in the summary counts matched responses by name."""

from __future__ import annotations

import pytest

from pcapdns.output.document import build
from tests.craft import analyze_packets, findings_of, query, response


@pytest.mark.parametrize(
    ("rcode", "kind", "severity"),
    [(2, "servfail", "error"), (5, "refused", "error"), (3, "nxdomain", "info")],
)
def test_error_rcode_on_the_answer_is_a_finding(tmp_path, rcode, kind, severity):
    a = analyze_packets(tmp_path / f"{kind}.pcap", [
        (1.0, query("upstream.example")),
        (1.0042, response("upstream.example", rcode=rcode)),
    ])

    (f,) = findings_of(a, kind)
    assert f.first.severity == severity
    assert (f.first.client, f.first.server, f.first.qname, f.first.qtype) == (
        "10.0.3.7", "10.96.0.10", "upstream.example", "A")
    assert f.first.frames == (1, 2)
    assert "4.2 ms" in f.first.detail
    assert [g.first.kind for g in a.findings] == [kind]


def test_noerror_answer_is_no_finding(tmp_path):
    a = analyze_packets(tmp_path / "ok.pcap", [(1.0, query()), (1.001, response())])

    assert a.findings == []
    assert a.match.rcodes == {"NOERROR": 1}


def test_rcode_finding_follows_the_answer_of_a_retried_lookup(tmp_path):
    # The upstream timed out on the first try; CoreDNS answered the retry with SERVFAIL.
    a = analyze_packets(tmp_path / "retry-servfail.pcap", [
        (1.0, query(id=1)),
        (3.0, query(id=2)),
        (3.001, response(id=2, rcode=2)),
    ])

    (f,) = findings_of(a, "servfail")
    assert f.first.frames == (2, 3)
    assert "2.001 s" in f.first.detail


def test_authoritative_nxdomain_says_so(tmp_path):
    r = response("gone.ns.svc.cluster.local", rcode=3)
    r["DNS"].aa = 1
    a = analyze_packets(tmp_path / "aa.pcap", [
        (1.0, query("gone.ns.svc.cluster.local")),
        (1.001, r),
    ])

    (f,) = findings_of(a, "nxdomain")
    assert "(authoritative)" in f.first.detail


def test_ndots5_search_expansion_gives_nxdomain_for_each_suffix(tmp_path):
    # www.example.com has 2 dots < ndots:5, so glibc tries every search suffix first,
    # as an A/AAAA pair from a new port each step.
    suffixes = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    packets = []
    t = 1.0
    for step, suffix in enumerate([*suffixes, None]):
        name = f"www.example.com.{suffix}" if suffix else "www.example.com"
        sport = 42000 + step
        rcode = 3 if suffix else 0
        packets += [
            (t, query(name, "A", id=2 * step + 1, sport=sport)),
            (t + 0.00002, query(name, "AAAA", id=2 * step + 2, sport=sport)),
            (t + 0.001, response(name, "A", id=2 * step + 1, dport=sport, rcode=rcode)),
            (t + 0.0011, response(name, "AAAA", id=2 * step + 2, dport=sport, rcode=rcode,
                                  answers=("2001:db8::1",))),
        ]
        t += 0.002
    a = analyze_packets(tmp_path / "ndots.pcap", packets)

    assert a.match.queries == 8
    assert a.match.rcodes == {"NXDOMAIN": 6, "NOERROR": 2}
    nx = findings_of(a, "nxdomain")
    assert sorted((f.first.qname, f.first.qtype) for f in nx) == sorted(
        (f"www.example.com.{s}", qt) for s in suffixes for qt in ("A", "AAAA")
    )
    assert build(a)["summary"]["rcodes"] == {"NOERROR": 2, "NXDOMAIN": 6}


def test_rcodes_count_matched_responses_only(tmp_path):
    a = analyze_packets(tmp_path / "counted.pcap", [
        (1.0, query(id=1)),
        (1.001, response(id=1, rcode=2)),
        (31.5, response(id=77, rcode=5)),  # unsolicited
        (32.0, query(id=2)),
        (32.001, response(id=2, rcode=2, answers=())),
    ])

    assert a.match.rcodes == {"SERVFAIL": 2}
    assert a.match.unsolicited_responses == 1
    (f,) = findings_of(a, "servfail")
    assert f.count == 2
    assert f.frames == [1, 2, 4, 5]
