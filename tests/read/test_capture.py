"""Reading one capture file: pcap and pcapng in both byte orders and every time stamp
resolution, gzip told by magic bytes, files cut off mid-record, and files that cannot be
used at all."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from pcapdns import _core
from pcapdns.analysis import analyze
from pcapdns.errors import InputError, NotACaptureError, UnsupportedLinkTypeError
from pcapdns.stats import CaptureFile
from tests.craft import (
    Interface,
    eth,
    query,
    response,
    sll2,
    write_pcap,
    write_pcapng_interfaces,
)

T0 = 1_700_000_000.0

#: (time, link type, interface, bytes): one record of a file, in the order written.
Record = tuple[float, int, int, bytes]


def read_all(path: Path) -> tuple[CaptureFile, list[Record]]:
    """The core's reader of one file (``_core.CaptureReader``): the file as read to its
    end, and its records."""
    reader = _core.CaptureReader(str(path))
    records = list(reader)
    return CaptureFile(**reader.info()), records


def eth_frames(n: int) -> list[bytes]:
    """``n`` distinct Ethernet frames (DNS queries with IDs 1..n)."""
    return [bytes(eth(query(id=i))) for i in range(1, n + 1)]


# -- classic pcap ------------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize(
    "nanos, times",
    [
        (False, [T0 + 0.000_001, T0 + 0.123_456, T0 + 2.5]),
        (True, [T0 + 0.000_000_001, T0 + 0.123_456_789, T0 + 2.5]),
    ],
    ids=["microseconds", "nanoseconds"],
)
def test_pcap_in_either_byte_order_and_resolution(
    tmp_path: Path, big_endian: bool, nanos: bool, times: list[float]
) -> None:
    frames = eth_frames(3)
    path = write_pcap(
        tmp_path / "dns.pcap", zip(times, frames, strict=True), nanos=nanos, big_endian=big_endian
    )

    info, records = read_all(path)

    assert (info.format, info.gzip, info.truncated, info.warnings) == ("pcap", False, False, [])
    assert info.link_types == [1]
    assert info.packets == 3
    assert [(lt, iface, data) for _, lt, iface, data in records] == [(1, 0, f) for f in frames]
    assert [r[0] for r in records] == pytest.approx(times, abs=1e-6)
    assert (info.first_time, info.last_time) == (records[0][0], records[-1][0])


def test_pcap_link_field_with_fcs_bits_is_still_its_link_type(tmp_path: Path) -> None:
    # pcap-savefile(5): the upper bits of the link type field may say an FCS is present.
    path = write_pcap(tmp_path / "fcs.pcap", [(T0, bytes(eth(query())))], link_type=0x1000_0001)

    info, records = read_all(path)

    assert info.link_types == [1]
    assert records[0][1] == 1


# -- pcapng ------------------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True], ids=["little-endian", "big-endian"])
def test_pcapng_interfaces_keep_their_own_link_type_and_time_resolution(
    tmp_path: Path, big_endian: bool
) -> None:
    interfaces = [
        Interface(link_type=1, tsresol=6, name="eth0"),  # microseconds
        Interface(link_type=101, tsresol=9, name="raw0"),  # nanoseconds
        Interface(link_type=276, tsresol=0x80 | 20, name="any"),  # 2**-20 s
    ]
    packets = [
        (0, T0 + 0.000_001, bytes(eth(query(id=1)))),
        (1, T0 + 0.000_002_500, bytes(query(id=2))),
        (2, T0 + 0.5, sll2(query(id=3), ifindex=7)),
        (1, T0 + 1.000_000_001, bytes(response(id=2))),
        (0, T0 + 1.25, bytes(eth(response(id=1)))),
    ]
    path = write_pcapng_interfaces(
        tmp_path / "multi.pcapng", interfaces, packets, big_endian=big_endian
    )

    info, records = read_all(path)

    assert (info.format, info.truncated, info.warnings) == ("pcapng", False, [])
    assert info.link_types == [1, 101, 276]
    assert info.interface_names == {0: "eth0", 1: "raw0", 2: "any"}
    assert [(lt, iface, data) for _, lt, iface, data in records] == [
        (interfaces[i].link_type, i, data) for i, _, data in packets
    ]
    assert [r[0] for r in records] == pytest.approx([t for _, t, _ in packets], abs=1e-6)


def test_pcapng_corpus_capture_with_a_nanosecond_and_a_microsecond_interface(
    corpus: Path,
) -> None:
    info, records = read_all(corpus / "zeek__pcapng-multi-interface.pcapng")

    assert info.link_types == [1, 1]
    assert [iface for _, _, iface, _ in records] == [0, 0, 1, 1, 1, 1]
    # tshark -T fields -e frame.time_epoch
    assert [r[0] for r in records] == pytest.approx(
        [
            1767663089.500330493,
            1767663089.514291940,
            1767663437.111897,
            1767663437.126460,
            1767663437.128303,
            1767663437.140942,
        ],
        abs=1e-6,
    )


# -- gzip ------------------------------------------------------------------------------


def _capture_bytes(tmp_path: Path, fmt: str) -> tuple[bytes, list[bytes]]:
    frames = eth_frames(3)
    if fmt == "pcap":
        path = write_pcap(tmp_path / "plain", [(T0 + i, f) for i, f in enumerate(frames)])
    else:
        path = write_pcapng_interfaces(
            tmp_path / "plain", [Interface()], [(0, T0 + i, f) for i, f in enumerate(frames)]
        )
    return path.read_bytes(), frames


@pytest.mark.parametrize(
    "fmt, compressed, name",
    [
        ("pcap", True, "dns.pcap"),
        ("pcapng", True, "dns.pcapng"),
        ("pcap", False, "dns.pcap.gz"),
        ("pcapng", False, "dns.pcapng.gz"),
    ],
    ids=["gzip-named-pcap", "gzip-named-pcapng", "plain-named-gz", "plain-pcapng-named-gz"],
)
def test_gzip_is_told_by_magic_bytes_not_by_name(
    tmp_path: Path, fmt: str, compressed: bool, name: str
) -> None:
    raw, frames = _capture_bytes(tmp_path, fmt)
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if compressed else raw)

    info, records = read_all(path)

    assert (info.format, info.gzip, info.truncated) == (fmt, compressed, False)
    assert [r[3] for r in records] == frames
    assert info.size == path.stat().st_size


def test_corpus_big_endian_pcap_in_gzip(corpus: Path) -> None:
    info, records = read_all(corpus / "packetq__sample-bigendian.pcap.gz")

    assert (info.format, info.gzip, info.truncated) == ("pcap", True, False)
    assert [r[0] for r in records] == pytest.approx([1382970487.688018, 1382970487.704674])


# -- damaged files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, into, where",
    [
        ("pcap", 7, "record header"),
        ("pcap", 16 + 10, "packet"),
        ("pcapng", 7, "block header"),
        ("pcapng", 28 + 10, "pcapng block"),
    ],
    ids=["pcap-record-header", "pcap-packet", "pcapng-block-header", "pcapng-packet"],
)
def test_file_cut_off_mid_record_is_read_to_its_last_whole_record(
    tmp_path: Path, fmt: str, into: int, where: str
) -> None:
    raw, frames = _capture_bytes(tmp_path, fmt)
    # The last record starts 16 (pcap record header) or 28 (pcapng block header and
    # Enhanced Packet Block fields) bytes before its packet; cut ``into`` bytes after that.
    last_record = raw.rindex(frames[-1]) - (16 if fmt == "pcap" else 28)
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(raw[: last_record + into])

    info, records = read_all(path)

    assert [r[3] for r in records] == frames[:2]
    assert (info.truncated, info.packets) == (True, 2)
    assert info.warnings == [
        f"{path}: cut off inside a {where} after 2 whole records; read up to the last whole record"
    ]


def test_cut_off_capture_is_analyzed_with_a_warning(tmp_path: Path) -> None:
    path = write_pcap(
        tmp_path / "killed.pcap", [(T0, bytes(eth(query()))), (T0 + 0.01, bytes(eth(response())))]
    )
    path.write_bytes(path.read_bytes()[:-10])

    result = analyze([str(path)])

    assert (result.packets, result.match.queries, result.match.responses) == (1, 1, 0)
    assert result.files[0].truncated
    assert result.warnings
    assert all(str(path) in w for w in result.warnings)


def test_cut_off_gzip_is_read_as_far_as_it_decompresses(tmp_path: Path) -> None:
    frames = [bytes(eth(query(name=f"host-{i}.example.com", id=i))) for i in range(3000)]
    raw = write_pcap(tmp_path / "plain.pcap", [(T0 + i / 10, f) for i, f in enumerate(frames)])
    compressed = gzip.compress(raw.read_bytes())
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(compressed[: len(compressed) // 2])

    info, records = read_all(path)

    assert 0 < len(records) < len(frames)
    assert [r[3] for r in records] == frames[: len(records)]
    assert info.truncated
    assert str(path) in info.warnings[0]


def test_gzip_without_its_trailer_is_complete_but_flagged(tmp_path: Path) -> None:
    # The cut falls after the last record: every record is whole, yet the file is damaged.
    raw, frames = _capture_bytes(tmp_path, "pcap")
    path = tmp_path / "notrailer.pcap.gz"
    path.write_bytes(gzip.compress(raw)[:-8])

    info, records = read_all(path)

    assert [r[3] for r in records] == frames
    assert info.truncated
    assert "gzip" in info.warnings[0]
    assert str(path) in info.warnings[0]


def test_record_length_beyond_any_snapshot_length_stops_reading(tmp_path: Path) -> None:
    raw, frames = _capture_bytes(tmp_path, "pcap")
    bad = bytearray(raw)
    second = raw.index(frames[1]) - 16
    bad[second + 8 : second + 12] = (10_000_000).to_bytes(4, "little")
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(bad))

    info, records = read_all(path)

    assert [r[3] for r in records] == frames[:1]
    assert info.truncated
    assert "record 2 claims 10000000 bytes" in info.warnings[0]


# -- time stamps outside any capture's lifetime -------------------------------------------


def _pcapng_ticks(path: Path, tsresol: int, tsoffset: int, ticks: list[int]) -> Path:
    """A pcapng with one Ethernet interface (``if_tsresol``, ``if_tsoffset`` as given) and
    one DNS query per raw 64-bit tick count: the reader's own arithmetic is tested, not
    the writer's."""

    def block(btype: int, body: bytes) -> bytes:
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HHq", 14, 8, tsoffset)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 262144) + opts + bytes(4))
    for i, t in enumerate(ticks, start=1):
        frame = bytes(eth(query(id=i)))
        frame += bytes(-len(frame) % 4)
        out += block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(frame),
                                    len(frame)) + frame)
    path.write_bytes(out)
    return path


