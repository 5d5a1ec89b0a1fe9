"""Stage 1b: records -> numbered records in time order, through a bounded reorder window.

Capture tools do not always write records in time order. dumpcap recording several
interfaces into one pcapng writes each interface's packets when its capture buffer hands
them over, up to its 250 ms read timeout after they were stamped; ``tcpdump -i any`` on a
multi-CPU node writes packets stamped on different CPUs, whose times go backwards by
microseconds to milliseconds. The stages after this one decide by time order: a copy of a
packet written after the answer to it is not taken for a duplicate (match/dedupe.py), so a
packet seen on two interfaces around its answer would be counted twice. So each record is
held until a record ``window`` seconds newer has been read, and records are passed on in
(time, frame) order: records with equal times keep their file order.

Frame numbers are given in file order, before the buffer, so they stay tshark's numbers
(evidence cites them) whatever order the records are passed on in.

The buffer is bounded by time (``window``) and by size (``MAX_HELD`` records and
``MAX_HELD_BYTES`` bytes of packet data): when a burst fills it, the oldest records are
passed on before their window is up (counted in ``released_early``), which narrows the
window for that burst instead of holding, say, 100,000 records that share one timestamp.

A record older than one already passed on is **late**: its place in time order is gone. It
is counted in ``late`` and passed on at once, with its own time (times are evidence). The
stages after this one accept it: the matcher does not move its clock back, and a message
older than its clock is matched and closed like any other, only as if it had come then.

Cost: a record read in time order is appended to a deque and popped from it, O(1); only
records read out of order go through a heap, O(log n).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator

from pcapdns.read.capture import Record

#: (time, frame, link type, interface, data): a record with its frame number, ordered by
#: time and then by frame (frames are unique, so the data is never compared).
Numbered = tuple[float, int, int, int, bytes]

#: At most this many records are held. At the 4,000 packets/s of a busy node's DNS
#: traffic a 0.5 s window holds 2,000; 20,000 covers 40,000 packets/s before the window
#: narrows, for a few MiB.
MAX_HELD = 20_000
#: At most this many bytes of packet data are held (about 5,600 full-size Ethernet frames).
MAX_HELD_BYTES = 8 << 20


class TimeOrder:
    """Numbers records in file order and passes them on in time order (``records``)."""

    def __init__(self, window: float) -> None:
        #: Seconds a record is held for records read after it that are older.
        self.window = window
        #: Records read (the last frame number given).
        self.records = 0
        #: Records read after a newer record had been passed on; passed on out of order.
        self.late = 0
        #: The largest gap, in seconds, between a late record's time and the newest record
        #: read before it.
        self.most_behind = 0.0
        #: Records passed on before their window was up because the buffer was full.
        self.released_early = 0
        #: Time of the newest record read.
        self.newest = float("-inf")

    def sorted(self, records: Iterable[Record]) -> Iterator[Numbered]:
        """Number ``records`` from 1 in the order read; yield them in (time, frame) order,
        except late ones, which are yielded as soon as they are read."""
        window = self.window
        run: deque[Numbered] = deque()  # records read in time order, so sorted
        heap: list[Numbered] = []  # records read out of order
        append, popleft = run.append, run.popleft
        push, pop = heapq.heappush, heapq.heappop
        newest = float("-inf")
        passed = float("-inf")  # time of the last record passed on
        held_bytes = 0
        frame = 0
        for ts, link_type, iface, data in records:
            frame += 1
            if ts < passed:
                self._late(newest - ts)
                yield (ts, frame, link_type, iface, data)
                continue
            item = (ts, frame, link_type, iface, data)
            if ts >= newest:
                newest = ts
                append(item)
            else:
                push(heap, item)
            held_bytes += len(data)
            horizon = newest - window
            if not heap:  # the common case: everything held arrived in order
                while run:
                    head = run[0]
                    if head[0] > horizon:
                        if len(run) <= MAX_HELD and held_bytes <= MAX_HELD_BYTES:
                            break
                        self.released_early += 1
                    popleft()
                    held_bytes -= len(head[4])
                    passed = head[0]
                    yield head
                continue
            while run or heap:
                from_heap = bool(heap) and (not run or heap[0] < run[0])
                head = heap[0] if from_heap else run[0]
                if head[0] > horizon:
                    if len(run) + len(heap) <= MAX_HELD and held_bytes <= MAX_HELD_BYTES:
                        break
                    self.released_early += 1
                if from_heap:
                    pop(heap)
                else:
                    popleft()
                held_bytes -= len(head[4])
                passed = head[0]
                yield head
        self.records = frame
        self.newest = newest
        rest = list(run)
        rest.extend(heap)
        rest.sort()
        yield from rest

    def _late(self, behind: float) -> None:
        self.late += 1
        if behind > self.most_behind:
            self.most_behind = behind

    def warning(self) -> str | None:
        """What the late records mean for the analysis, or None when there were none."""
        if not self.late:
            return None
        late = _records(self.late)
        if self.released_early:
            # A full buffer passed records on early, so a late record may be less than the
            # window out of order.
            text = (
                f"{late} arrived out of time order after the reorder buffer, full at "
                f"{MAX_HELD:,} records or {MAX_HELD_BYTES >> 20} MiB, had passed "
                f"{_records(self.released_early)} on before their {_ms(self.window)} "
                f"window was up (the furthest {_ms(self.most_behind)} out of order)"
            )
        else:
            text = (
                f"{late} arrived more than {_ms(self.window)} out of time order "
                f"(the furthest {_ms(self.most_behind)})"
            )
        text += (
            "; each was analyzed where it was read, so a copy of a packet among them may be "
            "counted twice and an answer read before its query taken for unsolicited"
        )
        return text


def _records(n: int) -> str:
    return f"{n} record{'s' if n != 1 else ''}"


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000, 3):g} ms" if seconds < 1 else f"{seconds:.3f} s"
