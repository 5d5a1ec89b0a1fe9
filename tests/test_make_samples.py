"""Record fresh captures with real servers and clients, and find what each should show.

Runs sample_pcaps/make_samples.py (network namespaces, dnsmasq/unbound with local data only,
glibc getent, dig, a musl-built client, iptables faults, tcpdump) into a temporary
directory, then analyzes every capture. Needs root and the tools; skips elsewhere with the
reason. .ci/run installs the tools, and CI runs as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pcapdns.analysis import analyze
from pcapdns.output.summary import Summary
from tests.conftest import SAMPLES

TOOLS = ("tcpdump", "dnsmasq", "unbound", "dig", "musl-gcc", "iptables", "ip")
missing = [t for t in TOOLS if shutil.which(t) is None]
#: Only the Geneve/GRE overlay and the ERSPAN samples need Open vSwitch (and ethtool);
#: without them make_samples.py makes every other capture and says it skipped those.
OVS_SAMPLE = "overlay-geneve-gre-underlay.pcap"
ERSPAN_SAMPLE = "erspan-mirror-collector.pcap"
OVS_TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ethtool")
ovs_missing = [t for t in OVS_TOOLS if shutil.which(t) is None]
#: The IP-in-IP sample's tunnel endpoints are TUN devices; without one it is skipped.
IPIP_SAMPLE = "overlay-ipip-underlay.pcap"
tun_missing = not os.path.exists("/dev/net/tun")
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(bool(missing), reason=f"missing tools: {', '.join(missing)}"),
]


def _kinds(path: Path) -> tuple[dict[str, int], Summary]:
    a = analyze([str(path)])
    kinds: dict[str, int] = {}
    for f in a.findings:
        kinds[f.first.kind] = kinds.get(f.first.kind, 0) + f.count
    return kinds, Summary.of(a)


#: The run takes 40-70 s on a 2-core machine, the longer when it is loaded; this bounds a
#: stuck one.
MAKE_TIMEOUT = 600


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    argv = [sys.executable, str(SAMPLES / "make_samples.py"), "--out", str(out)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=MAKE_TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: make_samples.py then removes its namespaces and servers.
        proc.terminate()
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"make_samples.py did not finish within {MAKE_TIMEOUT} s; it printed:\n"
                    f"{stdout}\n{stderr}")
    if proc.returncode != 0:
        # make_samples.py says which capture failed and why (the expectation and the packet
        # count), then shows tcpdump's view of each attempt and the servers' logs.
        reasons = [line for line in stderr.splitlines() if line.startswith("FAILED ")]
        pytest.fail(f"make_samples.py exited with status {proc.returncode}: "
                    f"{'; '.join(reasons) or 'no FAILED line'}\n\n{stdout}\n{stderr}")
    return out


def test_every_capture_is_made_and_private(fresh: Path) -> None:
    made = sorted(p.name for p in fresh.glob("*.pcap"))
    assert made == sorted(p.name for p in SAMPLES.glob("*.pcap")
                          if not (ovs_missing and p.name in (OVS_SAMPLE, ERSPAN_SAMPLE))
                          and not (tun_missing and p.name == IPIP_SAMPLE))
    for p in fresh.glob("*.pcap"):
        assert p.stat().st_mode & 0o777 == 0o600, p.name


def test_race_is_found(fresh: Path) -> None:
    kinds, s = _kinds(fresh / "aaaa-same-port-race.pcap")
    assert s.a_aaaa_race_lost == 1 and kinds.get("aaaa_race_lost") == 1
    assert s.retransmissions >= 1
    assert (s.latency_ms.max or 0) >= 5000  # counted from the first attempt


def test_timeouts_are_found(fresh: Path) -> None:
    kinds, s = _kinds(fresh / "timeout-dropped.pcap")
    assert kinds.get("timeout") == 2 and s.failed_lookups == 2


def test_truncation_with_and_without_tcp(fresh: Path) -> None:
    _, s = _kinds(fresh / "tc-then-tcp-retry.pcap")
    assert s.tc_responses == 1 and s.tc_followed_by_tcp == 1 and s.queries_tcp >= 1
    kinds, s = _kinds(fresh / "tc-no-tcp-fallback.pcap")
    assert s.tc_without_tcp_retry == 1 and kinds.get("truncated_no_tcp_fallback") == 1


def test_any_capture_duplicates_are_dropped(fresh: Path) -> None:
    _, s = _kinds(fresh / "dnat-service-any.pcap")
    assert s.duplicates == s.dns_messages == 8
    assert s.unanswered_queries == 0 and s.unsolicited_responses == 0


def test_musl_fanout(fresh: Path) -> None:
    kinds, s = _kinds(fresh / "musl-fanout.pcap")
    assert s.fanout_groups == 4 and kinds.get("fanout") == 4


def test_rcodes_and_search_expansion(fresh: Path) -> None:
    kinds, _ = _kinds(fresh / "servfail-refused.pcap")
    assert kinds.get("servfail") == 1 and kinds.get("refused") == 1
    assert kinds.get("nxdomain") == 1
    kinds, s = _kinds(fresh / "ndots-search-expansion.pcap")
    assert s.rcodes["NXDOMAIN"] == 8


def test_late_and_slow_answers(fresh: Path) -> None:
    kinds, s = _kinds(fresh / "late-response-icmp.pcap")
    assert s.icmp_errors >= 1 and kinds.get("late_response", 0) >= 1
    kinds, _ = _kinds(fresh / "slow-response.pcap")
    assert kinds.get("slow_response") == 2


def test_near_the_end_the_race_and_the_failure_are_decided(fresh: Path) -> None:
    # options timeout:1, capture stopped right after the lookup: the retries decide it.
    kinds, s = _kinds(fresh / "race-timeout1-short-capture.pcap")
    assert s.a_aaaa_race_lost >= 1 and kinds.get("aaaa_race_lost", 0) >= 1, (kinds, s)
    # musl gave up (EAI_AGAIN) 2 s before the capture stopped: timeouts, not "open".
    kinds, s = _kinds(fresh / "musl-failed-near-end.pcap")
    assert kinds.get("timeout") == 2 and s.lookups_open_at_end == 0, (kinds, s)


def test_tcp_fallback_after_tc_is_one_lookup_and_no_failure(fresh: Path) -> None:
    kinds, s = _kinds(fresh / "tc-glibc-a-aaaa-tcp.pcap")
    assert s.tcp_fallback_queries == s.queries_tcp and s.retransmissions == 0, s
    assert s.lookups_failed == 0 and "retransmission" not in kinds, (kinds, s)


def test_two_capture_points_place_each_loss(fresh: Path) -> None:
    from pcapdns.correlate import correlate

    c = correlate([str(fresh / "two-points-lost.pcap")],
                  [str(fresh / "two-points-lost.server.pcap")])
    # The server capture's time stamps were moved 12.5 s later (a clock ahead).
    assert c.clock.offset is not None and c.clock.error_bound is not None, c.clock
    assert abs(c.clock.offset - 12.5) <= c.clock.error_bound, c.clock
    assert c.fates == {"answered": 2, "lost_before_server": 1, "lost_at_server": 1,
                       "lost_after_server": 1, "unknown": 0}, c.fates


def test_coredns_query_log_joins(fresh: Path) -> None:
    # The log is rendered in CoreDNS's format from what the real dnsmasq logged (CoreDNS
    # cannot run here): see sample_pcaps/README.md.
    from pcapdns.coredns_log import index

    capture = fresh / "coredns-query-log.pcap"
    for name in ("coredns-query-log.coredns.log", "coredns-query-log.coredns-ts.log"):
        assert (fresh / name).stat().st_mode & 0o777 == 0o600, name
    log = index.load([str(fresh / "coredns-query-log.coredns-ts.log")])
    j = analyze([str(capture)], coredns_log=log).coredns_log
    assert j is not None and j.times_used
    assert j.joined == 10 and j.captured_not_logged == 4, j
    assert j.verdicts == {"lost_after_coredns": 2, "not_logged": 2}, j.verdicts
    log = index.load([str(fresh / "coredns-query-log.coredns.log")])
    j = analyze([str(capture)], coredns_log=log).coredns_log
    assert j is not None and not j.times_used and j.verdicts.get("not_logged") == 2, j


def test_node_legs_show_where_each_lookup_died(fresh: Path) -> None:
    # A query dropped in the node's FORWARD chain after the DNAT, an answer dropped there on
    # its way back, and an answer from the server's other address.
    kinds, s = _kinds(fresh / "node-legs-faults.pcap")
    assert kinds.get("lost_in_node") == 1, (kinds, s)
    assert kinds.get("reply_not_delivered") == 1, (kinds, s)
    assert kinds.get("unexpected_source") == 1, (kinds, s)
    assert s.lookups_failed == 3 and "timeout" not in kinds, (kinds, s)


def test_one_slow_replica_stands_apart(fresh: Path) -> None:
    kinds, s = _kinds(fresh / "replicas-one-slow.pcap")
    assert [(r.address, r.queries) for r in s.replicas] == [
        ("10.250.2.53", 24), ("10.250.3.53", 24)], s.replicas
    assert kinds.get("replica_imbalance") == 1 and s.lookups_failed == 0, (kinds, s)


def test_forwarder_upstream_leg_and_the_causes(fresh: Path) -> None:
    # dnsmasq forwarding to unbound: one name dropped upstream, REFUSED and SERVFAIL passed
    # on, one slow upstream answer, one name dropped at the forwarder itself.
    kinds, s = _kinds(fresh / "forwarder-upstream-leg.pcap")
    assert kinds.get("upstream_timeout") == 1 and kinds.get("upstream_error") == 2, kinds
    # One finding per cause: the clients' REFUSED, SERVFAIL and timeout of the same
    # questions are the upstream findings' evidence; the timeout left is the local one.
    assert "refused" not in kinds and "servfail" not in kinds, kinds
    assert kinds.get("timeout") == 1, kinds
    assert [u.server for u in s.upstream] == ["10.250.1.1"], s.upstream
    up = s.upstream[0]
    assert up.timeouts == 1 and up.rcodes.get("REFUSED") == 1, up
    assert up.rcodes.get("SERVFAIL") == 1, up
    assert dict(s.causes) == {"local": 1, "upstream_error": 2, "upstream_slow": 1,
                              "upstream_timeout": 1}, s.causes


def test_two_homed_forwarder_is_learned_then_linked(fresh: Path) -> None:
    # dnsmasq asked at 10.250.0.53 asks upstream from 10.250.1.53: 30 forwarded lookups
    # teach the pair (linked from the 20th on), then a name dropped upstream, REFUSED and
    # SERVFAIL passed on.
    kinds, s = _kinds(fresh / "forwarder-two-homed.pcap")
    assert kinds.get("upstream_timeout") == 1 and kinds.get("upstream_error") == 2, kinds
    assert not {"timeout", "refused", "servfail"} & set(kinds), kinds
    assert [u.server for u in s.upstream] == ["10.250.1.1"], s.upstream
    up = s.upstream[0]
    assert up.queries == 15 and up.timeouts == 1, up
    assert up.rcodes.get("REFUSED") == 1 and up.rcodes.get("SERVFAIL") == 1, up
    assert dict(s.causes) == {"upstream_error": 2, "upstream_timeout": 1}, s.causes


def tunnelled(path: Path) -> tuple[Summary, dict[tuple[str, str, str], int]]:
    """The overlay samples' common ground: six lookups, all answered (one NXDOMAIN), every
    attempt inside a tunnel; returns the summary and the attempts per (tunnel type, outer
    source, outer destination)."""
    a = analyze([str(path)], keep_lookups=True)
    s = Summary.of(a)
    assert s.lookups == 6 and s.lookups_failed == 0, (s.lookups, s.lookups_failed)
    assert dict(s.rcodes) == {"NOERROR": 5, "NXDOMAIN": 1}, s.rcodes
    per_tunnel: dict[tuple[str, str, str], int] = {}
    for lk in a.lookups:
        for t in lk.attempts:
            assert t.tunnel is not None, (t.query.qname, t.query.frame)
            key = (t.tunnel.type, t.tunnel.outer_src, t.tunnel.outer_dst)
            per_tunnel[key] = per_tunnel.get(key, 0) + 1
    return s, per_tunnel


def test_overlay_underlay_is_decapsulated(fresh: Path) -> None:
    # Only the underlay between the two nodes is captured: every DNS message is inside
    # VXLAN (VNI 42 on 4789, VNI 1 on flannel's 8472), and each transaction names the nodes.
    s, per_tunnel = tunnelled(fresh / "overlay-vxlan-underlay.pcap")
    assert s.tunnels["vxlan"] >= 12, dict(s.tunnels)
    assert {k for k, n in s.tunnels.items() if n} == {"vxlan"}, dict(s.tunnels)
    assert set(per_tunnel) == {("vxlan", "10.250.50.1", "10.250.50.2")}, per_tunnel


@pytest.mark.skipif(bool(ovs_missing), reason=f"openvswitch-switch/ethtool not installed "
                    f"(missing {', '.join(ovs_missing)}): make_samples.py skips {OVS_SAMPLE}")
def test_ovs_overlay_underlay_is_decapsulated(fresh: Path) -> None:
    # Two Open vSwitch nodes (userspace datapath) joined by Geneve (VNI 5001) and GRE (key
    # 5002, carrying Ethernet); only their underlay is captured, so every DNS message is
    # inside one of the two tunnels, and each transaction names the tunnel and the nodes.
    s, per_tunnel = tunnelled(fresh / OVS_SAMPLE)
    assert s.tunnels["geneve"] >= 8 and s.tunnels["gre"] >= 4, dict(s.tunnels)
    assert {k for k, n in s.tunnels.items() if n} == {"geneve", "gre"}, dict(s.tunnels)
    # A and AAAA of web, db and missing over Geneve; db and api over GRE.
    assert per_tunnel == {("geneve", "10.250.52.1", "10.250.52.2"): 4,
                          ("gre", "10.250.52.1", "10.250.52.2"): 2}, per_tunnel


@pytest.mark.skipif(bool(ovs_missing), reason=f"openvswitch-switch/ethtool not installed "
                    f"(missing {', '.join(ovs_missing)}): make_samples.py skips {ERSPAN_SAMPLE}")
def test_erspan_mirror_is_decapsulated(fresh: Path) -> None:
    # Open vSwitch mirrors two pods' ports to a collector, one as ERSPAN type II and one as
    # type III; the collector's capture holds nothing else, and each transaction names the
    # mirroring node and the collector.
    s, per_tunnel = tunnelled(fresh / ERSPAN_SAMPLE)
    assert s.tunnels["erspan"] >= 12, dict(s.tunnels)
    assert {k for k, n in s.tunnels.items() if n} == {"erspan"}, dict(s.tunnels)
    assert set(per_tunnel) == {("erspan", "10.250.53.1", "10.250.53.2")}, per_tunnel


@pytest.mark.skipif(tun_missing, reason="no /dev/net/tun: make_samples.py skips "
                    f"{IPIP_SAMPLE}")
def test_ipip_overlay_underlay_is_decapsulated(fresh: Path) -> None:
    # Two nodes joined by IP in IP (the endpoints are make_samples.py's TUN forwarder, the
    # kernel writing the outer headers) over an IPv4 and an IPv6 underlay; only the
    # underlay is captured, so every DNS message is inside one of the four forms, and each
    # transaction names its form and the nodes' underlay addresses.
    s, per_tunnel = tunnelled(fresh / IPIP_SAMPLE)
    assert {k: n for k, n in s.tunnels.items() if n} == {
        "ipip": 6, "ip6in4": 2, "ip4in6": 2, "ip6in6": 2}, dict(s.tunnels)
    # A and AAAA of web (glibc) and missing (dig) over ipip; db over ip6in4, api over
    # ip4in6 and db's AAAA over ip6in6 (dig).
    assert per_tunnel == {("ipip", "10.250.54.1", "10.250.54.2"): 3,
                          ("ip6in4", "10.250.54.1", "10.250.54.2"): 1,
                          ("ip4in6", "fd00:250:54::1", "fd00:250:54::2"): 1,
                          ("ip6in6", "fd00:250:54::1", "fd00:250:54::2"): 1}, per_tunnel
