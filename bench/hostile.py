#!/usr/bin/env python3
"""Hostile and huge input: crafted captures that once made one stage grow faster than its
input, each run at two sizes so that the growth shows.

Every scenario writes its captures with plain struct-packed pcap records (gzip where the
payloads are long runs of zeros), runs pcapdns on them in a child process and prints the
wall-clock time and the peak RSS (``ru_maxrss`` from ``os.wait4``) of each run, and the
ratio of the larger run to the smaller one. The child runs under an address-space limit
(``ulimit -v``), so a run that would take the machine's memory fails with MemoryError
instead.

    python3 bench/hostile.py all
    python3 bench/hostile.py search tcp-open
    python3 bench/hostile.py timeline --repo /path/to/other/checkout

Standard library only. The scenarios are described in bench/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shlex
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import REPO_ROOT, run_child  # noqa: E402

# -- pcap writing ------------------------------------------------------------------------

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_ETH = bytes(6) + bytes.fromhex("020000000001") + b"\x08\x00"
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")

CLIENT = bytes([10, 244, 1, 5])
SERVER = bytes([169, 254, 20, 10])
T0 = 1_717_000_000  # 2024-05-29T16:26:40Z

UDP, TCP = 17, 6
SYN, PSH_ACK = 0x02, 0x18
MF = 0x2000


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 0,
         frag: int = 0) -> bytes:
    """An IPv4 header (checksum left 0: pcapdns does not check it) and its payload."""
    return _IPV4.pack(0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0, src, dst) + payload


def udp(src: bytes, sport: int, dst: bytes, dport: int, data: bytes) -> bytes:
    return ipv4(src, dst, UDP, _UDP.pack(sport, dport, 8 + len(data), 0) + data)


def tcp(src: bytes, sport: int, dst: bytes, dport: int, seq: int, flags: int,
        data: bytes = b"") -> bytes:
    return ipv4(src, dst, TCP, _TCP.pack(sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
                + data)


class PcapWriter:
    """A classic pcap (microseconds, Ethernet), plain or gzip."""

    def __init__(self, path: str, compress: bool = False) -> None:
        self.path = path
        self._f = gzip.open(path, "wb", compresslevel=1) if compress else open(path, "wb")
        self._f.write(_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.packets = 0

    def add(self, t: float, ip_packet: bytes) -> None:
        sec = int(t)
        self.add_raw(sec, int(round((t - sec) * 1e6)), ip_packet)

    def add_raw(self, sec: int, usec: int, ip_packet: bytes) -> None:
        frame = _ETH + ip_packet
        self._f.write(_RECORD.pack(sec, usec, len(frame), len(frame)))
        self._f.write(frame)
        self.packets += 1

    def close(self) -> None:
        self._f.close()


def qname(name: str) -> bytes:
    return b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"


def dns_query(ident: int, name: str) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname(name) + b"\0\x01\0\x01"


def dns_response(ident: int, name: str, rcode: int) -> bytes:
    answer = b"" if rcode else b"\xc0\x0c\0\x01\0\x01\0\0\0\x1e\0\x04\x0a\x60\x00\x01"
    head = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, 0 if rcode else 1, 0, 0)
    return head + qname(name) + b"\0\x01\0\x01" + answer


# -- scenarios -----------------------------------------------------------------------------
#
# Each maker writes one capture for a size and returns (path, what the size means).


def make_timeline(path: str, span_years: float) -> str:
    """Two DNS queries ``span_years`` apart (at most 136: a classic pcap holds 32-bit
    seconds)."""
    w = PcapWriter(path)
    seconds = min(int(span_years * 365.25 * 86400), 0xFFFFFFFF)
    w.add_raw(0, 0, udp(CLIENT, 40000, SERVER, 53, dns_query(1, "a.example")))
    w.add_raw(seconds, 0, udp(CLIENT, 40001, SERVER, 53, dns_query(2, "b.example")))
    w.close()
    return f"2 queries {seconds / 365.25 / 86400:.3g} years apart"


def make_timeline_pcapng(path: str, span: float) -> str:
    """Two queries ``span`` seconds apart in a pcapng whose interface counts time in whole
    seconds (if_tsresol 10^0) with 64-bit time stamps."""
    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol = struct.pack("<HH", 9, 1) + b"\x00\0\0\0" + struct.pack("<HH", 0, 0)
    idb = block(1, struct.pack("<HHI", 1, 0, 262144) + tsresol)
    with open(path, "wb") as f:
        f.write(shb + idb)
        for i, ticks in enumerate((0, int(span))):
            frame = _ETH + udp(CLIENT, 40000 + i, SERVER, 53, dns_query(i + 1, "a.example"))
            f.write(block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                         len(frame), len(frame)) + frame))
    return f"2 queries {span / 365.25 / 86400:,.0f} years apart (pcapng)"


def make_search(path: str, rate: float, seconds: float = 60.0, clients: int = 1) -> str:
    """``rate`` queries/s from ``clients`` client(s) for ``seconds``, about 20% NXDOMAIN:
    mostly names tried with a namespace's search suffix and never answered under any (they
    stay in the detector's window), a few search-suffix tries of the very next name."""
    rng = random.Random(7)
    w = PcapWriter(path)
    n = int(rate * seconds)
    step = seconds / n
    t = float(T0)
    ident = 0
    i = 0
    while i < n:
        c = rng.randrange(clients)
        client = bytes([10, 244, 2 + c // 250, c % 250 + 1])
        port = rng.randrange(32768, 61000)
        roll = rng.random()
        name = f"svc{rng.randrange(5000)}.example{rng.randrange(7)}.com"
        exchanges: list[tuple[str, int]] = []
        if roll < 0.03:
            exchanges += [(f"{name}.default.svc.cluster.local", 3), (name, 0)]
        elif roll < 0.2:
            exchanges.append((f"{name}.ns{rng.randrange(20)}.svc.cluster.local", 3))
        else:
            exchanges.append((name, 0))
        for q, rcode in exchanges:
            ident = (ident + 1) & 0xFFFF
            w.add(t, udp(client, port, SERVER, 53, dns_query(ident, q)))
            w.add(t + 0.0005, udp(SERVER, 53, client, port, dns_response(ident, q, rcode)))
            t += step
            i += 1
    w.close()
    return f"{rate:g} queries/s, {seconds:g} s, {clients} client(s)"


def make_tcp_open(path: str, flows: int) -> str:
    """``flows`` connections that each send 60 kB of a message announced as 65535 bytes and
    never send the rest, nor FIN."""
    w = PcapWriter(path, compress=True)
    head = struct.pack("!HHHHHHH", 65535, 1, 0x0100, 1, 0, 0, 0)
    chunk = bytes(7_500)
    t = float(T0)
    for f in range(flows):
        src = bytes([10, 245, f >> 8 & 0xFF, f & 0xFF])
        sport = 10_000 + f % 50_000
        w.add(t, tcp(src, sport, SERVER, 53, 1000, SYN))
        seq = 1001
        for k in range(8):
            data = head + chunk[len(head):] if k == 0 else chunk
            w.add(t, tcp(src, sport, SERVER, 53, seq, PSH_ACK, data))
            seq += len(data)
        t += 0.0005
    w.close()
    return f"{flows} unfinished connections of 60 kB"


def make_tcp_ahead(path: str, flows: int) -> str:
    """``flows`` connections whose first data segment never arrives: 32 segments of 60 kB
    wait beyond the gap in each."""
    w = PcapWriter(path, compress=True)
    chunk = bytes(60_000)
    t = float(T0)
    for f in range(flows):
        src = bytes([10, 246, f >> 8 & 0xFF, f & 0xFF])
        sport = 10_000 + f
        w.add(t, tcp(src, sport, SERVER, 53, 1000, SYN))
        seq = 1001 + 100  # the first 100 bytes are lost
        for _ in range(32):
            w.add(t, tcp(src, sport, SERVER, 53, seq, PSH_ACK, chunk))
            seq += len(chunk)
        t += 0.001
    w.close()
    return f"{flows} connections x 32 out-of-order segments of 60 kB"


def make_fragments(path: str, pieces: int) -> str:
    """Four IP IDs, ``pieces`` fragments each of 16 kB at distinct offsets, none the last."""
    w = PcapWriter(path, compress=True)
    data = bytes(16_000)
    t = float(T0)
    for i in range(pieces):
        for ident in range(4):
            w.add(t, ipv4(SERVER, CLIENT, UDP, data, ident=ident, frag=MF | (i % 8000)))
        t += 0.0001
    w.close()
    return f"4 datagrams x {pieces} fragments of 16 kB"


def make_fragments_order(path: str, per_datagram: float, last_first: bool = True,
                         datagrams: int = 4) -> str:
    """``datagrams`` UDP responses of 64 kB, each cut into ``per_datagram`` fragments; the
    last fragment first (as Linux sends them) or in order."""
    size = -(-65_008 // int(per_datagram))  # rounded up ...
    size += -size % 8  # ... to a multiple of 8 bytes, as fragment offsets count
    w = PcapWriter(path)
    body = dns_response(1, "big.example", 0)
    payload = _UDP.pack(53, 40000, 8 + 65_000, 0) + body + bytes(65_000 - len(body))
    cuts = list(range(0, len(payload), size))
    t = float(T0)
    for d in range(datagrams):
        order = cuts[-1:] + cuts[:-1] if last_first else cuts
        for off in order:
            more = MF if off + size < len(payload) else 0
            w.add(t, ipv4(SERVER, CLIENT, UDP, payload[off:off + size], ident=d,
                          frag=more | off // 8))
        t += 0.01
    w.close()
    return f"{datagrams} datagrams of 64 kB in {len(cuts)} fragments, " + (
        "last first" if last_first else "in order")


def make_same_query(path: str, servers: float) -> str:
    """One query (same client port, ID and name) sent to ``servers`` servers, then each
    server's answer: every answer once searched the whole pending list."""
    n = int(servers)
    w = PcapWriter(path)
    addrs = [bytes([10, 1, i >> 8 & 255, i & 255]) for i in range(n)]
    for i, server in enumerate(addrs):
        w.add(T0 + i * 1e-4, udp(CLIENT, 40000, server, 53, dns_query(7, "same.example")))
    for i, server in enumerate(addrs):
        w.add(T0 + 2 + i * 1e-4, udp(server, 53, CLIENT, 40000,
                                     dns_response(7, "same.example", 0)))
    w.close()
    return f"{n:,} copies of one query to {n:,} servers, each answered"


def make_unanswered(path: str, count: float, rate: float = 5000.0) -> str:
    """``count`` queries at ``rate`` a second, none answered (an unreachable server)."""
    n = int(count)
    w = PcapWriter(path)
    server = bytes([10, 96, 0, 10])
    for i in range(n):
        w.add(T0 + i / rate, udp(CLIENT, 1024 + i % 60000, server, 53,
                                 dns_query(i & 0xFFFF, f"n{i}.example")))
    w.close()
    return f"{n:,} unanswered queries at {rate:,.0f}/s"


def make_burst(path: str, count: float) -> str:
    """``count`` queries and their answers, all with one time stamp (nothing closes by
    time)."""
    n = int(count)
    w = PcapWriter(path)
    server = bytes([10, 96, 0, 10])
    for i in range(n):
        w.add(T0, udp(CLIENT, 1024 + i % 60000, server, 53, dns_query(i & 0xFFFF, f"n{i}.x")))
        w.add(T0, udp(server, 53, CLIENT, 1024 + i % 60000, dns_response(i & 0xFFFF, f"n{i}.x", 0)))
    w.close()
    return f"{n:,} queries and answers with one time stamp"


@dataclass(frozen=True)
class Scenario:
    name: str
    #: What the scenario is about (for --help).
    what: str
    make: Callable[[str, float], str]
    #: The two sizes; the second is ten times the first.
    sizes: tuple[float, float]
    #: ``analyze`` (JSON to /dev/null) or ``report`` (HTML, charts included).
    command: str = "analyze"
    suffix: str = ".pcap"


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("timeline", "capture span vs. timeline buckets", make_timeline,
             (13.6, 136.0), "report"),
    Scenario("timeline-pcapng", "64-bit pcapng time stamps in seconds", make_timeline_pcapng,
             (2.5e10, 2.5e11), "report", ".pcapng"),
    Scenario("search", "search expansion, one busy client", make_search, (30, 300)),
    Scenario("search-spread", "the same load over 200 clients",
             lambda p, r: make_search(p, r, clients=200), (30, 300)),
    Scenario("tcp-open", "TCP connections that never complete", make_tcp_open,
             (1_600, 16_000), suffix=".pcap.gz"),
    Scenario("tcp-ahead", "TCP segments waiting beyond a gap", make_tcp_ahead,
             (60, 600), suffix=".pcap.gz"),
    Scenario("fragments", "IP fragments that never complete", make_fragments,
             (800, 8_000), suffix=".pcap.gz"),
    Scenario("fragments-last-first", "64 kB datagrams, last fragment first",
             make_fragments_order, (813, 8_130)),
    Scenario("fragments-in-order", "64 kB datagrams, fragments in order",
             lambda p, n: make_fragments_order(p, n, last_first=False), (813, 8_130)),
    Scenario("same-query", "one query to many servers (the matcher's pending index)",
             make_same_query, (2_000, 20_000)),
    Scenario("unanswered", "unanswered queries at 5,000/s (memory in flight)",
             make_unanswered, (60_000, 600_000)),
    Scenario("burst", "queries and answers with one time stamp", make_burst,
             (10_000, 100_000)),
)}


def command(s: Scenario, pcap: str, workdir: str) -> list[str]:
    if s.command == "report":
        tail = ["report", pcap, "-o", os.path.join(workdir, "report.html")]
    else:
        tail = ["analyze", pcap, "--format", "json", "--output", os.devnull]
    return [sys.executable, "-m", "pcapdns", *tail]


def run(s: Scenario, size: float, args: argparse.Namespace, workdir: str) -> dict:
    pcap = os.path.join(workdir, f"{s.name}-{size:g}{s.suffix}")
    what = s.make(pcap, size)
    argv = command(s, pcap, workdir)
    # From the work directory, so that ``-m pcapdns`` finds the checkout on PYTHONPATH and
    # not a pcapdns package in the current directory.
    script = (f"cd {shlex.quote(workdir)} && ulimit -v {args.memory_limit * 1024} && "
              'exec "$0" "$@"')
    limited = ["/bin/sh", "-c", script, *argv]
    env = dict(os.environ, PYTHONPATH=args.repo)
    result = run_child(limited, os.devnull, args.timeout, env)
    row = {
        "scenario": s.name,
        "size": size,
        "input": what,
        "bytes": os.path.getsize(pcap),
        "seconds": result.seconds,
        "peak_rss_mib": result.max_rss_kib / 1024 if result.max_rss_kib else None,
        "status": result.status,
        "command": shlex.join(["pcapdns", *argv[3:]]).replace(workdir + "/", ""),
    }
    if not args.keep:
        os.unlink(pcap)
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| scenario | input | file bytes | seconds | peak RSS MiB | status |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        secs = f"{r['seconds']:.2f}" if r["seconds"] is not None else "-"
        rss = f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] is not None else "-"
        lines.append(f"| {r['scenario']} | {r['input']} | {r['bytes']:,} | {secs} | {rss} | "
                     f"{r['status']} |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> Iterator[str]:
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["scenario"], []).append(r)
    for name, (a, b, *_) in ((k, v) for k, v in by.items() if len(v) >= 2):
        if a["seconds"] and b["seconds"] and a["peak_rss_mib"] and b["peak_rss_mib"]:
            yield (f"{name}: 10x input -> {b['seconds'] / a['seconds']:.1f}x time, "
                   f"{b['peak_rss_mib'] / a['peak_rss_mib']:.1f}x peak RSS")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="scenarios: " + "; ".join(f"{s.name}: {s.what}" for s in SCENARIOS.values()),
    )
    p.add_argument("scenario", nargs="+", choices=[*SCENARIOS, "all"])
    p.add_argument("--repo", default=REPO_ROOT,
                   help="checkout of pcapdns to run (default: this one)")
    p.add_argument("--size", type=float, action="append",
                   help="run this size instead of the scenario's two (repeatable)")
    p.add_argument("--memory-limit", type=int, default=3072, metavar="MIB",
                   help="address-space limit of each run (default 3072 MiB)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    p.add_argument("--keep", action="store_true", help="keep the captures")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    names = list(SCENARIOS) if "all" in args.scenario else args.scenario
    workdir = tempfile.mkdtemp(prefix="pcapdns-hostile-")
    rows = []
    for name in names:
        s = SCENARIOS[name]
        for size in args.size or s.sizes:
            row = run(s, size, args, workdir)
            print(f"{row['scenario']:22} {row['input']:55} "
                  f"{row['seconds'] or 0:8.2f} s {row['peak_rss_mib'] or 0:7.0f} MiB  "
                  f"{row['status']}", file=sys.stderr, flush=True)
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows))
        for line in ratios(rows):
            print(line)
    if args.keep:
        print(f"captures kept in {workdir}", file=sys.stderr)
    else:
        for left in os.listdir(workdir):
            os.unlink(os.path.join(workdir, left))
        os.rmdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
