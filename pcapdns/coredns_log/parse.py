"""Read CoreDNS logs: the ``log`` plugin's query lines, other plugins' lines, the rest.

The ``log`` plugin's default format (plugin/log, CoreDNS 1.5 and later) is::

    {remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}"
        {rcode} {>rflags} {rsize} {duration}

written through CoreDNS's logger with an ``[INFO] `` prefix, one query a line, when the
answer has been written. ``{remote}`` is in brackets for IPv6 (RFC 3986), ``{name}`` is in
presentation form with miekg/dns escapes (``\\.``, ``\\ ``, ``\\"``, ``\\DDD``) and a final
dot, ``{rcode}`` is the rcode's name or, without one, its number, and ``{duration}`` is
``strconv.FormatFloat(seconds, 'f', -1, 64) + "s"`` (older releases wrote Go's
``Duration.String()``, ``109.2µs``, ``1.5ms``, ``1m2s``, or a chosen unit). A field without
a value is ``-``. ``kubectl logs --timestamps`` puts an RFC 3339 time with nanoseconds
before each line, and ``--prefix`` a ``[pod/NAME/CONTAINER]`` tag.

Nothing here raises on a line: a line is a query, another plugin's (or CoreDNS's start-up
banner), or unparsable, and is counted as such. Only a file that cannot be read raises.
"""

from __future__ import annotations

import calendar
import functools
import gzip
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal, NamedTuple

from pcapdns.dns import names
from pcapdns.errors import InputError

#: A line longer than this is not a CoreDNS line (a query line is at most a few hundred
#: bytes: a 255-byte name escaped is at most 1,020): it is skipped and counted unparsable,
#: read in pieces so that one huge line never sits in memory whole.
MAX_LINE_BYTES = 16 * 1024
#: Unparsable lines and errors-plugin lines are shown cut to this many characters.
EXAMPLE_CHARS = 200
#: A file whose first this many bytes hold a NUL byte is not a text log.
SNIFF_BYTES = 8192

LineKind = Literal["query", "other", "unparsable", "empty"]


class QueryLine(NamedTuple):
    """One query as the ``log`` plugin wrote it (after the answer was sent).

    A NamedTuple, not a frozen dataclass, like ``Message``: one is built per log line, and
    a tuple is built several times faster (a frozen dataclass sets each field through
    ``object.__setattr__``).
    """

    #: Where the line is: the file as given, and its line number (1-based).
    file: str
    line: int
    #: The ``--timestamps`` time (seconds since the epoch), or None without one.
    time: float | None
    #: ``{remote}`` without brackets, and ``{port}``: the client's address as CoreDNS saw it.
    client: str
    port: int
    #: ``{>id}``: the query's DNS ID.
    id: int
    #: ``{type}`` as a number (-1 for a mnemonic pcapdns does not know), ``{class}`` as logged.
    qtype: int
    qclass: str
    #: ``{name}`` as logged (presentation form, final dot).
    name: str
    #: ``{proto}``: "udp" or "tcp" ("-" when absent).
    proto: str
    #: ``{size}``: the query's size in bytes; ``{>do}``; ``{>bufsize}`` (-1 for "-").
    size: int
    do: bool
    bufsize: int
    #: ``{rcode}`` as a number (-1 for "-" or an unknown name) and as pcapdns names it.
    rcode: int
    rcode_name: str
    #: ``{>rflags}`` as logged ("qr,aa,rd"; "-" when none).
    rflags: str
    #: ``{rsize}``: the answer's size in bytes (-1 for "-").
    rsize: int
    #: ``{duration}`` in seconds: from the query's arrival to the answer written.
    duration: float

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class OtherLine:
    """A line of another plugin or of CoreDNS itself, kept only as counted evidence (the
    ``errors`` plugin's lines name the upstream failure)."""

    file: str
    line: int
    time: float | None
    #: "INFO", "ERROR", "WARNING", "DEBUG", "FATAL", or "" for a banner line.
    level: str
    #: The plugin ("errors", "reload", ...) or "" when the line names none.
    plugin: str
    #: The text after the level, cut to ``EXAMPLE_CHARS``.
    text: str


