"""Hostile bytes never escape the pipeline: mutated and cut-short frames of every link type
are decoded, counted or skipped, and ``analyze`` returns.

Deterministic (fixed seed) so a failure reproduces; bounded in count.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from pcapdns.analysis import analyze
from tests.craft import TCP, IPv6, Raw, eth, icmp_port_unreachable, query, response, write_pcap

ROUNDS = 1500


def _frames() -> list[bytes]:
    tcp_query = bytes(query(tcp=True))
    return [
        bytes(eth(query())),
        bytes(eth(response(answers=("192.0.2.1", "192.0.2.2")))),
        bytes(eth(query(v6=True, src="fd00::1", dst="fd00::53"))),
        bytes(eth(icmp_port_unreachable(response()))),
        bytes(eth(IPv6(src="fd00::1", dst="fd00::53") / TCP(sport=4000, dport=53, seq=1)
                  / Raw(b"\x00\x20" + b"\x12" * 30))),
        bytes(eth(query(tcp=True))),
        tcp_query,
    ]


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    choice = rng.randrange(4)
    if choice == 0 and data:  # flip bytes
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice == 1:  # cut short
        del data[rng.randrange(len(data) + 1):]
    elif choice == 2 and len(data) > 20:  # a lying length somewhere
        pos = rng.randrange(len(data) - 2)
        data[pos:pos + 2] = struct.pack("!H", rng.choice([0, 1, 0xFFFF, len(data) * 3]))
    else:  # random tail
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    return bytes(data)


@pytest.mark.parametrize("link_type,strip", [(1, 0), (101, 14), (113, None), (276, None),
                                             (0, None)])
def test_mutated_frames_never_raise(tmp_path: Path, link_type: int, strip: int | None) -> None:
    rng = random.Random(link_type)
    base = _frames()
    records = []
    for i in range(ROUNDS):
        frame = _mutate(rng, rng.choice(base))
        if strip is not None:
            frame = frame[strip:]
        elif link_type == 113:
            frame = b"\x00\x00\x00\x01\x00\x06" + bytes(8) + frame[12:]
        elif link_type == 276:
            frame = frame[12:14] + b"\x00\x00" + struct.pack("!I", i % 3) + bytes(12) + frame[14:]
        elif link_type == 0:
            frame = struct.pack("<I", rng.choice([2, 24, 30, 99])) + frame[14:]
        records.append((1000.0 + i * 0.01, frame))
    cap = write_pcap(tmp_path / "fuzz.pcap", records, link_type=link_type)
    result = analyze([str(cap)])
    assert result.packets == ROUNDS
    s = result.match
    assert s.queries + s.responses + result.duplicates + result.malformed <= ROUNDS * 4
