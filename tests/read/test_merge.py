"""Several files, or a directory, are one capture: ordered by first packet time, merged by
time, with frame numbers that count across files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pcapdns import _core
from pcapdns.analysis import analyze, input_files
from pcapdns.config import AnalysisConfig
from pcapdns.errors import InputError, NotACaptureError, UnsupportedLinkTypeError
from tests.craft import Interface, query, response, write_eth, write_pcap, write_pcapng_interfaces

T0 = 1_700_000_000.0
HOUR = 3600.0
SUPPORTED = ("supported: NULL (0), ETHERNET (1), RAW (12, 14, 101), LOOP (108), "
             "LINUX_SLL (113), IPV4 (228), IPV6 (229), LINUX_SLL2 (276)")


def open_inputs(paths: list[str]) -> _core.Reader:
    """The core's reader of an analysis' inputs: iterated, the merged records in time
    order; ``files()`` and ``open_warnings`` describe them."""
    return _core.Reader(paths, AnalysisConfig().reorder_window)


def names(cap: _core.Reader) -> list[str]:
    """The files' names, in merge order."""
    return [Path(f["path"]).name for f in cap.files()]


def ring_after_wrap(directory: Path) -> list[Path]:
    """A ``tcpdump -C -W 3`` ring that wrapped: dns.pcap2 holds the oldest packets, then
    dns.pcap0, then dns.pcap1. Query 3 is the last packet of dns.pcap0 and its response the
    first of dns.pcap1."""
    directory.mkdir()
    return [
        write_eth(
            directory / "dns.pcap0",
            [
                (T0 + 1.0, query(id=2)),
                (T0 + 1.02, response(id=2)),
                (T0 + 2.0, query(id=3)),
            ],
        ),
        write_eth(
            directory / "dns.pcap1",
            [
                (T0 + 2.03, response(id=3)),
                (T0 + 3.0, query(id=4)),
                (T0 + 3.01, response(id=4)),
            ],
        ),
        write_eth(
            directory / "dns.pcap2",
            [
                (T0 + 0.0, query(id=1)),
                (T0 + 0.01, response(id=1)),
            ],
        ),
    ]


def frame_pairs(paths: list[Path]) -> list[tuple[int, int, int | None]]:
    """(DNS ID, query frame, response frame) of every transaction of the analysis."""
    result = analyze([str(p) for p in paths], keep_lookups=True)
    assert result.lookups is not None
    return [
        (t.query.id, t.query.frame, t.response.frame if t.response else None)
        for lookup in result.lookups
        for t in lookup.attempts
    ]


def test_ring_files_are_ordered_by_first_packet_time_not_by_name(tmp_path: Path) -> None:
    paths = ring_after_wrap(tmp_path / "ring")

    cap = open_inputs([str(p) for p in paths])

    assert names(cap) == ["dns.pcap2", "dns.pcap0", "dns.pcap1"]
    times = [r[0] for r in cap]
    assert times == sorted(times)
    assert len(times) == 8


def test_query_and_response_in_consecutive_ring_files_are_one_transaction(
    tmp_path: Path,
) -> None:
    paths = ring_after_wrap(tmp_path / "ring")

    pairs = frame_pairs(paths)

    # Frame numbers count across files in merged order: dns.pcap2 holds frames 1-2.
    assert sorted(pairs) == [(1, 1, 2), (2, 3, 4), (3, 5, 6), (4, 7, 8)]


def test_directory_is_the_capture_of_its_files(tmp_path: Path) -> None:
    ring_after_wrap(tmp_path / "ring")
    (tmp_path / "ring" / "capture.json").write_text("{}")
    (tmp_path / "ring" / "report.html").write_text("<!DOCTYPE html>")  # capture --analyze

    result = analyze([str(tmp_path / "ring")])

    assert result.packets == 8
    assert (result.match.queries, result.match.answered_queries) == (4, 4)
    # capture.json is the agent's metadata, not a capture: never read as one. This one
    # holds nothing the agent writes, so it is ignored with one warning.
    assert result.capture is None
    assert result.warnings == [f"{tmp_path / 'ring' / 'capture.json'}: ignored: format is "
                               "not a string"]


