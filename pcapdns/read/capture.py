"""Read one capture file: pcap or pcapng, plain or gzip-compressed.

The format is told by magic bytes, never by the file name. Records are produced as plain
tuples ``(time, link_type, interface, data)`` because this is the hot path: one tuple per
packet costs far less than one object. ``interface`` is the pcapng interface id (0 for
classic pcap); the link layer may refine it later (SLL2 carries the kernel's ifindex).

A file that ends in the middle of a record (tcpdump killed, disk full, a ring file copied
while it was written) is read up to its last whole record; ``CaptureFile.truncated`` then
says so and ``warnings`` says where.

A record whose time stamp lies outside ``MIN_TIME .. MAX_TIME`` is skipped and counted in
``CaptureFile.bad_timestamps``: a time before 1970 or from 2200 on comes from a damaged
block or a wrong ``if_tsresol``/``if_tsoffset``, not from a clock, and believing it would
stretch the capture over centuries (or past the years a datetime can hold).
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from pcapdns.errors import InputError, NotACaptureError, UnsupportedLinkTypeError
from pcapdns.read import linktypes

Record = tuple[float, int, int, bytes]

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
# A record larger than this is not a packet but a corrupt length field.
_MAX_RECORD = 1 << 18
#: Record times are believed from 1970-01-01 up to (not including) 2200-01-01 UTC. A classic
#: pcap cannot leave this range (unsigned 32-bit seconds end in 2106), so only pcapng, whose
#: 64-bit tick count, resolution and offset can say anything, is checked.
MIN_TIME = 0.0
MAX_TIME = 7_258_118_400.0


@dataclass(slots=True)
class CaptureFile:
    """What was learned about one input file while reading it (filled in as it goes)."""

    #: The path as the user gave it.
    path: str
    #: Size of the file on disk in bytes (compressed size for gzip).
    size: int
    #: "pcap" or "pcapng".
    format: str = ""
    #: True when the file is gzip-compressed.
    gzip: bool = False
    #: Link types seen, in the order their interfaces were declared.
    link_types: list[int] = field(default_factory=list)
    #: pcapng interface names by interface id (empty for classic pcap).
    interface_names: dict[int, str] = field(default_factory=dict)
    #: Records read.
    packets: int = 0
    #: Time of the first and last record read.
    first_time: float | None = None
    last_time: float | None = None
    #: True when the file ended inside a record or block.
    truncated: bool = False
    #: Human-readable problems met while reading (cut-off, skipped blocks).
    warnings: list[str] = field(default_factory=list)
    #: Bytes of the file consumed so far (compressed bytes for gzip), for progress.
    bytes_read: int = 0
    #: Records skipped because their time stamp is outside MIN_TIME .. MAX_TIME.
    bad_timestamps: int = 0


class _Source:
    """A byte source with a sliding buffer; tracks bytes consumed of the file on disk."""

    def __init__(self, raw: io.BufferedReader, compressed: bool) -> None:
        self._raw = raw
        self._stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw) if compressed else raw
        self.buf = b""
        self.pos = 0
        self.eof = False
        #: True when the gzip stream ended before its end marker or was damaged.
        self.broken = False

    def fill(self, need: int) -> bool:
        """Make ``need`` bytes available at ``pos``; False when the file ends first."""
        while len(self.buf) - self.pos < need:
            if self.eof:
                return False
            try:
                # read1, not read: GzipFile.read(n) loses everything it decompressed in
                # the call when the stream turns out to be cut off; read1 returns what
                # one compressed chunk gave, so only the damaged tail is lost.
                chunk = self._stream.read1(_CHUNK)
            except (EOFError, OSError, zlib.error):
                # gzip stream cut off or damaged: keep what was decompressed so far.
                chunk = b""
                self.broken = True
            if not chunk:
                self.eof = True
                return len(self.buf) - self.pos >= need
            self.buf = self.buf[self.pos :] + chunk
            self.pos = 0
        return True

    def disk_position(self) -> int:
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0


def open_capture(path: str) -> tuple[CaptureFile, Iterator[Record]]:
    """Open ``path`` and return its description and an iterator over its records.

    Raises:
        InputError: the file cannot be opened or read.
        NotACaptureError: the magic bytes are not pcap, pcapng or gzip of either.
        UnsupportedLinkTypeError: a classic pcap with a link type pcapdns does not decode
            (for pcapng, raised when the interface block is reached).
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the record iterator
        size = os.fstat(raw.fileno()).st_size
    except IsADirectoryError:
        raise InputError(path, "is a directory") from None
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as e:
        raise InputError(path, f"cannot open: {e.strerror or e}") from None
    info = CaptureFile(path=path, size=size)
    head = raw.read(4)
    raw.seek(0)
    compressed = head[:2] == _GZIP_MAGIC
    info.gzip = compressed
    src = _Source(raw, compressed)
    try:
        src.fill(24)
    except OSError as e:
        raw.close()
        raise InputError(path, f"cannot read: {e}") from None
    magic = src.buf[:4]
    if magic in _PCAP_MAGICS:
        info.format = "pcap"
        return info, _pcap_records(info, src, raw)
    if magic == _PCAPNG_SHB:
        info.format = "pcapng"
        return info, _pcapng_records(info, src, raw)
    raw.close()
    if src.broken and len(magic) < 4:
        raise NotACaptureError(path, "gzip file cut off before the capture's first bytes")
    if not magic:
        what = "gzip file with no data in it" if compressed else "empty file"
        raise NotACaptureError(path, f"{what}, not a capture")
    what = "gzip file that holds no pcap or pcapng" if compressed else "not a pcap or pcapng file"
    raise NotACaptureError(path, f"{what} (starts with {magic.hex()})")


