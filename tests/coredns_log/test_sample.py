"""The coredns-query-log sample: a real capture (dnsmasq behind a DNAT, the node dropping
some queries before the server and some answers after it) joined to its CoreDNS query logs.

The logs are rendered in CoreDNS's ``log`` plugin format by sample_pcaps/make_samples.py,
because CoreDNS itself cannot run here: each query line is one query the real dnsmasq
logged (client address and port, name, type, reply), with the DNS ID, sizes and the time
from query to answer taken from the server side's capture of the same run.
``coredns-query-log.coredns.golden.json`` is the whole document with the timestamped log
joined; regenerate it with ``pytest tests/coredns_log/test_sample.py --update-golden``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pcapdns.analysis import analyze
from pcapdns.coredns_log import index
from pcapdns.output.document import build
from tests.conftest import SAMPLES

CAPTURE = SAMPLES / "coredns-query-log.pcap"
TIMED = SAMPLES / "coredns-query-log.coredns-ts.log"
UNTIMED = SAMPLES / "coredns-query-log.coredns.log"
GOLDEN = SAMPLES / "coredns-query-log.coredns.golden.json"


def document(log: Path) -> dict[str, Any]:
    """The document with ``log`` joined, stable across machines (paths as file names)."""
    doc = build(analyze([str(CAPTURE)], keep_lookups=True,
                        coredns_log=index.load([str(log)])))
    doc.pop("pcapdns_version")
    text = json.dumps(doc).replace(str(SAMPLES) + "/", "")
    return json.loads(text)


def test_golden(update_golden: bool) -> None:
    doc = document(TIMED)
    if update_golden:
        GOLDEN.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    assert json.loads(GOLDEN.read_text()) == doc


def test_with_times_every_logged_query_joins() -> None:
    s = document(TIMED)["coredns_log"]
    assert s["times_used"] and s["clock_offset_samples"] >= 4
    # One host's clock on both sides: the offset is the transit, well under a millisecond.
    assert abs(s["clock_offset_s"]) < 0.005
    assert (s["query_lines"], s["other_plugin_lines"], s["unparsable"]) == (10, 4, 1)
    assert (s["joined"], s["ambiguous_queries"], s["logged_not_captured"]) == (10, 0, 0)
    # The queries the node dropped before the server: 2 lookups x 2 attempts.
    assert (s["captured_not_logged"], s["captured_not_logged_answered"]) == (4, 0)
    assert s["failed_lookups"] == {"lost_after_coredns": 2, "not_logged": 2}
    verdicts = {(lk["qname"], lk["qtype"]): lk["verdict"] for lk in s["lookups"]}
    assert verdicts == {
        ("api.example.test", "A"): "lost_after_coredns",
        ("api.example.test", "AAAA"): "lost_after_coredns",
        ("gone.example.test", "A"): "not_logged",
        ("gone.example.test", "AAAA"): "not_logged",
    }
    assert s["warnings"] == []


def test_without_times_the_retried_queries_are_ambiguous() -> None:
    doc = document(UNTIMED)
    s = doc["coredns_log"]
    assert not s["times_used"] and s["clock_offset_s"] is None
    # glibc re-sent api.example.test's A and AAAA with the same IDs from the same port:
    # two lines and two queries per key, which only times can tell apart.
    assert (s["joined"], s["ambiguous_queries"], s["ambiguous_lines"]) == (6, 4, 4)
    assert s["failed_lookups"] == {"ambiguous": 2, "not_logged": 2}
    assert any("cannot be placed in time" in w for w in s["warnings"])
    assert any("cannot be placed in time" in w for w in doc["warnings"])
    logged = {t["query_frame"]: t["coredns_log"]["logged"] for t in doc["transactions"]}
    assert sorted(logged.values(), key=str) == sorted(
        [False] * 4 + [None] * 4 + [True] * 6, key=str)