def test_non_capture_file_inside_a_directory_is_skipped_with_a_warning(tmp_path: Path) -> None:
    ring_after_wrap(tmp_path / "ring")
    notes = tmp_path / "ring" / "notes.txt"
    notes.write_text("captured on node-3 during the incident\n")

    cap = open_inputs([str(tmp_path / "ring")])

    assert len(cap.files()) == 3
    assert len(cap.open_warnings) == 1
    assert cap.open_warnings[0].startswith(f"{notes}: ")
    assert cap.open_warnings[0].endswith("; skipped")


def test_unsupported_link_type_inside_a_directory_is_skipped_with_a_warning(
    tmp_path: Path,
) -> None:
    ring_after_wrap(tmp_path / "ring")
    wifi = write_pcap(tmp_path / "ring" / "wifi.pcap", [(T0, b"\x00" * 40)], link_type=105)
    # A pcapng says its link types in interface blocks, which come before its packets.
    nflog = write_pcapng_interfaces(tmp_path / "ring" / "nflog.pcapng",
                                    [Interface(link_type=239)], [(0, T0, b"\x00" * 40)])

    cap = open_inputs([str(tmp_path / "ring")])

    assert names(cap) == ["dns.pcap2", "dns.pcap0", "dns.pcap1"]
    assert cap.open_warnings == [
        f"{nflog}: interface 0 has unsupported link type NFLOG (239); {SUPPORTED}; skipped",
        f"{wifi}: unsupported link type IEEE802_11 (105); {SUPPORTED}; skipped",
    ]
    assert len(list(cap)) == 8


def test_unsupported_link_type_named_explicitly_is_an_error(tmp_path: Path) -> None:
    good = write_eth(tmp_path / "dns.pcap", [(T0, query())])
    wifi = write_pcap(tmp_path / "wifi.pcap", [(T0, b"\x00" * 40)], link_type=105)

    with pytest.raises(UnsupportedLinkTypeError) as e:
        open_inputs([str(good), str(wifi)])

    assert str(e.value) == f"{wifi}: unsupported link type IEEE802_11 (105); {SUPPORTED}"


def test_files_captured_side_by_side_interleave_by_time(tmp_path: Path) -> None:
    # Two tcpdumps at once (one per node): each file covers the whole time range.
    node_a = write_eth(tmp_path / "node-a.pcap", [(T0 + 0.0, query(id=1)), (T0 + 0.2, query(id=3))])
    node_b = write_eth(
        tmp_path / "node-b.pcap", [(T0 + 0.1, response(id=1)), (T0 + 0.3, response(id=3))]
    )

    assert sorted(frame_pairs([node_b, node_a])) == [(1, 1, 2), (3, 3, 4)]


def test_capture_file_without_packets_takes_part_without_harm(tmp_path: Path) -> None:
    empty = write_eth(tmp_path / "empty.pcap", [])
    full = write_eth(tmp_path / "full.pcap", [(T0, query()), (T0 + 0.01, response())])

    cap = open_inputs([str(empty), str(full)])

    assert names(cap) == ["full.pcap", "empty.pcap"]
    assert len(list(cap)) == 2


def test_missing_input_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "dns.pcap9"

    with pytest.raises(InputError, match=f"^{re.escape(str(missing))}: no such file or directory$"):
        open_inputs([str(missing)])


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ring").mkdir()

    with pytest.raises(InputError, match="directory holds no capture files"):
        open_inputs([str(tmp_path / "ring")])


