"""A stale client port: a run of failed lookups on one (client, port, server) after which the
port gets no answer for a minute while the client's other ports are answered; the
Kubernetes cause only when the server is known to be the cluster's DNS."""

from __future__ import annotations

import json
from pathlib import Path

from pcapdns.analysis import analyze
from pcapdns.config import AnalysisConfig
from pcapdns.detect import stale_port
from pcapdns.detect.stale_port import StalePort
from pcapdns.dns.message import Message
from pcapdns.match.records import Lookup, Transaction
from pcapdns.report.knowledge import ADVICE, STALE_PORT_CLUSTER_DNS, advice_for
from pcapdns.report.model import build
from tests.craft import analyze_packets, findings_of, query, response, write_eth, write_sll2

PUBLIC = "4.2.2.4"


def _lookups(times_ports, answered, server="10.96.0.10", start_id=100) -> list:
    """Queries at (time, port), each answered 5 ms later when ``answered``."""
    packets = []
    for i, (t, port) in enumerate(times_ports):
        name = f"n{start_id + i}.example"
        packets.append((t, query(name, id=start_id + i, sport=port, dst=server)))
        if answered:
            packets.append((t + 0.005, response(name, id=start_id + i, dport=port,
                                                src=server)))
    return packets


def _stuck(tmp_path: Path, name: str = "stale.pcap", end: float = 130.0,
           others: bool = True, server: str = "10.96.0.10") -> Path:
    """Port 53000 fails every 5 s from t=10 s to 55 s and is never answered again, while
    other ports of the client are answered; the capture ends at ``end``."""
    packets = _lookups([(t, 53000) for t in range(10, 60, 5) if t < end - 10], False,
                       server)
    if others:
        packets += _lookups([(t, 40001 + int(t)) for t in (12.0, 30.0, 50.0, 90.0) if t < end],
                            True, server, start_id=200)
    packets += _lookups([(end, 40005)], True, server, start_id=300)
    return write_eth(tmp_path / name, sorted(packets, key=lambda p: p[0]))


def _capture_json(folder: Path, search: list[str]) -> None:
    (folder / "capture.json").write_text(json.dumps({
        "format": "pcapdns.capture/1", "node": "node-a",
        "target": {"kind": "pid", "pid": 4242},
        "tcpdump": {"command": ["tcpdump", "-i", "any", "-w", "dns.pcap", "port 53"]},
        "resolv_conf": {"path": "/proc/4242/root/etc/resolv.conf",
                        "nameservers": ["10.96.0.10"], "search": search, "ndots": 5,
                        "options": ["ndots:5"]},
    }))


def test_a_port_without_answers_for_a_minute_is_stated_neutrally(tmp_path):
    a = analyze([str(_stuck(tmp_path))])

    (f,) = findings_of(a, "stale_port")
    assert (f.first.severity, f.first.client, f.first.server) == (
        "error", "10.0.3.7", "10.96.0.10")
    assert f.first.detail == (
        "10 lookups from 10.0.3.7:53000 to 10.96.0.10 failed over 45.000 s, and that port "
        "got no answer from 10.96.0.10 for at least 60 s after the first of them, while the "
        "same client's lookups from other ports were answered.")
    assert not f.first.cluster_dns
    assert len(f.frames) == 10
    # Nothing says the server is the cluster's DNS: no Kubernetes cause anywhere.
    r = build(a, command="pcapdns report x")
    (g,) = [g for g in r.groups if g.kind == "stale_port"]
    assert g.advice == ADVICE["stale_port"]
    text = " ".join([*r.verdict, *g.advice.causes, *g.advice.fixes, g.advice.meaning])
    for word in ("conntrack", "IPVS", "pod", "CoreDNS"):
        assert word not in text, f"{word!r} named for a server not known as cluster DNS"


def test_the_cluster_dns_of_the_pod_s_resolv_conf_gets_the_kubernetes_cause(tmp_path):
    _capture_json(tmp_path, ["default.svc.cluster.local", "svc.cluster.local",
                             "cluster.local"])
    a = analyze([str(_stuck(tmp_path))])

    (f,) = findings_of(a, "stale_port")
    assert f.first.cluster_dns
    assert f.first.detail.endswith(
        " 10.96.0.10 is the cluster's DNS (a nameserver in the captured pod's resolv.conf): "
        "the likely cause is a stale conntrack or IPVS entry for this port that still points "
        "at a DNS pod that was removed.")
    (example,) = a.examples["stale_port"]
    assert example.cluster_dns and example.detail == f.first.detail
    r = build(a, command="pcapdns report x")
    (g,) = [g for g in r.groups if g.kind == "stale_port"]
    assert g.advice == STALE_PORT_CLUSTER_DNS
    assert any("stale conntrack or IPVS entry" in s for s in r.verdict), r.verdict


