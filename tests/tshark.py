"""What tshark sees in a capture: DNS message counts and query/response pairs.

Used by tests/test_tshark_compare.py; runs only where tshark is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TSHARK = shutil.which("tshark")


@dataclass(frozen=True)
class TsharkView:
    #: DNS messages on the DNS port (not in ICMP errors), queries and responses.
    queries: int
    responses: int
    #: (query frame, response frame) pairs from dns.response_in, two-pass.
    pairs: frozenset[tuple[int, int]]


def tshark_view(path: Path, port: int = 53) -> TsharkView:
    assert TSHARK is not None
    # flannel's VXLAN port: tshark reads only the IANA port 4789 as VXLAN, pcapdns both.
    decode_as = ["-d", "udp.port==8472,vxlan"]
    if port != 53:
        decode_as += ["-d", f"udp.port=={port},dns", "-d", f"tcp.port=={port},dns"]
    out = subprocess.run(
        [TSHARK, "-n", "-2", "-r", str(path), *decode_as,
         "-Y", f"dns && !icmp && !icmpv6 && (udp.port=={port} || tcp.port=={port})",
         "-T", "fields", "-E", "separator=\t", "-e", "frame.number",
         "-e", "dns.flags.response", "-e", "dns.response_in"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    queries = responses = 0
    pairs = set()
    for line in out.splitlines():
        frame, flags, response_in = (line.split("\t") + ["", "", ""])[:3]
        for f in flags.split(","):
            if f in ("1", "True"):
                responses += 1
            elif f in ("0", "False"):
                queries += 1
        for r in filter(None, response_in.split(",")):
            pairs.add((int(frame), int(r)))
    return TsharkView(queries, responses, frozenset(pairs))
