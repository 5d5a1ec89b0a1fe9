"""DNS over TCP: the 2-byte length prefix (RFC 1035 4.2.2, RFC 7766), several messages per
segment and one message over several, retransmissions, reordering, streams whose start was
not captured, lost segments, and length prefixes that lie."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from scapy.packet import Packet

from pcapdns import _core
from pcapdns.analysis import analyze
from pcapdns.config import AnalysisConfig
from pcapdns.output.document import build
from pcapdns.records import Payload
from tests.craft import (
    CLIENT,
    DNS,
    DNSQR,
    DNSRR,
    SERVER,
    DecoderStats,
    decode_capture,
    framed,
    tcp_segment,
    write_eth,
)

T0 = 1_700_000_000.0
ISN = 1000  # the client's initial sequence number; data starts at ISN + 1


def q(ident: int, name: str = "svc.example.com") -> DNS:
    return DNS(id=ident, rd=1, qd=DNSQR(qname=name, qtype="A"))


def r(ident: int, name: str = "svc.example.com", answers: int = 1) -> DNS:
    an = [
        DNSRR(rrname=name, type="A", ttl=30, rdata=f"192.0.2.{i % 250 + 1}") for i in range(answers)
    ]
    return DNS(id=ident, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype="A"), an=an)


def from_server(seq: int, payload: bytes = b"", flags: str = "PA", ack: int = 1) -> Packet:
    return tcp_segment(seq, payload, flags, src=SERVER, dst=CLIENT, sport=53, dport=40000, ack=ack)


def run(tmp_path: Path, segments: list[Packet]) -> tuple[list[tuple[int, int]], DecoderStats]:
    """Capture ``segments`` one millisecond apart; return (frame, DNS ID) of every message
    the decoder cut out of the stream, and the decoder's counters."""
    path = write_eth(tmp_path / "tcp.pcap", [(T0 + i / 1000, s) for i, s in enumerate(segments)])
    out, stats = decode_capture(path)
    assert all(type(p) is Payload and p.transport == "tcp" for p in out)
    return [(p.frame, int.from_bytes(p.data[:2], "big")) for p in out], stats


def stream(
    *chunks: bytes, isn: int = ISN, sender: Callable[..., Packet] = tcp_segment
) -> list[Packet]:
    """One direction of a connection (the client's unless ``sender`` says otherwise): the
    SYN, then one segment per chunk, in order."""
    segments = [sender(isn, flags="S")]
    seq = isn + 1
    for c in chunks:
        segments.append(sender(seq & 0xFFFFFFFF, c))
        seq += len(c)
    return segments


def test_message_without_its_length_prefix(tmp_path: Path) -> None:
    path = write_eth(tmp_path / "tcp.pcap", [(T0, s) for s in stream(framed(q(1)))])

    out, _ = decode_capture(path)

    assert [(p.frame, p.transport, p.src, p.sport, p.data) for p in out] == [
        (2, "tcp", CLIENT, 40000, bytes(q(1)))
    ]


def test_several_messages_in_one_segment(tmp_path: Path) -> None:
    # glibc writes the A and AAAA queries of one lookup in one go.
    one_write = framed(q(1)) + framed(q(2)) + framed(q(3))

    messages, _ = run(tmp_path, stream(one_write))

    assert messages == [(2, 1), (2, 2), (2, 3)]


@pytest.mark.parametrize("isn", [ISN, 0xFFFF_FFF0], ids=["plain", "sequence-wraps"])
def test_one_message_over_three_segments(tmp_path: Path, isn: int) -> None:
    big = framed(r(9, answers=40))
    a, b = len(big) // 3, 2 * len(big) // 3
    segments = stream(big[:a], big[a:b], big[b:], isn=isn, sender=from_server)

    messages, _ = run(tmp_path, segments)

    assert messages == [(4, 9)]


def test_retransmitted_segments_are_taken_once(tmp_path: Path) -> None:
    first, second = framed(q(1)), framed(q(2))
    segments = stream(first, second)
    segments[2:2] = [segments[1]]  # the first data segment again
    segments.append(segments[3])  # and the second

    messages, stats = run(tmp_path, segments)

    assert messages == [(2, 1), (4, 2)]
    assert stats["tcp"]["gaps"] == 0


