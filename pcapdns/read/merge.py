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

from pcapdns.errors import InputError, NotACaptureError, UnsupportedLinkTypeError
from pcapdns.read import capture_meta
from pcapdns.read.capture import CaptureFile, Record, open_capture

# Files whose time spans are further apart than this, and further apart than any one of
# them spans, do not look like one capture (see _far_apart).
FAR_APART = 3600.0

# Files a capture directory holds that are not captures: the capture agent's metadata and,
# with --analyze, its report; notes. Skipped without a warning.
_SIDE_FILES = frozenset({"capture.json", "report.html", "README", "README.md"})


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


def input_files(paths: list[str]) -> list[str]:
    """Every file an analysis of ``paths`` reads or may read: the paths as given, the
    files of the directories among them (those that will be skipped as not captures
    included), and the capture.json beside them. An output must be none of these.

    Raises:
        InputError: as ``expand_paths``.
    """
    return [*paths, *(p for p, _ in expand_paths(paths)), *capture_meta.find(paths)]


def open_inputs(paths: list[str]) -> OpenCapture:
    """Order the input files by their first packet time and merge them lazily.

    Each file is opened once to read its first record and closed again; during the merge a
    file is opened only when the stream reaches its first packet's time, so a ring of
    hundreds of files keeps open only the few whose time spans overlap.

    A file named explicitly must be a capture pcapdns reads; a file found inside a
    directory that is not a capture, or is one of a link type pcapdns does not decode, is
    skipped with a warning (a ring directory may hold notes, or a capture of another kind).
    Files that turn out, once read, to lie far apart in time get a warning too.

    Raises:
        InputError: an input is missing or unusable (see ``open_capture``).
    """
    warnings: list[str] = []
    probed: list[tuple[float, int, str, CaptureFile]] = []
    seen: set[str] = set()
    for index, (path, in_dir) in enumerate(expand_paths(paths)):
        real = os.path.realpath(path)
        if real in seen:
            warnings.append(f"{path}: given more than once; read once")
            continue
        seen.add(real)
        try:
            info, records = open_capture(path)
            # A pcapng declares its interfaces, and so their link types, before its first
            # packet: reading that packet finds an unsupported one.
            first = next(records, None)
        except (NotACaptureError, UnsupportedLinkTypeError) as e:
            if in_dir:
                warnings.append(f"{e}; skipped")
                continue
            raise
        records.close()  # type: ignore[attr-defined]
        info.packets = info.bytes_read = 0
        start = first[0] if first is not None else float("inf")
        probed.append((start, index, path, info))
    if not probed:
        raise InputError(", ".join(paths), "no capture files to read")
    probed.sort(key=lambda item: (item[0], item[1]))
    files = [item[3] for item in probed]
    pending = [(start, slot, path) for slot, (start, _, path, _) in enumerate(probed)
               if start != float("inf")]
    return OpenCapture(files=files, records=_merge(pending, files, warnings),
                       warnings=warnings)


def far_apart(files: list[CaptureFile]) -> list[str]:
    """A warning for each gap in time that splits the files into parts that do not look
    like one capture: more than FAR_APART seconds without any file's packets, and longer
    than any single file spans.

    The files of one ring follow each other: each starts about when the one before ended,
    so a gap between two of them is a pause between packets, no longer than pauses inside
    a file. Samples taken on different days, or hours apart, are separated by far more
    than any of them lasts. They are still merged (the user named them together), but a
    query in one can never meet a response in the other, and the capture's time span and
    timeline stretch over the gap.
    """
    spans = sorted((f.first_time, f.last_time, f.path) for f in files
                   if f.first_time is not None and f.last_time is not None)
    if len(spans) < 2:
        return []
    longest = max(last - first for first, last, _ in spans)
    out: list[str] = []
    end, ended = spans[0][1], spans[0][2]
    for first, last, path in spans[1:]:
        gap = first - end
        if gap > FAR_APART and gap > longest:
            out.append(f"{path} starts {_duration(gap)} after {ended} ends, a gap longer "
                       "than any input file lasts: merged as one capture, though they do "
                       "not look like one")
        if last >= end:
            end, ended = last, path
    return out


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


def _merge(pending: list[tuple[float, int, str]], files: list[CaptureFile],
           warnings: list[str]) -> Iterator[Record]:
    """Merge the files' records by time, opening each file when its time comes.

    ``pending`` is sorted by first packet time; ``files[slot]`` is replaced by the
    description of the file as it is actually read. Once every file is read, warnings
    about files far apart in time are added to ``warnings``.
    """
    if len(pending) == 1:
        _, slot, path = pending[0]
        files[slot], records = open_capture(path)
        yield from records
        return
    heap: list[tuple[float, int, Record, Iterator[Record]]] = []
    order = 0
    next_file = 0
    while True:
        # Open every file whose first packet is due before the earliest record in hand.
        while next_file < len(pending) and (not heap or pending[next_file][0] <= heap[0][0]):
            _, slot, path = pending[next_file]
            next_file += 1
            files[slot], records = open_capture(path)
            first = next(records, None)
            if first is not None:
                heapq.heappush(heap, (first[0], order, first, records))
                order += 1
        if not heap:
            # Only now are the files' last packet times known.
            warnings.extend(far_apart(files))
            return
        _, _, record, records = heapq.heappop(heap)
        yield record
        following = next(records, None)
        if following is not None:
            heapq.heappush(heap, (following[0], order, following, records))
            order += 1
