"""Where each client lookup ended, from crafted captures at the two points."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapdns.correlate import correlate
from pcapdns.correlate.fates import lookup_fate, pair_queries
from pcapdns.correlate.records import FATES, CorrelateConfig, Packet, Query
from tests.correlate.scenario import BASE, DNS_POD, NODE, SERVICE, write_sides
from tests.craft import query, response, write_eth

OFFSET = 17.25


def _names(c) -> dict[str, str]:
    return {lf.attempts[0].client.qname: lf.fate for lf in c.lost}


def test_each_reach_has_its_fate(tmp_path: Path) -> None:
    client, server = write_sides(tmp_path, [
        ("ok1.test", 1, 0.0, "answered"),
        ("egress.test", 2, 1.0, "before"),
        ("server.test", 3, 2.0, "at"),
        ("return.test", 4, 3.0, "after"),
        ("ok2.test", 5, 6.0, "answered"),
    ], OFFSET)
    c = correlate([str(client)], [str(server)])
    assert c.fates == {"answered": 2, "lost_before_server": 1, "lost_at_server": 1,
                       "lost_after_server": 1, "unknown": 0}
    assert _names(c) == {"egress.test": "lost_before_server",
                         "server.test": "lost_at_server", "return.test": "lost_after_server"}
    # Addresses and ports differ on the two sides: they are evidence, not keys.
    at = next(lf for lf in c.lost if lf.fate == "lost_at_server").attempts[0]
    assert at.server is not None and at.server.packet.src == NODE
    assert at.server.packet.dst == DNS_POD and at.client.packet.dst == SERVICE
    assert at.delay == pytest.approx(0.002, abs=1e-5)
    assert [(s.client_side, s.server_side) for s in c.servers] == [
        (f"{SERVICE}:53", ((f"{DNS_POD}:53", 4),))]


def test_all_five_fates_are_always_counted(tmp_path: Path) -> None:
    client, server = write_sides(tmp_path, [("ok.test", 1, 0.0, "answered")], OFFSET)
    c = correlate([str(client)], [str(server)])
    assert list(c.fates) == list(FATES) and c.fates["answered"] == 1 and not c.lost


def test_names_match_whatever_their_case(tmp_path: Path) -> None:
    client, server = write_sides(tmp_path, [("ok.test", 1, 0.0, "answered"),
                                            ("Mixed.Test", 2, 1.0, "after"),
                                            ("end.test", 3, 3.0, "answered")], OFFSET)
    # The server side's copy of the lookup spells the name in lower case (0x20 undone).
    data = server.read_bytes().replace(b"\x05Mixed\x04Test", b"\x05mixed\x04test")
    server.write_bytes(data)
    c = correlate([str(client)], [str(server)])
    assert _names(c) == {"Mixed.Test": "lost_after_server"}


def test_outside_the_server_capture_is_unknown(tmp_path: Path) -> None:
    # The server capture ran from 10 s to 20 s (client clock); lookups before it began
    # and after it ended cannot be placed.
    client, server = write_sides(tmp_path, [
        ("early.test", 1, 5.0, "before"),
        ("ok.test", 2, 12.0, "answered"),
        ("inside.test", 3, 14.0, "before"),
        ("late.test", 4, 25.0, "before"),
    ], OFFSET, server_span=(10.0, 20.0))
    c = correlate([str(client)], [str(server)])
    assert _names(c) == {"early.test": "unknown", "inside.test": "lost_before_server",
                         "late.test": "unknown"}


def test_without_a_common_answered_lookup_every_lost_one_is_unknown(tmp_path: Path) -> None:
    client, server = write_sides(tmp_path, [("a.test", 1, 0.0, "at"),
                                            ("b.test", 2, 1.0, "before")], OFFSET)
    c = correlate([str(client)], [str(server)])
    assert c.clock.offset is None
    assert c.fates == {"answered": 0, "lost_before_server": 0, "lost_at_server": 0,
                       "lost_after_server": 0, "unknown": 2}
    assert any("cannot be compared" in w for w in c.warnings), c.warnings


def test_lookups_to_another_resolver_are_not_judged(tmp_path: Path) -> None:
    client, server = write_sides(tmp_path, [("ok.test", 1, 0.0, "answered"),
                                            ("end.test", 2, 3.0, "answered")], OFFSET)
    elsewhere = write_eth(tmp_path / "elsewhere.pcap", [
        (BASE + 1.0, query("ext.test", id=9, src="10.0.3.7", dst="8.8.8.8", sport=41000))])
    c = correlate([str(client), str(elsewhere)], [str(server)])
    assert c.other_server_lookups == 1 and sum(c.fates.values()) == 2
    assert any("not judged" in w for w in c.warnings)


def test_several_attempts_take_the_furthest_fate() -> None:
    assert lookup_fate(["lost_before_server", "lost_at_server"]) == "lost_at_server"
    assert lookup_fate(["lost_at_server", "lost_after_server"]) == "lost_after_server"
    assert lookup_fate(["lost_before_server", "lost_before_server"]) == "lost_before_server"
    assert lookup_fate(["lost_before_server", "answered"]) == "answered"
    # An attempt outside the server capture may have got further than the others ...
    assert lookup_fate(["unknown", "lost_at_server"]) == "unknown"
    assert lookup_fate(["lost_before_server", "unknown"]) == "unknown"
    # ... unless one got as far as a lookup can without an answer.
    assert lookup_fate(["unknown", "lost_after_server"]) == "lost_after_server"


def test_attempts_of_one_lookup_each_get_a_fate(tmp_path: Path) -> None:
    # A retransmission with the same ID: the first try died on the client's node, the
    # second reached the server, which did not answer.
    t = BASE
    client = write_eth(tmp_path / "c.pcap", [
        (t, query("ok.test", id=1, src="10.0.3.7", dst=SERVICE, sport=40000)),
        (t + 0.005, response("ok.test", id=1, src=SERVICE, dst="10.0.3.7", dport=40000)),
        (t + 1.0, query("x.test", id=2, src="10.0.3.7", dst=SERVICE, sport=40001)),
        (t + 2.0, query("x.test", id=2, src="10.0.3.7", dst=SERVICE, sport=40001)),
        (t + 9.0, query("end.test", id=3, src="10.0.3.7", dst=SERVICE, sport=40002)),
        (t + 9.005, response("end.test", id=3, src=SERVICE, dst="10.0.3.7", dport=40002)),
    ])
    s = t + OFFSET
    server = write_eth(tmp_path / "s.pcap", [
        (s + 0.002, query("ok.test", id=1, src=NODE, dst=DNS_POD, sport=20000)),
        (s + 0.003, response("ok.test", id=1, src=DNS_POD, dst=NODE, dport=20000)),
        (s + 2.002, query("x.test", id=2, src=NODE, dst=DNS_POD, sport=20001)),
        (s + 9.002, query("end.test", id=3, src=NODE, dst=DNS_POD, sport=20002)),
        (s + 9.003, response("end.test", id=3, src=DNS_POD, dst=NODE, dport=20002)),
    ])
    c = correlate([str(client)], [str(server)])
    (lf,) = c.lost
    assert [a.fate for a in lf.attempts] == ["lost_before_server", "lost_at_server"]
    assert lf.fate == "lost_at_server"


def _sq(id: int, t: float) -> Query:
    return Query(packet=Packet(1, t, "a", 1, "b", 53), response=None, rcode=None, id=id,
                 qname="x.test", qtype=1, lookup=0, attempt=1, key=(id, "x.test", 1))


def test_an_id_reused_pairs_with_the_nearest_in_time() -> None:
    client = [_sq(5, 100.0), _sq(5, 101.0), _sq(5, 500.0)]
    server = [_sq(5, 110.001), _sq(5, 111.002), _sq(5, 300.0), _sq(5, 510.4)]
    assert pair_queries(client, server, 10.0, 0.5) == {0: 0, 1: 1, 2: 3}


def test_a_server_query_pairs_with_one_client_query_only() -> None:
    # Two client attempts 0.3 s apart, one copy at the server: the nearer attempt gets it.
    client = [_sq(5, 100.0), _sq(5, 100.3)]
    server = [_sq(5, 110.25)]
    assert pair_queries(client, server, 10.0, 0.5) == {1: 0}


def test_the_match_window_is_a_setting(tmp_path: Path) -> None:
    # The server's copy of x.test arrives 0.3 s after the client sent it (a congested
    # hop): one query within the default 0.5 s, two different ones within 0.1 s.
    t, s = BASE, BASE + OFFSET
    client = write_eth(tmp_path / "c.pcap", [
        (t, query("ok.test", id=1, src="10.0.3.7", dst=SERVICE, sport=40000)),
        (t + 0.005, response("ok.test", id=1, src=SERVICE, dst="10.0.3.7", dport=40000)),
        (t + 1.0, query("x.test", id=2, src="10.0.3.7", dst=SERVICE, sport=40001)),
        (t + 9.0, query("end.test", id=3, src="10.0.3.7", dst=SERVICE, sport=40002)),
        (t + 9.005, response("end.test", id=3, src=SERVICE, dst="10.0.3.7", dport=40002)),
    ])
    server = write_eth(tmp_path / "s.pcap", [
        (s + 0.002, query("ok.test", id=1, src=NODE, dst=DNS_POD, sport=20000)),
        (s + 0.003, response("ok.test", id=1, src=DNS_POD, dst=NODE, dport=20000)),
        (s + 1.3, query("x.test", id=2, src=NODE, dst=DNS_POD, sport=20001)),
        (s + 9.002, query("end.test", id=3, src=NODE, dst=DNS_POD, sport=20002)),
        (s + 9.003, response("end.test", id=3, src=DNS_POD, dst=NODE, dport=20002)),
    ])
    wide = correlate([str(client)], [str(server)])
    assert _names(wide) == {"x.test": "lost_at_server"} and wide.paired == 3
    narrow = correlate([str(client)], [str(server)], config=CorrelateConfig(
        match_window=0.1))
    assert _names(narrow) == {"x.test": "lost_before_server"} and narrow.paired == 2


def test_queries_over_the_cap_are_not_kept_counted_and_said(tmp_path: Path) -> None:
    client, server = write_sides(tmp_path, [
        ("a.test", 1, 0.0, "answered"), ("b.test", 2, 1.0, "answered"),
        ("c.test", 3, 2.0, "before"), ("d.test", 4, 5.0, "answered")], OFFSET)
    c = correlate([str(client)], [str(server)], config=CorrelateConfig(max_queries=2))
    assert c.client.evicted == 2 and c.server.evicted == 1
    assert len(c.client.queries) == 2 and len(c.server.queries) == 2
    assert sum(1 for w in c.warnings if "were not kept" in w) == 2, c.warnings
    assert sum(c.fates.values()) == 2  # the forgotten queries' lookups are not judged
