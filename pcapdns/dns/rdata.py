"""One record's rdata -> its presentation form (RFC 1035 section 5.1 and each type's RFC).

Every read goes through ``RdataReader``, which checks each length against the record's
rdlength, so hostile bytes raise ``DnsTruncated`` or ``DnsMalformed`` instead of reading
into the next record. Names may be compressed (RFC 3597 section 4 tells receivers to
expect it in the older types; some servers do it in newer ones too); ``read_name`` bounds
the pointer jumps.
Types without a decoder here use the RFC 3597 generic form, ``\\# <length> <hex>``.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable

from pcapdns.dns import names
from pcapdns.dns.message import DnsMalformed, DnsTruncated
from pcapdns.dns.svcb import svcb
from pcapdns.dns.wire import RdataReader, quote


def generic(raw: bytes) -> str:
    """RFC 3597 section 5: ``\\# <length> <hex>`` (``\\# 0`` for empty rdata)."""
    return f"\\# {len(raw)} {raw.hex()}" if raw else "\\# 0"


def present(msg: bytes, pos: int, end: int, rtype: int, rclass: int) -> str:
    """The presentation form of the rdata at ``msg[pos:end]``.

    Raises:
        DnsTruncated: a field runs past the rdata.
        DnsMalformed: the fields do not fill the rdata exactly, or a value is invalid.
    """
    raw = msg[pos:end]
    if not raw and rclass in (names.CLASS_ANY, names.CLASS_NONE):
        return generic(raw)  # RFC 2136 2.4/2.5: an UPDATE prerequisite or deletion
    decode = _DECODERS.get(rtype)
    # A, WKS and AAAA are defined for class IN only (RFC 1035 3.4, RFC 3596). The top bit
    # of an mDNS class is the cache-flush flag (RFC 6762 10.2); class NONE marks an UPDATE
    # deletion, whose rdata is that of the zone's class (RFC 2136 2.5.4).
    if decode is None or (rtype in _IN_ONLY
                          and rclass & 0x7FFF not in (names.IN, names.CLASS_NONE)):
        return generic(raw)
    r = RdataReader(msg, pos, end)
    text = decode(r)
    if text is None:
        return generic(raw)
    if r.left:
        raise DnsMalformed(f"{r.left} bytes left after the {names.qtype_name(rtype)} rdata")
    return text


# -- the decoders: each reads the whole rdata, or returns None for "show it as generic" ------


def _a(r: RdataReader) -> str:
    return socket.inet_ntop(socket.AF_INET, r.take(4, "IPv4 address"))


def _aaaa(r: RdataReader) -> str:
    return socket.inet_ntop(socket.AF_INET6, r.take(16, "IPv6 address"))


def _name(r: RdataReader) -> str:
    return r.name()


def _two_names(r: RdataReader) -> str:
    return f"{r.name()} {r.name()}"


def _soa(r: RdataReader) -> str:
    mname, rname = r.name("MNAME"), r.name("RNAME")
    numbers = " ".join(str(r.u32("SOA counter")) for _ in range(5))
    return f"{mname} {rname} {numbers}"


def _wks(r: RdataReader) -> str:
    address = socket.inet_ntop(socket.AF_INET, r.take(4, "IPv4 address"))
    protocol = r.u8("protocol")
    return " ".join([address, str(protocol), *map(str, _bits(r.rest()))])


def _pref_name(r: RdataReader) -> str:  # MX, AFSDB, RT, KX
    return f"{r.u16('preference')} {r.name()}"


def _px(r: RdataReader) -> str:
    return f"{r.u16('preference')} {r.name('MAP822')} {r.name('MAPX400')}"


def _strings(r: RdataReader) -> str:  # TXT, SPF, ISDN, X25
    return r.strings()


def _hinfo(r: RdataReader) -> str:
    return f"{r.string('CPU')} {r.string('OS')}"


def _srv(r: RdataReader) -> str:
    return f"{r.u16('priority')} {r.u16('weight')} {r.u16('port')} {r.name('target')}"


def _naptr(r: RdataReader) -> str:
    order, pref = r.u16("order"), r.u16("preference")
    flags, services, regexp = r.string("flags"), r.string("services"), r.string("regexp")
    return f"{order} {pref} {flags} {services} {regexp} {r.name('replacement')}"


