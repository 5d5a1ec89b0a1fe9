#!/usr/bin/env python3
"""Two capture points at scale: what ``pcapdns correlate`` costs on top of analyzing both
sides, at two sizes so that the growth shows.

For each size N the script writes a reproducible pair of classic pcaps (fixed seed): N
lookups from 2,000 pods of one node to the kube-dns ClusterIP, 2 ms apart, seen at the
client's node, and the same queries at the CoreDNS node after DNAT and a masquerade (new
source port), with that node's clock 3.3 s ahead. About 1% of the queries are dropped
before the server, 1% get no answer from it and 1% lose their answer on the way back.
Then, each in a child process, it runs the two analyses alone (as ``pcapdns analyze``
does) and the whole correlation, and prints the wall-clock time,
the peak RSS (``ru_maxrss`` from ``os.wait4``) and the fates found.

    python3 bench/correlate.py                 # 50,000 and 200,000 lookups
    python3 bench/correlate.py --sizes 10000

Standard library only, apart from pcapdns itself in the child. Results in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFSET = 3.3
START = 1_764_000_000.0


def _ip(s: str) -> bytes:
    return bytes(int(x) for x in s.split("."))


def _udp(src: str, dst: str, sport: int, dport: int, dns: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(dns), 0) + dns
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, _ip(src),
                     _ip(dst))
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + udp


def _name(n: str) -> bytes:
    return b"".join(bytes([len(x)]) + x.encode() for x in n.split(".")) + b"\0"


def _query(id: int, name: str) -> bytes:
    return struct.pack("!HHHHHH", id, 0x0100, 1, 0, 0, 0) + _name(name) + b"\0\x01\0\x01"


def _answer(id: int, name: str) -> bytes:
    return (struct.pack("!HHHHHH", id, 0x8180, 1, 1, 0, 0) + _name(name) + b"\0\x01\0\x01"
            + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + b"\x0a\0\0\x01")


def _write(path: Path, records: list[tuple[float, bytes]]) -> None:
    records.sort(key=lambda r: r[0])
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for t, data in records:
            us = round(t * 1e6)
            f.write(struct.pack("<IIII", us // 10**6, us % 10**6, len(data), len(data)))
            f.write(data)


def make_pair(n: int, where: Path) -> tuple[Path, Path]:
    rnd = random.Random(n)
    client: list[tuple[float, bytes]] = []
    server: list[tuple[float, bytes]] = []
    for i in range(n):
        t = START + i * 0.002
        pod = f"10.244.{rnd.randrange(8)}.{rnd.randrange(1, 250)}"
        name = f"svc{rnd.randrange(500)}.ns{rnd.randrange(20)}.svc.cluster.local"
        id, port, masq = rnd.randrange(65536), rnd.randrange(1024, 65536), rnd.randrange(
            1024, 65536)
        fate = rnd.random()
        client.append((t, _udp(pod, "10.96.0.10", port, 53, _query(id, name))))
        if fate < 0.01:
            continue
        at = t + OFFSET + 0.001
        server.append((at, _udp("10.0.3.1", "10.244.1.5", masq, 53, _query(id, name))))
        if fate < 0.02:
            continue
        server.append((at + 0.0005, _udp("10.244.1.5", "10.0.3.1", 53, masq,
                                         _answer(id, name))))
        if fate < 0.03:
            continue
        client.append((t + 0.0025, _udp("10.96.0.10", pod, 53, port, _answer(id, name))))
    c, s = where / f"client-{n}.pcap", where / f"server-{n}.pcap"
    _write(c, client)
    _write(s, server)
    return c, s


CHILD = r"""
import json, sys, time
from pcapdns.analysis import analyze
from pcapdns.correlate import correlate
client, server, what = sys.argv[1:4]
t0 = time.perf_counter()
out = {}
if what == "analyses":
    for p in (client, server):
        a = analyze([p])
        del a
else:
    c = correlate([client], [server])
    out = {"offset": c.clock.offset, "error_bound": c.clock.error_bound,
           "pairs": c.clock.pairs, "fates": dict(c.fates)}
out["seconds"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def run_child(client: Path, server: Path, what: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(client), str(server), what],
                            stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"child ({what}) failed with status {status}")
    result = json.loads(out)
    result["max_rss_mb"] = usage.ru_maxrss / 1024
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pcapdns-correlate-bench-") as tmp:
        for n in args.sizes:
            t0 = time.perf_counter()
            client, server = make_pair(n, Path(tmp))
            made = time.perf_counter() - t0
            base = run_child(client, server, "analyses")
            full = run_child(client, server, "correlate")
            print(f"{n:,} lookups (pair written in {made:.1f} s): two analyses "
                  f"{base['seconds']:.2f} s, {base['max_rss_mb']:.0f} MB; correlate "
                  f"{full['seconds']:.2f} s, {full['max_rss_mb']:.0f} MB; offset "
                  f"{full['offset']:.6f} ± {full['error_bound']:.6f} s from "
                  f"{full['pairs']:,} pairs; fates {full['fates']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
