"""Responses to ``example.com A IN`` with crafted answer records, and what the answer-record
decoder (``pcapdns._core.answer_section``, core/src/dns/records.rs) makes of one record."""

from __future__ import annotations

import struct

from pcapdns import _core

QUESTION = b"\x07example\x03com\x00" + struct.pack("!HH", 1, 1)  # example.com A IN
OWNER = b"\xc0\x0c"  # a pointer to the question's name


def header(qdcount: int = 1, ancount: int = 0, nscount: int = 0, flags: int = 0x8180) -> bytes:
    return struct.pack("!HHHHHH", 0x1234, flags, qdcount, ancount, nscount, 0)


def rr(rtype: int, rdata: bytes, owner: bytes = OWNER, rclass: int = 1, ttl: int = 300) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def response(*answers: bytes, authority: tuple[bytes, ...] = ()) -> bytes:
    return (header(ancount=len(answers), nscount=len(authority)) + QUESTION
            + b"".join(answers) + b"".join(authority))


def show(rtype: int, rdata: bytes, rclass: int = 1) -> str:
    """The presentation form of ``rdata`` as the one answer of a response: its line after
    ``example.com 300 TYPE``."""
    section = _core.answer_section(response(rr(rtype, rdata, rclass=rclass)))
    assert section.error is None, section
    [line] = section.records
    return line.split(" ", 3)[3]


def problem(rtype: int, rdata: bytes, rclass: int = 1) -> str:
    """Why ``rdata`` does not decode as the one answer of a response. The record is then
    shown in RFC 3597 generic form with the reason, and the reason is the section's error."""
    section = _core.answer_section(response(rr(rtype, rdata, rclass=rclass)))
    [line] = section.records
    head, _, reason = line.partition(" ; malformed: ")
    generic = f"\\# {len(rdata)} {rdata.hex()}" if rdata else "\\# 0"
    assert head.split(" ", 3)[3] == generic, line
    assert section.error == f"answer 1: {head.split(' ')[2]} rdata: {reason}", section
    return reason
