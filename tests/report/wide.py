"""A capture whose evidence tables are as wide as real DNS traffic makes them.

Every column that can grow does: 63-byte labels (the most a label may hold, RFC 1035
section 2.3.4) in names of over 200 bytes, full-length IPv6 client and server addresses,
interface names of the Linux maximum (15 bytes), and the longest notes the report writes
(both queries of a same-port A/AAAA race, a retry, a truncated answer never asked again over
TCP). A report of it must still fit a wide screen without sideways scrolling, and print
without cutting anything off.
"""

from __future__ import annotations

from pathlib import Path

from scapy.layers.dns import DNS, DNSQR

from tests.craft import UDP, Interface, IPv6, eth, query, response, write_pcapng_interfaces

#: Full-length IPv6 addresses: no "::" shortens them.
CLIENT6 = "fd12:3456:789a:bcde:f012:3456:789a:bcde"
SERVER6 = "fd12:3456:789a:bcde:f012:3456:7890:53"
#: Names of 63-byte labels. The one that fails with SERVFAIL is inside the cluster, so the
#: ticket summary (external names only) keeps lines that fit a printed page across.
LONG_NAMES = (
    ".".join(["a" * 63, "b" * 63, "c" * 50, "cluster-ingress-gateway", "example", "test"]),
    ".".join(["orders-api-" + "x" * 52, "payments-" + "y" * 54, "svc", "cluster", "local"]),
    "x" * 63 + ".partner.example",
)
#: SERVFAIL names besides the long ones: with them the ticket summary is as long as it gets.
TICKET_NAMES = 40
#: Linux caps interface names at 15 bytes (IFNAMSIZ - 1); Calico's veths use all of them.
INTERFACES = ("cali0123456789a", "eth0-very-long1")


def _v6_query(name: str, qtype: str, qid: int, sport: int):
    return query(name, qtype=qtype, id=qid, src=CLIENT6, dst=SERVER6, sport=sport, v6=True)


def _v6_response(name: str, qtype: str, qid: int, dport: int, **kw: object):
    answers = ("2001:db8::1",) if qtype == "AAAA" else ("192.0.2.1",)
    return response(name, qtype=qtype, id=qid, src=SERVER6, dst=CLIENT6, dport=dport,
                    answers=answers, v6=True, **kw)  # type: ignore[arg-type]


def _truncated(name: str, qid: int, dport: int):
    dns = DNS(id=qid, qr=1, rd=1, ra=1, tc=1, qd=DNSQR(qname=name, qtype="TXT"))
    return IPv6(src=SERVER6, dst=CLIENT6) / UDP(sport=53, dport=dport) / dns


def write_wide_capture(path: Path) -> Path:
    """A race lost, a slow answer, a retry, SERVFAIL, NXDOMAIN and a truncated answer without
    TCP retry, all for long names between full-length IPv6 addresses, on two interfaces,
    then SERVFAIL for ``TICKET_NAMES`` more external names."""
    race, servfail, partner = LONG_NAMES
    t = 1_764_000_000.0
    packets = [
        # The same-port A/AAAA race: both from port 41000, only the A answered, the AAAA
        # sent again 5 s later and answered then.
        (t, 0, _v6_query(race, "A", 0x1111, 41000)),
        (t + 0.00003, 0, _v6_query(race, "AAAA", 0x2222, 41000)),
        (t + 0.004, 1, _v6_response(race, "A", 0x1111, 41000)),
        (t + 5.004, 0, _v6_query(race, "AAAA", 0x2222, 41000)),
        (t + 5.008, 1, _v6_response(race, "AAAA", 0x2222, 41000)),
        (t + 6.0, 0, _v6_query(servfail, "A", 0x3333, 41001)),
        (t + 6.002, 1, _v6_response(servfail, "A", 0x3333, 41001, rcode=2)),
        (t + 7.0, 0, _v6_query(partner, "AAAA", 0x4444, 41002)),
        (t + 7.002, 1, _v6_response(partner, "AAAA", 0x4444, 41002, rcode=3)),
        (t + 8.0, 0, _v6_query(partner, "TXT", 0x5555, 41003)),
        (t + 8.002, 1, _truncated(partner, 0x5555, 41003)),
    ]
    # Enough failing external names for a full ticket summary (TICKET_LINES rows).
    for i in range(TICKET_NAMES):
        name = f"api-{i:02d}.partner-{i % 3}.example"
        packets.append((t + 9.0 + i / 10, 0, _v6_query(name, "A", 0x7000 + i, 42000 + i)))
        packets.append((t + 9.002 + i / 10, 1,
                        _v6_response(name, "A", 0x7000 + i, 42000 + i, rcode=2)))
    packets.append((t + 30.0, 0, _v6_query("end.example", "A", 0x6666, 41004)))
    interfaces = [Interface(name=n) for n in INTERFACES]
    return write_pcapng_interfaces(path, interfaces,
                                   [(i, when, bytes(eth(p))) for when, i, p in packets])
