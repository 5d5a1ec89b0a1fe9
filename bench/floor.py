#!/usr/bin/env python3
"""The least per-packet work pcapdns's definitions need, in plain Python, timed.

    python3 bench/floor.py PCAP

Walks the records of a classic little-endian microsecond pcap (as bench.py writes), takes
the Ethernet/IPv4/UDP packets, reads the DNS header and the question name, and pairs each
response with the query of the same client, port, ID and name in a dict. Nothing else: no
duplicates, retransmissions, TCP, IPv6, fragments, detectors or output. Its time is a
floor under any pure-Python analyzer of that file, to hold against the speed target.
"""

from __future__ import annotations

import struct
import sys
import time


def main(path: str) -> int:
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        data = fh.read()
    rec = struct.Struct("<IIII").unpack_from
    pair = struct.Struct("!HH").unpack_from
    off, end = 24, len(data)
    pending: dict[tuple[bytes, int, int, bytes], float] = {}
    packets = paired = 0
    while off + 16 <= end:
        ts, us, cap, _ = rec(data, off)
        p = off + 16
        off = p + cap
        packets += 1
        if cap < 54 or data[p + 23] != 17:  # IPv4 protocol field: UDP only
            continue
        sport, dport = pair(data, p + 34)
        d = p + 42
        qid, _flags = pair(data, d)
        z = data.find(b"\0", d + 12, off)
        if z < 0:
            continue
        name = data[d + 12 : z].lower()
        if dport == 53:
            pending[(data[p + 26 : p + 30], sport, qid, name)] = ts + us * 1e-6
        elif sport == 53 and pending.pop((data[p + 30 : p + 34], dport, qid, name), None):
            paired += 1
    print(f"{packets:,} packets, {paired:,} pairs, {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: floor.py PCAP")
    sys.exit(main(sys.argv[1]))