@dataclass(frozen=True, slots=True)
class Unparsable:
    """A line that is neither a query nor another plugin's line."""

    file: str
    line: int
    #: The line, cut to ``EXAMPLE_CHARS`` (bytes that are not UTF-8 as ``\\xNN``).
    text: str


_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d) ")
_PREFIX = re.compile(r"\[pod/[^\]\s]+\] ")
_LEVEL = re.compile(r"\[(INFO|ERROR|WARNING|WARN|DEBUG|FATAL|PANIC)\] ?")
_QUERY = re.compile(
    r'(?P<remote>\[[^\]\s]+\]|[^\s:\[\]]+):(?P<port>\d{1,5}) - (?P<id>\d{1,5}|-) '
    r'"(?P<type>\S+) (?P<cls>\S+) (?P<name>(?:\\.|[^\s\\"])+) (?P<proto>\S+) '
    r'(?P<size>\d+|-) (?P<do>true|false|-) (?P<bufsize>\d+|-)" '
    r"(?P<rcode>[A-Za-z]+|\d+|-) (?P<rflags>\S+) (?P<rsize>\d+|-) (?P<duration>\S+)\s*")
#: The start of a query line: an address, a port and " - ". A line that starts so but does
#: not parse is unparsable, not another plugin's.
_QUERY_START = re.compile(r"(\[[^\]\s]+\]|[0-9A-Fa-f.:]+):\d+ - ")
_PLUGIN = re.compile(r"plugin/([\w.-]+):?")
#: CoreDNS's start-up banner (the server blocks, ``.:53``, the version, the platform) and
#: the Go runtime's maxprocs notice, printed without a level.
_BANNER = re.compile(
    r"(\S*:\d+|CoreDNS-\S+|\S+/\S+, go\S*, \S*|maxprocs: .*|\[pod/[^\]\s]+\])\s*")
_SECONDS = re.compile(r"\d+(?:\.\d+)?s")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}

_QTYPE_NUMBERS = {v: k for k, v in names.QTYPES.items()}
_QTYPE_NUMBERS["*"] = 255
#: rcode names miekg/dns writes (its RcodeToString), beyond those of pcapdns.dns.names.
_RCODE_NUMBERS = {v: k for k, v in names.RCODES.items()} | {
    "BADSIG": 16, "BADVERS": 16, "BADKEY": 17, "BADTIME": 18, "BADMODE": 19,
    "BADNAME": 20, "BADALG": 21, "BADTRUNC": 22, "BADCOOKIE": 23}


def parse_time(text: str) -> float | None:
    """An RFC 3339 time (up to nanoseconds) followed by a space -> seconds since the
    epoch; None when ``text`` does not start with one."""
    m = _TIME.match(text)
    if m is None:
        return None
    whole = _whole_seconds(text[:19])
    if whole is None:
        return None
    frac = m.group(7)
    seconds = whole + (int(frac) / 10 ** len(frac) if frac else 0.0)
    zone = m.group(8)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds


@functools.lru_cache(maxsize=4096)
def _whole_seconds(stamp: str) -> int | None:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) -> seconds since the epoch; None when out of range.
    Cached: a busy log has many lines a second."""
    y, mo, d, h, mi, s = (int(stamp[a:b]) for a, b in
                          ((0, 4), (5, 7), (8, 10), (11, 13), (14, 16), (17, 19)))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        return None
    try:
        return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    except (ValueError, OverflowError):
        return None


def parse_duration(text: str) -> float | None:
    """A duration as CoreDNS writes it (``0.000109s``, ``109.2µs``, ``1.5ms``, ``1m2.5s``,
    ``250ns``) -> seconds; None when it is none of those."""
    if _SECONDS.fullmatch(text):
        return float(text[:-1])  # CoreDNS's own form, the common case
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos else None


def _number(text: str) -> int:
    return -1 if text == "-" else int(text)


def qtype_number(text: str) -> int:
    """``{type}`` -> the type's number (``TYPE65280`` too); -1 when unknown."""
    n = _QTYPE_NUMBERS.get(text.upper())
    if n is not None:
        return n
    if text[:4].upper() == "TYPE" and text[4:].isdigit():
        return int(text[4:]) if int(text[4:]) < 65536 else -1
    return -1