@pytest.mark.parametrize(
    ("tsresol", "tsoffset", "bad_ticks", "shown"),
    [
        (0, 0, 2**48, "2.81475e+14 s"),  # whole seconds: 8.9 million years from now
        (0, 0, 2**64 - 1, "1.84467e+19 s"),
        (6, -(10**10), 10**15, "-9e+09 s"),  # an offset that goes back before 1970
        (0, 0, 7_258_118_400, "7.25812e+09 s"),  # 2200-01-01 itself is out
    ],
    ids=["2**48-seconds", "largest-tick-count", "before-1970", "year-2200"],
)
def test_pcapng_time_outside_1970_to_2200_is_skipped_and_counted(
    tmp_path: Path, tsresol: int, tsoffset: int, bad_ticks: int, shown: str
) -> None:
    good = round((T0 - tsoffset) * 10**tsresol)
    path = _pcapng_ticks(tmp_path / "bad-time.pcapng", tsresol, tsoffset,
                         [good, bad_ticks, good + 10**tsresol])

    info, records = read_all(path)

    assert [r[0] for r in records] == pytest.approx([T0, T0 + 1])
    assert (info.packets, info.bad_timestamps) == (2, 1)
    assert (info.first_time, info.last_time) == pytest.approx((T0, T0 + 1))
    assert info.warnings == [
        f"{path}: 1 record with a time stamp outside 1970..2200 skipped "
        f"(the first is record 2, at {shown} since 1970)"
    ], info.warnings