def test_retransmission_that_overlaps_new_data(tmp_path: Path) -> None:
    first, second = framed(q(1)), framed(q(2))
    both = tcp_segment(ISN + 1, first + second)  # the sender coalesced on retransmit

    messages, _ = run(tmp_path, [*stream(first), both])

    assert messages == [(2, 1), (3, 2)]


def test_out_of_order_pieces_of_one_message(tmp_path: Path) -> None:
    big = framed(r(9, answers=40))
    a, b = len(big) // 3, 2 * len(big) // 3
    syn, one, two, three = stream(big[:a], big[a:b], big[b:])

    messages, stats = run(tmp_path, [syn, one, three, two])

    # Whole only when the middle piece arrived, in frame 4.
    assert messages == [(4, 9)]
    assert stats["tcp"]["gaps"] == 0


def test_out_of_order_whole_messages(tmp_path: Path) -> None:
    syn, one, two, three = stream(framed(q(1)), framed(q(2)), framed(q(3)))

    messages, _ = run(tmp_path, [syn, two, one, three])

    assert sorted(messages) == [(2, 2), (3, 1), (4, 3)]


def test_segment_lost_on_the_network_and_retransmitted_later(tmp_path: Path) -> None:
    syn, one, two, three = stream(framed(q(1)), framed(q(2)), framed(q(3)))

    messages, _ = run(tmp_path, [syn, one, three, two, two])

    assert sorted(messages) == [(2, 1), (3, 3), (4, 2)]


@pytest.mark.parametrize("tail", [5, 20], ids=["tail-shorter-than-a-header", "longer-tail"])
def test_stream_without_syn_recovers_at_a_segment_that_starts_a_message(
    tmp_path: Path, tail: int
) -> None:
    # The capture started while the client was sending message 1.
    m1, m2, m3 = framed(q(1)), framed(q(2)), framed(q(3))
    seq = 50_000
    segments = [
        tcp_segment(seq, m1[-tail:]),
        tcp_segment(seq + tail, m2),
        tcp_segment(seq + tail + len(m2), m3),
    ]

    messages, stats = run(tmp_path, segments)

    assert messages == [(2, 2), (3, 3)]
    assert stats["tcp"]["unframed_bytes"] == tail


def test_stream_without_syn_starting_on_a_message(tmp_path: Path) -> None:
    segments = [
        tcp_segment(50_000, framed(q(1))),
        tcp_segment(50_000 + len(framed(q(1))), framed(q(2))),
    ]

    messages, _ = run(tmp_path, segments)

    assert messages == [(1, 1), (2, 2)]


def test_messages_after_a_lost_segment_keep_their_own_frames(tmp_path: Path) -> None:
    syn, one, _lost, three, four = stream(framed(q(1)), framed(q(2)), framed(q(3)), framed(q(4)))

    messages, stats = run(tmp_path, [syn, one, three, four])

    assert messages == [(2, 1), (3, 3), (4, 4)]
    assert stats["tcp"]["gaps"] == 1


def test_gap_the_peer_acknowledged_is_skipped_at_once(tmp_path: Path) -> None:
    # The capture lost a client segment holding query 2 and the length prefix of query 3;
    # the server's acknowledgments show it arrived there, so nothing will fill the gap, and
    # query 4 (prefix and message sent apart) is framed before its response is seen.
    m1, m2, m3, m4 = (framed(q(i)) for i in (1, 2, 3, 4))
    r1, r2, r3, r4 = (framed(r(i)) for i in (1, 2, 3, 4))
    c = ISN + 1  # client sequence numbers
    lost = m2 + m3[:2]
    c3 = c + len(m1) + len(lost)
    c4 = c3 + len(m3) - 2
    s = 7001  # server sequence numbers

    def client(seq: int, payload: bytes, acked: int) -> Packet:
        return tcp_segment(seq, payload, ack=acked)

    def server(seq: int, payload: bytes, acked: int, flags: str = "PA") -> Packet:
        return from_server(seq, payload, flags, ack=acked)

    segments = [
        tcp_segment(ISN, flags="S", ack=0),
        server(s - 1, b"", c, flags="SA"),
        client(c, m1, s),
        server(s, r1, c + len(m1)),
        server(s + len(r1), r2, c3),
        client(c3, m3[2:], s + len(r1) + len(r2)),
        server(s + len(r1) + len(r2), r3, c4),
        client(c4, m4[:2], s + len(r1) + len(r2) + len(r3)),
        client(c4 + 2, m4[2:], s + len(r1) + len(r2) + len(r3)),
        server(s + len(r1) + len(r2) + len(r3), r4, c4 + len(m4)),
    ]

    messages, stats = run(tmp_path, segments)

    assert messages == [(3, 1), (4, 1), (5, 2), (7, 3), (9, 4), (10, 4)]
    assert stats["tcp"]["gaps"] == 1


