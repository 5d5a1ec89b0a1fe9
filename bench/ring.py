#!/usr/bin/env python3
"""A whole tcpdump ring, as cloud troubleshooting guides capture it, analyzed as one capture.

    tcpdump -i any port 53 -C 20 -W 200    ->  200 files of 20 MB, 4 GB in all

``bench/ring.py`` writes such a ring (``dns.pcap000`` .. ``dns.pcap199``) from the
benchmark's synthetic Kubernetes traffic: the generator of ``bench/bench.py`` writes one
file of ``--file-mb`` megabytes, and each further file repeats its records with the time
stamps moved on by the file's span, so that the files follow each other as a ring's do and
the whole is written in seconds. Then it runs ``pcapdns analyze RING --format json`` on the
directory and prints the wall-clock time, the peak RSS (``ru_maxrss``) and the packets/s.

    python3 bench/ring.py                      # 200 x 20 MB
    python3 bench/ring.py --files 20           # a tenth of it, to see the growth
    python3 bench/ring.py --dir /big/disk      # where the ring goes (needs its size free)

Standard library only. The ring is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import REPO_ROOT, CaptureGenerator, run_child  # noqa: E402

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


def first_file(path: str, megabytes: float, seed: int) -> tuple[int, float]:
    """Write the first ring file, about ``megabytes`` MB; returns (records, span in s)."""
    # The generator writes an exact number of packets; about 125 bytes each on average.
    packets = int(megabytes * 1e6 / 125)
    CaptureGenerator(seed).write(path, packets)
    with open(path, "rb") as f:
        data = f.read()
    first = last = None
    off, n = 24, 0
    while off + 16 <= len(data):
        sec, usec, caplen, _ = _RECORD.unpack_from(data, off)
        t = sec + usec / 1e6
        first = t if first is None else first
        last = t
        off += 16 + caplen
        n += 1
    assert first is not None and last is not None
    return n, last - first + 0.001


def shifted(src: str, dst: str, shift_us: int) -> None:
    """Copy the pcap ``src`` to ``dst`` with every time stamp moved on by ``shift_us``."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    off = 24
    while off + 16 <= len(data):
        sec, usec, caplen, orig = _RECORD.unpack_from(data, off)
        t = sec * 1_000_000 + usec + shift_us
        _RECORD.pack_into(data, off, t // 1_000_000, t % 1_000_000, caplen, orig)
        off += 16 + caplen
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=200, help="ring files (default 200)")
    p.add_argument("--file-mb", type=float, default=20.0, help="MB a file (default 20)")
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the ring")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds for the analysis")
    p.add_argument("--keep", action="store_true", help="keep the ring afterwards")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)

    ring = tempfile.mkdtemp(prefix="pcapdns-ring-", dir=args.dir)
    try:
        digits = len(str(args.files - 1))
        names = [os.path.join(ring, f"dns.pcap{i:0{digits}d}") for i in range(args.files)]
        records, span = first_file(names[0], args.file_mb, args.seed)
        for i, name in enumerate(names[1:], 1):
            shifted(names[0], name, int(i * span * 1_000_000))
        size = sum(os.path.getsize(n) for n in names)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            x for x in (REPO_ROOT, env.get("PYTHONPATH", "")) if x)
        out = os.path.join(ring, "analysis.json")
        argv_ = [sys.executable, "-m", "pcapdns", "analyze", ring, "--format", "json"]
        result = run_child(argv_, out, args.timeout, env)
        figures = {
            "files": args.files,
            "bytes": size,
            "packets": records * args.files,
            "span_s": round(span * args.files, 1),
            "seconds": round(result.seconds, 1) if result.ok and result.seconds else None,
            "peak_rss_mib": round(result.max_rss_kib / 1024) if result.max_rss_kib else None,
            "status": result.status or "ok",
        }
        if result.ok:
            with open(out) as f:
                summary = json.load(f)["summary"]
            figures["lookups"] = summary["lookups"]
            figures["packets_per_s"] = round(figures["packets"] / (result.seconds or 1.0))
        if args.json:
            print(json.dumps(figures, indent=2))
        else:
            for k, v in figures.items():
                print(f"{k:14} {v:,}" if isinstance(v, int) else f"{k:14} {v}")
        return 0 if result.ok else 1
    finally:
        if args.keep:
            print(f"ring kept in {ring}", file=sys.stderr)
        else:
            shutil.rmtree(ring, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
