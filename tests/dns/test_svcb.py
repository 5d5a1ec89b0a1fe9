"""SVCB and HTTPS rdata (RFC 9460): parameters in presentation form, and the malformed
parameters of zeek's svcb-*-malformed captures (core/src/dns/svcb.rs, seen through the
answer records of a response)."""

from __future__ import annotations

import struct

import pytest

from tests.dns import answers

HTTPS = 65


def param(key: int, value: bytes) -> bytes:
    return struct.pack("!HH", key, len(value)) + value


def rdata(priority: int, target: bytes, *params: bytes) -> bytes:
    return struct.pack("!H", priority) + target + b"".join(params)


def show(data: bytes) -> str:
    return answers.show(HTTPS, data)


ROOT = b"\x00"
SVC = b"\x03svc\x07example\x03net\x00"

WELL_FORMED = [
    ("alias-mode", rdata(0, SVC), "0 svc.example.net."),
    ("service-mode-no-params", rdata(1, ROOT), "1 ."),
    ("common-params", rdata(
        1, ROOT,
        param(1, b"\x02h2\x02h3"),
        param(3, b"\x20\xfb"),
        param(4, bytes([192, 0, 2, 1, 192, 0, 2, 2])),
        param(5, b"\x01\x02\x03"),
        param(6, bytes.fromhex("20010db8000000000000000000000001")),
    ), "1 . alpn=h2,h3 port=8443 ipv4hint=192.0.2.1,192.0.2.2 ech=AQID ipv6hint=2001:db8::1"),
    ("mandatory-and-no-default-alpn", rdata(
        16, SVC, param(0, b"\x00\x01\x00\x03"), param(1, b"\x02h2"), param(2, b""),
        param(3, b"\x00\x35"),
    ), "16 svc.example.net. mandatory=alpn,port alpn=h2 no-default-alpn port=53"),
    # RFC 9460 appendix D.2, figure 5: an unknown key with a value, and without one.
    ("unknown-keys", rdata(1, SVC, param(667, b"hello"), param(65535, b"")),
     '1 svc.example.net. key667="hello" key65535'),
    # An alpn id holding a comma or a backslash is escaped, so the list stays a list.
    ("alpn-escapes", rdata(1, ROOT, param(1, b"\x08f\\oo,bar\x02h2")),
     "1 . alpn=f\\092oo\\044bar,h2"),
    ("dohpath", rdata(1, ROOT, param(7, b"/dns-query{?dns}")), '1 . dohpath="/dns-query{?dns}"'),
]


@pytest.mark.parametrize("data, text", [c[1:] for c in WELL_FORMED],
                         ids=[c[0] for c in WELL_FORMED])
def test_presentation(data: bytes, text: str) -> None:
    assert show(data) == text


MALFORMED = [
    # (id, rdata, the reason)
    ("keys-out-of-order", rdata(1, ROOT, param(3, b"\x00\x35"), param(1, b"\x02h2")),
     "SvcParamKey 1 after 3: keys must increase"),
    ("key-twice", rdata(1, ROOT, param(3, b"\x00\x35"), param(3, b"\x00\x35")),
     "SvcParamKey 3 after 3: keys must increase"),
    # zeek's dns/svcb-port-malformed.pcap: a 3-byte port.
    ("port-of-3-bytes", rdata(1, ROOT, param(3, b"\x00\x35\x00")), "port value is 3 bytes, not 2"),
    # zeek's dns/svcb-alpn-malformed-len-too-long.pcap: an id longer than the value.
    ("alpn-id-too-long", rdata(1, ROOT, param(1, b"\x05h2")),
     "alpn id empty or longer than its value"),
    ("alpn-empty-id", rdata(1, ROOT, param(1, b"\x00")), "alpn id empty or longer than its value"),
    ("alpn-empty", rdata(1, ROOT, param(1, b"")), "alpn without an id"),
    ("ipv4hint-of-5-bytes", rdata(1, ROOT, param(4, bytes(5))),
     "address hint of 5 bytes, not a multiple of 4"),
    ("ipv6hint-empty", rdata(1, ROOT, param(6, b"")),
     "address hint of 0 bytes, not a multiple of 16"),
    ("no-default-alpn-with-value", rdata(1, ROOT, param(2, b"x")),
     "no-default-alpn has a 1-byte value, must be empty"),
    ("mandatory-odd-length", rdata(1, ROOT, param(0, b"\x00")),
     "mandatory value of 1 bytes, not a list of keys"),
    ("value-runs-past-the-rdata", rdata(1, ROOT) + struct.pack("!HH", 1, 40) + b"\x02h2",
     "SvcParam alpn runs past the rdata"),
    ("key-cut-off", rdata(1, ROOT) + b"\x00", "SvcParamKey runs past the rdata"),
    ("target-cut-off", struct.pack("!H", 1) + b"\x03sv",
     "TargetName: label runs past the end of the message"),
]


@pytest.mark.parametrize("data, reason", [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_malformed(data: bytes, reason: str) -> None:
    assert answers.problem(HTTPS, data) == reason
