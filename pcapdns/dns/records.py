"""Deep decoding of a response's answer section, for evidence only.

The hot path decodes just the header and question (pcapdns.dns.message). When a user asks
for transactions, the answer section is decoded here, record by record: the questions are
skipped, then each answer's owner, type, TTL and rdata are read with every length checked.
Only the answer section is read, so a record type nobody decodes in the authority or
additional section cannot spoil it, and an answer whose rdata does not decode spoils only
its own line.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pcapdns.dns import names, rdata
from pcapdns.dns.message import DnsMalformed, DnsTruncated, read_name

#: At most this many answer records are decoded and shown per response.
MAX_RECORDS = 20

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # TYPE, CLASS, TTL, RDLENGTH (RFC 1035 4.1.3)


@dataclass(frozen=True, slots=True)
class AnswerSection:
    """The decoded answer section of one response."""

    #: Zone-file-like lines, ``name TTL TYPE data``, in wire order, at most MAX_RECORDS.
    #: A record whose rdata does not decode is kept as ``name TTL TYPE \\# len hex ;
    #: malformed: reason``.
    records: tuple[str, ...]
    #: The first problem met in the section (a malformed record, or the damage that stopped
    #: the walk before the announced count), prefixed with the record's position; None when
    #: every record read decoded.
    error: str | None


def answer_section(data: bytes) -> AnswerSection:
    """Decode the answer section of the DNS message ``data``. Never raises: damage ends
    the list early and is described in ``error``."""
    if len(data) < 12:
        return AnswerSection((), "message shorter than the 12-byte header")
    _id, _flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(data, 0)
    try:
        pos = _skip_questions(data, qdcount)
    except (DnsTruncated, DnsMalformed) as e:
        return AnswerSection((), f"question section: {e}")
    out: list[str] = []
    first_error: str | None = None
    try:
        for _ in range(min(ancount, MAX_RECORDS)):
            line, pos, problem = _record(data, pos)
            out.append(line)
            if problem and first_error is None:
                first_error = f"answer {len(out)}: {problem}"
    except (DnsTruncated, DnsMalformed) as e:
        return AnswerSection(tuple(out), first_error or f"answer {len(out) + 1}: {e}")
    return AnswerSection(tuple(out), first_error)


def _skip_questions(data: bytes, qdcount: int) -> int:
    pos = 12
    for _ in range(qdcount):
        _name, pos = read_name(data, pos)
        pos += 4  # QTYPE, QCLASS
        if pos > len(data):
            raise DnsTruncated("question ends before its type and class")
    return pos


def _record(data: bytes, pos: int) -> tuple[str, int, str | None]:
    """One resource record at ``pos``: its line, the offset after it, and the reason its
    rdata did not decode (None when it did).

    Raises:
        DnsTruncated, DnsMalformed: the owner name or the fixed fields are damaged, or the
            rdata runs past the message; the records after it cannot be found.
    """
    owner, pos = read_name(data, pos)
    if pos + _RR_FIXED.size > len(data):
        raise DnsTruncated("record ends before its type, class, TTL and length")
    rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, pos)
    pos += _RR_FIXED.size
    end = pos + rdlength
    if end > len(data):
        raise DnsTruncated(f"{rdlength}-byte rdata runs past the end of the message")
    head = f"{owner} {ttl} {names.qtype_name(rtype)}"
    try:
        return f"{head} {rdata.present(data, pos, end, rtype, rclass)}", end, None
    except (DnsTruncated, DnsMalformed) as e:
        problem = f"{names.qtype_name(rtype)} rdata: {e}"
        return f"{head} {rdata.generic(data[pos:end])} ; malformed: {e}", end, problem
