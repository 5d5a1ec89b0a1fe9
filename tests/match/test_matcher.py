"""Matching responses to queries, and the matcher's bounded state.

A response matches the most recent still-unmatched query sent before it with the same
transport, client IP, client port, DNS ID and question (name compared case-insensitively,
type, class), preferring a query sent to the response's source address. Anything else is
unsolicited, and so is a response later than ``max_wait``.
"""

from __future__ import annotations

import struct

from pcapdns.config import AnalysisConfig
from pcapdns.dns.message import Message, parse
from pcapdns.match.matcher import Matcher
from pcapdns.match.records import Lookup, Orphan
from pcapdns.output.document import build
from pcapdns.records import Payload
from tests.craft import (
    CLIENT,
    DNS,
    DNSRR,
    SERVER,
    analyze_packets,
    findings_of,
    lead_in,
    query,
    response,
    tcp_dns,
)

COREDNS = "10.244.2.5"


def _tx(a, frame):
    """The transaction whose query is ``frame``."""
    return next(t for lk in a.lookups for t in lk.attempts if t.query.frame == frame)


# -- what matches ----------------------------------------------------------------------


def test_response_matches_query_by_client_port_id_and_question(tmp_path):
    a = analyze_packets(tmp_path / "ok.pcap", [
        (1.0, query(id=7, sport=40001)),
        (1.0015, response(id=7, dport=40001)),
    ])

    assert (a.match.queries, a.match.responses, a.match.answered_queries) == (1, 1, 1)
    assert a.match.unsolicited_responses == 0
    t = _tx(a, 1)
    assert t.response.frame == 2
    assert abs(t.latency - 0.0015) < 1e-6
    assert a.findings == []


def test_response_from_coredns_pod_ip_matches_query_to_cluster_ip(tmp_path):
    # kube-proxy DNAT: the query went to the ClusterIP, the capture sees the answer from
    # the CoreDNS pod address.
    a = analyze_packets(tmp_path / "dnat.pcap", [
        (1.0, query(dst=SERVER)),
        (1.001, response(src=COREDNS)),
    ])

    assert a.match.answered_queries == 1
    assert a.match.unsolicited_responses == 0
    assert _tx(a, 1).response.src == COREDNS


def test_question_name_is_compared_case_insensitively(tmp_path):
    # DNS 0x20: the client mixes case; a server may answer with other case.
    a = analyze_packets(tmp_path / "0x20.pcap", [
        (1.0, query(name="ExAmPle.CoM")),
        (1.001, response(name="example.com")),
    ])

    assert a.match.answered_queries == 1
    assert a.match.unsolicited_responses == 0


def test_response_prefers_the_query_sent_to_its_source_address(tmp_path):
    # The same query went to two servers; each answer belongs to its own server's query,
    # even when the other query is more recent.
    a = analyze_packets(tmp_path / "prefer.pcap", [
        (1.0, query(dst="10.96.0.10")),
        (1.0001, query(dst="169.254.20.10")),
        (1.002, response(src="10.96.0.10")),
        (1.003, response(src="169.254.20.10")),
    ])

    assert _tx(a, 1).response.frame == 3
    assert _tx(a, 2).response.frame == 4


def test_response_matches_the_most_recent_unmatched_query(tmp_path):
    # glibc re-sent the query with the same ID and port; the single answer goes to the
    # retransmission, and the first attempt stays unanswered.
    a = analyze_packets(tmp_path / "recent.pcap", [
        (1.0, query()),
        (6.0, query()),
        (6.002, response()),
    ])

    assert _tx(a, 1).response is None
    assert _tx(a, 2).response.frame == 3
    assert a.match.answered_queries == 1


def test_second_response_answers_the_older_attempt(tmp_path):
    a = analyze_packets(tmp_path / "two-answers.pcap", [
        (1.0, query()),
        (6.0, query()),
        (6.002, response(answers=("192.0.2.1",))),
        # Not a copy of the first answer (its records differ), so not a duplicate.
        (6.003, response(answers=("192.0.2.2",))),
    ])

    assert _tx(a, 2).response.frame == 3
    assert _tx(a, 1).response.frame == 4
    assert a.match.unsolicited_responses == 0


