"""Per-server and per-client tallies (pcapdns/breakdown.py)."""

from __future__ import annotations

from pathlib import Path

from pcapdns.output.document import build
from tests.craft import analyze_packets, query, response


def test_servers_and_clients_are_tallied(tmp_path: Path) -> None:
    a = analyze_packets(tmp_path / "tally.pcap", [
        (1.0, query("a.example", id=1)),
        (1.002, response("a.example", id=1)),
        (1.1, query("b.example", id=2, dst="10.96.0.11")),
        (1.104, response("b.example", id=2, src="10.96.0.11", rcode=2)),
        (1.2, query("c.example", id=3, src="10.0.3.8")),
        (20.0, query("end.example", id=4, src="10.0.3.9")),
    ])
    s = build(a)["summary"]
    servers = {row["server"]: row for row in s["servers"]}
    assert servers["10.96.0.10"]["lookups"] == 3 and servers["10.96.0.10"]["failed"] == 1
    assert servers["10.96.0.10"]["latency_ms"]["max"] == 2.0
    assert servers["10.96.0.11"]["servfail"] == 1
    clients = s["clients"]
    assert clients[0]["client"] == "10.0.3.8" and clients[0]["failed"] == 1
    by_client = {row["client"]: row for row in clients}
    assert by_client["10.0.3.9"]["failed"] == 0  # still open at the capture's end
    assert by_client["10.0.3.7"]["max_latency_ms"] == 4.0
    assert s["servers_total"] == 2 and s["clients_total"] == 3
