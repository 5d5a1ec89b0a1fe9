"""Bounded reads inside one record's rdata, and the character-string presentation."""

from __future__ import annotations

import struct

from pcapdns.dns.message import DnsTruncated, read_name

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class RdataReader:
    """A cursor over one record's rdata, ``msg[pos:end]``, that never reads past ``end``."""

    __slots__ = ("end", "msg", "pos")

    def __init__(self, msg: bytes, pos: int, end: int) -> None:
        self.msg, self.pos, self.end = msg, pos, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise DnsTruncated(f"{what} runs past the rdata")
        self.pos += n
        return self.msg[self.pos - n : self.pos]

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int(_U16.unpack(self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self.take(4, what))[0])

    def rest(self) -> bytes:
        return self.take(self.end - self.pos, "rest")

    @property
    def left(self) -> int:
        return self.end - self.pos

    def name(self, what: str = "name") -> str:
        """A domain name with its final dot ("." for the root)."""
        if self.pos >= self.end:
            raise DnsTruncated(f"{what} runs past the rdata")
        try:
            text, after = read_name(self.msg, self.pos)
        except DnsTruncated as e:
            raise DnsTruncated(f"{what}: {e}") from None
        if after > self.end:
            raise DnsTruncated(f"{what} runs past the rdata")
        self.pos = after
        return text if text == "." else text + "."

    def string(self, what: str = "character-string") -> str:
        """A <character-string> (RFC 1035 3.3), quoted for presentation."""
        return quote(self.take(self.u8(what), what))

    def strings(self) -> str:
        """One or more character-strings filling the rdata (TXT, SPF, HINFO's pair...)."""
        out = [self.string()]
        while self.left:
            out.append(self.string())
        return " ".join(out)


def quote(raw: bytes) -> str:
    """Quoted presentation of a character-string: ``"`` and ``\\`` escaped, bytes outside
    printable ASCII as ``\\DDD`` (RFC 1035 5.1), so the text survives JSON and terminals."""
    out = []
    for b in raw:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'
