"""Stage 3: DNS payload bytes -> a DNS message (header and question).

Only the header and the question are decoded on the hot path (RFC 1035 section 4.1), with
``struct`` at known offsets. Names are returned in presentation form with RFC 4343 escapes
(``\\.`` inside a label, ``\\DDD`` for bytes outside printable ASCII), because captured names
are attacker-controlled and must survive JSON, terminals and HTML unchanged.
"""

from __future__ import annotations

import struct
from typing import Literal, NamedTuple

from pcapdns.errors import Malformed, Truncated
from pcapdns.records import Payload

Transport = Literal["udp", "tcp"]

_HEADER = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")

MAX_NAME = 255
MAX_POINTERS = 32

# Printable ASCII except the two characters that need escaping in a label.
_SAFE = bytes(c for c in range(0x21, 0x7F) if c not in (0x2E, 0x5C))
_NO_DELETE = bytes(256)


class DnsTruncated(Truncated):
    """The DNS message ends before the header or question it announces."""


class DnsMalformed(Malformed):
    """The DNS message is not well formed (bad label, compression loop, over-long name)."""


class Message(NamedTuple):
    """One DNS message as seen on the wire.

    A NamedTuple, not a dataclass: one is built per DNS packet, and a tuple is immutable
    and much cheaper to build.
    """

    #: Frame number in the merged capture (1-based).
    frame: int
    #: Capture time, seconds since the epoch.
    time: float
    #: Capture interface (SLL2 ifindex, pcapng interface id, else 0).
    iface: int
    #: "udp" or "tcp".
    transport: Transport
    src: str
    sport: int
    dst: str
    dport: int
    #: DNS header ID.
    id: int
    #: The 16-bit flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    flags: int
    #: Question and answer section counts from the header.
    qdcount: int
    ancount: int
    #: Question name in presentation form without the final dot ("." for the root), or
    #: None when the message has no question.
    qname: str | None
    #: Question type and class (0 without a question).
    qtype: int
    qclass: int
    #: The whole DNS message, for duplicate detection and deep decoding.
    data: bytes

    @property
    def is_response(self) -> bool:
        return bool(self.flags & 0x8000)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def tc(self) -> bool:
        return bool(self.flags & 0x0200)


def parse(p: Payload) -> Message:
    """Decode the header and first question of the DNS message in ``p``.

    Raises:
        DnsTruncated: fewer than 12 bytes, or the question runs past the end.
        DnsMalformed: a bad label type, a compression loop or forward pointer, or a name
            longer than 255 bytes.
    """
    data = p.data
    if len(data) < 12:
        raise DnsTruncated(f"{len(data)} bytes, shorter than the 12-byte DNS header")
    ident, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(data, 0)
    if qdcount:
        qname, pos = _plain_name(data) or read_name(data, 12)
        if pos + 4 > len(data):
            raise DnsTruncated("question ends before its type and class")
        qtype, qclass = _QTAIL.unpack_from(data, pos)
    else:
        qname, qtype, qclass = None, 0, 0
    return Message(
        p.frame, p.time, p.iface, p.transport, p.src, p.sport, p.dst, p.dport,
        ident, flags, qdcount, ancount, qname, qtype, qclass, data,
    )


_SAFE_OR_DOT = _SAFE + b"."


def _plain_name(data: bytes) -> tuple[str, int] | None:
    """Fast path for the usual question name: uncompressed, printable, no escapes.

    Returns None for anything else (compression, odd bytes, errors), and the caller then
    takes the general ``read_name`` path, which also raises the precise error.
    """
    pos = 12
    n = len(data)
    labels: list[bytes] = []
    while pos < n:
        c = data[pos]
        if c == 0:
            if not labels:
                return None
            name = b".".join(labels)
            if (
                len(name) > 253
                or name.translate(_NO_DELETE, _SAFE_OR_DOT)
                or name.count(b".") != len(labels) - 1
            ):
                return None
            return name.decode("ascii"), pos + 1
        if c > 63:
            return None
        labels.append(data[pos + 1 : pos + 1 + c])
        pos += 1 + c
    return None


def read_name(data: bytes, pos: int) -> tuple[str, int]:
    """Read a possibly compressed name at ``pos``; return it and the offset after it.

    Raises:
        DnsTruncated: the name runs past the end of the message.
        DnsMalformed: reserved label types, a compression loop (more than MAX_POINTERS
            jumps), or more than 255 bytes.
    """
    labels: list[str] = []
    # The 255-byte limit counts the wire form, final zero byte included (RFC 1035 2.3.4).
    length = 1
    end = -1
    jumps = 0
    n = len(data)
    while True:
        if pos >= n:
            raise DnsTruncated("name runs past the end of the message")
        c = data[pos]
        if c == 0:
            pos += 1
            break
        if c & 0xC0 == 0xC0:
            if pos + 1 >= n:
                raise DnsTruncated("compression pointer cut off")
            target = ((c & 0x3F) << 8) | data[pos + 1]
            # RFC 1035 4.1.4 means pointers to point backwards, but real servers and
            # crafted captures also point forwards; the jump cap is what stops loops.
            jumps += 1
            if jumps > MAX_POINTERS or target == pos:
                raise DnsMalformed("compression pointer loop")
            if end < 0:
                end = pos + 2
            pos = target
            continue
        if c & 0xC0:
            raise DnsMalformed(f"reserved label type 0x{c & 0xC0:02x}")
        label = data[pos + 1 : pos + 1 + c]
        if len(label) < c:
            raise DnsTruncated("label runs past the end of the message")
        length += c + 1
        if length > MAX_NAME:
            raise DnsMalformed("name longer than 255 bytes")
        if label.translate(_NO_DELETE, _SAFE):
            labels.append(_escape(label))
        else:
            labels.append(label.decode("ascii"))
        pos += 1 + c
    return (".".join(labels) if labels else "."), (end if end >= 0 else pos)


def _escape(label: bytes) -> str:
    out = []
    for b in label:
        if b in (0x2E, 0x5C):
            out.append("\\" + chr(b))
        elif 0x21 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)
