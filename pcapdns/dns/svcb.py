"""SVCB and HTTPS rdata (RFC 9460 section 2.2) in presentation form.

``priority target key=value ...``. Each SvcParam's length is checked against its key's
format, and keys must be strictly increasing (RFC 9460 2.2); anything else raises
``DnsMalformed`` so the record is shown in generic form with the reason.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable

from pcapdns.dns.message import DnsMalformed
from pcapdns.dns.wire import RdataReader, quote

#: SvcParamKeys registry (RFC 9460 14.3.2, RFC 9461 for dohpath, RFC 9540 for ohttp).
KEYS: dict[int, str] = {
    0: "mandatory", 1: "alpn", 2: "no-default-alpn", 3: "port", 4: "ipv4hint", 5: "ech",
    6: "ipv6hint", 7: "dohpath", 8: "ohttp",
}

# Characters that need no escaping inside a value list item (RFC 9460 appendix A.1).
_PLAIN = frozenset(range(0x21, 0x7F)) - {ord(c) for c in ',\\"'}


def svcb(r: RdataReader) -> str:
    """Read the whole SVCB/HTTPS rdata from ``r``.

    Raises:
        DnsTruncated: a field or a SvcParam value runs past the rdata.
        DnsMalformed: keys out of order, or a value of the wrong length for its key.
    """
    out = [str(r.u16("SvcPriority")), r.name("TargetName")]
    last = -1
    while r.left:
        key = r.u16("SvcParamKey")
        if key <= last:
            raise DnsMalformed(f"SvcParamKey {key} after {last}: keys must increase")
        last = key
        value = r.take(r.u16("SvcParam length"), f"SvcParam {_key_name(key)}")
        out.append(_param(key, value))
    return " ".join(out)


def _param(key: int, value: bytes) -> str:
    name = _key_name(key)
    fmt = _FORMATS.get(key)
    if fmt is not None:
        text = fmt(value)
        return f"{name}={text}" if text else name
    return f"{name}={quote(value)}" if value else name


def _key_name(key: int) -> str:
    return KEYS.get(key, f"key{key}")


def _keys(value: bytes) -> str:
    return ",".join(_key_name(k) for k in _u16s(value, "mandatory"))


def _alpn(value: bytes) -> str:
    ids = []
    pos = 0
    while pos < len(value):
        n = value[pos]
        item = value[pos + 1 : pos + 1 + n]
        if n == 0 or len(item) < n:
            raise DnsMalformed("alpn id empty or longer than its value")
        ids.append("".join(chr(b) if b in _PLAIN else f"\\{b:03d}" for b in item))
        pos += 1 + n
    if not ids:
        raise DnsMalformed("alpn without an id")
    return ",".join(ids)


def _empty(key: str) -> Callable[[bytes], str]:
    def fmt(value: bytes) -> str:
        if value:
            raise DnsMalformed(f"{key} has a {len(value)}-byte value, must be empty")
        return ""

    return fmt


def _port(value: bytes) -> str:
    if len(value) != 2:
        raise DnsMalformed(f"port value is {len(value)} bytes, not 2")
    return str(int.from_bytes(value, "big"))


def _hints(family: socket.AddressFamily, size: int) -> Callable[[bytes], str]:
    def fmt(value: bytes) -> str:
        if not value or len(value) % size:
            raise DnsMalformed(f"address hint of {len(value)} bytes, not a multiple of {size}")
        return ",".join(
            socket.inet_ntop(family, value[i : i + size]) for i in range(0, len(value), size)
        )

    return fmt


def _u16s(value: bytes, key: str) -> list[int]:
    if not value or len(value) % 2:
        raise DnsMalformed(f"{key} value of {len(value)} bytes, not a list of keys")
    return [int.from_bytes(value[i : i + 2], "big") for i in range(0, len(value), 2)]


_FORMATS: dict[int, Callable[[bytes], str]] = {
    0: _keys,
    1: _alpn,
    2: _empty("no-default-alpn"),
    3: _port,
    4: _hints(socket.AF_INET, 4),
    5: lambda v: base64.b64encode(v).decode("ascii"),
    6: _hints(socket.AF_INET6, 16),
    7: quote,
    8: _empty("ohttp"),
}
