"""Each decoded type's presentation form, checked against the examples of its RFC where it
has one, and the damage that makes a record's data malformed (core/src/dns/rdata.rs, seen
through the answer records of a response)."""

from __future__ import annotations

import base64
import calendar
import struct

import pytest

from pcapdns import _core
from tests.dns.answers import problem, response, rr, show


def n(text: str) -> bytes:
    """A name in uncompressed wire form."""
    return b"".join(bytes([len(x)]) + x.encode() for x in text.split(".") if x) + b"\x00"


def u16(*values: int) -> bytes:
    return struct.pack(f"!{len(values)}H", *values)


def u32(*values: int) -> bytes:
    return struct.pack(f"!{len(values)}I", *values)


def utc(text: str) -> int:
    return calendar.timegm(tuple(int(text[i:j]) for i, j in  # type: ignore[arg-type]
                                 ((0, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14))))


RFC4034_SIG = base64.b64decode(
    "oJB1W6WNGv+ldvQ3WDG0MQkg5IEhjRip8WTrPYGv07h108dUKGMeDPKijVCHX3DDKdfb+v6o"
    "B9wfuh3DTJXUAfI/M0zmO/zz8bW0Rznl8O3tGNazPwQKkRN20XPXV6nwwfoXmJQbsLNrLfkG"
    "J5D6fwFm8nN+6pBzeDQfsS3Ap3o="
)
# RFC 4034 4.3: the NSEC rdata of alfa.example.com, byte for byte.
RFC4034_NSEC = bytes.fromhex(
    "04686f7374076578616d706c6503636f6d00"
    "0006400100000003041b000000000000000000000000000000000000000000000000000020"
)