def test_a_resolv_conf_that_is_not_a_pod_s_is_no_proof(tmp_path):
    _capture_json(tmp_path, ["corp.example"])
    a = analyze([str(_stuck(tmp_path))])

    (f,) = findings_of(a, "stale_port")
    assert not f.first.cluster_dns and "conntrack" not in f.first.detail


def test_a_dnat_seen_in_the_capture_makes_the_server_cluster_dns(tmp_path):
    # tcpdump -i any on the node: each query on the pod's veth to the Service address and
    # on the uplink to the CoreDNS pod it was rewritten to.
    service, coredns, veth, eth0 = "10.96.0.10", "10.244.2.5", 12, 2
    packets = []
    for t, port, answered, ident in (
        [(10.0 + 5 * i, 53000, False, 100 + i) for i in range(4)]
        + [(12.0, 40001, True, 200), (30.0, 40002, True, 201), (130.0, 40003, True, 202)]
    ):
        name = f"n{ident}.example"
        packets += [(t, veth, query(name, id=ident, sport=port, dst=service)),
                    (t + 0.00002, eth0, query(name, id=ident, sport=port, dst=coredns))]
        if answered:
            packets += [
                (t + 0.001, eth0, response(name, id=ident, src=coredns, dport=port)),
                (t + 0.00102, veth, response(name, id=ident, src=service, dport=port)),
            ]
    path = write_sll2(tmp_path / "any.pcap", sorted(packets, key=lambda p: p[0]))
    a = analyze([str(path)])

    (f,) = findings_of(a, "stale_port")
    assert f.first.server == service and f.first.cluster_dns
    assert ("10.96.0.10 is the cluster's DNS (a DNAT of DNS queries to or from it was seen "
            "in the capture)") in f.first.detail


def test_ndpi_like_one_port_tunnel_to_a_public_resolver_is_not_stale(tmp_path):
    # One long-lived port whose failures come in runs, each followed by answers on the
    # same port: losses, not a stuck port (ndpi's bad-dns-traffic.pcap has this shape).
    pattern = "....AA.AAA..........AAAAA.A.A.A" + "A" * 10
    packets = []
    for i, c in enumerate(pattern):
        packets += _lookups([(1.0 + i * 2.5, 56354)], c == "A", PUBLIC, start_id=100 + i)
    packets += _lookups([(3.0, 35966), (40.0, 46961)], True, PUBLIC, start_id=500)
    a = analyze_packets(tmp_path / "tunnel.pcap", sorted(packets, key=lambda p: p[0]))

    assert len(findings_of(a, "timeout")) == pattern.count(".")
    assert findings_of(a, "stale_port") == []


def test_an_answer_inside_the_window_ends_the_run(tmp_path):
    packets = _lookups([(10.0, 53000), (12.0, 53000), (14.0, 53000)], False)
    packets += _lookups([(30.0, 53000)], True, start_id=150)  # the port works
    packets += _lookups([(40.0, 53000), (42.0, 53000)], False, start_id=160)
    packets += _lookups([(11.0, 40001), (60.0, 40002), (150.0, 40003)], True, start_id=200)
    a = analyze_packets(tmp_path / "cut.pcap", sorted(packets, key=lambda p: p[0]))
    assert findings_of(a, "stale_port") == []

    # Three failures after the answer are a run of their own.
    packets += _lookups([(44.0, 53000)], False, start_id=170)
    a = analyze_packets(tmp_path / "again.pcap", sorted(packets, key=lambda p: p[0]))
    (f,) = findings_of(a, "stale_port")
    assert f.first.detail.startswith("3 lookups from 10.0.3.7:53000 to 10.96.0.10 failed "
                                     "over 4.000 s")


def test_a_run_cut_by_the_end_of_the_capture_says_so(tmp_path):
    a = analyze([str(_stuck(tmp_path, end=40.0))])
    (f,) = findings_of(a, "stale_port")
    assert f.first.detail.startswith(
        "4 lookups from 10.0.3.7:53000 to 10.96.0.10 failed over 15.000 s, and that port got "
        "no answer from 10.96.0.10 before the capture ended, while"), f.first.detail


def test_two_failures_are_not_enough(tmp_path):
    packets = _lookups([(10.0, 53000), (12.0, 53000)], False)
    packets += _lookups([(11.0, 40001), (130.0, 40002)], True, start_id=200)
    a = analyze_packets(tmp_path / "two.pcap", sorted(packets, key=lambda p: p[0]))
    assert findings_of(a, "stale_port") == []