def test_the_last_second_before_2200_is_read(tmp_path: Path) -> None:
    path = _pcapng_ticks(tmp_path / "late.pcapng", 0, 0, [7_258_118_399])
    info, records = read_all(path)
    assert (len(records), info.bad_timestamps, info.warnings) == (1, 0, [])


def test_a_file_of_only_bad_times_is_analyzed_as_empty(tmp_path: Path) -> None:
    path = _pcapng_ticks(tmp_path / "all-bad.pcapng", 0, 0, [2**48, 2**49, 2**50])

    result = analyze([str(path)])

    assert result.packets == 0 and result.first_time is None
    assert [f.bad_timestamps for f in result.files] == [3]
    assert result.warnings == [
        f"{path}: 3 records with a time stamp outside 1970..2200 skipped "
        "(the first is record 1, at 2.81475e+14 s since 1970)"
    ]


@pytest.mark.parametrize("command", ["analyze", "report"])
def test_commands_survive_a_packet_at_2_to_the_48_seconds(tmp_path: Path, command: str) -> None:
    """The reported crash: an interface with if_tsresol=0 and a packet at 2**48 made both
    commands exit 1 with a traceback (datetime cannot hold the year)."""
    from click.testing import CliRunner

    from pcapdns.cli import main

    path = _pcapng_ticks(tmp_path / "far.pcapng", 0, 0, [int(T0), 2**48, int(T0) + 1])
    doc_path = tmp_path / "doc.json"
    args = ([command, str(path), "--format", "json", "-o", str(doc_path)] if command == "analyze"
            else [command, str(path), "-o", str(tmp_path / "r.html"), "--json", str(doc_path)])

    run = CliRunner().invoke(main, args)

    assert run.exit_code == 0, (run.output, run.exception)
    assert "1 record with a time stamp outside 1970..2200 skipped" in run.stderr
    doc = json.loads(doc_path.read_text())
    assert doc["summary"]["bad_timestamps"] == 1
    keys = list(doc["summary"])  # added after the older fields, never in their place
    assert keys.index("bad_timestamps") == keys.index("stale_port_evicted") + 1
    assert doc["summary"]["packets"] == 2
    assert doc["summary"]["last_time"] == "2023-11-14T22:13:21.000000Z"


