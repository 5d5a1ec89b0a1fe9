"""DNS over TCP: reassemble each direction of a connection and cut out messages.

RFC 1035 section 4.2.2 and RFC 7766: every message is preceded by a 2-byte length. One
segment may carry several messages (glibc sends A and AAAA in one write) and one message
may span several segments. Captures also hold retransmitted and out-of-order segments and
connections that started before the capture did.

State per direction is bounded: at most ``MAX_OUT_OF_ORDER`` segments wait for a gap to
fill; when that overflows, or a buffered message can never complete, the gap is skipped and
counted, and framing restarts at the next segment that looks like a DNS message. Pieces of
the gaps skipped are remembered so that a segment arriving late inside one is framed on its
own: the last ``MAX_HOLES`` when a gap is skipped, at most ``MAX_HOLE_PIECES`` as late
segments split them; a late segment inside a piece that was forgotten is taken for a
retransmission (see ``TcpReassembler._late``).

All directions together hold at most ``max_bytes`` (``AnalysisConfig.max_tcp_buffer_bytes``)
of partial messages and waiting segments: counts alone do not bound memory, since 65,536
connections may each hold a 64 kB message that never completes, or 32 segments of 64 kB
beyond a gap. Past the budget the least recently active directions are dropped, their
partial messages counted as incomplete, and the drops counted in ``TcpStats``.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_OUT_OF_ORDER = 32
MAX_HOLES = 4
#: Pieces of skipped gaps remembered per direction. A late segment inside a gap splits it in
#: two, so without a cap a stream of late segments grows the list by one piece each, and
#: each scans it: quadratic cost. A retransmission fills a gap from its start (no split); a
#: reordering splits a gap a few times: 16 leaves each of the MAX_HOLES gaps room for three
#: splits. The pieces are not counted in the byte budget, so the cap is kept small: 65,536
#: directions hold at most a million pieces.
MAX_HOLE_PIECES = 16
MAX_FLOWS = 65536
IDLE_SECONDS = 120.0
#: Default of ``max_bytes``: the analysis passes ``AnalysisConfig.max_tcp_buffer_bytes``.
MAX_BYTES = 64 * 1024 * 1024
#: What a segment waiting beyond a gap costs besides its bytes (the bytes object, the
#: tuple and the dict entry), so that many tiny segments count too.
SEGMENT_OVERHEAD = 160

_FIN = 0x01
_SYN = 0x02
_RST = 0x04
_ACK = 0x10


@dataclass(slots=True)
class _Direction:
    """Reassembly state for one direction of one connection."""

    #: Sequence number expected next; None until the first SYN or data segment.
    next_seq: int | None = None
    #: Bytes received in order and not yet framed into messages.
    buf: bytearray = field(default_factory=bytearray)
    #: Segments that arrived ahead of a gap, by sequence number: (bytes, frame, time).
    ahead: dict[int, tuple[bytes, int, float]] = field(default_factory=dict)
    #: True until framing is known to be aligned (no SYN seen, or after a skipped gap).
    unaligned: bool = False
    #: While unaligned: offsets in ``buf`` where a segment began (a message may start there).
    starts: list[int] = field(default_factory=list)
    #: Gaps skipped on a message boundary, as (start, end) sequence numbers in stream order
    #: (at most MAX_HOLES pieces when a gap is skipped, MAX_HOLE_PIECES as late segments
    #: split them). Bytes that arrive later inside one were reordered or retransmitted after
    #: a loss, not copies of bytes already taken, and are framed on their own.
    holes: list[tuple[int, int]] = field(default_factory=list)
    #: The peer's latest acknowledgment of this direction: bytes before it reached the
    #: peer, so a gap before it is a capture loss that no retransmission will fill.
    acked: int | None = None
    #: Time of the last segment, for idle expiry.
    last_time: float = 0.0
    #: Bytes this direction holds, as counted in ``TcpReassembler.buffered``.
    held: int = 0


@dataclass(slots=True)
class TcpStats:
    """What TCP reassembly had to skip, for the summary."""

    #: Gaps (lost segments) skipped over; a reordered segment that fills one later is
    #: still framed, but the skip stays counted.
    gaps: int = 0
    #: Bytes dropped because they could not be framed (mid-stream start, after a gap).
    unframed_bytes: int = 0
    #: Messages cut short when their connection ended or expired.
    incomplete_messages: int = 0
    #: Zero-length messages skipped.
    empty_messages: int = 0
    #: Directions of connections dropped to keep reassembly within its byte budget, and
    #: the bytes they held (their partial messages are counted in incomplete_messages).
    evicted_flows: int = 0
    evicted_bytes: int = 0


FlowKey = tuple[str, int, str, int]
#: A reassembled message: its bytes, and the frame number and time of the segment that
#: completed it.
TcpMessage = tuple[bytes, int, float]


class TcpReassembler:
    """Turns TCP segments on DNS ports into whole DNS messages, per direction."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        #: Directions by key, least recently active first.
        self._flows: OrderedDict[FlowKey, _Direction] = OrderedDict()
        self.stats = TcpStats()
        #: Budget for the bytes held by all directions together.
        self.max_bytes = max_bytes
        #: Bytes held now: partial messages, and segments waiting beyond gaps.
        self.buffered = 0

    def segment(
        self,
        key: FlowKey,
        seq: int,
        flags: int,
        payload: bytes,
        frame: int,
        time: float,
        ack: int | None = None,
    ) -> Iterator[TcpMessage]:
        """Feed one segment; yield every DNS message it completes (without length prefix).

        ``ack`` is the segment's acknowledgment number (used when the ACK flag is set): it
        tells the other direction which of its bytes arrived.
        """
        if ack is not None and flags & _ACK:
            peer = self._flows.get((key[2], key[3], key[0], key[1]))
            if peer is not None:
                peer.acked = ack
        d = self._flows.get(key)
        if d is None:
            if flags & (_RST | _FIN) and not payload:
                return
            if len(self._flows) >= MAX_FLOWS:
                self.expire(time, force=True)
            d = self._flows[key] = _Direction()
        else:
            self._flows.move_to_end(key)
        d.last_time = time
        yield from self._segment(key, d, seq, flags, payload, frame, time)
        if self._flows.get(key) is d:
            self._account(d)
        if self.buffered > self.max_bytes:
            self._evict()

    def _segment(
        self,
        key: FlowKey,
        d: _Direction,
        seq: int,
        flags: int,
        payload: bytes,
        frame: int,
        time: float,
    ) -> Iterator[TcpMessage]:
        if flags & _SYN:
            d.next_seq = (seq + 1) & 0xFFFFFFFF
            d.buf.clear()
            d.ahead.clear()
            d.unaligned = False
            d.starts.clear()
            d.holes.clear()
            d.acked = None
            if not payload:
                return
            seq = d.next_seq
        if payload:
            if d.next_seq is None:
                # The connection started before the capture: framing is unknown.
                d.next_seq = seq
                d.unaligned = True
            yield from self._accept(d, seq, payload, frame, time)
        if flags & (_FIN | _RST):
            yield from self._close(key, d)

    def _accept(
        self, d: _Direction, seq: int, payload: bytes, frame: int, time: float
    ) -> Iterator[TcpMessage]:
        assert d.next_seq is not None
        diff = ((seq - d.next_seq + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        if diff < 0:
            if diff + len(payload) <= 0:
                if d.holes:
                    yield from self._late(d, seq, payload, frame, time)
                return  # else a retransmission of bytes already taken
            payload = payload[-diff:]
            diff = 0
        if diff > 0:
            d.ahead[seq] = (payload, frame, time)
            # The gap is a lost segment (capture drop), not a reordering worth waiting for,
            # when the peer has acknowledged the bytes beyond it, or when the segments
            # beyond it start a DNS message while nothing partial is buffered: frame from
            # here on instead of holding the stream back.
            if (
                len(d.ahead) > MAX_OUT_OF_ORDER
                or self._gap_acked(d)
                or (not d.buf and self._ahead_starts_message(d))
            ):
                yield from self._skip_gap(d)
            return
        yield from self._append(d, payload, frame, time)
        # Messages that this segment completes from segments waiting beyond the gap were
        # whole only now: they take this segment's frame and time.
        yield from self._drain_ahead(d, (frame, time))

    def _append(
        self, d: _Direction, payload: bytes, frame: int, time: float
    ) -> Iterator[TcpMessage]:
        assert d.next_seq is not None
        d.next_seq = (d.next_seq + len(payload)) & 0xFFFFFFFF
        if d.unaligned:
            d.starts.append(len(d.buf))
            d.buf += payload
            if not self._align(d):
                return
        else:
            d.buf += payload
        yield from self._frame(d, frame, time)

    def _align(self, d: _Direction) -> bool:
        """Framing is unknown: find the first segment start in ``buf`` where a
        length-prefixed DNS message begins and drop the bytes before it.

        A start with fewer than a header's worth of bytes after it waits for more. Only
        segment starts are tried: a message may begin there, hardly anywhere else.
        """
        buf = d.buf
        for i, start in enumerate(d.starts):
            if len(buf) - start < 14:
                self._drop_front(d, start, d.starts[i:])
                return False
            if _looks_like_dns(bytes(buf[start : start + 14])):
                self._drop_front(d, start, [])
                d.unaligned = False
                return True
        self._drop_front(d, len(buf), [])
        return False

    def _drop_front(self, d: _Direction, n: int, starts: list[int]) -> None:
        if n:
            self.stats.unframed_bytes += n
            del d.buf[:n]
        d.starts = [s - n for s in starts]

    def _late(
        self, d: _Direction, seq: int, payload: bytes, frame: int, time: float
    ) -> Iterator[TcpMessage]:
        """A segment behind ``next_seq``: frame it on its own when it lies in a skipped
        hole (the hole was a reordering, or a loss the sender repaired).

        Past MAX_HOLE_PIECES the oldest pieces are forgotten, as the oldest gaps are when a
        gap is skipped: a sender repairs the oldest loss first and a reordering is short,
        so late bytes for them are the least likely still to come. A segment inside a
        forgotten piece cannot be told from a retransmission of bytes already taken, so it
        is ignored like one: counted in no ``TcpStats`` field, its gap counted in ``gaps``
        when it was skipped.
        """
        for i, (start, end) in enumerate(d.holes):
            off = (seq - start) & 0xFFFFFFFF
            if off + len(payload) > (end - start) & 0xFFFFFFFF:
                continue
            # Take the bytes out of the hole so that a further copy is a retransmission.
            after = (seq + len(payload)) & 0xFFFFFFFF
            rest = [(start, seq)] if off else []
            if after != end:
                rest.append((after, end))
            d.holes[i : i + 1] = rest
            if len(d.holes) > MAX_HOLE_PIECES:
                del d.holes[: len(d.holes) - MAX_HOLE_PIECES]
            pos = 0
            if _looks_like_dns(payload[:14]):
                while len(payload) - pos >= 2:
                    (length,) = struct.unpack_from("!H", payload, pos)
                    if length == 0 or len(payload) - pos - 2 < length:
                        break
                    yield (payload[pos + 2 : pos + 2 + length], frame, time)
                    pos += 2 + length
            # A message that spans several late segments is not pieced together.
            self.stats.unframed_bytes += len(payload) - pos
            return

    def _drain_ahead(
        self, d: _Direction, at: tuple[int, float] | None = None
    ) -> Iterator[TcpMessage]:
        """Append buffered segments that are now in order; messages they complete take
        frame and time from ``at`` when given, else from their own segment."""
        while d.ahead:
            assert d.next_seq is not None
            progressed = False
            for s in list(d.ahead):
                diff = ((s - d.next_seq + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                if diff <= 0:
                    data, frame, time = d.ahead.pop(s)
                    if at is not None:
                        frame, time = at
                    if diff + len(data) > 0:
                        yield from self._append(d, data[-diff:] if diff else data, frame, time)
                    progressed = True
            if not progressed:
                return

    @staticmethod
    def _gap_acked(d: _Direction) -> bool:
        """Whether the peer acknowledged everything up to the first segment beyond the gap
        (what Wireshark calls "ACKed segment that wasn't captured")."""
        if d.acked is None:
            return False
        assert d.next_seq is not None
        base = d.next_seq
        first = min(d.ahead, key=lambda s: (s - base) & 0xFFFFFFFF)
        return 0 < (first - base) & 0xFFFFFFFF <= (d.acked - base) & 0xFFFFFFFF < 0x80000000

    @staticmethod
    def _ahead_starts_message(d: _Direction) -> bool:
        """Whether the contiguous run of segments after the gap begins a DNS message (the
        length prefix and header may come in separate segments)."""
        assert d.next_seq is not None
        base = d.next_seq
        seqs = sorted(d.ahead, key=lambda s: (s - base) & 0xFFFFFFFF)
        head = bytearray()
        expect = seqs[0]
        for s in seqs:
            if s != expect or len(head) >= 14:
                break
            head += d.ahead[s][0]
            expect = (s + len(d.ahead[s][0])) & 0xFFFFFFFF
        return _looks_like_dns(bytes(head))

    def _skip_gap(self, d: _Direction) -> Iterator[TcpMessage]:
        """Give up on a gap that will not fill: restart at the earliest buffered segment."""
        assert d.next_seq is not None
        self.stats.gaps += 1
        base = d.next_seq
        first = min(d.ahead, key=lambda s: (s - base) & 0xFFFFFFFF)
        if d.buf or d.unaligned:
            self.stats.unframed_bytes += len(d.buf)
            d.buf.clear()
            d.starts.clear()
        else:
            # Framing was on a message boundary at the gap: what fills it later can be
            # framed on its own.
            d.holes = [*d.holes[-(MAX_HOLES - 1) :], (base, first)]
        d.next_seq = first
        d.unaligned = True
        yield from self._drain_ahead(d)

    def _frame(self, d: _Direction, frame: int, time: float) -> Iterator[TcpMessage]:
        buf = d.buf
        start = 0
        n = len(buf)
        while n - start >= 2:
            (length,) = struct.unpack_from("!H", buf, start)
            if length == 0:
                self.stats.empty_messages += 1
                start += 2
                continue
            if n - start - 2 < length:
                break
            yield (bytes(buf[start + 2 : start + 2 + length]), frame, time)
            start += 2 + length
        if start:
            del buf[:start]

    def _close(self, key: FlowKey, d: _Direction) -> Iterator[TcpMessage]:
        """The connection ended: frame what waits beyond gaps, count what stays partial."""
        while d.ahead:
            yield from self._skip_gap(d)
        if d.buf:
            self.stats.incomplete_messages += 1
        if self._flows.get(key) is d:
            del self._flows[key]
            self.buffered -= d.held
            d.held = 0

    def _account(self, d: _Direction) -> None:
        """Bring ``buffered`` up to date with what ``d`` holds now."""
        held = len(d.buf)
        if d.ahead:
            held += sum(len(seg[0]) for seg in d.ahead.values())
            held += SEGMENT_OVERHEAD * len(d.ahead)
        self.buffered += held - d.held
        d.held = held

    def _evict(self) -> None:
        """Over budget: drop the least recently active directions (the one just fed last
        of all) until the rest fits. What they held is counted, not decoded."""
        while self.buffered > self.max_bytes and self._flows:
            key, d = next(iter(self._flows.items()))
            self.stats.evicted_flows += 1
            self.stats.evicted_bytes += d.held
            self._drop(key, d)

    def _drop(self, key: FlowKey, d: _Direction) -> None:
        """Forget a direction; its messages still waiting beyond a gap are counted."""
        self.stats.incomplete_messages += len(d.ahead)
        d.ahead.clear()
        for _ in self._close(key, d):
            pass

    def expire(self, now: float, force: bool = False) -> None:
        """Forget connections idle for longer than IDLE_SECONDS (or the oldest half).

        Messages still waiting beyond a gap in an idle connection are counted, not decoded:
        their time would be long past.
        """
        if force:
            ordered = sorted(self._flows.items(), key=lambda kv: kv[1].last_time)
            victims = [k for k, _ in ordered[: len(ordered) // 2 or 1]]
        else:
            victims = [k for k, d in self._flows.items() if now - d.last_time > IDLE_SECONDS]
        for k in victims:
            self._drop(k, self._flows[k])

    def finish_with_keys(self) -> Iterator[tuple[FlowKey, TcpMessage]]:
        """End of capture: frame what waits beyond gaps, count what is still incomplete."""
        for k in list(self._flows):
            for msg in self._close(k, self._flows[k]):
                yield k, msg


def _looks_like_dns(segment: bytes) -> bool:
    """Whether a segment plausibly starts with a length-prefixed DNS message.

    Used only to find framing in a stream whose start was not captured: the length must
    cover at least a header, and the header must announce at most one question (RFC 9619)
    and a known opcode; a query carries no response code (RFC 1035 4.1.1: RCODE is set as
    part of responses), which rules out much of the text of names and records.
    """
    if len(segment) < 14:
        return False
    length, flags, qdcount = struct.unpack_from("!H2xHH", segment, 0)
    opcode = (flags >> 11) & 0xF
    if not flags & 0x8000 and flags & 0xF:
        return False
    return length >= 12 and qdcount <= 1 and opcode in (0, 1, 2, 4, 5, 6)