def test_nothing_answered_anywhere_is_an_outage_not_a_stale_port(tmp_path):
    a = analyze([str(_stuck(tmp_path, others=False, end=130.0))])
    # The last lookup is answered, from another port, but long after the run's window.
    assert findings_of(a, "stale_port") == []


def test_failures_on_different_ports_are_not_a_stale_port(tmp_path):
    packets = _lookups([(10.0 + 2 * i, 53000 + i) for i in range(5)], False)
    packets += _lookups([(11.0, 40001), (130.0, 40002)], True, start_id=200)
    a = analyze_packets(tmp_path / "ports.pcap", sorted(packets, key=lambda p: p[0]))
    assert findings_of(a, "stale_port") == []


def test_a_port_stuck_for_minutes_is_reported_once(tmp_path):
    packets = _lookups([(10.0 + 5 * i, 53000) for i in range(60)], False)
    packets += _lookups([(12.0 + 20 * i, 40001 + i) for i in range(16)], True, start_id=500)
    a = analyze_packets(tmp_path / "long.pcap", sorted(packets, key=lambda p: p[0]))
    (f,) = findings_of(a, "stale_port")
    assert f.count == 1


def test_the_report_gives_the_kubernetes_advice_only_when_every_finding_is_cluster_dns():
    assert advice_for("stale_port", cluster_dns=True) is STALE_PORT_CLUSTER_DNS
    assert advice_for("stale_port", cluster_dns=False) is ADVICE["stale_port"]
    assert advice_for("timeout", cluster_dns=True) is ADVICE["timeout"]
    for word in ("conntrack", "IPVS", "CoreDNS", "pod"):
        neutral = ADVICE["stale_port"]
        assert word not in " ".join([neutral.title, neutral.meaning, *neutral.causes,
                                     *neutral.fixes]), word


def test_the_corpus_tunnel_capture_gets_no_stale_port_and_no_kubernetes_cause(corpus: Path):
    # 146 of the 203 lookups from its busiest port were answered, the failures come in
    # runs each followed by answers on that port, and the server is a public resolver.
    a = analyze([str(corpus / "ndpi__bad-dns-traffic.pcap")])
    assert findings_of(a, "stale_port") == []
    r = build(a, command="pcapdns report x")
    text = " ".join([*r.verdict, *(d for g in r.groups for d in g.details)])
    for word in ("conntrack", "IPVS", "removed DNS pod", "stuck"):
        assert word not in text, f"{word!r} in the report of a public-resolver capture"


# -- state stays bounded ------------------------------------------------------------------


def _message(t: float, src: str, sport: int, response: bool, frame: int) -> Message:
    return Message(frame, t, 0, "udp", "10.96.0.10" if response else src,
                   53 if response else sport, src if response else "10.96.0.10",
                   sport if response else 53, 1, 0x8180 if response else 0x0100, 1,
                   int(response), "x.example", 1, 1, b"")


def _lookup(t: float, src: str, sport: int, answered: bool, n: int) -> Lookup:
    q = _message(t, src, sport, False, 2 * n)
    r = _message(t + 0.001, src, sport, True, 2 * n + 1) if answered else None
    tx = Transaction(q, r, n, 1, None, None, None, None, None, False, False, None, ())
    return Lookup(n, (tx,), tx if answered else None, False)


def test_memory_follows_time_not_the_length_of_the_capture():
    # 100 answered lookups a second from fresh ports of 1,000 clients for 20 minutes.
    d = StalePort(AnalysisConfig())
    peak = 0
    for n in range(120_000):
        t = n / 100.0
        assert d.feed(_lookup(t, f"10.1.{n % 1000 // 250}.{n % 250}", 1024 + n % 60000,
                              True, n)) == []
        peak = max(peak, d.facts.answers_kept)
    # About 43 s of answers, plus the sweep's slack (it runs when the size doubles).
    assert peak <= 2 * 100 * d._memory + d.facts.sweep_min, peak
    assert d.facts.clients_kept <= 1000 and d.evicted == 0


def test_a_flood_of_stuck_ports_is_capped_and_counted(monkeypatch):
    monkeypatch.setattr(stale_port, "MAX_RUNS", 50)
    d = StalePort(AnalysisConfig())
    for n in range(200):
        d.feed(_lookup(10.0 + n * 0.01, "10.0.3.7", 2000 + n, False, n))
    assert len(d._runs) == 50 and d.skipped == 150
    assert len(d._waiting["10.0.3.7"]) == 50  # no other port of the client answered yet
    # Time passes (another client's answer): each run is judged and forgotten, everywhere.
    assert d.feed(_lookup(200.0, "10.0.9.9", 3000, True, 999)) == []
    assert d._runs == {} and d._waiting == {} and not d._due