def rcode_number(text: str) -> int:
    """``{rcode}`` (a name, or a number when miekg/dns has no name) -> the number; -1 for
    "-" or a name it does not know."""
    if text.isdigit():
        return int(text)
    return _RCODE_NUMBERS.get(text.upper(), -1)


def _query(file: str, line: int, time: float | None, m: re.Match[str]) -> QueryLine | None:
    port, qid = int(m["port"]), _number(m["id"])
    duration = parse_duration(m["duration"])
    if duration is None or port > 65535 or not 0 <= qid <= 65535:
        return None
    remote = m["remote"]
    rcode = rcode_number(m["rcode"])
    return QueryLine(
        file=file, line=line, time=time,
        client=sys.intern(remote[1:-1] if remote.startswith("[") else remote),
        port=port, id=qid, qtype=qtype_number(m["type"]), qclass=sys.intern(m["cls"]),
        name=m["name"], proto=sys.intern(m["proto"]), size=_number(m["size"]),
        do=m["do"] == "true", bufsize=_number(m["bufsize"]), rcode=rcode,
        rcode_name=names.rcode_name(rcode) if rcode >= 0 else m["rcode"],
        rflags=sys.intern(m["rflags"]), rsize=_number(m["rsize"]), duration=duration,
    )


def parse_line(file: str, line: int, text: str) -> QueryLine | OtherLine | Unparsable | None:
    """One line (without its newline) -> what it is; None for an empty line."""
    rest = text.rstrip("\r\n")
    if not rest.strip():
        return None
    m = _PREFIX.match(rest)
    if m:
        rest = rest[m.end():]
    time = parse_time(rest)
    if time is not None:
        rest = rest[rest.index(" ") + 1:]
    level = ""
    m = _LEVEL.match(rest)
    if m:
        level = "WARNING" if m[1] == "WARN" else m[1]
        rest = rest[m.end():]
    q = _QUERY.fullmatch(rest)
    if q is not None:
        parsed = _query(file, line, time, q)
        if parsed is not None:
            return parsed
    elif not _QUERY_START.match(rest):
        if level:
            p = _PLUGIN.match(rest)
            return OtherLine(file, line, time, level, p[1] if p else "", cut_text(rest))
        if _BANNER.fullmatch(rest):
            return OtherLine(file, line, time, "", "", cut_text(rest))
    return Unparsable(file, line, cut_text(text.rstrip("\r\n")))


def cut_text(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS - 1] + "\u2026"


def open_log(path: str) -> BinaryIO:
    """Open a log for reading (gzip too), after checking that it is a text file.

    Raises:
        InputError: the file is missing, a directory, unreadable, or not text.
    """
    try:
        fh: BinaryIO = open(path, "rb")  # noqa: SIM115 (the caller closes it)
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a CoreDNS log") from None
    except OSError as e:
        raise InputError(path, f"cannot read the CoreDNS log: {e.strerror or e}") from None
    try:
        head = fh.read(SNIFF_BYTES)
        fh.seek(0)
        if head[:2] == b"\x1f\x8b":
            fh = gzip.open(fh)  # type: ignore[assignment]
            head = fh.read(SNIFF_BYTES)
            fh.seek(0)
    except (OSError, EOFError) as e:
        fh.close()
        raise InputError(path, f"cannot read the CoreDNS log: {e}") from None
    if b"\0" in head:
        fh.close()
        raise InputError(path, "is not a text file (a CoreDNS log is text)")
    return fh


def read_lines(path: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, cut) of each line of the log at ``path``; a line over
    ``MAX_LINE_BYTES`` is given cut to that length (its rest is skipped) with ``cut`` true:
    it is unparsable. Bytes that are not UTF-8 become ``\\xNN``.

    Raises:
        InputError: the file cannot be opened or read (see ``open_log``).
    """
    fh = open_log(path)
    with fh:
        n = 0
        while True:
            try:
                raw = fh.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                n += 1
                cut = False
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    # Skip the rest of the over-long line, a bounded piece at a time.
                    while True:
                        more = fh.readline(MAX_LINE_BYTES)
                        if not more or more.endswith(b"\n"):
                            break
                    raw, cut = raw[:MAX_LINE_BYTES], True
            except (OSError, EOFError) as e:
                raise InputError(path, f"cannot read the CoreDNS log: {e}") from None
            yield n, raw.decode("utf-8", "backslashreplace"), cut
