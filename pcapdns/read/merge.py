"""Several files, or a directory, are one capture.

A tcpdump ring (``-C``/``-W`` names such as ``dns.pcap0 .. dns.pcap9``, which wrap, or
``-G`` strftime names) is ordered by each file's first packet time, not by name, and merged
into one time-ordered stream so that a query in one file and its response in the next are
one transaction. Frame numbers count every record of the merged stream from 1, which for a
single file is tshark's numbering.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter

from pcapdns.errors import InputError, NotACaptureError
from pcapdns.read.capture import CaptureFile, Record, open_capture

# Files a capture directory holds that are not captures (capture agent metadata, notes).
_SIDE_FILES = frozenset({"capture.json", "README", "README.md"})


@dataclass(slots=True)
class OpenCapture:
    """The inputs of one analysis, opened and ordered, ready to stream."""

    #: One entry per capture file, in the order they are merged (by first packet time).
    files: list[CaptureFile]
    #: Records of all files merged by time.
    records: Iterator[Record]
    #: Problems met while choosing files (non-capture files skipped in a directory).
    warnings: list[str]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes_read for f in self.files)


def expand_paths(paths: list[str]) -> list[tuple[str, bool]]:
    """Expand directories into their regular files; return (path, from_directory) pairs.

    Raises:
        InputError: a path does not exist, or a directory holds no files.
    """
    out: list[tuple[str, bool]] = []
    for p in paths:
        if os.path.isdir(p):
            names = sorted(
                n
                for n in os.listdir(p)
                if not n.startswith(".")
                and n not in _SIDE_FILES
                and os.path.isfile(os.path.join(p, n))
            )
            if not names:
                raise InputError(p, "directory holds no capture files")
            out.extend((os.path.join(p, n), True) for n in names)
        elif os.path.exists(p):
            out.append((p, False))
        else:
            raise InputError(p, "no such file or directory")
    return out


def open_inputs(paths: list[str]) -> OpenCapture:
    """Open every input, order the files by their first packet time and merge them.

    A file named explicitly must be a capture; a file found inside a directory that is not
    a capture is skipped with a warning (a ring directory may hold notes).

    Raises:
        InputError: an input is missing or unusable (see ``open_capture``).
    """
    warnings: list[str] = []
    opened: list[tuple[float, int, CaptureFile, Iterator[Record], Record | None]] = []
    for index, (path, in_dir) in enumerate(expand_paths(paths)):
        try:
            info, records = open_capture(path)
        except NotACaptureError as e:
            if in_dir:
                warnings.append(f"{e}; skipped")
                continue
            raise
        first = next(records, None)
        start = first[0] if first is not None else float("inf")
        opened.append((start, index, info, records, first))
    if not opened:
        raise InputError(", ".join(paths), "no capture files to read")
    opened.sort(key=lambda item: (item[0], item[1]))
    files = [item[2] for item in opened]
    streams = [_prepend(first, records) for _, _, _, records, first in opened]
    if len(streams) == 1:
        merged: Iterator[Record] = streams[0]
    else:
        merged = heapq.merge(*streams, key=itemgetter(0))
    return OpenCapture(files=files, records=merged, warnings=warnings)


def _prepend(first: Record | None, rest: Iterator[Record]) -> Iterator[Record]:
    if first is None:
        return
    yield first
    yield from rest
