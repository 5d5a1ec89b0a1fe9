"""The correlation of the two-capture-point sample, recorded with real software
(sample_pcaps/make_samples.py, ``two-points-lost``), against its golden document.

Regenerate after an intended change with::

    python3 -m pytest tests/correlate/test_sample.py --update-golden
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pcapdns.correlate import correlate, document
from tests.conftest import SAMPLES

CLIENT = SAMPLES / "two-points-lost.pcap"
SERVER = SAMPLES / "two-points-lost.server.pcap"
GOLDEN = SAMPLES / "two-points-lost.correlation.golden.json"
#: The shift make_samples.py put on the server capture's time stamps (CORR_CLOCK_SHIFT).
KNOWN_SHIFT = 12.5


def golden_document(client: Path = CLIENT, server: Path = SERVER) -> dict[str, Any]:
    """The document as the golden file stores it: stable across machines and versions."""
    doc = document.build(correlate([str(client)], [str(server)]))
    doc.pop("pcapdns_version")
    for side in doc["inputs"].values():
        for item in side:
            item["path"] = Path(item["path"]).name
    return doc


def test_golden(update_golden: bool) -> None:
    doc = golden_document()
    if update_golden:
        GOLDEN.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    assert GOLDEN.exists(), "no correlation golden; run with --update-golden"
    assert json.loads(GOLDEN.read_text()) == doc


def test_offset_is_the_known_shift_within_its_error_bound() -> None:
    c = correlate([str(CLIENT)], [str(SERVER)])
    assert c.clock.offset is not None and c.clock.error_bound is not None
    assert abs(c.clock.offset - KNOWN_SHIFT) <= c.clock.error_bound, c.clock
    assert c.clock.interval is not None
    assert c.clock.interval[0] <= KNOWN_SHIFT <= c.clock.interval[1], c.clock
    # A veth hop: the bound is well under a millisecond.
    assert c.clock.error_bound < 0.001, c.clock


def test_each_drop_point_has_its_fate() -> None:
    c = correlate([str(CLIENT)], [str(SERVER)])
    assert c.fates == {"answered": 2, "lost_before_server": 1, "lost_at_server": 1,
                       "lost_after_server": 1, "unknown": 0}, c.fates
    by_name = {lf.attempts[0].client.qname: lf for lf in c.lost}
    assert by_name["egress-drop.example.test"].fate == "lost_before_server"
    assert by_name["server-drop.example.test"].fate == "lost_at_server"
    assert by_name["return-drop.example.test"].fate == "lost_after_server"
    for lf in c.lost:
        assert len(lf.attempts) == 2, lf
        assert {a.fate for a in lf.attempts} == {lf.fate}, lf


def test_addresses_and_ports_differ_between_the_sides() -> None:
    # DNAT (service IP -> DNS pod) and masquerade (node address, random port): the pairs
    # were made on ID, question and time only.
    c = correlate([str(CLIENT)], [str(SERVER)])
    assert [(s.client_side, s.server_side) for s in c.servers] == [
        ("10.250.96.10:53", (("10.250.2.53:53", 6),))]
    for lf in c.lost:
        for a in lf.attempts:
            if a.server is not None:
                assert a.server.packet.src == "10.250.2.1"
                assert a.client.packet.src == "10.250.1.10"
                assert a.server.packet.sport != a.client.packet.sport
