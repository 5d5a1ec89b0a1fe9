"""A response's answer section, record by record: types nobody decodes are kept in RFC 3597
form, a record whose data is damaged spoils only its own line, and hostile bytes end the
list with a reason instead of an exception (core/src/dns/records.rs, through
``pcapdns._core.answer_section``)."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from pcapdns import _core
from pcapdns.cli import main
from pcapdns.dns import names
from tests.craft import CLIENT, IP, SERVER, UDP, Raw, write_eth
from tests.dns.answers import OWNER, QUESTION, header, response, rr

T0 = 1_700_000_000.0
NSEC_RDATA = b"\x04next\xc0\x0c" + b"\x00\x06\x40\x01\x00\x00\x00\x03"  # next, A NS SOA...
AnswerSection = _core.AnswerSection
answer_section = _core.answer_section
MAX_RECORDS = _core.MAX_ANSWER_RECORDS


def test_known_records_decode() -> None:
    data = response(rr(5, b"\x03www\xc0\x0c"), rr(1, bytes([192, 0, 2, 1])))
    assert answer_section(data) == AnswerSection(
        ("example.com 300 CNAME www.example.com.", "example.com 300 A 192.0.2.1"), None
    )


def test_unknown_type_is_kept_in_generic_form_beside_the_others() -> None:
    # RFC 3597 section 5: TYPEnnn and "\# length hex"; the records around it still decode.
    data = response(rr(1, bytes([192, 0, 2, 1])), rr(65280, b"\x01\x02\x03"), rr(28, bytes(16)))
    section = answer_section(data)
    assert section.records == (
        "example.com 300 A 192.0.2.1",
        "example.com 300 TYPE65280 \\# 3 010203",
        "example.com 300 AAAA ::",
    )
    assert section.error is None


def test_an_unknown_type_outside_the_answer_section_changes_nothing() -> None:
    # The NODATA answer of zeek's dnssec/nsec.pcap: no answers, an NSEC in the authority.
    data = response(authority=(rr(47, NSEC_RDATA), rr(65280, b"\xff")))
    assert answer_section(data) == AnswerSection((), None)


def test_cname_rrsig_cname_a_chain() -> None:
    # The shape of zeek's dns-two-responses.pcap answer, which used to be dropped whole.
    rrsig = struct.pack("!HBBIIIH", 5, 7, 3, 86400, 1_364_943_067, 1_362_433_370, 6947)
    data = response(
        rr(5, b"\x03www\x06andrew\xc0\x0c", ttl=86400),
        rr(46, rrsig + b"\xc0\x0c" + b"\x01\x02\x03", ttl=86400),
        rr(5, b"\x05www-2\xc0\x29", owner=b"\xc0\x29", ttl=5),
        rr(1, bytes([128, 2, 10, 163]), owner=b"\xc0\x65", ttl=21600),
    )
    section = answer_section(data)
    assert [line.split(" ")[2] for line in section.records] == ["CNAME", "RRSIG", "CNAME", "A"]
    assert section.records[1] == (
        "example.com 86400 RRSIG CNAME 7 3 86400 20130402225107 20130304214250 6947 "
        "example.com. AQID"
    )
    assert section.records[3] == "www-2.www.andrew.example.com 21600 A 128.2.10.163"
    assert section.error is None


@pytest.mark.parametrize(("number", "mnemonic"), [
    (10, "NULL"), (11, "WKS"), (30, "NXT"), (46, "RRSIG"), (64, "SVCB"), (255, "ANY"),
    (32769, "DLV"), (65534, "TYPE65534"), (54, "TYPE54"),
])
def test_type_names_for_records_and_questions(number: int, mnemonic: str) -> None:
    # One table names both: the question type of a WKS query is "WKS" too.
    assert names.qtype_name(number) == mnemonic
    line = answer_section(response(rr(number, b"", rclass=255))).records[0]
    assert line == f"example.com 300 {mnemonic} \\# 0"


def test_malformed_rdata_marks_only_its_record() -> None:
    data = response(rr(1, b"\xc0\x00\x02"), rr(1, bytes([192, 0, 2, 7])))
    section = answer_section(data)
    assert section.records == (
        "example.com 300 A \\# 3 c00002 ; malformed: IPv4 address runs past the rdata",
        "example.com 300 A 192.0.2.7",
    )
    assert section.error == "answer 1: A rdata: IPv4 address runs past the rdata"


def test_bytes_left_after_the_rdata_are_malformed() -> None:
    section = answer_section(response(rr(1, bytes([192, 0, 2, 1, 0]))))
    assert section.records == (
        "example.com 300 A \\# 5 c000020100 ; malformed: 1 bytes left after the A rdata",
    )


def test_only_the_first_problem_is_the_error() -> None:
    data = response(rr(28, b"\x00"), rr(1, b""), rr(15, b"\x00\x0a\x00"))
    section = answer_section(data)
    assert len(section.records) == 3
    assert section.records[2] == "example.com 300 MX 10 ."
    assert section.error == "answer 1: AAAA rdata: IPv6 address runs past the rdata"


def test_update_prerequisite_without_rdata_is_not_malformed() -> None:
    # RFC 2136 2.4.4: "name is not in use" is class NONE, type ANY, no rdata; 2.4.1 uses
    # class ANY with a real type (CNAME here, as in zeek's dynamic-update.pcap).
    data = response(rr(5, b"", rclass=254, ttl=0), rr(255, b"", rclass=255, ttl=0))
    assert answer_section(data) == AnswerSection(
        ("example.com 0 CNAME \\# 0", "example.com 0 ANY \\# 0"), None
    )


def test_at_most_max_records_are_decoded() -> None:
    data = response(*[rr(1, bytes([10, 0, 0, i])) for i in range(MAX_RECORDS + 5)])
    section = answer_section(data)
    assert len(section.records) == MAX_RECORDS
    assert section.error is None


def test_ttl_is_unsigned() -> None:
    data = response(rr(1, bytes(4), ttl=0xFFFFFFFF))
    assert answer_section(data).records == ("example.com 4294967295 A 0.0.0.0",)


# -- hostile bytes ----------------------------------------------------------------------------

GOOD = rr(1, bytes([192, 0, 2, 1]))

HOSTILE = [
    # (id, the message, how many lines are listed, words of the error)
    ("owner-pointer-to-itself",
     header(ancount=2) + QUESTION + GOOD + b"\xc0\x2d" + b"\x00" * 10, 1, "loop"),
    ("owner-pointers-to-each-other",
     header(ancount=1) + QUESTION + b"\xc0\x1f" + b"\xc0\x1d", 0, "loop"),
    ("cname-target-points-to-itself", response(rr(5, b"\xc0\x29")), 1, "CNAME rdata: compression"),
    ("rdata-name-leaves-the-rdata",
     response(rr(5, b"\x03www"), rr(1, bytes(4))), 2, "CNAME rdata: name runs past the rdata"),
    ("owner-name-of-256-bytes",
     header(ancount=1) + QUESTION + b"".join(bytes([63]) + b"a" * 63 for _ in range(4))
     + b"\x00", 0, "longer than 255"),
    ("reserved-label-type", header(ancount=1) + QUESTION + b"\x80abc", 0, "reserved"),
    ("record-header-cut-off", header(ancount=2) + QUESTION + GOOD + OWNER + b"\x00\x01",
     1, "before its type"),
    ("rdlength-runs-past-the-message",
     header(ancount=2) + QUESTION + GOOD + OWNER + struct.pack("!HHIH", 1, 1, 0, 400)
     + bytes(4), 1, "runs past the end"),
    ("ancount-larger-than-the-records", header(ancount=3) + QUESTION + GOOD, 1, "past the end"),
    ("qdcount-larger-than-the-questions", header(qdcount=2, ancount=1) + QUESTION, 0,
     "question section: name runs past the end"),
    ("question-cut-off", header(ancount=1) + QUESTION[:-2], 0,
     "question section: question ends before its type and class"),
    ("short-header", b"\x12\x34\x81", 0, "12-byte header"),
]


@pytest.mark.parametrize(("data", "kept", "words"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_hostile_answer_sections_give_a_reason(
    data: bytes, kept: int, words: str
) -> None:
    section = answer_section(data)
    assert len(section.records) == kept, section
    assert section.error is not None and words in section.error, section.error


def test_random_damage_never_raises() -> None:
    # Flip, cut and splice bytes of a response holding many record types: every outcome
    # must be an AnswerSection, never an exception (dpkt's test_circular_pointers in spirit).
    rng = random.Random(1035)
    rrsig = struct.pack("!HBBIIIH", 1, 8, 2, 300, 0, 0, 1) + b"\xc0\x0c" + b"sig"
    base = response(
        rr(1, bytes([192, 0, 2, 1])), rr(5, b"\x03www\xc0\x0c"), rr(16, b"\x03abc\x00"),
        rr(6, b"\xc0\x0c\xc0\x0c" + bytes(20)), rr(46, rrsig), rr(47, NSEC_RDATA),
        rr(65, b"\x00\x01\x00\x00\x01\x00\x03\x02h2"), rr(29, bytes(16)), rr(65280, b"xyz"),
    )
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            i = rng.randrange(len(data))
            if op < 0.6:
                data[i] = rng.randrange(256)
            elif op < 0.8:
                del data[i:]
                if len(data) < 2:
                    break
            else:
                data[i:i] = bytes([0xC0, rng.randrange(256)])
        section = answer_section(bytes(data))
        assert isinstance(section, AnswerSection)
        assert len(section.records) <= MAX_RECORDS


# -- in the JSON document ----------------------------------------------------------------------


def test_answer_records_in_the_json_document(tmp_path: Path) -> None:
    query = header(flags=0x0100) + QUESTION
    answer = response(rr(99, b"\x06v=spf1"), rr(65280, b"\xab"), rr(1, b"\x01"))
    path = write_eth(tmp_path / "records.pcap", [
        (T0, IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=53) / Raw(query)),
        (T0 + 0.01, IP(src=SERVER, dst=CLIENT) / UDP(sport=53, dport=40000) / Raw(answer)),
    ])

    run = CliRunner().invoke(main, ["analyze", str(path), "--format", "json", "--transactions"])

    assert run.exit_code == 0, run.output
    doc = json.loads(run.output)
    [row] = doc["transactions"]
    assert row["response_frame"] == 2
    assert row["answer_records"] == [
        'example.com 300 SPF "v=spf1"',
        "example.com 300 TYPE65280 \\# 1 ab",
        "example.com 300 A \\# 1 01 ; malformed: IPv4 address runs past the rdata",
    ]
    assert row["answer_records_error"] == "answer 3: A rdata: IPv4 address runs past the rdata"
    assert doc["summary"]["malformed"] == 0  # the message itself is sound