def _sig(r: RdataReader) -> str:  # RRSIG (RFC 4034 3.2), SIG (RFC 2535 4.1)
    covered = names.qtype_name(r.u16("type covered"))
    alg, labels, ttl = r.u8("algorithm"), r.u8("labels"), r.u32("original TTL")
    expiration, inception = _time(r.u32("expiration")), _time(r.u32("inception"))
    tag, signer = r.u16("key tag"), r.name("signer")
    sig = _b64(r.rest())
    return f"{covered} {alg} {labels} {ttl} {expiration} {inception} {tag} {signer} {sig}"


def _key(r: RdataReader) -> str:  # DNSKEY, CDNSKEY, KEY (RFC 4034 2.2)
    flags, proto, alg = r.u16("flags"), r.u8("protocol"), r.u8("algorithm")
    return f"{flags} {proto} {alg} {_b64(r.rest())}"


def _ds(r: RdataReader) -> str:  # DS, CDS, DLV, TA (RFC 4034 5.3)
    tag, alg, digest_type = r.u16("key tag"), r.u8("algorithm"), r.u8("digest type")
    return f"{tag} {alg} {digest_type} {_hex(r.rest())}"


def _sshfp(r: RdataReader) -> str:
    alg, fp_type = r.u8("algorithm"), r.u8("fingerprint type")
    return f"{alg} {fp_type} {_hex(r.rest())}"


def _tlsa(r: RdataReader) -> str:  # TLSA, SMIMEA (RFC 6698 2.2)
    usage, selector, mtype = r.u8("usage"), r.u8("selector"), r.u8("matching type")
    return f"{usage} {selector} {mtype} {_hex(r.rest())}"


def _nsec(r: RdataReader) -> str:
    return " ".join([r.name("next name"), *_types(r.rest())])


def _nsec3(r: RdataReader) -> str:  # RFC 5155 3.3
    alg, flags, iterations = r.u8("hash algorithm"), r.u8("flags"), r.u16("iterations")
    salt = _salt(r.take(r.u8("salt length"), "salt"))
    hashed = base64.b32hexencode(r.take(r.u8("hash length"), "next hashed owner"))
    # RFC 5155 3.3: base32hex without padding, lower case as in the RFC's examples.
    nxt = hashed.rstrip(b"=").decode("ascii").lower()
    return " ".join([str(alg), str(flags), str(iterations), salt, nxt, *_types(r.rest())])


def _nsec3param(r: RdataReader) -> str:
    alg, flags, iterations = r.u8("hash algorithm"), r.u8("flags"), r.u16("iterations")
    return f"{alg} {flags} {iterations} {_salt(r.take(r.u8('salt length'), 'salt'))}"


def _csync(r: RdataReader) -> str:  # RFC 7477 2.1
    serial, flags = r.u32("SOA serial"), r.u16("flags")
    return " ".join([str(serial), str(flags), *_types(r.rest())])


def _zonemd(r: RdataReader) -> str:  # RFC 8976 2.2
    serial, scheme, alg = r.u32("serial"), r.u8("scheme"), r.u8("hash algorithm")
    return f"{serial} {scheme} {alg} {_hex(r.rest())}"


def _base64(r: RdataReader) -> str:  # DHCID, OPENPGPKEY
    return _b64(r.rest())


def _loc(r: RdataReader) -> str | None:
    """RFC 1876 section 3; a version other than 0 has no presentation (shown as generic)."""
    if r.u8("version") != 0:
        r.pos = r.end
        return None
    size, horiz, vert = (_centimetres(r.u8("precision")) for _ in range(3))
    lat, lon, alt = r.u32("latitude"), r.u32("longitude"), r.u32("altitude")
    return (
        f"{_angle(lat, 'NS')} {_angle(lon, 'EW')} {(alt - 10_000_000) / 100:.2f}m "
        f"{size / 100:.2f}m {horiz / 100:.2f}m {vert / 100:.2f}m"
    )


def _caa(r: RdataReader) -> str:  # RFC 8659 4.1
    flags = r.u8("flags")
    tag = r.take(r.u8("tag length"), "tag")
    if not tag or not tag.isalnum() or not tag.isascii():
        raise DnsMalformed("CAA tag is not letters and digits")
    return f"{flags} {tag.decode('ascii')} {quote(r.rest())}"


