"""Deep decoding of a response's answer section, for evidence only.

The hot path decodes just the header and question (pcapdns.dns.message). When a user asks
for transactions, the answers are decoded here with dpkt's full DNS classes: slower, but
only for the messages printed.
"""

from __future__ import annotations

import socket
from struct import error as struct_error  # dpkt raises it on short data

import dpkt

from pcapdns.dns import names

MAX_RECORDS = 20


def answer_records(data: bytes) -> list[str] | None:
    """The answer section as zone-file-like lines ("name TTL TYPE data"), at most
    MAX_RECORDS of them; None when dpkt cannot decode the message."""
    try:
        msg = dpkt.dns.DNS(data)
    except (dpkt.UnpackError, IndexError, ValueError, struct_error):
        return None
    out = []
    for rr in msg.an[:MAX_RECORDS]:
        out.append(f"{rr.name} {rr.ttl} {names.qtype_name(rr.type)} {_rdata(rr)}")
    return out


def _rdata(rr: dpkt.dns.DNS.RR) -> str:
    try:
        if rr.type == 1 and len(rr.rdata) == 4:
            return socket.inet_ntop(socket.AF_INET, rr.rdata)
        if rr.type == 28 and len(rr.rdata) == 16:
            return socket.inet_ntop(socket.AF_INET6, rr.rdata)
        if rr.type in (5, 12, 2):  # CNAME, PTR, NS
            target = getattr(rr, "cname", None) or getattr(rr, "ptrname", None)
            target = target or getattr(rr, "nsname", None)
            if target:
                return f"{target}."
        if rr.type == 16:  # TXT
            return " ".join(repr(t)[1:] if isinstance(t, bytes) else str(t)
                            for t in getattr(rr, "text", []))
        if rr.type == 33:  # SRV
            return f"{rr.priority} {rr.weight} {rr.port} {rr.srvname}."
    except (AttributeError, TypeError, ValueError):
        pass
    return rr.rdata.hex()

