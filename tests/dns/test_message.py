"""DNS header and question on the wire (RFC 1035 4.1): names in presentation form with
RFC 4343 escapes, and hostile bytes that must become counted decode problems.

The header and question are parsed by the core (core/src/dns); ``_core.parse`` runs it on
one message. The answer records' names are read by the same name reader, seen here through
``_core.answer_section``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from pcapdns import _core
from pcapdns.analysis import analyze
from pcapdns.cli import main
from pcapdns.dns.message import DnsMalformed, DnsTruncated, Message
from pcapdns.errors import DecodeError
from tests.craft import (
    CLIENT,
    DNS,
    DNSQR,
    IP,
    SERVER,
    UDP,
    Raw,
    query,
    response,
    tcp_segment,
    write_eth,
)

T0 = 1_700_000_000.0


def header(ident: int = 0x1234, flags: int = 0x0100, qdcount: int = 1, ancount: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qdcount, ancount, 0, 0)


def label(text: bytes) -> bytes:
    return bytes([len(text)]) + text


def name(*labels: bytes) -> bytes:
    return b"".join(label(x) for x in labels) + b"\x00"


QTAIL = struct.pack("!HH", 1, 1)  # type A, class IN


def message(data: bytes, frame: int = 1) -> Message:
    return _core.parse(frame, T0, 0, "udp", CLIENT, 40000, SERVER, 53, data)


# -- well-formed messages --------------------------------------------------------------


def test_query_header_and_question() -> None:
    wire = bytes(query(name="kubernetes.default.svc.cluster.local", qtype="AAAA", id=0xBEEF)[DNS])
    m = message(wire)

    assert type(m) is Message and m.data == wire
    assert (m.id, m.is_response, m.opcode, m.qdcount, m.ancount) == (0xBEEF, False, 0, 1, 0)
    assert (m.qname, m.qtype, m.qclass) == ("kubernetes.default.svc.cluster.local", 28, 1)
    assert (m.frame, m.src, m.sport, m.dst, m.dport) == (1, CLIENT, 40000, SERVER, 53)


def test_response_flags() -> None:
    m = message(bytes(DNS(id=7, qr=1, rd=1, ra=1, tc=1, rcode=3, qd=DNSQR(qname="example.com"))))

    assert (m.is_response, m.rcode, m.tc) == (True, 3, True)
    assert m.qname == "example.com"


def test_root_name_and_no_question() -> None:
    assert message(header() + b"\x00" + QTAIL).qname == "."
    m = message(header(qdcount=0))
    assert (m.qname, m.qtype, m.qclass) == (None, 0, 0)


def test_compressed_answer_name_points_back_to_the_question() -> None:
    question = name(b"example", b"com") + QTAIL
    answer = b"\xc0\x0c" + struct.pack("!HHIH4s", 1, 1, 30, 4, bytes([192, 0, 2, 1]))
    # A second record right after the first: the name ends after its two pointer bytes.
    data = header(flags=0x8180, ancount=2) + question + answer + answer

    assert _core.answer_section(data).records == ("example.com 30 A 192.0.2.1",) * 2


def test_forward_pointer_is_followed() -> None:
    # RFC 1035 4.1.4 means pointers to point back, but some servers point forward.
    data = header() + b"\xc0\x12" + QTAIL + name(b"ahead", b"example")

    assert message(data).qname == "ahead.example"


def test_name_of_exactly_255_bytes_is_accepted() -> None:
    longest = name(b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 61)
    assert len(longest) == 255

    assert message(header() + longest + QTAIL).qname == ".".join(
        ["a" * 63, "b" * 63, "c" * 63, "d" * 61]
    )


@pytest.mark.parametrize(
    "raw, shown",
    [
        (b"<script>alert(1)</script>", "<script>alert(1)</script>"),
        (b"a.b", "a\\.b"),
        (b"nul\x00byte", "nul\\000byte"),
        (b"back\\slash", "back\\\\slash"),
        (b"two words", "two\\032words"),
        (b"caf\xc3\xa9", "caf\\195\\169"),
        (b"\x7f\x1b[31m", "\\127\\027[31m"),
    ],
    ids=["html", "dot", "nul", "backslash", "space", "utf8", "terminal-escape"],
)
def test_label_bytes_are_escaped_in_presentation_form(raw: bytes, shown: str) -> None:
    # RFC 4343 section 2.1: "\." for a dot inside a label, "\DDD" for other bytes.
    assert message(header() + name(raw, b"example") + QTAIL).qname == f"{shown}.example"


def test_escaped_name_survives_the_whole_analysis(tmp_path: Path) -> None:
    wire = header() + name(b"<script>", b"x.y", b"\x00", b"example") + QTAIL
    pkt = IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=53) / Raw(wire)
    path = write_eth(tmp_path / "names.pcap", [(T0, pkt)])

    result = analyze([str(path)], keep_lookups=True)

    assert result.lookups is not None
    assert result.lookups[0].first.qname == "<script>.x\\.y.\\000.example"


def test_escaped_name_in_the_json_document(tmp_path: Path) -> None:
    wire = header() + name(b"<script>", b"x.y", b"\x00", b"example") + QTAIL
    pkt = IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=53) / Raw(wire)
    path = write_eth(tmp_path / "names.pcap", [(T0, pkt)])

    run = CliRunner().invoke(main, ["analyze", str(path), "--format", "json", "--transactions"])

    assert run.exit_code == 0, run.output
    [row] = json.loads(run.output)["transactions"]
    assert row["qname"] == "<script>.x\\.y.\\000.example"


# -- hostile bytes -----------------------------------------------------------------------

HOSTILE = [
    # (id, the message, exception, words of its message)
    ("pointer-to-itself", header() + b"\xc0\x0c" + QTAIL, DnsMalformed, "loop"),
    ("pointers-to-each-other", header() + b"\xc0\x0e\xc0\x0c" + QTAIL, DnsMalformed, "loop"),
    ("pointer-loop-through-a-label", header() + b"\x01a\xc0\x0c" + QTAIL, DnsMalformed, "loop"),
    (
        "name-of-256-bytes",
        header() + name(b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 62) + QTAIL,
        DnsMalformed,
        "longer than 255",
    ),
    (
        "long-name-through-pointers",
        header() + name(b"a" * 63, b"b" * 63)[:-1] + b"\xc0\x0c" + QTAIL,
        DnsMalformed,
        "longer than 255",
    ),
    ("label-past-the-end", header() + b"\x10short", DnsTruncated, "label runs past"),
    ("name-without-end", header() + label(b"example"), DnsTruncated, "past the end"),
    ("pointer-cut-off", header() + b"\xc0", DnsTruncated, "pointer cut off"),
    ("pointer-past-the-end", header() + b"\xc0\xff" + QTAIL, DnsTruncated, "past the end"),
    ("header-of-4-bytes", header()[:4], DnsTruncated, "shorter than the 12-byte"),
    ("empty-payload", b"", DnsTruncated, "shorter than the 12-byte"),
    (
        "question-without-type",
        header() + name(b"example") + b"\x00",
        DnsTruncated,
        "before its type",
    ),
    (
        "label-type-0x40",
        header() + b"\x41a" + b"\x00" + QTAIL,
        DnsMalformed,
        "reserved label type 0x40",
    ),
    (
        "label-type-0x80",
        header() + b"\x81a" + b"\x00" + QTAIL,
        DnsMalformed,
        "reserved label type 0x80",
    ),
]


@pytest.mark.parametrize(
    "data, error, words", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_message_raises_a_decode_error(
    data: bytes, error: type[DecodeError], words: str
) -> None:
    with pytest.raises(error, match=words):
        message(data)


@pytest.mark.parametrize("data", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_message_is_counted_with_its_frame_and_the_analysis_goes_on(
    tmp_path: Path, data: bytes
) -> None:
    hostile = IP(src=CLIENT, dst=SERVER) / UDP(sport=40001, dport=53) / Raw(data)
    path = write_eth(
        tmp_path / "hostile.pcap",
        [
            (T0, query()),
            (T0 + 0.001, hostile),
            (T0 + 0.002, response()),
        ],
    )

    result = analyze([str(path)])

    assert result.malformed == 1
    assert [frame for frame, _ in result.malformed_examples] == [2]
    assert (result.match.queries, result.match.answered_queries) == (1, 1)


def test_hostile_message_over_tcp_is_counted_too(tmp_path: Path) -> None:
    bad = header() + b"\xc0\x0c" + QTAIL
    frames = [
        tcp_segment(1000, flags="S"),
        tcp_segment(1001, struct.pack("!H", len(bad)) + bad),
    ]
    path = write_eth(tmp_path / "hostile-tcp.pcap", [(T0 + i, f) for i, f in enumerate(frames)])

    result = analyze([str(path)])

    assert result.malformed_examples == [(2, "compression pointer loop")]


def test_the_answers_start_after_the_question_name() -> None:
    # An uncompressed owner right after the question: the question's name, type and class
    # must be skipped exactly.
    answer = name(b"svc", b"example", b"com") + struct.pack("!HHIH4s", 1, 1, 30, 4, bytes(4))
    data = bytes(DNS(id=1, qr=1, ancount=1, qd=DNSQR(qname="svc.example.com"))) + answer

    assert _core.answer_section(data).records == ("svc.example.com 30 A 0.0.0.0",)