def _pcap_records(info: CaptureFile, src: _Source, raw: io.BufferedReader) -> Iterator[Record]:
    if len(src.buf) < 24:
        raw.close()
        raise NotACaptureError(info.path, "pcap file shorter than its 24-byte header")
    order, unit = _PCAP_MAGICS[src.buf[:4]]
    (link_field,) = struct.unpack_from(order + "I", src.buf, 20)
    # The upper bits of the link field may carry FCS information (pcap-savefile(5)).
    link_type = link_field & 0x0FFFFFFF
    if link_type not in linktypes.SUPPORTED:
        raw.close()
        raise UnsupportedLinkTypeError(info.path, linktypes.unsupported(link_type))
    info.link_types.append(link_type)
    src.pos = 24
    return _pcap_walk(info, src, raw, order, unit, link_type)


def _pcap_walk(
    info: CaptureFile,
    src: _Source,
    raw: io.BufferedReader,
    order: str,
    unit: float,
    link_type: int,
) -> Iterator[Record]:
    hdr = struct.Struct(order + "IIII")
    unpack_from = hdr.unpack_from
    packets = 0
    try:
        while True:
            buf = src.buf
            pos = src.pos
            if len(buf) - pos < 16:
                if not src.fill(16):
                    if len(src.buf) - src.pos:
                        _cut_off(info, packets, "record header")
                    break
                buf = src.buf
                pos = src.pos
            sec, frac, caplen, _wirelen = unpack_from(buf, pos)
            if caplen > _MAX_RECORD:
                info.truncated = True
                info.warnings.append(
                    f"{info.path}: record {packets + 1} claims {caplen} bytes; "
                    "the rest of the file is unreadable and was skipped"
                )
                break
            end = pos + 16 + caplen
            if end > len(buf):
                if not src.fill(16 + caplen):
                    _cut_off(info, packets, "packet")
                    break
                buf = src.buf
                pos = src.pos
                end = pos + 16 + caplen
            data = buf[pos + 16 : end]
            src.pos = end
            packets += 1
            ts = sec + frac * unit
            if packets == 1:
                info.first_time = ts
            info.last_time = ts
            if not packets & 0xFFF:
                info.packets = packets
                info.bytes_read = src.disk_position()
            yield (ts, link_type, 0, data)
        _gzip_cut_between_records(info, src, packets)
    finally:
        info.packets = packets
        info.bytes_read = info.size
        raw.close()


def _cut_off(info: CaptureFile, packets: int, where: str) -> None:
    info.truncated = True
    info.warnings.append(
        f"{info.path}: cut off inside a {where} after {packets} whole records; "
        "read up to the last whole record"
    )


def _gzip_cut_between_records(info: CaptureFile, src: _Source, packets: int) -> None:
    """A gzip stream that broke off exactly at a record boundary still lost data."""
    if src.broken and not info.truncated:
        _cut_off(info, packets, "gzip stream")


# pcapng block types (draft-ietf-opsawg-pcapng)
_SHB = 0x0A0D0D0A
_IDB = 1
_PB = 2  # obsolete Packet Block
_SPB = 3
_EPB = 6


def _pcapng_records(info: CaptureFile, src: _Source, raw: io.BufferedReader) -> Iterator[Record]:
    return _pcapng_walk(info, src, raw)