def test_directory_without_captures_is_an_error(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    ring.mkdir()
    (ring / "notes.txt").write_text("nothing captured\n")

    with pytest.raises(InputError) as e:
        open_inputs([str(ring)])

    assert str(e.value) == f"{ring}: no capture files to read"


def test_non_capture_named_explicitly_is_an_error(tmp_path: Path) -> None:
    good = write_eth(tmp_path / "dns.pcap", [(T0, query())])
    notes = tmp_path / "notes.txt"
    notes.write_text("not a capture\n")

    with pytest.raises(NotACaptureError, match=f"^{re.escape(str(notes))}: "):
        open_inputs([str(good), str(notes)])


def test_a_long_ring_keeps_only_the_files_in_use_open(tmp_path: Path) -> None:
    import os

    for i in range(60):
        write_eth(tmp_path / f"dns.pcap{i}", [(100.0 + i, query(id=i)),
                                             (100.0 + i + 0.001, response(id=i))])
    fds_before = len(os.listdir("/proc/self/fd"))
    cap = open_inputs([str(tmp_path)])
    most = 0
    count = 0
    for _ in cap:
        count += 1
        most = max(most, len(os.listdir("/proc/self/fd")) - fds_before)
    assert count == 120
    assert most <= 2
    assert sum(f["packets"] for f in cap.files()) == 120


# --- Files that do not look like one capture --------------------------------------------


def sample(path: Path, start: float, seconds: float) -> Path:
    """A short capture: one answered query at ``start`` and one ``seconds`` later."""
    return write_eth(path, [(start, query(id=1)), (start + 0.01, response(id=1)),
                            (start + seconds, query(id=2)),
                            (start + seconds + 0.01, response(id=2))])


def merged_warnings(paths: list[Path]) -> list[str]:
    cap = open_inputs([str(p) for p in paths])
    assert cap.open_warnings == [], "no warning may come before the files are read"
    assert sum(1 for _ in cap) == 4 * len(paths)
    return cap.open_warnings


def test_samples_days_apart_are_merged_with_a_warning(tmp_path: Path) -> None:
    monday = sample(tmp_path / "monday.pcap", T0, 30)
    thursday = sample(tmp_path / "thursday.pcap", T0 + 3 * 24 * HOUR, 30)

    assert merged_warnings([thursday, monday]) == [
        f"{thursday} starts 3.0 days after {monday} ends, a gap longer than any input file "
        "lasts: merged as one capture, though they do not look like one"
    ]


def test_each_gap_between_far_apart_samples_is_named(tmp_path: Path) -> None:
    a = sample(tmp_path / "a.pcap", T0, 60)
    b = sample(tmp_path / "b.pcap", T0 + 2 * HOUR, 60)
    c = sample(tmp_path / "c.pcap", T0 + 2 * HOUR + 120, 60)  # right after b: no gap
    d = sample(tmp_path / "d.pcap", T0 + 30 * HOUR + 180, 60)

    warnings = merged_warnings([a, b, c, d])

    assert [w.split(" a gap")[0] for w in warnings] == [
        f"{b} starts 2.0 hours after {a} ends,",
        f"{d} starts 28.0 hours after {c} ends,",
    ]


def test_a_ring_with_a_quiet_hour_is_one_capture(tmp_path: Path) -> None:
    # tcpdump -C rotates on size: on a quiet node a file lasts hours, and the pause
    # between two files is a pause between packets, shorter than the files themselves.
    first = sample(tmp_path / "dns.pcap0", T0, 5 * HOUR)
    second = sample(tmp_path / "dns.pcap1", T0 + 7 * HOUR, 4 * HOUR)

    assert merged_warnings([first, second]) == []


def test_samples_less_than_an_hour_apart_are_one_capture(tmp_path: Path) -> None:
    a = sample(tmp_path / "a.pcap", T0, 10)
    b = sample(tmp_path / "b.pcap", T0 + 50 * 60, 10)

    assert merged_warnings([a, b]) == []


def test_far_apart_warning_reaches_the_analysis(tmp_path: Path) -> None:
    a = sample(tmp_path / "a.pcap", T0, 30)
    b = sample(tmp_path / "b.pcap", T0 + 5 * HOUR, 30)

    result = analyze([str(a), str(b)])

    assert result.warnings == [
        f"{b} starts 5.0 hours after {a} ends, a gap longer than any input file lasts: "
        "merged as one capture, though they do not look like one"
    ]


def test_input_files_are_every_file_an_analysis_may_read(tmp_path: Path) -> None:
    paths = ring_after_wrap(tmp_path / "ring")
    (tmp_path / "ring" / "capture.json").write_text("{}")
    (tmp_path / "ring" / "notes.txt").write_text("skipped, but still an input\n")
    (tmp_path / "ring" / "report.html").write_text("<!DOCTYPE html>")  # capture --analyze
    single = write_eth(tmp_path / "single.pcap", [(T0, query())])

    ring = str(tmp_path / "ring")
    assert input_files([ring, str(single)]) == [
        ring, str(single),
        *sorted(str(p) for p in [*paths, tmp_path / "ring" / "notes.txt"]), str(single),
        f"{ring}/capture.json",
    ]