# -- unusable inputs -------------------------------------------------------------------


def _one_line_naming(error: Exception, path: Path) -> str:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_text_file_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.pcap"
    path.write_text("kubectl logs coredns\n")

    with pytest.raises(NotACaptureError) as e:
        _core.CaptureReader(str(path))

    assert "not a pcap or pcapng file" in _one_line_naming(e.value, path)


def test_gzip_of_something_else_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "logs.gz"
    path.write_bytes(gzip.compress(b"not a capture at all, just text\n"))

    with pytest.raises(NotACaptureError) as e:
        _core.CaptureReader(str(path))

    assert "gzip" in _one_line_naming(e.value, path)


def test_empty_file_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")

    with pytest.raises(NotACaptureError) as e:
        _core.CaptureReader(str(path))

    assert "empty" in _one_line_naming(e.value, path)


@pytest.mark.parametrize("keep", [10, 12], ids=["gzip-header-only", "one-byte-of-data"])
def test_gzip_cut_off_before_the_capture_header_says_so(tmp_path: Path, keep: int) -> None:
    raw, _ = _capture_bytes(tmp_path, "pcap")
    path = tmp_path / "stub.pcap.gz"
    path.write_bytes(gzip.compress(raw)[:keep])

    with pytest.raises(NotACaptureError) as e:
        _core.CaptureReader(str(path))

    assert "gzip file cut off before" in _one_line_naming(e.value, path)


def test_gzip_of_nothing_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "nothing.pcap.gz"
    path.write_bytes(gzip.compress(b""))

    with pytest.raises(NotACaptureError) as e:
        _core.CaptureReader(str(path))

    assert "gzip file with no data in it" in _one_line_naming(e.value, path)


def test_pcap_shorter_than_its_file_header(tmp_path: Path) -> None:
    path = tmp_path / "stub.pcap"
    path.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00")

    with pytest.raises(NotACaptureError) as e:
        _core.CaptureReader(str(path))

    assert "24-byte header" in _one_line_naming(e.value, path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.pcap"

    with pytest.raises(InputError) as e:
        _core.CaptureReader(str(path))

    assert "no such file" in _one_line_naming(e.value, path)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        _core.CaptureReader(str(tmp_path))

    assert "directory" in _one_line_naming(e.value, tmp_path)


def test_pcap_with_an_unsupported_link_type_names_it(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "wifi.pcap", [(T0, b"\x00" * 40)], link_type=105)

    with pytest.raises(UnsupportedLinkTypeError) as e:
        _core.CaptureReader(str(path))

    assert str(e.value) == (
        f"{path}: unsupported link type IEEE802_11 (105); supported: NULL (0), ETHERNET (1), "
        "RAW (12, 14, 101), LOOP (108), LINUX_SLL (113), IPV4 (228), IPV6 (229), "
        "LINUX_SLL2 (276)"
    )


def test_a_link_type_without_a_name_is_shown_by_its_number(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "odd.pcap", [(T0, b"\x00" * 40)], link_type=4242)

    with pytest.raises(UnsupportedLinkTypeError) as e:
        _core.CaptureReader(str(path))

    assert str(e.value).startswith(f"{path}: unsupported link type 4242; supported: NULL (0), ")


def test_pcapng_interface_with_an_unsupported_link_type_names_it(tmp_path: Path) -> None:
    path = write_pcapng_interfaces(
        tmp_path / "nflog.pcapng",
        [Interface(link_type=1), Interface(link_type=239)],
        [(0, T0, bytes(eth(query())))],
    )

    with pytest.raises(UnsupportedLinkTypeError) as e:
        read_all(path)

    assert "interface 1 has unsupported link type NFLOG (239); supported: NULL (0), " in (
        _one_line_naming(e.value, path))
