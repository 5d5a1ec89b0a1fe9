"""IPv4 and IPv6 fragment reassembly.

Large EDNS answers (a 4096-byte buffer) leave the server as IP fragments; only the first
fragment carries the UDP header, so DNS cannot be seen until the datagram is whole again.
State is bounded in count (``MAX_DATAGRAMS``) and time (``MAX_AGE`` seconds, RFC 791's
reassembly timer is of the same order); what expires is counted, not decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DATAGRAMS = 4096
MAX_AGE = 30.0
MAX_SIZE = 65535

#: (source, destination, IP ID, protocol, capture interface). The interface is part of the
#: key because ``tcpdump -i any`` records each fragment on several interfaces in turn:
#: mixed together, the first copy completes and the later copies of the last fragment are
#: left over as datagrams that never complete.
FragmentKey = tuple[bytes, bytes, int, int, int]


@dataclass(slots=True)
class _Partial:
    first_time: float
    #: Fragment data by byte offset in the datagram's payload.
    pieces: dict[int, bytes] = field(default_factory=dict)
    #: Payload length, known once the last fragment (MF=0) arrived.
    total: int | None = None


class FragmentReassembler:
    """Collects fragments by ``FragmentKey`` and returns whole payloads."""

    def __init__(self) -> None:
        self._partials: dict[FragmentKey, _Partial] = {}
        #: Datagrams given up on (timed out, too many in flight, inconsistent).
        self.dropped = 0
        #: Datagrams reassembled.
        self.reassembled = 0

    def add(
        self, key: FragmentKey, offset: int, more: bool, data: bytes, time: float
    ) -> bytes | None:
        """Add one fragment; return the whole payload when this fragment completes it."""
        p = self._partials.get(key)
        if p is None:
            if len(self._partials) >= MAX_DATAGRAMS:
                self.expire(time, force=True)
            p = self._partials[key] = _Partial(first_time=time)
        p.pieces[offset] = data
        if not more:
            p.total = offset + len(data)
        if p.total is None:
            return None
        if p.total > MAX_SIZE:
            del self._partials[key]
            self.dropped += 1
            return None
        covered = 0
        for off in sorted(p.pieces):
            if off > covered:
                return None
            covered = max(covered, off + len(p.pieces[off]))
        if covered < p.total:
            return None
        out = bytearray(p.total)
        for off in sorted(p.pieces):
            piece = p.pieces[off][: max(0, p.total - off)]
            out[off : off + len(piece)] = piece
        del self._partials[key]
        self.reassembled += 1
        return bytes(out)

    def expire(self, now: float, force: bool = False) -> None:
        """Drop datagrams older than MAX_AGE (or, when full, the older half)."""
        if force:
            ordered = sorted(self._partials.items(), key=lambda kv: kv[1].first_time)
            victims = [k for k, _ in ordered[: len(ordered) // 2 or 1]]
        else:
            victims = [k for k, p in self._partials.items() if now - p.first_time > MAX_AGE]
        for k in victims:
            del self._partials[k]
            self.dropped += 1

    def finish(self) -> None:
        self.dropped += len(self._partials)
        self._partials.clear()