def test_id_reuse_two_sequential_transactions_are_matched_in_order(tmp_path):
    a = analyze_packets(tmp_path / "reuse.pcap", [
        (1.0, query(id=99)),
        (1.001, response(id=99, answers=("192.0.2.1",))),
        (2.0, query(id=99)),
        (2.001, response(id=99, answers=("192.0.2.2",))),
    ])

    assert _tx(a, 1).response.frame == 2
    assert _tx(a, 3).response.frame == 4
    assert a.match.retransmissions == 0
    assert len(a.lookups) == 2


def test_response_over_tcp_does_not_answer_a_udp_query(tmp_path):
    a = analyze_packets(tmp_path / "transport.pcap", lead_in([
        (1.0, query()),
        (1.001, tcp_dns([response()[DNS]], src=SERVER, dst=CLIENT, sport=53, dport=40000)),
    ]))

    assert a.match.answered_queries == 0
    assert a.match.unsolicited_responses == 1


def test_tcp_query_is_answered_over_tcp(tmp_path):
    a = analyze_packets(tmp_path / "tcp.pcap", [
        (1.0, tcp_dns([query()[DNS]], sport=44000)),
        (1.004, tcp_dns([response(dport=44000)[DNS]], src=SERVER, dst=CLIENT, sport=53,
                        dport=44000, seq=9000)),
    ])

    assert (a.match.queries_tcp, a.match.answered_queries) == (1, 1)
    assert _tx(a, 1).response.transport == "tcp"


# -- what does not match: unsolicited --------------------------------------------------


def test_response_right_after_the_capture_started_is_counted_apart(tmp_path):
    # The query went out before the capture started (or sits in an overwritten ring
    # file): not the server's unsolicited answer, and no finding.
    a = analyze_packets(tmp_path / "start.pcap", [
        (1.0, response(id=5)),
        (2.0, query(id=6)),
        (2.001, response(id=6)),
    ])

    assert a.match.responses_before_capture == 1
    assert a.match.unsolicited_responses == 0
    assert a.findings == []
    assert build(a)["summary"]["responses_before_capture"] == 1


def test_response_without_a_query_after_max_wait_into_the_capture_is_unsolicited(tmp_path):
    a = analyze_packets(tmp_path / "mid.pcap", [
        (1.0, query(id=6)),
        (1.001, response(id=6)),
        (32.0, response(id=5)),
    ])

    assert a.match.responses_before_capture == 0
    assert a.match.unsolicited_responses == 1
    assert [f.frames for f in findings_of(a, "unsolicited_response")] == [[3]]


def _unsolicited(a):
    (f,) = findings_of(a, "unsolicited_response")
    return f


def test_response_with_another_id_is_unsolicited(tmp_path):
    a = analyze_packets(tmp_path / "id.pcap", lead_in([
        (1.0, query(id=1)),
        (1.001, response(id=2)),
    ]))

    assert a.match.answered_queries == 0
    assert a.match.unsolicited_responses == 1
    f = _unsolicited(a)
    assert (f.first.client, f.first.server, f.first.qname) == (CLIENT, SERVER, "example.com")
    assert f.frames == [3]
    assert build(a)["summary"]["unsolicited_responses"] == 1


def test_response_to_another_client_port_is_unsolicited(tmp_path):
    a = analyze_packets(tmp_path / "port.pcap", lead_in([
        (1.0, query(sport=40000)),
        (1.001, response(dport=40002)),
    ]))

    assert a.match.unsolicited_responses == 1


def test_response_for_another_question_type_is_unsolicited(tmp_path):
    a = analyze_packets(tmp_path / "type.pcap", lead_in([
        (1.0, query(qtype="A")),
        (1.001, response(qtype="AAAA", answers=("2001:db8::1",))),
    ]))

    assert a.match.unsolicited_responses == 1