def _pcapng_walk(info: CaptureFile, src: _Source, raw: io.BufferedReader) -> Iterator[Record]:
    order = "<"
    # Per interface of the current section: (link type, seconds per tick, offset seconds).
    interfaces: list[tuple[int, float, float]] = []
    packets = 0
    last_ts = 0.0
    #: (record number in the file, time) of the first record with a bad time stamp.
    first_bad: tuple[int, float] | None = None
    try:
        while True:
            if not src.fill(12):
                if len(src.buf) - src.pos:
                    _cut_off(info, packets, "block header")
                break
            buf = src.buf
            pos = src.pos
            if buf[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
                bom = buf[pos + 8 : pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    info.truncated = True
                    info.warnings.append(f"{info.path}: bad pcapng byte-order magic; stopped")
                    break
                interfaces = []
            btype, blen = struct.unpack_from(order + "II", buf, pos)
            if blen < 12 or blen % 4 or blen > _MAX_RECORD + 64:
                info.truncated = True
                info.warnings.append(
                    f"{info.path}: pcapng block of type {btype} has impossible length {blen} "
                    f"after {packets} records; the rest of the file was skipped"
                )
                break
            if not src.fill(blen):
                _cut_off(info, packets, "pcapng block")
                break
            buf = src.buf
            pos = src.pos
            body = pos + 8
            src.pos = pos + blen
            if btype == _EPB:
                iface, hi, lo, caplen = struct.unpack_from(order + "IIII", buf, body)
                if iface >= len(interfaces) or caplen > blen - 32:
                    info.warnings.append(
                        f"{info.path}: packet block with unknown interface or bad length skipped"
                    )
                    continue
                lt, tick, offset = interfaces[iface]
                ts = ((hi << 32) | lo) * tick + offset
                data = buf[body + 20 : body + 20 + caplen]
            elif btype == _SPB:
                if not interfaces:
                    continue
                (wirelen,) = struct.unpack_from(order + "I", buf, body)
                caplen = min(wirelen, blen - 16)
                iface = 0
                lt = interfaces[0][0]
                ts = last_ts  # a simple packet block has no time stamp
                data = buf[body + 4 : body + 4 + caplen]
            elif btype == _PB:
                iface, _drops, hi, lo, caplen = struct.unpack_from(order + "HHIII", buf, body)
                if iface >= len(interfaces) or caplen > blen - 32:
                    continue
                lt, tick, offset = interfaces[iface]
                ts = ((hi << 32) | lo) * tick + offset
                data = buf[body + 20 : body + 20 + caplen]
            elif btype == _IDB:
                interfaces.append(_read_idb(info, buf, body, pos + blen - 4, order))
                continue
            else:
                continue
            if not MIN_TIME <= ts < MAX_TIME:
                info.bad_timestamps += 1
                if first_bad is None:
                    first_bad = (packets + info.bad_timestamps, ts)
                continue
            packets += 1
            last_ts = ts
            if packets == 1:
                info.first_time = ts
            info.last_time = ts
            if not packets & 0xFFF:
                info.packets = packets
                info.bytes_read = src.disk_position()
            yield (ts, lt, iface, data)
        _gzip_cut_between_records(info, src, packets)
    finally:
        info.packets = packets
        info.bytes_read = info.size
        raw.close()
        if first_bad is not None:
            record, ts = first_bad
            n = info.bad_timestamps
            info.warnings.append(
                f"{info.path}: {n} record{'s' if n > 1 else ''} with a time stamp outside "
                f"1970..2200 skipped (the first is record {record}, at {ts:.6g} s since "
                "1970)"
            )


def _read_idb(
    info: CaptureFile, buf: bytes, body: int, end: int, order: str
) -> tuple[int, float, float]:
    """Decode an Interface Description Block; return (link type, tick, offset).

    Raises:
        UnsupportedLinkTypeError: the interface's link type is not decoded by pcapdns.
    """
    link_type, _res, _snap = struct.unpack_from(order + "HHI", buf, body)
    if link_type not in linktypes.SUPPORTED:
        raise UnsupportedLinkTypeError(
            info.path, f"interface {len(info.link_types)} has {linktypes.unsupported(link_type)}"
        )
    tick = 1e-6
    offset = 0.0
    opt = body + 8
    while opt + 4 <= end:
        code, olen = struct.unpack_from(order + "HH", buf, opt)
        if code == 0:
            break
        value = buf[opt + 4 : opt + 4 + olen]
        if code == 9 and olen >= 1:  # if_tsresol
            v = value[0]
            tick = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        elif code == 14 and olen == 8:  # if_tsoffset, seconds
            (offset,) = struct.unpack(order + "q", value)
        elif code == 2:  # if_name
            info.interface_names[len(info.link_types)] = value.decode("utf-8", "replace")
        opt += 4 + olen + (-olen % 4)
    info.link_types.append(link_type)
    return (link_type, tick, float(offset))