def _nsec3_rfc5155() -> bytes:
    # Types MX DNSKEY NS SOA NSEC3PARAM RRSIG in window 0: bits 2, 6, 15, 46, 48, 51.
    bitmap = bytearray(7)
    for t in (2, 6, 15, 46, 48, 51):
        bitmap[t // 8] |= 0x80 >> (t % 8)
    return (bytes([1, 1]) + u16(12) + b"\x04\xaa\xbb\xcc\xdd" + b"\x14"
            + base64.b32hexdecode("2T7B4G4VSA5SMI47K61MV5BV1A22BOJR") + bytes([0, 7]) + bitmap)


WELL_FORMED = [
    # (id, type, rdata, presentation)
    ("A", 1, bytes([192, 0, 2, 1]), "192.0.2.1"),
    ("AAAA", 28, bytes.fromhex("20010db8000000000000000000000001"), "2001:db8::1"),
    ("NS", 2, n("ns1.example.com"), "ns1.example.com."),
    ("CNAME-to-root", 5, b"\x00", "."),
    ("SOA", 6, n("ns.example") + n("host.example") + u32(2024010101, 7200, 3600, 1209600, 300),
     "ns.example. host.example. 2024010101 7200 3600 1209600 300"),
    # The two WKS records of zeek's dns/dns-wks.pcap read the same way in tshark.
    ("WKS", 11, bytes([192, 0, 2, 1, 6, 0xE0, 0x00, 0x05]), "192.0.2.1 6 0 1 2 21 23"),
    ("PTR", 12, n("host.example"), "host.example."),
    ("HINFO", 13, b"\x03x86\x05Linux", '"x86" "Linux"'),
    ("MINFO", 14, n("admin.example") + n("errors.example"), "admin.example. errors.example."),
    ("MX", 15, u16(10) + n("mail.example.com"), "10 mail.example.com."),
    ("TXT-escapes", 16, b'\x06a"b\\c\xff\x00', '"a\\"b\\\\c\\255" ""'),
    ("RP", 17, n("louie.trantor.umd.edu") + n("lam1.people.umd.edu"),
     "louie.trantor.umd.edu. lam1.people.umd.edu."),
    ("AFSDB", 18, u16(1) + n("afs.example"), "1 afs.example."),
    ("PX", 26, u16(10) + n("ab.net2.it") + n("o-ab.prmd-net2.admdb.c-it"),
     "10 ab.net2.it. o-ab.prmd-net2.admdb.c-it."),
    # LOC of zeek's dns/loc-29-trunc.pcap, as tshark reads it.
    ("LOC", 29, bytes([0, 0x12, 0x15, 0x13]) + u32(2282029648, 1708315648, 10000000),
     "37 22 26.000 N 121 59 28.000 W 0.00m 1.00m 1000.00m 10.00m"),
    ("LOC-south-west-below", 29, bytes([0, 0x12, 0x16, 0x13]) + u32(2**31 - 1, 2**31 - 1, 0),
     "0 0 0.001 S 0 0 0.001 W -100000.00m 1.00m 10000.00m 10.00m"),
    ("SRV", 33, u16(0, 5, 5060) + n("sip.example.com"), "0 5 5060 sip.example.com."),
    ("NAPTR", 35, u16(100, 10) + b"\x01S\x07SIP+D2U\x00" + n("_sip._udp.example.com"),
     '100 10 "S" "SIP+D2U" "" _sip._udp.example.com.'),
    ("KX", 36, u16(10) + n("kx.example"), "10 kx.example."),
    ("DNAME", 39, n("example.net"), "example.net."),
    # RFC 4034 5.4.
    ("DS", 43, u16(60485) + bytes([5, 1]) + bytes.fromhex(
        "2BB183AF5F22588179A53B0A98631FAD1A292118"),
     "60485 5 1 2bb183af5f22588179a53b0a98631fad1a292118"),
    ("SSHFP", 44, bytes([4, 2]) + bytes(range(4)), "4 2 00010203"),
    # RFC 4034 3.3.
    ("RRSIG", 46, u16(1) + bytes([5, 3]) + u32(86400, utc("20030322173103"),
                                               utc("20030220173103")) + u16(2642)
     + n("example.com") + RFC4034_SIG,
     "A 5 3 86400 20030322173103 20030220173103 2642 example.com. "
     + base64.b64encode(RFC4034_SIG).decode()),
    ("NSEC", 47, RFC4034_NSEC, "host.example.com. A MX RRSIG NSEC TYPE1234"),
    ("DNSKEY", 48, u16(257) + bytes([3, 13]) + b"\x01\x02\x03", "257 3 13 AQID"),
    ("DNSKEY-without-key", 48, u16(256) + bytes([3, 8]), "256 3 8 -"),
    # RFC 5155 appendix A: the NSEC3 at 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example.
    ("NSEC3", 50, _nsec3_rfc5155(),
     "1 1 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr NS SOA MX RRSIG DNSKEY NSEC3PARAM"),
    ("NSEC3PARAM", 51, bytes([1, 0]) + u16(12) + b"\x04\xaa\xbb\xcc\xdd", "1 0 12 aabbccdd"),
    ("NSEC3PARAM-no-salt", 51, bytes([1, 0]) + u16(0) + b"\x00", "1 0 0 -"),
    ("TLSA", 52, bytes([3, 1, 1]) + bytes.fromhex("0c72ac70"), "3 1 1 0c72ac70"),
    ("CDS-delete", 59, u16(0) + bytes([0, 0, 0]), "0 0 0 00"),  # RFC 8078 4
    ("OPENPGPKEY", 61, b"\x01\x02\x03", "AQID"),
    # RFC 7477 2.3.
    ("CSYNC", 62, u32(66) + u16(3) + bytes([0, 4, 0x60, 0, 0, 0x08]), "66 3 A NS AAAA"),
    ("ZONEMD", 63, u32(2018031900) + bytes([1, 1]) + b"\xab\xcd", "2018031900 1 1 abcd"),
    ("SPF", 99, b"\x0fv=spf1 mx -all ", '"v=spf1 mx -all "'),
    # RFC 7043 3.2 and 4.2.
    ("EUI48", 108, bytes.fromhex("00005e00532a"), "00-00-5e-00-53-2a"),
    ("EUI64", 109, bytes.fromhex("00005efffe00532a"), "00-00-5e-ff-fe-00-53-2a"),
    ("TKEY", 249, n("gss-tsig") + u32(utc("20230221000838"), utc("20230222000838"))
     + u16(3, 0, 3) + b"\x01\x02\x03" + u16(0),
     "gss-tsig. 20230221000838 20230222000838 3 0 AQID -"),
    # RFC 7553 4.5 and RFC 8659 4.1.1.
    ("URI", 256, u16(10, 1) + b"ftp://ftp1.example.com/public",
     '10 1 "ftp://ftp1.example.com/public"'),
    ("CAA", 257, b"\x00\x05issue" + b"ca.example.net", '0 issue "ca.example.net"'),
    ("DLV", 32769, u16(1) + bytes([8, 2]) + b"\xff", "1 8 2 ff"),
    ("NULL-is-generic", 10, b"\x00\x01", "\\# 2 0001"),
    ("OPT-is-generic", 41, b"", "\\# 0"),
    ("LOC-version-1-is-generic", 29, bytes([1]) + bytes(15), "\\# 16 01" + "00" * 15),
]


@pytest.mark.parametrize(("rtype", "rdata", "text"), [c[1:] for c in WELL_FORMED],
                         ids=[c[0] for c in WELL_FORMED])
def test_presentation(rtype: int, rdata: bytes, text: str) -> None:
    assert show(rtype, rdata) == text


@pytest.mark.parametrize(("rclass", "text"), [
    (1, "192.0.2.1"),
    (0x8001, "192.0.2.1"),  # mDNS: IN with the cache-flush bit (RFC 6762 10.2)
    (254, "192.0.2.1"),  # NONE: an UPDATE deleting this A record (RFC 2136 2.5.4)
    (3, "\\# 4 c0000201"),  # CHAOS: not an Internet address
])
def test_address_types_by_class(rclass: int, text: str) -> None:
    assert show(1, bytes([192, 0, 2, 1]), rclass) == text


def test_compressed_names_point_into_the_message() -> None:
    section = _core.answer_section(response(rr(15, u16(10) + b"\x04mail\xc0\x0c")))
    assert section.records == ("example.com 300 MX 10 mail.example.com.",)


MALFORMED = [
    # (id, type, rdata, the reason)
    ("A-short", 1, b"\x01\x02", "IPv4 address runs past the rdata"),
    ("AAAA-long", 28, bytes(17), "1 bytes left after the AAAA rdata"),
    ("SOA-without-counters", 6, n("a") + n("b") + u32(1), "SOA counter runs past the rdata"),
    ("HINFO-without-OS", 13, b"\x03x86", "OS runs past the rdata"),
    ("TXT-empty", 16, b"", "character-string runs past the rdata"),
    ("TXT-string-too-long", 16, b"\x05abc", "character-string runs past the rdata"),
    ("MX-name-cut", 15, u16(1) + b"\x04mai", "name: label runs past the end of the message"),
    ("LOC-precision-not-decimal", 29, bytes([0, 0xA0, 0x12, 0x12]) + bytes(12),
     "LOC size or precision 0xa0 is not decimal"),
    ("NSEC-window-length-0", 47, b"\x00" + bytes([0, 0]),
     "type bitmap window length 0, not 1 to 32"),
    ("NSEC-window-length-33", 47, b"\x00" + bytes([0, 33]) + bytes(33),
     "type bitmap window length 33, not 1 to 32"),
    ("NSEC-bitmap-cut", 47, b"\x00" + bytes([0, 4, 0x40]), "type bitmap runs past the rdata"),
    ("NSEC3-salt-cut", 50, bytes([1, 0]) + u16(1) + b"\x08\xaa", "salt runs past the rdata"),
    ("RRSIG-without-signer", 46, u16(1) + bytes(16), "signer runs past the rdata"),
    ("CAA-empty-tag", 257, b"\x00\x00abc", "CAA tag is not letters and digits"),
    ("CAA-tag-not-alphanumeric", 257, b"\x00\x02a-x", "CAA tag is not letters and digits"),
    ("TKEY-key-size-lies", 249, n("gss-tsig") + u32(0, 0) + u16(3, 0, 500) + b"\x01",
     "key runs past the rdata"),
    ("EUI48-short", 108, bytes(5), "EUI-48 runs past the rdata"),
]


@pytest.mark.parametrize(("rtype", "rdata", "reason"), [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_malformed(rtype: int, rdata: bytes, reason: str) -> None:
    assert problem(rtype, rdata) == reason