def test_response_for_another_client_address_is_unsolicited(tmp_path):
    a = analyze_packets(tmp_path / "client.pcap", lead_in([
        (1.0, query(src="10.0.3.7")),
        (1.001, response(dst="10.0.3.8")),
    ]))

    assert a.match.unsolicited_responses == 1


def test_response_captured_before_its_query_is_unsolicited(tmp_path):
    a = analyze_packets(tmp_path / "before.pcap", lead_in([
        (1.0, response()),
        (1.001, query()),
    ]))

    assert a.match.unsolicited_responses == 1
    assert a.match.answered_queries == 0


def test_response_later_than_max_wait_is_unsolicited(tmp_path):
    a = analyze_packets(tmp_path / "late.pcap", [
        (1.0, query()),
        (31.2, response()),
    ])

    assert a.match.answered_queries == 0
    assert a.match.unsolicited_responses == 1
    assert _unsolicited(a).frames == [2]
    assert [f.first.kind for f in findings_of(a, "timeout")] == ["timeout"]


def test_response_within_max_wait_is_matched_however_slow(tmp_path):
    a = analyze_packets(tmp_path / "slow.pcap", [
        (1.0, query()),
        (30.9, response()),
    ])

    assert a.match.answered_queries == 1
    assert a.match.unsolicited_responses == 0


def test_max_wait_comes_from_the_config(tmp_path):
    a = analyze_packets(tmp_path / "wait.pcap", [
        (1.0, query()),
        (3.5, response()),
    ], max_wait=2.0)

    assert a.match.unsolicited_responses == 1


# -- DNS over TCP: multi-message answers ----------------------------------------------


def _axfr(with_question: bool):
    """An AXFR over one TCP connection answered in three messages spread over 3 s (a big
    zone); ``with_question`` says whether the later messages repeat the question
    (RFC 5936 section 2.2.1 lets a server leave it out, as BIND does)."""
    q = query(name="cluster.local", qtype="AXFR", id=0xA1)[DNS]

    def msg(records):
        an = None
        for r in records:
            rr = DNSRR(rrname=r, type="A", rdata="192.0.2.9", ttl=30)
            an = rr if an is None else an / rr
        qd = q.qd if with_question else []
        return DNS(id=0xA1, qr=1, aa=1, qd=qd, an=an)

    first = DNS(id=0xA1, qr=1, aa=1, qd=q.qd,
                an=DNSRR(rrname="cluster.local", type="A", rdata="192.0.2.8", ttl=30))
    second = msg(["a.cluster.local", "b.cluster.local"])
    third = msg(["c.cluster.local"])
    srv = {"src": SERVER, "dst": CLIENT, "sport": 53, "dport": 45000}
    off2 = 9000 + 2 + len(bytes(first))
    off3 = off2 + 2 + len(bytes(second))
    return [
        (1.0, tcp_dns([q], sport=45000)),
        (1.010, tcp_dns([first], seq=9000, **srv)),
        (2.5, tcp_dns([second], seq=off2, **srv)),
        (4.0, tcp_dns([third], seq=off3, **srv)),
    ]


def test_axfr_answer_in_several_messages_on_one_connection_is_not_unsolicited(tmp_path):
    a = analyze_packets(tmp_path / "axfr.pcap", _axfr(with_question=True))

    assert a.match.answered_queries == 1
    assert a.match.continuation_responses == 2
    assert a.match.unsolicited_responses == 0
    assert findings_of(a, "unsolicited_response") == []
    assert _tx(a, 1).response.frame == 2


def test_axfr_continuation_messages_without_a_question_are_not_unsolicited(tmp_path):
    a = analyze_packets(tmp_path / "axfr-noq.pcap", _axfr(with_question=False))

    assert a.match.answered_queries == 1
    assert a.match.continuation_responses == 2
    assert a.match.unsolicited_responses == 0


