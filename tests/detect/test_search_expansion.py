"""Search-list expansion (resolv.conf search + ndots:5): NXDOMAIN tries with each search
suffix before the name that was answered, from one client."""

from __future__ import annotations

from tests.conftest import SAMPLES
from tests.craft import analyze_packets, findings_of, query, response

SUFFIXES = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")


def _expansion(name: str, start: float = 1.0, answered_as: str | None = None) -> list:
    packets = []
    t = start
    for i, suffix in enumerate(SUFFIXES):
        full = f"{name}.{suffix}"
        packets += [(t, query(full, id=10 + i, sport=41000 + i)),
                    (t + 0.0003, response(full, id=10 + i, dport=41000 + i, rcode=3))]
        t += 0.001
    final = answered_as or name
    packets += [(t, query(final, id=20, sport=42000)),
                (t + 0.0004, response(final, id=20, dport=42000))]
    return packets


def test_short_external_name_walks_the_search_list_first(tmp_path):
    a = analyze_packets(tmp_path / "ndots.pcap", _expansion("api.example.com"))

    (f,) = findings_of(a, "search_expansion")
    assert f.first.qname == "api.example.com" and f.first.qtype == "A"
    assert f.first.severity == "info"
    assert f.first.frames == (1, 3, 5, 7, 8)
    assert "3 NXDOMAIN queries" in f.first.detail
    assert "default.svc.cluster.local, svc.cluster.local, cluster.local" in f.first.detail
    assert len(findings_of(a, "nxdomain")) == 3


def test_cross_namespace_name_answered_under_a_shorter_suffix(tmp_path):
    # "kube-dns.kube-system" is tried as kube-dns.kube-system.default.svc.cluster.local
    # (NXDOMAIN) and then answered as kube-dns.kube-system.svc.cluster.local.
    a = analyze_packets(tmp_path / "ns.pcap", [
        (1.0, query("kube-dns.kube-system.default.svc.cluster.local", id=1, sport=41000)),
        (1.0003, response("kube-dns.kube-system.default.svc.cluster.local", id=1,
                          dport=41000, rcode=3)),
        (1.001, query("kube-dns.kube-system.svc.cluster.local", id=2, sport=41001)),
        (1.0013, response("kube-dns.kube-system.svc.cluster.local", id=2, dport=41001)),
    ])

    (f,) = findings_of(a, "search_expansion")
    assert f.first.qname == "kube-dns.kube-system.svc.cluster.local"
    assert "(default.svc.cluster.local)" in f.first.detail


def test_unrelated_names_sharing_a_first_label_are_no_chain(tmp_path):
    a = analyze_packets(tmp_path / "unrelated.pcap", [
        (1.0, query("api.foo.example", id=1, sport=41000)),
        (1.0003, response("api.foo.example", id=1, dport=41000, rcode=3)),
        (1.001, query("api.bar.example", id=2, sport=41001)),
        (1.0013, response("api.bar.example", id=2, dport=41001)),
    ])
    assert findings_of(a, "search_expansion") == []


def test_other_clients_tries_do_not_count(tmp_path):
    a = analyze_packets(tmp_path / "two-clients.pcap", [
        (1.0, query("api.example.com.cluster.local", id=1, src="10.0.3.8")),
        (1.0003, response("api.example.com.cluster.local", id=1, dst="10.0.3.8", rcode=3)),
        (1.001, query("api.example.com", id=2, sport=41001)),
        (1.0013, response("api.example.com", id=2, dport=41001)),
    ])
    assert findings_of(a, "search_expansion") == []


def test_tries_long_before_are_not_part_of_the_lookup(tmp_path):
    packets = _expansion("api.example.com")
    late = [(t + 60.0 if i >= 6 else t, p) for i, (t, p) in enumerate(packets)]
    a = analyze_packets(tmp_path / "late.pcap", late)
    assert findings_of(a, "search_expansion") == []


def test_name_found_nowhere_is_left_to_nxdomain_findings(tmp_path):
    packets = _expansion("gone.example")[:-1] + [
        (1.0037, response("gone.example", id=20, dport=42000, rcode=3))]
    a = analyze_packets(tmp_path / "nowhere.pcap", packets)
    assert findings_of(a, "search_expansion") == []
    assert len(findings_of(a, "nxdomain")) == 4


def test_real_glibc_capture():
    from pcapdns.analysis import analyze

    a = analyze([str(SAMPLES / "ndots-search-expansion.pcap")])
    found = {(f.first.qname, f.first.qtype) for f in a.findings
             if f.first.kind == "search_expansion"}
    assert found == {("api.example.com", "A"), ("api.example.com", "AAAA"),
                     ("kube-dns.kube-system.svc.cluster.local", "A"),
                     ("kube-dns.kube-system.svc.cluster.local", "AAAA")}
