"""The CoreDNS log parser on lines in the ``log`` plugin's default format.

CoreDNS cannot run on the machine the suite runs on, so these lines are written here in the
format its source produces (plugin/log's default format through plugin/pkg/replacer, with
CoreDNS's ``[LEVEL] `` logger prefix and kubectl's ``--timestamps``); they are not copied
from any real log.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from pcapdns.coredns_log import index
from pcapdns.coredns_log.parse import (
    MAX_LINE_BYTES,
    OtherLine,
    QueryLine,
    Unparsable,
    parse_duration,
    parse_line,
    parse_time,
)
from pcapdns.errors import InputError

LINE = ('[INFO] 10.244.0.1:44342 - 29390 "A IN kubernetes.default.svc.cluster.local. '
        'udp 52 false 512" NOERROR qr,aa,rd 106 0.000109s')


def query(text: str) -> QueryLine:
    item = parse_line("coredns.log", 7, text)
    assert isinstance(item, QueryLine), f"not a query line: {item!r}"
    return item


def test_default_format() -> None:
    q = query(LINE)
    assert (q.client, q.port, q.id, q.qtype, q.qclass, q.name) == (
        "10.244.0.1", 44342, 29390, 1, "IN", "kubernetes.default.svc.cluster.local.")
    assert (q.proto, q.size, q.do, q.bufsize) == ("udp", 52, False, 512)
    assert (q.rcode, q.rcode_name, q.rflags, q.rsize) == (0, "NOERROR", "qr,aa,rd", 106)
    assert q.duration == pytest.approx(0.000109)
    assert q.time is None and q.where == "coredns.log:7"


def test_kubectl_timestamps_with_nanoseconds() -> None:
    q = query("2026-12-02T01:10:17.123456789Z " + LINE)
    assert q.time == pytest.approx(1796173817.123457, abs=1e-6)
    assert parse_time("2026-12-02T02:10:17.5+01:00 x") == pytest.approx(1796173817.5)
    assert parse_time("2026-13-02T01:10:17Z x") is None
    assert parse_time("not a time") is None


def test_kubectl_prefix_and_no_level() -> None:
    q = query("[pod/coredns-5d78c9869d-abcde/coredns] 2026-12-02T01:10:17Z " + LINE)
    assert q.time == pytest.approx(1796173817.0)
    assert query(LINE.removeprefix("[INFO] ")).id == 29390


def test_ipv6_remote_in_brackets() -> None:
    q = query('[INFO] [fd00::1]:53211 - 7 "AAAA IN web.example. tcp 40 true 1232" '
              'NXDOMAIN qr,rd,ra 110 0.2ms')
    assert (q.client, q.port, q.qtype, q.proto, q.do) == ("fd00::1", 53211, 28, "tcp", True)
    assert (q.rcode, q.duration) == (3, pytest.approx(0.0002))
    assert index.address_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert index.address_key("FD00:0::1") == "fd00::1"


def test_escaped_names() -> None:
    q = query(r'[INFO] 10.0.0.1:5 - 7 "A IN we\ ird\"na\.me\255.Example. udp 52 false 512" '
              'NOERROR qr 10 0.1s')
    assert q.name == r'we\ ird\"na\.me\255.Example.'
    assert index.name_key(q.name) == b'we ird"na.me\xff.example'
    assert index.name_key("we\\032ird\\034na\\.me\\255.example") == index.name_key(q.name)
    assert index.name_key(".") == b"" == index.name_key("")


@pytest.mark.parametrize("text, seconds", [
    ("0.000109s", 0.000109), ("0s", 0.0), ("109.2\u00b5s", 109.2e-6), ("109.2\u03bcs", 109.2e-6),
    ("12us", 12e-6), ("1.5ms", 0.0015), ("250ns", 250e-9), ("1m2.5s", 62.5), ("1h0m1s", 3601.0),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1.5", "s", "1.5sx", "-1s", "1 s"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("rcode, number, name", [
    ("NOERROR", 0, "NOERROR"), ("SERVFAIL", 2, "SERVFAIL"), ("NXDOMAIN", 3, "NXDOMAIN"),
    ("REFUSED", 5, "REFUSED"), ("23", 23, "RCODE23"), ("BADCOOKIE", 23, "RCODE23"),
])
def test_rcodes(rcode: str, number: int, name: str) -> None:
    q = query(LINE.replace("NOERROR", rcode))
    assert (q.rcode, q.rcode_name) == (number, name)


def test_unknown_type_and_empty_fields() -> None:
    q = query('[INFO] 10.0.0.1:5 - 7 "TYPE65280 IN x. udp 52 false 512" - - - 1.0s')
    assert (q.qtype, q.rcode, q.rflags, q.rsize) == (65280, -1, "-", -1)


@pytest.mark.parametrize("text, level, plugin", [
    ("[INFO] plugin/reload: Running configuration SHA512 = 0f3b", "INFO", "reload"),
    ("[ERROR] plugin/errors: 2 example.com. A: read udp 10.244.0.5:40546->8.8.8.8:53: "
     "i/o timeout", "ERROR", "errors"),
    ("[WARNING] No files matching import glob pattern: custom/*.override", "WARNING", ""),
    ("2026-12-02T01:10:17.000000001Z [INFO] Reloading complete", "INFO", ""),
    (".:53", "", ""),
    ("cluster.local.:53", "", ""),
    ("CoreDNS-1.11.1", "", ""),
    ("linux/amd64, go1.21.1, ae2bbc2", "", ""),
    ("maxprocs: Leaving GOMAXPROCS=2: CPU quota undefined", "", ""),
])
def test_other_plugins_lines(text: str, level: str, plugin: str) -> None:
    item = parse_line("f", 1, text)
    assert isinstance(item, OtherLine), item
    assert (item.level, item.plugin) == (level, plugin)


@pytest.mark.parametrize("text", [
    "hello world",
    LINE.replace("0.000109s", "soon"),                   # a duration that is none
    LINE.replace(" - 29390 ", " - 99999 "),              # an ID over 16 bits
    LINE.replace('"A IN', '"A'),                         # a field missing
    LINE[:60],                                           # cut short
    "[INFO] 10.0.0.1:5 - the rest is not a query",
])
def test_garbled_lines_are_unparsable(text: str) -> None:
    assert isinstance(parse_line("f", 1, text), Unparsable)


def test_empty_line_is_nothing() -> None:
    assert parse_line("f", 1, "  \r\n") is None


def write(tmp_path: Path, data: bytes, name: str = "coredns.log") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_load_counts_every_kind_of_line(tmp_path: Path) -> None:
    huge = b"[INFO] 10.0.0.1:5 - 7 " + b"x" * (MAX_LINE_BYTES * 3) + b"\n"
    data = b"\n".join([
        b".:53", b"CoreDNS-1.11.1", LINE.encode(),
        b"[ERROR] plugin/errors: 2 example.com. A: read udp 10.0.0.5:1->10.0.0.6:53: i/o "
        b"timeout",
        b"\xff\xfe not utf-8 \xc3", b"",
    ]) + b"\n" + huge + LINE.replace("29390", "29391").encode() + b"\n"
    x = index.load([write(tmp_path, data)])
    (f,) = x.files
    assert (f.lines, f.query_lines, f.other_lines, f.unparsable) == (8, 2, 3, 2)
    assert x.error_lines == 1 and x.errors[0].line == 4
    bad = [(u.line, u.text) for u in x.unparsable_examples]
    assert bad[0] == (5, "\\xff\\xfe not utf-8 \\xc3")
    assert bad[1][0] == 7 and bad[1][1].endswith("[line cut]") and len(bad[1][1]) < 300
    assert not x.timed and x.untimed == 2


def test_gzip_log(tmp_path: Path) -> None:
    x = index.load([write(tmp_path, gzip.compress(LINE.encode() + b"\n"), "log.gz")])
    assert x.query_lines == 1


def test_cap_on_query_lines(tmp_path: Path) -> None:
    lines = [LINE.replace("29390", str(i)) for i in range(10)]
    x = index.load([write(tmp_path, "\n".join(lines).encode())], max_queries=4)
    assert (len(x.queries), x.evicted, x.query_lines) == (4, 6, 10)


@pytest.mark.parametrize("make, problem", [
    (lambda d: str(d / "missing.log"), "cannot read the CoreDNS log"),
    (lambda d: str(d), "is a directory"),
    (lambda d: write(d, b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + b"\0" * 40, "x.pcap"),
     "is not a text file"),
])
def test_unreadable_files(tmp_path: Path, make, problem: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(InputError) as e:
        index.load([path])
    assert str(e.value).startswith(path + ": ") and problem in str(e.value)
