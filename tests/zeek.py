"""Zeek dns.log baselines, and our records written the way Zeek's dns.log writes them.

Used by tests/test_zeek_compare.py. The strings follow the ``DNS::do_reply`` calls of Zeek's
base/protocols/dns/main.zeek: an address for A/AAAA, the target name for NS, CNAME, PTR,
MX and SRV, SOA's MNAME, ``TXT <len> <text>`` per string, ``RRSIG <covered type number>
<signer>``, ``DNSKEY <algorithm>``, ``DS <algorithm> <digest type>``, and so on. Zeek
writes names in lower case without the final dot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pcapdns import _core
from pcapdns.config import AnalysisConfig
from pcapdns.dns import names
from pcapdns.dns.message import Message
from pcapdns.errors import DecodeError
from pcapdns.records import Payload

TYPE_NUMBERS = {name: number for number, name in names.QTYPES.items()}

#: Types whose Zeek event calls ``DNS::do_reply`` with an empty string: the record counts
#: for the RTT but is not written in ``answers``.
SILENT = frozenset({"WKS"})
#: Types whose Zeek event never calls ``DNS::do_reply`` (nor dns_unknown_reply): they are
#: neither written nor counted for the RTT.
UNSEEN = frozenset({"TKEY", "TSIG", "OPT", "HINFO", "CAA", "SVCB", "HTTPS"})


@dataclass(frozen=True)
class ZeekLine:
    """One dns.log row; a field the log does not have is absent from ``fields``."""

    line: int
    fields: dict[str, str]

    def get(self, name: str) -> str | None:
        """The field's value; None when the log lacks the column or the value is unset."""
        value = self.fields.get(name)
        return None if value in (None, "-", "") else value

    def vector(self, name: str) -> list[str]:
        value = self.get(name)
        return [] if value is None or value == "(empty)" else value.split(",")


def read_log(path: Path) -> list[ZeekLine]:
    """Rows of a dns.log, in the ASCII writer's format (``#fields`` header) or as
    ``zeek-cut -m`` writes a column subset (the first row names the columns)."""
    columns: list[str] | None = None
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("#fields\t"):
            columns = line.split("\t")[1:]
            continue
        if not line or line.startswith("#"):
            continue
        cells = line.split("\t")
        if columns is None:
            columns = cells
            continue
        rows.append(ZeekLine(number, dict(zip(columns, cells, strict=False))))
    return rows


def capture_of(baseline: Path) -> Path:
    stem = baseline.name.split(".expected.")[0]
    for suffix in (".pcap", ".pcapng", ".pcap.gz"):
        if (baseline.parent / (stem + suffix)).exists():
            return baseline.parent / (stem + suffix)
    raise FileNotFoundError(f"no capture for {baseline.name}")


def messages(capture: Path, ports: frozenset[int]) -> dict[int, list[Message]]:
    """Every DNS message that decodes, by frame (duplicates included)."""
    reader = _core.Reader([str(capture)], AnalysisConfig().reorder_window)
    decoder = _core.FrameDecoder(ports)
    out: dict[int, list[Message]] = {}

    def keep(items: list) -> None:
        for item in items:
            if type(item) is Payload:
                try:
                    m = _core.parse(*item)
                except DecodeError:
                    continue
                out.setdefault(m.frame, []).append(m)

    for ts, frame, link_type, iface, data in reader:
        keep(decoder.decode(frame, ts, link_type, iface, data))
    keep(decoder.finish())
    return out


# -- our answer_records lines as Zeek's answers ----------------------------------------------

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(\d{3}|.)")


def _unquote(text: str) -> list[bytes]:
    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        return chr(int(e)) if e.isdigit() else e

    return [_ESCAPE.sub(one, s).encode("latin-1") for s in _QUOTED.findall(text)]


def _name(text: str) -> str:
    return text.rstrip(".").lower() if text != "." else "<root>"


def _loc_byte(metres: str) -> str:
    cm = round(float(metres.rstrip("m")) * 100)
    exponent = 0
    while cm >= 10 and cm % 10 == 0:
        cm //= 10
        exponent += 1
    return str(cm << 4 | exponent)


def zeek_answer(line: str) -> tuple[str, str | None]:
    """Our ``name TTL TYPE data`` line -> (type, what Zeek writes in answers, or None when
    Zeek writes nothing for it)."""
    owner, _ttl, rtype, data = line.split(" ", 3)
    words = data.split(" ")
    if rtype == "TYPE65534":  # BIND's private signing-state record (dns_BINDS)
        return rtype, "BIND9 signing signal"
    if rtype in SILENT or rtype in UNSEEN:
        return rtype, None
    if data.startswith("\\#"):
        number = TYPE_NUMBERS.get(rtype) or int(rtype.removeprefix("TYPE"))
        return rtype, f"<unknown type={number}>"
    if rtype in ("A", "AAAA"):
        return rtype, data
    if rtype in ("NS", "CNAME", "PTR"):
        return rtype, _name(data)
    if rtype == "MX":
        return rtype, _name(words[1])
    if rtype == "SRV":
        return rtype, _name(words[3])
    if rtype == "SOA":
        return rtype, _name(words[0])
    if rtype in ("TXT", "SPF"):
        return rtype, " ".join(
            f"{rtype} {len(s)} {s.decode('latin-1')}" for s in _unquote(data)
        )
    if rtype == "RRSIG":
        covered = TYPE_NUMBERS.get(words[0]) or int(words[0].removeprefix("TYPE"))
        return rtype, f"RRSIG {covered} {_name(words[7])}"
    if rtype == "DNSKEY":
        return rtype, f"DNSKEY {words[2]}"
    if rtype == "DS":
        return rtype, f"DS {words[1]} {words[2]}"
    if rtype == "NSEC":
        return rtype, f"NSEC {owner.lower()} {_name(words[0])}"
    if rtype in ("NSEC3", "NSEC3PARAM"):
        return rtype, rtype
    if rtype == "SSHFP":
        return rtype, f"SSHFP: {words[2]}"
    if rtype == "LOC":
        sizes = " ".join(_loc_byte(w) for w in words[-3:])
        return rtype, f"LOC:  {sizes}"
    if rtype == "NAPTR":
        flags, services = (s.decode("latin-1") for s in _unquote(data)[:2])
        return rtype, f"NAPTR {words[0]} {words[1]} {flags} {services} {_name(words[-1])}"
    number = TYPE_NUMBERS.get(rtype)
    return rtype, f"<unknown type={number}>"