def test_lost_segment_inside_a_message(tmp_path: Path) -> None:
    big = framed(r(9, answers=40))
    half = len(big) // 2
    syn, _lost, rest, after = stream(big[:half], big[half:], framed(r(10)))

    messages, stats = run(tmp_path, [syn, rest, after])

    assert messages == [(3, 10)]
    assert stats["tcp"]["gaps"] == 1


def test_length_prefix_that_lies_is_incomplete_at_close(tmp_path: Path) -> None:
    message = bytes(q(1))
    lie = (len(message) + 500).to_bytes(2, "big") + message
    segments = [*stream(lie), tcp_segment(ISN + 1 + len(lie), flags="FA")]

    messages, stats = run(tmp_path, segments)

    assert messages == []
    assert stats["tcp"]["incomplete_messages"] == 1


def test_length_prefix_that_lies_is_incomplete_at_end_of_capture(tmp_path: Path) -> None:
    lie = b"\xff\xff" + bytes(q(1))

    messages, stats = run(tmp_path, stream(framed(q(1)), lie))

    assert messages == [(2, 1)]
    assert stats["tcp"]["incomplete_messages"] == 1


def test_zero_length_message_is_skipped(tmp_path: Path) -> None:
    messages, stats = run(tmp_path, stream(b"\x00\x00" + framed(q(1))))

    assert messages == [(2, 1)]
    assert stats["tcp"]["empty_messages"] == 1


def test_tcp_query_and_response_are_one_transaction(tmp_path: Path) -> None:
    response = framed(r(1))
    segments = [
        *stream(framed(q(1))),
        from_server(7000, flags="SA"),
        from_server(7001, response[:10]),
        from_server(7011, response[10:]),
    ]
    path = write_eth(tmp_path / "tcp.pcap", [(T0 + i / 1000, s) for i, s in enumerate(segments)])

    result = analyze([str(path)], keep_lookups=True)

    assert result.lookups is not None
    [lookup] = result.lookups
    assert lookup.answer is not None and lookup.answer.response is not None
    assert (lookup.first.frame, lookup.answer.response.frame) == (2, 5)
    assert lookup.first.transport == "tcp"


def test_lying_length_prefix_does_not_stop_the_analysis(tmp_path: Path) -> None:
    lie = b"\x40\x00" + bytes(q(1))
    segments = [*stream(lie), tcp_segment(ISN + 1 + len(lie), flags="RA")]
    path = write_eth(tmp_path / "tcp.pcap", [(T0 + i, s) for i, s in enumerate(segments)])

    result = analyze([str(path)])

    assert result.tcp.incomplete_messages == 1
    assert (result.match.queries, result.malformed) == (0, 0)


