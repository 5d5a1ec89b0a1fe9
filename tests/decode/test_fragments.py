"""IP fragment reassembly: a large EDNS response leaves the server as IPv4 or IPv6
fragments, and only the whole datagram shows the DNS message."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from scapy.layers.inet import IP, fragment
from scapy.layers.inet6 import IPv6ExtHdrFragment, fragment6
from scapy.packet import Packet

from pcapdns import _core
from pcapdns.analysis import analyze
from pcapdns.config import AnalysisConfig
from pcapdns.output.document import build
from tests.craft import (
    CLIENT,
    DNS,
    SERVER,
    UDP,
    IPv6,
    decode_capture,
    query,
    response,
    write_eth,
    write_sll2,
)

T0 = 1_700_000_000.0
CLIENT6 = "fd00:10:244::7"
SERVER6 = "fd00:10:96::a"
ANSWERS = [f"192.0.2.{i}" for i in range(1, 101)]  # about 2.7 kB: five 600-byte fragments


def big_response_v4() -> Packet:
    return response(answers=ANSWERS)


def big_response_v6() -> Packet:
    r = response(src=SERVER6, dst=CLIENT6, v6=True, answers=ANSWERS)
    return IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrFragment(id=0x77) / r[UDP]


def v4_fragments() -> list[Packet]:
    return fragment(big_response_v4(), fragsize=600)


def v6_fragments() -> list[Packet]:
    return fragment6(big_response_v6(), 600)


ORDERS = {
    "in-order": [0, 1, 2, 3, 4],
    "reversed": [4, 3, 2, 1, 0],
    "shuffled": [2, 0, 4, 1, 3],
}


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
@pytest.mark.parametrize(
    "make, src, dst, whole",
    [
        (v4_fragments, SERVER, CLIENT, big_response_v4),
        (v6_fragments, SERVER6, CLIENT6, big_response_v6),
    ],
    ids=["ipv4", "ipv6"],
)
def test_fragmented_response_is_reassembled(
    tmp_path: Path, make, src: str, dst: str, whole, order: list[int]
) -> None:
    pieces = make()
    assert len(pieces) == 5
    path = write_eth(
        tmp_path / "frags.pcap", [(T0 + i / 1000, pieces[k]) for i, k in enumerate(order)]
    )

    out, stats = decode_capture(path)

    assert [(p.frame, p.src, p.sport, p.dst, p.dport) for p in out] == [(5, src, 53, dst, 40000)]
    assert out[0].data == bytes(whole()[DNS])
    assert (stats["decode"]["fragments"], stats["fragments"]["reassembled"]) == (5, 1)
    assert stats["fragments"]["dropped"] == 0


@pytest.mark.parametrize("make", [v4_fragments, v6_fragments], ids=["ipv4", "ipv6"])
def test_missing_fragment_is_dropped_at_the_end(tmp_path: Path, make) -> None:
    pieces = make()
    del pieces[2]
    path = write_eth(tmp_path / "lost.pcap", [(T0 + i / 1000, p) for i, p in enumerate(pieces)])

    out, stats = decode_capture(path)

    assert out == []
    assert (stats["fragments"]["reassembled"], stats["fragments"]["dropped"]) == (0, 1)


def test_fragments_captured_twice_are_reassembled_once(tmp_path: Path) -> None:
    pieces = [p for p in v4_fragments() for _ in range(2)]
    path = write_eth(tmp_path / "twice.pcap", [(T0 + i / 1000, p) for i, p in enumerate(pieces)])

    out, stats = decode_capture(path)

    assert len(out) == 1
    assert stats["fragments"]["reassembled"] == 1


def test_fragments_seen_on_two_interfaces_are_reassembled_per_interface(
    tmp_path: Path,
) -> None:
    # tcpdump -i any sees each fragment on the pod's veth and on the bridge before the next
    # fragment arrives; each interface's copy is a whole datagram of its own.
    packets = [
        (T0 + i / 1000, ifindex, piece)
        for i, (piece, ifindex) in enumerate(
            (piece, ifindex) for piece in v4_fragments() for ifindex in (3, 7)
        )
    ]
    path = write_sll2(tmp_path / "any.pcap", packets)

    out, stats = decode_capture(path)

    assert [(p.frame, p.iface) for p in out] == [(9, 3), (10, 7)]
    assert (stats["fragments"]["reassembled"], stats["fragments"]["dropped"]) == (2, 0)

    both = write_sll2(
        tmp_path / "any-both.pcap", [(T0 - 0.01, 3, query()), (T0 - 0.01, 7, query())] + packets
    )
    result = analyze([str(both)])
    assert (result.match.answered_queries, result.duplicates) == (1, 2)
    assert result.fragments_dropped == 0


def test_fragment_older_than_the_reassembly_timer_is_given_up(tmp_path: Path) -> None:
    first, *rest = v4_fragments()
    later = T0 + _core.FRAGMENT_MAX_AGE + 15
    packets = [(T0, first), (later, query(id=9))] + [(later + i, p) for i, p in enumerate(rest)]
    path = write_eth(tmp_path / "stale.pcap", packets)

    out, stats = decode_capture(path)

    assert [int.from_bytes(p.data[:2], "big") for p in out] == [9]
    # The stale first fragment, then the rest that never completes.
    assert stats["fragments"]["dropped"] == 2


def test_fragmented_response_answers_its_query(tmp_path: Path) -> None:
    packets = [(T0, query())] + [(T0 + 0.01, p) for p in v4_fragments()]
    path = write_eth(tmp_path / "edns.pcap", packets)

    result = analyze([str(path)], keep_lookups=True)

    assert (result.match.queries, result.match.answered_queries) == (1, 1)
    assert result.fragments_reassembled == 1
    assert result.lookups is not None
    answer = result.lookups[0].answer
    assert answer is not None and answer.response is not None
    assert answer.response.frame == 6
    assert answer.response.data == bytes(big_response_v4()[DNS])


def test_corpus_fragmented_capture_counts_like_the_unfragmented_one(corpus: Path) -> None:
    plain = analyze([str(corpus / "dnscap__dns.pcap")])
    fragmented = analyze([str(corpus / "dnscap__frags.pcap")])

    counts = [
        (a.match.queries, a.match.responses, a.match.answered_queries) for a in (plain, fragmented)
    ]
    # tshark -Y dns: 41 queries and 41 responses in each.
    assert counts == [(41, 41, 41), (41, 41, 41)]
    assert fragmented.fragments_reassembled > 0
    assert fragmented.fragments_dropped == 0


# -- any order, bounded bytes ----------------------------------------------------------------


def _reference(pieces: list[tuple[int, bytes, bool]]) -> bytes | None:
    """The datagram by brute force: the longer piece at each offset, the last MF=0 piece
    giving the length, and whole only when the pieces leave no hole."""
    by_offset: dict[int, bytes] = {}
    total = None
    for off, data, more in pieces:
        if len(data) > len(by_offset.get(off, b"")) or off not in by_offset:
            by_offset[off] = data
        if not more:
            total = off + len(data)
    if total is None:
        return None
    covered = 0
    for off in sorted(by_offset):
        if off > covered:
            return None
        covered = max(covered, off + len(by_offset[off]))
    if covered < total:
        return None
    out = bytearray(total)
    for off in sorted(by_offset):
        piece = by_offset[off][: max(0, total - off)]
        out[off : off + len(piece)] = piece
    return bytes(out)


KEY = ("10.0.0.1", "10.0.0.2", 7, 17, 0)


@pytest.mark.parametrize("seed", range(40))
def test_any_order_with_copies_and_overlaps_gives_the_brute_force_datagram(seed: int) -> None:
    rng = random.Random(seed)
    payload = bytes(rng.randrange(256) for _ in range(rng.randrange(8, 3_000)))
    size = rng.choice([8, 16, 64, 600])
    pieces = [(off, payload[off : off + size], off + size < len(payload))
              for off in range(0, len(payload), size)]
    # Copies, and pieces that span two fragments' worth (a resend with another MTU).
    pieces += [rng.choice(pieces) for _ in range(rng.randrange(4))]
    for _ in range(rng.randrange(3)):
        off = rng.randrange(0, len(payload), 8)
        pieces.append((off, payload[off : off + 2 * size], off + 2 * size < len(payload)))
    rng.shuffle(pieces)
    if rng.random() < 0.3:
        pieces.pop()  # maybe a hole

    r = _core.FragmentReassembler()
    results = [r.add(KEY, off, more, data, T0) for off, data, more in pieces]

    whole = [x for x in results if x is not None]
    expected = _reference(pieces)
    if expected is None:
        assert whole == [] and r.stats()["reassembled"] == 0
    else:
        # Complete at the first piece that closes the last hole, and only then.
        first = next(i for i in range(len(pieces)) if _reference(pieces[: i + 1]) is not None)
        assert results[first] == _reference(pieces[: first + 1])
        assert whole[0] == _reference(pieces[: first + 1])
        assert r.stats()["reassembled"] >= 1


def test_last_fragment_first_is_whole_at_the_piece_that_closes_the_last_hole() -> None:
    # Linux sends the last fragment first: the length is known from the start, and every
    # piece after it asks whether the datagram is whole. That each asks at O(log n) cost
    # (only the pieces beyond the hole wait in a heap) is proven by the unit test
    # last_fragment_first_waits_alone_beyond_the_hole in core/src/decode/fragments.rs.
    payload = bytes(range(256)) * 32
    pieces = [(off, payload[off : off + 8]) for off in range(0, len(payload), 8)]
    r = _core.FragmentReassembler()
    last_off, last = pieces[-1]
    assert r.add(KEY, last_off, False, last, T0) is None
    held = len(last) + _core.FRAGMENT_PIECE_OVERHEAD
    for off, data in pieces[:-2]:
        assert r.add(KEY, off, True, data, T0) is None, off
        held += len(data) + _core.FRAGMENT_PIECE_OVERHEAD
        s = r.stats()
        assert (s["pending"], s["buffered"]) == (1, held), (off, s)
    assert r.add(KEY, pieces[-2][0], True, pieces[-2][1], T0) == payload
    s = r.stats()
    assert (s["buffered"], s["pending"], s["reassembled"]) == (0, 0, 1)


def test_four_datagrams_of_thousands_of_pieces_stay_within_the_byte_budget() -> None:
    r = _core.FragmentReassembler(max_bytes=200_000)
    data = bytes(1_000)
    cost = len(data) + _core.FRAGMENT_PIECE_OVERHEAD
    added = 0
    for i in range(300):
        for ident in range(4):
            key = ("10.0.0.1", "10.0.0.2", ident, 17, 0)
            assert r.add(key, 8 * i, True, data, T0) is None
            added += 1
            s = r.stats()
            # Every piece is new (its own offset): what is not held was evicted.
            assert s["buffered"] <= 200_000, (i, ident, s)
            assert s["buffered"] + s["evicted_bytes"] == added * cost, (i, ident, s)
    s = r.stats()
    assert s["evicted"] > 0 and s["evicted"] == s["dropped"]
    assert s["evicted_bytes"] > 0
    assert s["reassembled"] == 0


def test_piece_past_the_largest_datagram_drops_it() -> None:
    r = _core.FragmentReassembler()
    assert r.add(KEY, 0, True, bytes(100), T0) is None
    assert r.add(KEY, 65_528, True, bytes(16), T0) is None
    s = r.stats()
    assert (s["dropped"], s["buffered"], s["pending"]) == (1, 0, 0)


def test_fragment_evictions_are_in_the_summary(tmp_path: Path) -> None:
    # Five fragments of about 600 bytes, with room for two: the third evicts the datagram,
    # the last two start it again and never complete.
    pieces = v4_fragments()
    path = write_eth(tmp_path / "frags.pcap", [(T0 + i / 1000, p) for i, p in enumerate(pieces)])

    result = analyze([str(path)], AnalysisConfig(max_fragment_buffer_bytes=2_000))

    summary = build(result)["summary"]
    held = sum(len(bytes(p[IP].payload)) + _core.FRAGMENT_PIECE_OVERHEAD for p in pieces[:3])
    assert (summary["fragmented_datagrams_evicted"], summary["fragment_bytes_evicted"]) == (
        1, held)
    assert summary["skipped"]["fragmented_datagrams_dropped"] == 2
    assert summary["skipped"]["fragments_reassembled"] == 0
