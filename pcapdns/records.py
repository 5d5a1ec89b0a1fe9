"""What the core's frame decoder hands on, as Python records: DNS payloads cut out of
frames, and ICMP errors that quote DNS.

The analysis never builds these (the core passes them from stage to stage itself); the
decoder's binding, ``pcapdns._core.FrameDecoder``, returns them to tests and tools. They
are NamedTuples, as the other per-packet records (pcapdns.dns.message.Message).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pcapdns.dns.message import Transport


class Payload(NamedTuple):
    """One DNS message's bytes as carried by UDP or by a reassembled TCP stream."""

    #: Frame number (1-based in the merged capture); for TCP, the segment that completed it.
    frame: int
    #: Capture time of that frame, seconds since the epoch.
    time: float
    #: Capture interface: SLL2 ifindex, pcapng interface id, else 0.
    iface: int
    #: "udp" or "tcp".
    transport: Transport
    #: Source and destination address in text form, and ports.
    src: str
    sport: int
    dst: str
    dport: int
    #: The DNS message (for TCP, without the 2-byte length prefix).
    data: bytes


class IcmpQuote(NamedTuple):
    """An ICMP/ICMPv6 destination-unreachable error that quotes a DNS datagram.

    The kernel sends it when a datagram reaches a closed port: typically a DNS response that
    arrived after the client had given up and closed its socket. It is evidence of a late
    answer, never a response itself.
    """

    frame: int
    time: float
    iface: int
    #: Who sent the ICMP error (the host whose port was closed).
    reporter: str
    #: ICMP type and code ((3, 3) is IPv4 port unreachable; (1, 4) IPv6).
    icmp_type: int
    icmp_code: int
    #: The quoted datagram's addresses and ports.
    src: str
    sport: int
    dst: str
    dport: int
    #: As much of the quoted DNS message as the error carries (may be cut short).
    data: bytes