def _uri(r: RdataReader) -> str:  # RFC 7553 4.5
    return f"{r.u16('priority')} {r.u16('weight')} {quote(r.rest())}"


def _tkey(r: RdataReader) -> str:  # RFC 2930 2
    alg = r.name("algorithm")
    inception, expiration = _time(r.u32("inception")), _time(r.u32("expiration"))
    mode, error = r.u16("mode"), r.u16("error")
    key = _b64(r.take(r.u16("key size"), "key"))
    other = _b64(r.take(r.u16("other size"), "other data"))
    return f"{alg} {inception} {expiration} {mode} {error} {key} {other}"


def _eui(size: int) -> Callable[[RdataReader], str]:  # EUI48, EUI64 (RFC 7043)
    def decode(r: RdataReader) -> str:
        return "-".join(f"{b:02x}" for b in r.take(size, f"EUI-{size * 8}"))

    return decode


# -- field formats --------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii") if raw else "-"


def _hex(raw: bytes) -> str:
    return raw.hex() if raw else "-"


def _salt(raw: bytes) -> str:
    return raw.hex() if raw else "-"  # RFC 5155 3.3: "-" for an empty salt


def _time(t: int) -> str:
    """RFC 4034 3.2: YYYYMMDDHHmmSS in UTC (serial arithmetic is the validator's job)."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def _centimetres(byte: int) -> int:
    """RFC 1876: a size or precision is mantissa (high nibble) x 10^exponent (low) cm."""
    mantissa, exponent = byte >> 4, byte & 0xF
    if mantissa > 9 or exponent > 9:
        raise DnsMalformed(f"LOC size or precision 0x{byte:02x} is not decimal")
    return int(mantissa * 10**exponent)


def _angle(value: int, hemispheres: str) -> str:
    """RFC 1876: thousandths of an arc second, offset by 2^31 (the equator / meridian)."""
    ms = value - 2**31
    hemi = hemispheres[0] if ms >= 0 else hemispheres[1]
    ms = abs(ms)
    return f"{ms // 3_600_000} {ms % 3_600_000 // 60_000} {ms % 60_000 / 1000:.3f} {hemi}"


def _bits(bitmap: bytes) -> list[int]:
    """Positions of the set bits, most significant bit of the first byte as 0."""
    return [i * 8 + j for i, b in enumerate(bitmap) if b for j in range(8) if b & (0x80 >> j)]


def _types(raw: bytes) -> list[str]:
    """The type names of an NSEC/NSEC3/CSYNC type bitmap (RFC 4034 4.1.2): blocks of
    window number, bitmap length 1-32, bitmap."""
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        if pos + 2 > len(raw):
            raise DnsTruncated("type bitmap window header cut off")
        window, length = raw[pos], raw[pos + 1]
        if not 1 <= length <= 32:
            raise DnsMalformed(f"type bitmap window length {length}, not 1 to 32")
        bitmap = raw[pos + 2 : pos + 2 + length]
        if len(bitmap) < length:
            raise DnsTruncated("type bitmap runs past the rdata")
        out.extend(names.qtype_name(window * 256 + bit) for bit in _bits(bitmap))
        pos += 2 + length
    return out


_IN_ONLY = frozenset({1, 11, 28})

_DECODERS: dict[int, Callable[[RdataReader], str | None]] = {
    1: _a, 2: _name, 3: _name, 4: _name, 5: _name, 6: _soa, 7: _name, 8: _name, 9: _name,
    11: _wks, 12: _name, 13: _hinfo, 14: _two_names, 15: _pref_name, 16: _strings,
    17: _two_names, 18: _pref_name, 19: _strings, 20: _strings, 21: _pref_name, 24: _sig,
    25: _key, 26: _px, 28: _aaaa, 29: _loc, 33: _srv, 35: _naptr, 36: _pref_name, 39: _name,
    43: _ds, 44: _sshfp, 46: _sig, 47: _nsec, 48: _key, 49: _base64, 50: _nsec3,
    51: _nsec3param, 52: _tlsa, 53: _tlsa, 59: _ds, 60: _key, 61: _base64, 62: _csync,
    63: _zonemd, 64: svcb, 65: svcb, 99: _strings, 108: _eui(6), 109: _eui(8), 249: _tkey,
    256: _uri, 257: _caa, 32768: _ds, 32769: _ds,
}