def test_second_answer_to_an_ordinary_tcp_query_is_unsolicited(tmp_path):
    q = query()[DNS]
    r = response(dport=45000)[DNS]
    srv = {"src": SERVER, "dst": CLIENT, "sport": 53, "dport": 45000}
    a = analyze_packets(tmp_path / "tcp-twice.pcap", lead_in([
        (1.0, tcp_dns([q], sport=45000)),
        (1.01, tcp_dns([r], seq=9000, **srv)),
        (1.02, tcp_dns([r], seq=9000 + 2 + len(bytes(r)), **srv)),
    ]))

    assert a.match.continuation_responses == 0
    assert a.match.unsolicited_responses == 1


# -- bounded state ---------------------------------------------------------------------


def test_flood_of_unanswered_queries_beyond_max_in_flight_evicts_the_oldest(tmp_path):
    packets = [(1.0 + i * 0.001, query(name=f"n{i}.example", id=i, sport=30000 + i))
               for i in range(1000)]
    a = analyze_packets(tmp_path / "flood.pcap", packets, max_in_flight=100)

    assert a.match.queries == 1000
    assert a.match.evicted == 900
    assert a.match.unanswered_queries == 1000
    assert a.match.lookups == 1000
    assert len(a.lookups) == 1000
    assert build(a)["summary"]["evicted_in_flight"] == 900


def _wire(ident: int, name: str, qtype: int, response: bool) -> bytes:
    flags = 0x8180 if response else 0x0100
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def _msg(frame: int, t: float, src: str, sport: int, dst: str, dport: int, data: bytes
         ) -> Message:
    return parse(Payload(frame, t, 0, "udp", src, sport, dst, dport, data))


def _sizes(m: Matcher) -> dict[str, int]:
    return {
        "pending": len(m._pending),
        "pending_to": len(m._pending_to),
        "groups": len(m._groups),
        "fanout": len(m._fanout),
        "a_waiting": len(m._a_waiting),
        "aaaa_recent": len(m._aaaa_recent),
        "tc_waiting": len(m._tc_waiting),
        "by_id": len(m._by_id),
        "xfr": len(m._xfr),
        "open": m.open,
    }


def test_matcher_state_stays_small_over_ten_minutes_of_answered_lookups():
    lookups: list[Lookup] = []
    orphans: list[Orphan] = []
    m = Matcher(AnalysisConfig(), lookups.append, orphans.append)
    frame = 0
    peak = 0
    # 20 A/AAAA lookups a second from 50 client ports for 10 minutes, each answered in 2 ms.
    for i in range(12_000):
        t = 1000.0 + i * 0.05
        sport = 32768 + i % 50
        name = f"svc{i % 300}.ns.svc.cluster.local"
        for qtype, ident in ((1, i & 0xFFFF), (28, (i + 1) & 0xFFFF)):
            frame += 1
            m.message(_msg(frame, t, "10.0.3.7", sport, "10.96.0.10", 53,
                           _wire(ident, name, qtype, False)))
            t += 0.00002
        for qtype, ident in ((1, i & 0xFFFF), (28, (i + 1) & 0xFFFF)):
            frame += 1
            m.message(_msg(frame, t + 0.002, "10.96.0.10", 53, "10.0.3.7", sport,
                           _wire(ident, name, qtype, True)))
        peak = max(peak, max(_sizes(m).values()))

    sizes = _sizes(m)
    # What is still open is the last second or so of lookups, never the whole capture.
    assert sizes["pending"] == 0
    assert max(sizes.values()) <= 100
    assert peak <= 100
    assert len(lookups) >= 23_000
    assert orphans == []
    m.finish(1600.1)
    assert max(_sizes(m).values()) == 0
    assert len(lookups) == 24_000
    assert m.stats.a_aaaa_pairs == 12_000
    assert m.stats.a_aaaa_same_port_concurrent == 12_000
    assert m.stats.a_aaaa_race_lost == 0