# -- the public corpus (expected values from tshark -Y dns) ----------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        # A lost segment in the middle: messages on both sides of it are found.
        (
            "dnscap__dnso1tcp-midmiss.pcap",
            [(6, 0xE7AF), (8, 0xE7AF), (12, 0x8B51), (14, 0x14D9), (17, 0x59C6), (19, 0x59C6)],
        ),
        # The SYN was not captured.
        ("dnscap__1qtcpnosyn.pcap", [(2, 0x12CF), (4, 0x12CF)]),
        # No SYN, and the first segment is a query whose length prefix went before the
        # capture began: framing starts at frame 5, a length prefix sent on its own, which
        # frame 7 completes (tshark, without framing, shows only frames 3 and 9).
        ("dnscap__do1t-nosyn-1nolen.pcap", [(3, 0xE7AF), (7, 0x8B51), (9, 0x8B51)]),
        # Three queries in one segment.
        ("dnscap__dnsotcp-many1pkt.pcap", [(4, 0xE7AF), (4, 0xE7AF), (4, 0xE7AF), (6, 0x12CF)]),
        # A query in one segment, then two more in the next.
        ("dnscap__dnsotcp-manyopkts.pcap", [(4, 0xE7AF), (6, 0xE7AF), (6, 0xE7AF)]),
    ],
)
def test_corpus_tcp_streams(corpus: Path, name: str, expected: list[tuple[int, int]]) -> None:
    out, _ = decode_capture(corpus / name)

    assert [(p.frame, int.from_bytes(p.data[:2], "big")) for p in out] == expected


def test_corpus_big_hole_acknowledged_by_the_peer(corpus: Path) -> None:
    # The capture lost the client's bytes 108-187 (the server acknowledged them in frame
    # 19); after the hole the client sends each length prefix apart from its message.
    # tshark, without framing, shows 3 queries and 38 responses; every query after the
    # hole is framed in time, before its response.
    result = analyze([str(corpus / "dnscap__dnso1tcp-bighole.pcap")])

    assert (result.match.queries, result.match.responses) == (38, 38)
    # The response in frame 22 answers the query whose length prefix was lost. It comes
    # within --max-wait of the capture's first packet, where a response without its query
    # is counted apart rather than blamed on the server.
    assert (result.match.answered_queries, result.match.unsolicited_responses) == (37, 0)
    assert result.match.responses_before_capture == 1


def test_corpus_gap_still_counts_three_queries_and_three_responses(corpus: Path) -> None:
    result = analyze([str(corpus / "dnscap__dnso1tcp-midmiss.pcap")])

    assert (result.match.queries, result.match.responses) == (3, 3)
    assert result.tcp.gaps >= 1


# -- late segments inside a skipped gap: a capped list of its pieces ---------------------------


# The cost bound and the forgotten piece are proven inside the core, where the pieces can
# be seen: core/src/decode/tcp.rs, tests
# late_segments_splitting_a_gap_keep_at_most_max_hole_pieces and
# late_message_inside_a_forgotten_piece_is_taken_for_a_retransmission, and by the
# tcp-hole-pieces fixture (core/tests/decode.rs).


# -- the byte budget: what never completes cannot take the machine's memory -------------------


def _key(i: int) -> tuple[str, int, str, int]:
    return (f"10.245.{i >> 8}.{i & 0xFF}", 10_000 + i, SERVER, 53)


# That the budget's tally equals the bytes the directions hold after every segment is
# checked against the former Python stage, which proved it, by the fixtures tcp-budget and
# tcp-fuzz-small-budget (core/tests/decode.rs): the bytes held after each record.


def test_connections_that_never_finish_a_message_stay_within_the_budget() -> None:
    # Each connection announces a 65,535-byte message and sends 6,000 bytes of it.
    r = _core.TcpReassembler(max_bytes=50_000)
    head = b"\xff\xff" + bytes(q(1))
    offered = 0
    for i in range(40):
        assert r.segment(_key(i), ISN, 0x02, b"", 1, T0 + i) == []
        for k in range(3):
            data = (head + bytes(2_000))[:2_000] if k == 0 else bytes(2_000)
            assert r.segment(_key(i), ISN + 1 + 2_000 * k, 0x18, data, 1, T0 + i) == []
            offered += len(data)
            s = r.stats()
            # Nothing completes and nothing closes: what is not held was evicted.
            assert s["buffered"] <= 50_000, (i, k, s)
            assert s["buffered"] + s["evicted_bytes"] == offered, (i, k, s)

    # 40 x 6,000 bytes offered, at most 50,000 kept: the oldest connections went first.
    s = r.stats()
    assert s["evicted_flows"] == 40 - s["flows"]
    assert s["flows"] == 50_000 // 6_000
    assert s["evicted_bytes"] == 6_000 * s["evicted_flows"]
    assert s["incomplete_messages"] == s["evicted_flows"]
    # A FIN closes a direction still followed, counting its partial message, and is
    # ignored on one that is not: the newest connection is followed, the first is not.
    r.segment(_key(0), ISN + 6_001, 0x11, b"", 2, T0 + 40)
    assert r.stats()["incomplete_messages"] == s["incomplete_messages"]
    r.segment(_key(39), ISN + 6_001, 0x11, b"", 2, T0 + 40)
    assert r.stats()["incomplete_messages"] == s["incomplete_messages"] + 1


