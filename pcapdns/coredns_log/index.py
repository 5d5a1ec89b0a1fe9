"""Load CoreDNS logs into an index of their query lines, with the counts of every line.

The index is what the join streams the capture's lookups past: query lines by their key
(client address, client port, DNS ID, name, type), at most ``max_queries`` of them (the
first ones read; the rest are counted in ``evicted`` and warned about), so that memory
stays bounded however long the log.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pcapdns.coredns_log.parse import (
    OtherLine,
    QueryLine,
    Unparsable,
    cut_text,
    parse_line,
    read_lines,
)

#: Query lines kept by default: about 600 bytes each with their index entry (measured
#: with tracemalloc on 95,110 lines), so 300 MB at most, the order of the core's own cap
#: on queries in flight. A log holds one line per query: 15 minutes at 550 queries/s.
MAX_QUERIES = 500_000
#: Unparsable lines and errors-plugin lines shown as examples.
MAX_EXAMPLES = 10

#: "client-address port id type " followed by the name as ``name_key``: one bytes object
#: a key (a tuple of five would take about twice the memory).
Key = bytes


def make_key(address: str, port: int, qid: int, qtype: int, name: bytes) -> Key:
    """The join key of one query (``address`` as ``address_key`` gives it)."""
    return f"{address} {port} {qid} {qtype} ".encode() + name


def name_key(name: str) -> bytes:
    """A name in presentation form (a log's, with its final dot, or the capture's, without)
    -> its wire bytes without the root, ASCII letters in lower case: two spellings of one
    name give one key (RFC 4343: names compare case-insensitively; ``\\DDD`` and ``\\X``
    escapes stand for their byte)."""
    if "\\" not in name and name.isascii():
        # The common case, fast: no escapes, so the text is the name.
        return (name[:-1] if name.endswith(".") else name).lower().encode("ascii")
    out = bytearray()
    i, n = 0, len(name)
    while i < n:
        c = name[i]
        if c == "\\" and i + 1 < n:
            digits = name[i + 1:i + 4]
            if len(digits) == 3 and digits.isdigit():
                out.append(int(name[i + 1:i + 4]) & 0xFF)
                i += 4
                continue
            out.extend(name[i + 1].encode("utf-8", "surrogateescape"))
            i += 2
            continue
        if c == "." and i == n - 1:
            break  # the final dot: the root
        out.extend(c.encode("utf-8", "surrogateescape"))
        i += 1
    return bytes(out).lower()


def address_key(text: str) -> str:
    """An IP address as text -> one spelling of it (IPv6 compressed in lower case, an
    IPv4-mapped IPv6 address as the IPv4 address, as Go's net.IP prints it)."""
    if ":" not in text:
        return text  # IPv4: Go and the core both write it in dotted decimal, one way
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@dataclass(frozen=True, slots=True)
class FileCounts:
    """What one log file held, line by line."""

    path: str
    lines: int
    query_lines: int
    other_lines: int
    unparsable: int
    #: Query lines with a ``--timestamps`` time.
    timed: int


@dataclass(slots=True)
class LogIndex:
    """Every log file given, read: counts, examples and the query lines by key."""

    files: list[FileCounts] = field(default_factory=list)
    #: Query lines kept, in the order read.
    queries: list[QueryLine] = field(default_factory=list)
    #: Key -> index into ``queries``, or a list of them for a key logged more than once
    #: (ID and port reuse, or a client that sent one query again); see ``lines_of``.
    by_key: dict[Key, int | list[int]] = field(default_factory=dict)
    #: Query lines read but not kept (over ``max_queries``).
    evicted: int = 0
    other_lines: int = 0
    #: Lines of the errors plugin (they name the upstream failure), and the first few.
    error_lines: int = 0
    errors: list[OtherLine] = field(default_factory=list)
    unparsable: int = 0
    unparsable_examples: list[Unparsable] = field(default_factory=list)
    #: Query lines without a time (all of them must have one for times to be used).
    untimed: int = 0

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def query_lines(self) -> int:
        return sum(f.query_lines for f in self.files)

    @property
    def timed(self) -> bool:
        """Whether the join can place log lines in time: every query line has a time."""
        return bool(self.query_lines) and self.untimed == 0

    def key(self, q: QueryLine) -> Key:
        return make_key(address_key(q.client), q.port, q.id, q.qtype, name_key(q.name))

    def lines_of(self, key: Key) -> list[int]:
        """Indexes into ``queries`` of the lines with ``key``."""
        found = self.by_key.get(key)
        if found is None:
            return []
        return found if isinstance(found, list) else [found]


def load(paths: list[str], max_queries: int = MAX_QUERIES) -> LogIndex:
    """Read the logs at ``paths`` (in order) into one index.

    Raises:
        InputError: a file is missing, a directory, unreadable or not text.
    """
    index = LogIndex()
    for path in paths:
        _load_file(index, path, max_queries)
    return index


def _load_file(index: LogIndex, path: str, max_queries: int) -> None:
    lines = queries = others = bad = timed = 0
    for n, text, cut in read_lines(path):
        lines += 1
        item = parse_line(path, n, text)
        if cut:
            item = Unparsable(path, n, cut_text(text) + " [line cut]")
        if item is None:
            continue
        if isinstance(item, QueryLine):
            queries += 1
            if item.time is not None:
                timed += 1
            else:
                index.untimed += 1
            if len(index.queries) >= max_queries:
                index.evicted += 1
                continue
            key = index.key(item)
            found = index.by_key.get(key)
            if found is None:
                index.by_key[key] = len(index.queries)
            elif isinstance(found, list):
                found.append(len(index.queries))
            else:
                index.by_key[key] = [found, len(index.queries)]
            index.queries.append(item)
        elif isinstance(item, OtherLine):
            others += 1
            if item.plugin == "errors":
                index.error_lines += 1
                if len(index.errors) < MAX_EXAMPLES:
                    index.errors.append(item)
        else:
            bad += 1
            if len(index.unparsable_examples) < MAX_EXAMPLES:
                index.unparsable_examples.append(item)
    index.other_lines += others
    index.unparsable += bad
    index.files.append(FileCounts(path, lines, queries, others, bad, timed))
