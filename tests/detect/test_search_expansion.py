"""Search-list expansion (resolv.conf search + ndots:5): NXDOMAIN tries with each search
suffix before the name that was answered, from one client."""

from __future__ import annotations

import random
from types import SimpleNamespace as NS

import pytest

from pcapdns.config import AnalysisConfig
from pcapdns.detect.search_expansion import WINDOW, SearchExpansion, _is_suffix_attempt
from pcapdns.output.document import build
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


# -- the index: the same chains as a scan, in bounded state ---------------------------------


def _lookup(frame: int, t: float, name: str, rcode: int, client: str = "10.0.0.1",
            qtype: int = 1) -> NS:
    """A closed, answered lookup with what the detector reads of one."""
    q = NS(frame=frame, time=t, src=client, dst="10.96.0.10", qname=name, qtype=qtype,
           qclass=1, transport="udp", sport=41000)
    r = NS(frame=frame + 1, time=t + 0.0005, flags=0x8180 | rcode)
    t = NS(query=q, response=r)
    return NS(first=q, attempts=(t,), answer=t, open_at_end=False)


def _scan(lookups: list[NS]) -> list[tuple[int, tuple[int, ...]]]:
    """The chains by brute force: every NXDOMAIN try of the same client not yet taken by
    an earlier chain, tested one by one against each answered name."""
    waiting: list[NS] = []
    out = []
    for lk in lookups:
        if lk.answer.response.flags & 0xF == 3:
            waiting.append(lk)
            continue
        chain = [x for x in waiting
                 if x.first.src == lk.first.src and _is_suffix_attempt(x, lk)]
        if chain:
            waiting = [x for x in waiting if x not in chain]
            frames = {x.first.frame for x in chain} | {lk.first.frame, lk.first.frame + 1}
            out.append((lk.first.frame, tuple(sorted(frames))))
    return out


@pytest.mark.parametrize("seed", range(30))
def test_index_finds_the_chains_a_scan_finds(seed: int) -> None:
    rng = random.Random(seed)
    words = ["a", "b", "svc", "default", "cluster", "local", "kube-system", "x"]

    def name(n: int) -> str:
        return ".".join(rng.choice(words) for _ in range(n))

    lookups: list[NS] = []
    t = 1_700_000_000.0
    while len(lookups) < 400:
        t += rng.choice([0.0, 0.001, 0.2, 3.0])
        client = rng.choice(["10.0.0.1", "10.0.0.2"])
        qtype = rng.choice([1, 1, 28])
        final = name(rng.randint(1, 5))
        labels = final.split(".")
        if rng.random() < 0.5:
            # Tries with labels inserted after the final name's first k, then the name.
            for _ in range(rng.randint(1, 3)):
                k = rng.randint(1, len(labels))
                tried = ".".join(labels[:k] + name(rng.randint(1, 3)).split(".") + labels[k:])
                lookups.append(_lookup(2 * len(lookups) + 1, t, tried, 3, client, qtype))
                t += rng.choice([0.0, 0.001])
            lookups.append(_lookup(2 * len(lookups) + 1, t, final, 0, client, qtype))
        else:  # names in no relation, NXDOMAIN or answered
            rcode = rng.choice([0, 3, 3])
            lookups.append(_lookup(2 * len(lookups) + 1, t, name(rng.randint(1, 7)), rcode,
                                   client, qtype))

    det = SearchExpansion(AnalysisConfig())
    found = [(f.frames[-2], f.frames) for lk in lookups for f in det.feed(lk)]

    assert found == _scan(lookups)
    assert any(len(frames) > 3 for _, frames in found)  # chains of several tries, too


def test_a_name_of_more_than_15_labels_is_never_a_search_try() -> None:
    # resolv.conf's ndots is capped at 15: a longer name is asked as it is.
    long = ".".join(f"l{i}" for i in range(16))
    det = SearchExpansion(AnalysisConfig())
    assert det.feed(_lookup(1, 1.0, f"{long}.cluster.local", 3)) == []
    assert det.feed(_lookup(3, 1.001, long, 0)) == []
    fifteen = ".".join(f"m{i}" for i in range(15))
    assert det.feed(_lookup(5, 1.002, f"{fifteen}.cluster.local", 3)) == []
    assert [f.frames for f in det.feed(_lookup(7, 1.003, fifteen, 0))] == [(5, 7, 8)]


def test_one_client_keeps_at_most_max_search_tries() -> None:
    # A client whose NXDOMAIN names all arrive at one instant: time never expires them,
    # the cap does.
    det = SearchExpansion(AnalysisConfig(max_search_tries=100))
    for i in range(1_000):
        det.feed(_lookup(2 * i + 1, 5.0, f"n{i}.example.svc.cluster.local", 3))
        kept = sum(len(t) for s in det._spaces.values() for t in s.names.values())
        assert kept == det._live <= 100
    assert det.evicted == 900
    # The newest tries are the ones kept, and they still make a chain.
    (f,) = det.feed(_lookup(9_001, 5.0, "n999.example", 0))
    assert f.frames == (1_999, 9_001, 9_002)


def test_tries_taken_by_chains_do_not_pile_up_behind_an_old_one() -> None:
    det = SearchExpansion(AnalysisConfig())
    det.feed(_lookup(1, 5.0, "never.answered.invalid", 3))  # stays at the head
    for i in range(1, 5_000):
        det.feed(_lookup(4 * i, 5.0, f"s{i}.default.svc.cluster.local", 3))
        assert len(det.feed(_lookup(4 * i + 2, 5.0, f"s{i}", 0))) == 1
        assert det._live == 1 and len(det._queue) <= 2 * det._live + 1_025
    assert det.evicted == 0


def test_tries_older_than_twice_the_window_are_forgotten() -> None:
    det = SearchExpansion(AnalysisConfig())
    for i in range(100):
        det.feed(_lookup(2 * i + 1, 1_000.0 + i, f"n{i}.svc.cluster.local", 3))
        assert det._live <= 2 * WINDOW + 1
    assert det.evicted == 0


def test_evicted_tries_are_in_the_summary(tmp_path):
    packets = []
    for i, name in enumerate(["a.invalid", "b.invalid", "c.invalid"]):
        packets += [(1.0 + i, query(name, id=i + 1, sport=41000 + i)),
                    (1.0003 + i, response(name, id=i + 1, dport=41000 + i, rcode=3))]
    a = analyze_packets(tmp_path / "cap.pcap", packets, max_search_tries=2)
    assert a.search_tries_evicted == 1
    assert build(a)["summary"]["search_tries_evicted"] == 1