def test_segments_waiting_beyond_a_gap_count_against_the_budget() -> None:
    # The first 100 bytes of each connection are lost; 32 segments of 1,000 bytes of
    # zeros (no DNS header, so nothing to resume at) wait beyond the gap.
    r = _core.TcpReassembler(max_bytes=100_000)
    per_segment = 1_000 + _core.TCP_SEGMENT_OVERHEAD
    for i in range(20):
        r.segment(_key(i), ISN, 0x02, b"", 1, T0)
        for k in range(32):
            seq = ISN + 101 + 1_000 * k
            assert r.segment(_key(i), seq, 0x18, bytes(1_000), 1, T0) == []
            s = r.stats()
            assert s["buffered"] <= 100_000, (i, k, s)
            assert s["buffered"] + s["evicted_bytes"] == per_segment * (32 * i + k + 1), s
    per_connection = 32 * per_segment
    s = r.stats()
    assert s["flows"] == 100_000 // per_connection
    assert s["evicted_flows"] == 20 - s["flows"]
    assert s["incomplete_messages"] == 32 * s["evicted_flows"]


def test_a_connection_dropped_at_the_budget_is_framed_again_when_it_goes_on() -> None:
    r = _core.TcpReassembler(max_bytes=3_000)
    old = _key(1)
    r.segment(old, ISN, 0x02, b"", 1, T0)
    r.segment(old, ISN + 1, 0x18, b"\x10\x00" + bytes(2_500), 2, T0)  # 4 kB announced
    r.segment(_key(2), ISN, 0x02, b"", 3, T0)
    r.segment(_key(2), ISN + 1, 0x18, b"\x10\x00" + bytes(1_000), 4, T0)
    s = r.stats()
    # The older connection went, with its 2,502 bytes; the one just fed stays.
    assert (s["evicted_flows"], s["evicted_bytes"], s["flows"]) == (1, 2_502, 1)

    # The dropped connection's next segment carries a whole query: framed on its own.
    message = framed(q(7))
    out = r.segment(old, ISN + 1 + 2_502 + 2_000, 0x18, message, 5, T0 + 1)
    assert [(int.from_bytes(m[:2], "big"), frame) for m, frame, _ in out] == [(7, 5)]
    assert r.stats()["buffered"] == 1_002


def test_budget_is_released_when_connections_close() -> None:
    r = _core.TcpReassembler()
    r.segment(_key(1), ISN, 0x02, b"", 1, T0)
    r.segment(_key(1), ISN + 1, 0x18, b"\x10\x00" + bytes(100), 2, T0)
    assert r.stats()["buffered"] == 102
    r.segment(_key(1), ISN + 103, 0x11, b"", 3, T0)  # FIN
    s = r.stats()
    assert (s["buffered"], s["flows"]) == (0, 0)
    assert s["incomplete_messages"] == 1 and s["evicted_flows"] == 0


def test_evictions_are_in_the_summary(tmp_path: Path) -> None:
    # Four connections, each 3,002 bytes into a 4 kB message, with room for one.
    segments = [
        s for i in range(4)
        for s in stream(b"\x10\x00" + bytes(3_000), sender=partial(tcp_segment, sport=41_000 + i))
    ]
    path = write_eth(tmp_path / "tcp.pcap", [(T0 + i / 1000, s) for i, s in enumerate(segments)])

    result = analyze([str(path)], AnalysisConfig(max_tcp_buffer_bytes=5_000))

    summary = build(result)["summary"]
    assert (summary["tcp_flows_evicted"], summary["tcp_bytes_evicted"]) == (3, 3 * 3_002)
    assert summary["skipped"]["tcp_incomplete_messages"] == 4
