"""IPv4 and IPv6 fragment reassembly.

Large EDNS answers (a 4096-byte buffer) leave the server as IP fragments; only the first
fragment carries the UDP header, so DNS cannot be seen until the datagram is whole again.
State is bounded in count (``MAX_DATAGRAMS``), in time (``MAX_AGE`` seconds, RFC 791's
reassembly timer is of the same order) and in bytes (``max_bytes``, from
``AnalysisConfig.max_fragment_buffer_bytes``, all datagrams together: four IP IDs of 8,000
overlapping 16 kB pieces each are only 32,000 fragments, but half a gigabyte). What expires
or is evicted is counted, not decoded.

Each fragment costs O(log n) in the fragments of its datagram, whatever their order: the
datagram keeps how far from offset 0 its pieces reach without a hole, and the pieces
beyond a hole in a heap. Linux sends the last fragment first, so the datagram's length is
known from the start and every piece asks whether it is now whole.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_DATAGRAMS = 4096
MAX_AGE = 30.0
MAX_SIZE = 65535
#: Default of ``max_bytes``: the analysis passes ``AnalysisConfig.max_fragment_buffer_bytes``.
MAX_BYTES = 32 * 1024 * 1024
#: What a piece costs besides its bytes (the bytes object, its dict and heap entries), so
#: that 8,000 pieces of 8 bytes count for what they take.
PIECE_OVERHEAD = 160

#: (source, destination, IP ID, protocol, capture interface). The interface is part of the
#: key because ``tcpdump -i any`` records each fragment on several interfaces in turn:
#: mixed together, the first copy completes and the later copies of the last fragment are
#: left over as datagrams that never complete.
FragmentKey = tuple[bytes, bytes, int, int, int]


@dataclass(slots=True)
class _Partial:
    first_time: float
    #: Fragment data by byte offset in the datagram's payload. Of two pieces at one offset
    #: the longer is kept (a copy of the same fragment is the same length).
    pieces: dict[int, bytes] = field(default_factory=dict)
    #: Payload length, known once the last fragment (MF=0) arrived.
    total: int | None = None
    #: The pieces cover the payload from offset 0 up to here without a hole.
    covered: int = 0
    #: (offset, end) of pieces beyond ``covered``, smallest offset first.
    beyond: list[tuple[int, int]] = field(default_factory=list)
    #: Bytes counted against the budget (piece bytes plus PIECE_OVERHEAD each).
    held: int = 0


class FragmentReassembler:
    """Collects fragments by ``FragmentKey`` and returns whole payloads."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        #: Datagrams being reassembled, oldest first.
        self._partials: OrderedDict[FragmentKey, _Partial] = OrderedDict()
        #: Datagrams given up on (timed out, too many in flight, inconsistent, evicted).
        self.dropped = 0
        #: Datagrams reassembled.
        self.reassembled = 0
        #: Budget for the bytes held by all datagrams together.
        self.max_bytes = max_bytes
        #: Bytes held now.
        self.buffered = 0
        #: Datagrams dropped (also in ``dropped``) to stay within ``max_bytes``, and the
        #: bytes they held.
        self.evicted = 0
        self.evicted_bytes = 0

    def add(
        self, key: FragmentKey, offset: int, more: bool, data: bytes, time: float
    ) -> bytes | None:
        """Add one fragment; return the whole payload when this fragment completes it."""
        p = self._partials.get(key)
        if p is None:
            if len(self._partials) >= MAX_DATAGRAMS:
                self.expire(time, force=True)
            p = self._partials[key] = _Partial(first_time=time)
        end = offset + len(data)
        if not more:
            p.total = end
        if end > MAX_SIZE or (p.total is not None and p.total > MAX_SIZE):
            self._forget(key, p)  # no IP datagram is that long
            return None
        old = p.pieces.get(offset)
        if old is None or len(old) < len(data):
            p.pieces[offset] = data
            grown = len(data) - (len(old) if old is not None else -PIECE_OVERHEAD)
            p.held += grown
            self.buffered += grown
            if offset <= p.covered:
                self._extend(p, end)
            else:
                heapq.heappush(p.beyond, (offset, end))
        if self.buffered > self.max_bytes:
            self._evict()
            if self._partials.get(key) is not p:
                return None
        if p.total is None or p.covered < p.total:
            return None
        out = bytearray(p.total)
        for off in sorted(p.pieces):
            piece = p.pieces[off][: max(0, p.total - off)]
            out[off : off + len(piece)] = piece
        self._remove(key, p)
        self.reassembled += 1
        return bytes(out)

    @staticmethod
    def _extend(p: _Partial, end: int) -> None:
        """A piece reaching ``end`` starts inside the covered prefix: take in the pieces
        beyond it that the prefix now reaches."""
        covered = max(p.covered, end)
        beyond = p.beyond
        while beyond and beyond[0][0] <= covered:
            covered = max(covered, heapq.heappop(beyond)[1])
        p.covered = covered

    def _evict(self) -> None:
        """Over budget: drop the oldest datagrams until the rest fits."""
        while self.buffered > self.max_bytes and self._partials:
            key, p = next(iter(self._partials.items()))
            self.evicted += 1
            self.evicted_bytes += p.held
            self._forget(key, p)

    def _forget(self, key: FragmentKey, p: _Partial) -> None:
        self._remove(key, p)
        self.dropped += 1

    def _remove(self, key: FragmentKey, p: _Partial) -> None:
        del self._partials[key]
        self.buffered -= p.held

    def expire(self, now: float, force: bool = False) -> None:
        """Drop datagrams older than MAX_AGE (or, when full, the older half)."""
        if force:
            ordered = sorted(self._partials.items(), key=lambda kv: kv[1].first_time)
            victims = [k for k, _ in ordered[: len(ordered) // 2 or 1]]
        else:
            victims = [k for k, p in self._partials.items() if now - p.first_time > MAX_AGE]
        for k in victims:
            self._forget(k, self._partials[k])

    def finish(self) -> None:
        self.dropped += len(self._partials)
        self._partials.clear()
        self.buffered = 0
