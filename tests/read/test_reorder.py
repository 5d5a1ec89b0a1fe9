"""Records written out of time order are passed on in time order, through a bounded window;
frame numbers stay the file's; records later than the window are counted, not lost."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from pcapdns._core import MAX_HELD, MAX_HELD_BYTES, TimeOrder

T = 1_795_602_000.0

#: (time, link type, interface, bytes) as read, and with its frame number as passed on.
Record = tuple[float, int, int, bytes]
Numbered = tuple[float, int, int, int, bytes]


def passed_on(order: TimeOrder, recs: Iterable[Record]) -> Iterator[Numbered]:
    """Push ``recs`` through ``order`` one at a time, yielding each record as soon as the
    buffer lets it go, then what it still holds at the end."""
    for ts, link_type, iface, data in recs:
        yield from order.push(ts, link_type, iface, data)
    yield from order.finish()


def records(*times: float, size: int = 60) -> list[Record]:
    """One Ethernet record per time, in the order given; the data says which it is."""
    return [(t, 1, 0, i.to_bytes(4, "big") * (size // 4)) for i, t in enumerate(times)]


def run(recs: list[Record], window: float = 0.5) -> tuple[list[tuple[float, int]], TimeOrder]:
    """(time, frame) of each record in the order passed on, and the buffer's counters."""
    order = TimeOrder(window)
    out = [(ts, frame) for ts, frame, _, _, _ in passed_on(order, recs)]
    return out, order


def test_records_in_order_pass_unchanged() -> None:
    times = [T + i * 0.001 for i in range(1000)]
    out, order = run(records(*times))
    assert out == [(t, i) for i, t in enumerate(times, 1)]
    assert (order.records, order.late, order.released_early) == (1000, 0, 0)
    assert order.warning() is None


def test_a_record_written_after_newer_ones_is_put_back_in_place() -> None:
    # Frame 3 was stamped between frames 1 and 2 (a second interface's buffer, handed over
    # late). It is passed on second, and keeps its frame number 3.
    out, order = run(records(T, T + 0.0004, T + 0.0001, T + 0.0005))
    assert out == [(T, 1), (T + 0.0001, 3), (T + 0.0004, 2), (T + 0.0005, 4)]
    assert order.late == 0


def test_equal_times_keep_file_order() -> None:
    out, _ = run(records(T + 0.2, T + 0.1, T + 0.1, T + 0.2, T + 0.1))
    assert out == [(T + 0.1, 2), (T + 0.1, 3), (T + 0.1, 5), (T + 0.2, 1), (T + 0.2, 4)]


def test_jitter_within_the_window_is_fully_sorted() -> None:
    rng = random.Random(7)
    # Send times 1 ms apart, written with up to 300 ms of delay: a 0.5 s window undoes it.
    stamped = [T + i * 0.001 for i in range(5000)]
    written = sorted(range(5000), key=lambda i: stamped[i] + rng.uniform(0, 0.3))
    recs = records(*(stamped[i] for i in written))
    out, order = run(recs)
    assert out == sorted(out), "passed on out of time order"
    assert sorted(frame for _, frame in out) == list(range(1, 5001))
    assert order.late == 0
    # Each frame number still names the record at that position in the file.
    assert all(recs[frame - 1][0] == ts for ts, frame in out)


def test_a_record_later_than_the_window_is_counted_and_passed_on_at_once() -> None:
    # Frame 4 is stamped 2 s before frame 3, written after it: frames 1 and 2 were passed on
    # when frame 3 (1.5 s newer) was read, so frame 4's place is gone.
    out, order = run(records(T, T + 1.0, T + 2.5, T + 0.5, T + 2.6))
    assert out == [(T, 1), (T + 1.0, 2), (T + 0.5, 4), (T + 2.5, 3), (T + 2.6, 5)]
    assert order.late == 1
    assert abs(order.most_behind - 2.0) < 1e-6
    assert order.warning() == (
        "1 record arrived more than 500 ms out of time order (the furthest 2.000 s); "
        "each was analyzed where it was read, so a copy of a packet among them may be "
        "counted twice and an answer read before its query taken for unsolicited"
    )


def test_a_record_out_of_order_but_not_yet_passed_is_not_late() -> None:
    # 0.8 s backwards, more than the window, but frame 2 (T + 0.8) is still held: nothing
    # newer than frame 3 had been passed on, so it takes its place.
    out, order = run(records(T + 0.8, T + 0.9, T, T + 1.0))
    assert out == [(T, 3), (T + 0.8, 1), (T + 0.9, 2), (T + 1.0, 4)]
    assert order.late == 0


def test_window_zero_keeps_file_order() -> None:
    out, order = run(records(T, T + 0.0004, T + 0.0001, T + 0.0005), window=0.0)
    assert [frame for _, frame in out] == [1, 2, 3, 4]
    assert order.late == 1


def _counting(recs: list[Record], read: list[int]) -> Iterator[Record]:
    for r in recs:
        read[0] += 1
        yield r


def test_a_burst_with_one_timestamp_is_not_held_whole() -> None:
    n = 100_000
    read = [0]
    order = TimeOrder(0.5)
    most_held = 0
    frames = []
    for _, frame, _, _, _ in passed_on(order, _counting(records(*[T] * n), read)):
        most_held = max(most_held, read[0] - len(frames))
        frames.append(frame)
    assert frames == list(range(1, n + 1))
    assert most_held <= MAX_HELD + 1, f"held {most_held} records at once"
    assert order.released_early == n - MAX_HELD
    assert order.late == 0


def test_large_records_are_capped_by_bytes() -> None:
    size = 200_000
    read = [0]
    order = TimeOrder(0.5)
    passed = 0
    most_held = 0
    for _ in passed_on(order, _counting(records(*[T + i * 1e-6 for i in range(200)], size=size),
                                    read)):
        most_held = max(most_held, read[0] - passed)
        passed += 1
    assert most_held * size <= MAX_HELD_BYTES + size, f"held {most_held} records"
    assert order.released_early > 0


def test_a_full_buffer_makes_lateness_possible_within_the_window_and_says_so() -> None:
    # MAX_HELD + 1 records at T push the first one out early; a record stamped before T
    # but well within the window then comes too late.
    out, order = run(records(*[T] * (MAX_HELD + 1), T - 0.01))
    assert order.released_early == 1 and order.late == 1
    assert out[0] == (T, 1) and out[1] == (T - 0.01, MAX_HELD + 2)
    warning = order.warning()
    assert warning is not None and warning.startswith(
        f"1 record arrived out of time order after the reorder buffer, full at "
        f"{MAX_HELD:,} records or {MAX_HELD_BYTES >> 20} MiB, had passed 1 record on "
        "before their 500 ms window was up (the furthest 10 ms out of order)"
    ), warning


def test_the_newest_time_and_the_count_are_known_at_the_end() -> None:
    _, order = run(records(T + 3, T + 1, T + 2))
    assert (order.records, order.newest) == (3, T + 3)
    _, empty = run([])
    assert empty.records == 0 and empty.warning() is None
