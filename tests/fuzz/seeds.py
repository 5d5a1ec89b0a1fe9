"""Seed inputs for the fuzz campaign: the bundled samples, the public corpus when it is
there, and the same captures with a capture.json beside them (see harness.META_MARK).

Seeds are cut to ``max_len`` bytes: the time of one run grows with the packets in it, and
a cut-off capture is itself a case worth reading.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

from tests.fuzz.harness import RING_PREFIX, join

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_pcaps"
CORPUS = ROOT.parent / "shared" / "corpus"
CRASHES = Path(__file__).resolve().parent / "crashes"

#: A capture.json as the agent writes it (capture/README.md), naming the fuzzed capture as
#: its ring so that its stop time counts.
META = {
    "format": "pcapdns.capture/1",
    "node": "node-a",
    "target": {"kind": "pid", "pid": 4242, "netns": None, "netns_path": "/proc/4242/ns/net",
               "netns_inode": 4026532178},
    "start": "2026-11-25T10:21:35.377378Z",
    "stop": "2026-11-25T10:31:35.500000Z",
    "stop_reason": "SIGTERM",
    "tcpdump": {"command": ["/usr/bin/tcpdump", "-i", "any", "-w", RING_PREFIX,
                            "-C", "20", "port 53"],
                "version": "tcpdump version 4.99.3", "packets_captured": 1532,
                "packets_received": 1540, "packets_dropped_by_kernel": 7},
    "interfaces": {"1": "lo", "3": "eth0"},
    "resolv_conf": {"path": "/proc/4242/root/etc/resolv.conf", "nameservers": ["10.96.0.10"],
                    "search": ["default.svc.cluster.local", "svc.cluster.local"],
                    "ndots": 5, "options": ["ndots:5", "timeout:2"]},
    "conntrack": {"source": "/proc/net/stat/nf_conntrack",
                  "before": {"entries": 10, "insert_failed": 4, "drop": 4},
                  "after": {"entries": 12, "insert_failed": 9, "drop": 11}},
    "target_conntrack": None,
}

_CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".gz", ".cap")


def _pcapng_with_tsresol(tsresol: int, ticks: int) -> bytes:
    """A small pcapng whose interface has the given if_tsresol and one query at ``ticks``
    (the shape of the first bug the campaign was built for)."""

    def block(btype: int, body: bytes) -> bytes:
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack(
            "<I", len(body) + 12)

    # Ethernet, IPv4 10.0.3.7 -> 10.96.0.10, UDP 40000 -> 53, "example.com A" (tests/craft.py)
    query = bytes.fromhex(
        "02000000000202000000000108004500003900010000401163430a0003070a60000a9c40003500256a1c"
        "123401000001000000000000076578616d706c6503636f6d0000010001")
    query += bytes(-len(query) % 4)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 262144) + struct.pack("<HHB3x", 9, 1, tsresol)
                 + bytes(4))
    out += block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(query),
                                len(query)) + query)
    return out


def seeds(max_len: int) -> Iterator[bytes]:
    """Every seed input, each at most ``max_len`` bytes."""
    meta = json.dumps(META).encode()
    found: list[bytes] = []
    for folder in (SAMPLES, CORPUS):
        if folder.is_dir():
            found += [p.read_bytes() for p in sorted(folder.iterdir())
                      if p.suffix in _CAPTURE_SUFFIXES and p.is_file()]
    found.append(_pcapng_with_tsresol(6, 1_700_000_000_000_000))
    found.append(_pcapng_with_tsresol(0x80 | 30, 1_700_000_000 << 30))
    for i, capture in enumerate(found):
        room = max_len - len(meta) - 64
        cut = capture[:room]
        yield capture[:max_len]
        if i % 4 == 0:  # a quarter of them with capture.json, a gzip now and then
            yield join(cut, meta)
        if i % 16 == 0 and capture[:2] != b"\x1f\x8b":
            yield gzip.compress(capture, mtime=0)[:max_len]
    if CRASHES.is_dir():
        yield from (p.read_bytes() for p in sorted(CRASHES.iterdir()) if p.is_file()
                    and p.name != "README.md")


def write(folder: Path, max_len: int) -> int:
    """Write the seeds into ``folder`` (named by content); return how many there are."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for data in seeds(max_len):
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        n += 1
    return n