def test_matcher_state_for_unanswered_queries_covers_only_max_wait():
    lookups: list[Lookup] = []
    m = Matcher(AnalysisConfig(), lookups.append, lambda o: None)
    # Ten unanswered queries a second for ten minutes, each a new name.
    for i in range(6000):
        t = 1000.0 + i * 0.1
        m.message(_msg(i + 1, t, "10.0.3.7", 40000 + i % 1000, "10.96.0.10", 53,
                       _wire(i & 0xFFFF, f"gone{i}.example", 1, False)))

    # About max_wait (30 s) of queries are still open: 300, not 6000.
    assert 290 <= m.open <= 320
    assert len(m._pending) <= 320
    assert len(m._groups) <= 320
    assert len(m._by_id) <= 320
    assert m.stats.evicted == 0


def test_ipv6_query_and_response_match(tmp_path):
    a = analyze_packets(tmp_path / "v6.pcap", [
        (1.0, query(src="fd00::7", dst="fd00::a", v6=True)),
        (1.001, response(src="fd00::a", dst="fd00::7", v6=True)),
    ])

    assert a.match.answered_queries == 1
    assert _tx(a, 1).query.src == "fd00::7"


def test_axfr_message_on_another_connection_is_unsolicited(tmp_path):
    packets = _axfr(with_question=True)
    t, last = packets[-1]
    last["TCP"].dport = 45001  # the same ID and question, but another client port
    a = analyze_packets(tmp_path / "axfr-other.pcap", lead_in([*packets[:-1], (t, last)]))

    assert a.match.continuation_responses == 1
    assert a.match.unsolicited_responses == 1


def test_tc_response_that_matched_no_query_is_not_counted_as_truncation(tmp_path):
    a = analyze_packets(tmp_path / "tc-unsolicited.pcap", lead_in([
        (1.0, response(tc=True)),
    ]))

    assert a.match.unsolicited_responses == 1
    assert a.match.tc_responses == 0
    assert a.match.tc_without_tcp_retry == 0


def test_formerr_without_a_question_matches_the_query_by_port_and_id(tmp_path):
    from tests.craft import DNS, IP, UDP

    bare = IP(src="10.96.0.10", dst="10.0.3.7") / UDP(sport=53, dport=40000) / DNS(
        id=0x1234, qr=1, rcode=1, qd=[])
    a = analyze_packets(tmp_path / "formerr.pcap", [(1.0, query()), (1.002, bare)])

    assert a.match.answered_queries == 1 and a.match.unsolicited_responses == 0
    assert a.match.rcodes == {"FORMERR": 1}
    (lookup,) = a.lookups
    assert lookup.answer is not None and lookup.answer.response.frame == 2


def test_questionless_response_with_another_id_is_unsolicited(tmp_path):
    from tests.craft import DNS, IP, UDP

    bare = IP(src="10.96.0.10", dst="10.0.3.7") / UDP(sport=53, dport=40000) / DNS(
        id=0x9999, qr=1, rcode=1, qd=[])
    a = analyze_packets(tmp_path / "formerr-other.pcap", lead_in([(1.0, query()), (1.002, bare)]))
    assert a.match.unsolicited_responses == 1 and a.match.answered_queries == 0


def test_closed_queries_leave_no_reference_cycles(tmp_path):
    # Memory must be returned by reference counting as queries close, not pile up until
    # the cyclic garbage collector runs (which the analysis runs rarely on purpose).
    import gc

    packets = []
    for i in range(400):
        t = 1.0 + i * 0.05
        packets += [(t, query(f"n{i}.example", id=i, sport=30000 + i)),
                    (t + 0.00001, query(f"n{i}.example", "AAAA", id=i + 1000, sport=30000 + i)),
                    (t + 0.001, response(f"n{i}.example", id=i, dport=30000 + i))]
    from pcapdns.analysis import analyze
    from tests.craft import write_eth

    capture = write_eth(tmp_path / "cycles.pcap", packets)
    gc.collect()
    gc.disable()
    try:
        result = analyze([str(capture)])
        found = gc.collect()
    finally:
        gc.enable()
    assert result.match.queries == 800
    assert found < 100


