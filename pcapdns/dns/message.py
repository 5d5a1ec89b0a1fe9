"""One DNS message as the analysis hands it on, and the name reader of its records.

The core parses the header and the question of every message (core/src/dns;
``pcapdns._core.parse`` runs it on one message) and builds ``Message`` records for the
lookups it hands to Python. ``read_name`` reads the names of the answer records, which are
decoded only when the user asks for them (pcapdns.dns.records). Names are in presentation
form with RFC 4343 escapes (``\\.`` inside a label, ``\\DDD`` for bytes outside printable
ASCII), because captured names are attacker-controlled and must survive JSON, terminals
and HTML unchanged.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pcapdns.errors import Malformed, Truncated

Transport = Literal["udp", "tcp"]

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
