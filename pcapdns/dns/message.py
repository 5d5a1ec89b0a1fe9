"""One DNS message as the analysis hands it on, and the errors of a message that does not
decode.

The core parses the header and the question of every message (core/src/dns;
``pcapdns._core.parse`` runs it on one message) and builds ``Message`` records for the
lookups it hands to Python; it also decodes the answer records, only when the user asks for
them (``pcapdns._core.answer_section``). Names are in presentation form with RFC 4343
escapes (``\\.`` inside a label, ``\\DDD`` for bytes outside printable ASCII), because
captured names are attacker-controlled and must survive JSON, terminals and HTML unchanged.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pcapdns.errors import Malformed, Truncated

Transport = Literal["udp", "tcp"]


class DnsTruncated(Truncated):
    """The DNS message ends before the header or question it announces."""


class DnsMalformed(Malformed):
    """The DNS message is not well formed (bad label, compression loop, over-long name)."""


class Leg(NamedTuple):
    """A copy of a message seen on another capture interface of the same node (before or
    after kube-proxy's DNAT), which the duplicate filter dropped (docs/analysis.md, "The
    legs of a packet inside a node")."""

    #: Frame number and capture time of the copy.
    frame: int
    time: float
    #: Its capture interface.
    iface: int
    #: Its server-side address: the destination of a query's copy, the source of an
    #: answer's copy.
    address: str


class Tunnel(NamedTuple):
    """The outermost overlay tunnel a message was found in (docs/analysis.md, "Overlay
    tunnels"): its kind and the two nodes it joins."""

    #: "vxlan", "geneve", "ipip", "ip6in4", "ip4in6", "ip6in6", "gre", "erspan", "pptp",
    #: "gre_udp" or "teredo".
    type: str
    #: The outer (underlay) source and destination addresses.
    outer_src: str
    outer_dst: str


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
    #: Its copies on other interfaces of the node, in the order captured (at most 4).
    legs: tuple[Leg, ...] = ()
    #: The outermost tunnel it was decapsulated from, or None when it was not tunnelled.
    tunnel: Tunnel | None = None

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