# -- bounded by count and by bytes, not only by time -----------------------------------


def test_one_query_to_many_servers_matches_each_answer_to_its_server_in_o1():
    # 2,000 copies of one query (same client port, ID and name) to 2,000 servers: each
    # answer finds its own server's query through the per-server index, not by a rescan.
    lookups: list[Lookup] = []
    m = Matcher(AnalysisConfig(), lookups.append, lambda o: None)
    wire_q, wire_r = _wire(7, "same.example", 1, False), _wire(7, "same.example", 1, True)
    servers = [f"10.1.{i >> 8}.{i & 255}" for i in range(2000)]
    for i, server in enumerate(servers):
        m.message(_msg(i + 1, 100.0 + i * 1e-4, "10.0.0.1", 40000, server, 53, wire_q))
    for i, server in enumerate(reversed(servers)):
        m.message(_msg(3000 + i, 102.0 + i * 1e-4, server, 53, "10.0.0.1", 40000, wire_r))
    assert (m.stats.answered_queries, m.stats.unsolicited_responses) == (2000, 0)
    assert (len(m._pending), len(m._pending_to)) == (0, 0)
    m.finish(110.0)
    assert all(lk.answer.response.src == lk.first.dst for lk in lookups)


def test_in_flight_memory_cap_evicts_the_oldest_unanswered_and_counts_them():
    from pcapdns.match.matcher import QUERY_BYTES

    cap = 50 * (QUERY_BYTES + 40)
    m = Matcher(AnalysisConfig(max_in_flight_bytes=cap), lambda lk: None, lambda o: None)
    for i in range(200):
        m.message(_msg(i + 1, 100.0 + i * 0.01, "10.0.0.1", 1024 + i, "10.96.0.10", 53,
                       _wire(i, f"n{i}.example", 1, False)))
        assert m.bytes <= cap
    assert m.stats.evicted == 200 - m.open
    assert 40 <= m.open <= 50


def test_burst_with_one_time_stamp_closes_answered_queries_by_count():
    # Nothing closes by time when time stands still; the lingering answered queries are
    # capped by count (closed_early), so memory does not grow with the burst.
    m = Matcher(AnalysisConfig(max_lingering=100), lambda lk: None, lambda o: None)
    for i in range(1000):
        wire = _wire(i, f"n{i}.example", 1, False)
        m.message(_msg(2 * i + 1, 100.0, "10.0.0.1", 1024 + i, "10.96.0.10", 53, wire))
        m.message(_msg(2 * i + 2, 100.0, "10.96.0.10", 53, "10.0.0.1", 1024 + i,
                       _wire(i, f"n{i}.example", 1, True)))
        assert m.open <= 101
    assert m.stats.closed_early == 900
    assert m.stats.answered_queries == 1000


def test_duplicate_filter_forgets_by_count_in_a_burst():
    from pcapdns.match.dedupe import Deduplicator

    d = Deduplicator(0.05, max_entries=100)
    for i in range(1000):
        d.is_duplicate(_msg(i + 1, 100.0, "10.0.0.1", 1024 + i, "10.96.0.10", 53,
                            _wire(i, f"n{i}.example", 1, False)))
        assert len(d._order) <= 100
    assert d.evicted == 900


def test_caps_reached_become_counts_and_warnings(tmp_path):
    a = analyze_packets(tmp_path / "burst.pcap", [
        (100.0, query(name=f"n{i}.example", id=i, sport=1024 + i)) for i in range(30)
    ] + [
        (100.0, response(name=f"n{i}.example", id=i, dport=1024 + i)) for i in range(30)
    ], max_lingering=10, max_dedupe_entries=20)
    doc = build(a)
    assert doc["summary"]["closed_early"] == 20
    assert doc["summary"]["duplicates_evicted"] > 0
    assert any("closed before their 1 s linger" in w for w in a.warnings)
    assert any("forgotten by the duplicate filter" in w for w in a.warnings)
