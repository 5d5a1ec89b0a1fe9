"""The cluster's counts are the sums of the per-node documents' counts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pcapdns.merge import merge
from pcapdns.merge.document import build
from tests.merge.fleet import NODES, documents
from tests.merge.helpers import fleet_docs, node_doc, write


def test_counts_equal_the_sums_of_the_inputs() -> None:
    docs = fleet_docs()
    c = build(merge([str(p) for p in documents()]))
    for key in ("lookups", "lookups_failed", "failed_lookups", "lookups_open_at_end",
                "retransmissions", "queries", "responses", "packets"):
        assert c["totals"][key] == sum(d["summary"][key] for d in docs), key
        assert sum(n[key] for n in c["nodes"]) == c["totals"][key], key
    kinds: Counter[str] = Counter()
    occurrences: Counter[str] = Counter()
    for d in docs:
        for f in d["findings"]:
            kinds[f["kind"]] += 1
            occurrences[f["kind"]] += f["count"]
    assert c["findings"] == {k: {"findings": kinds[k], "occurrences": occurrences[k]}
                             for k in sorted(kinds)}
    servers: Counter[tuple[str, str]] = Counter()
    for d in docs:
        for r in d["summary"]["servers"]:
            for k in ("lookups", "answered", "failed", "retransmissions", "servfail",
                      "nxdomain", "refused"):
                servers[(r["server"], k)] += r[k]
    assert {(s["server"], k): s[k] for s in c["servers"] for k in
            ("lookups", "answered", "failed", "retransmissions", "servfail", "nxdomain",
             "refused")} == dict(servers)
    replicas: Counter[tuple[str, str, str]] = Counter()
    for d in docs:
        for r in d["summary"]["replicas"]:
            replicas[(r["service"], r["address"], "queries")] += r["queries"]
            replicas[(r["service"], r["address"], "failed")] += r["failed"]
    assert {(r["service"], r["address"], k): r[k] for r in c["replicas"]
            for k in ("queries", "failed")} == dict(replicas)
    clients: Counter[str] = Counter()
    for d in docs:
        for r in d["summary"]["clients"]:
            clients[r["client"]] += r["lookups"]
    assert {r["client"]: r["lookups"] for r in c["clients"]} == dict(clients)
    assert sum(r["failed"] for r in c["clients"]) == c["totals"]["lookups_failed"]


def test_each_node_is_named_from_its_capture_record() -> None:
    c = build(merge([str(p) for p in documents()]))
    assert sorted(n["node"] for n in c["nodes"]) == sorted(NODES)
    assert {i["node_from"] for i in c["inputs"]} == {"capture"}
    assert c["grouping"] == "client"
    assert c["schema"] == "pcapdns.cluster/1"


def test_replica_shares_are_computed_from_the_sums() -> None:
    c = build(merge([str(p) for p in documents()]))
    by = {r["address"]: r for r in c["replicas"]}
    total = sum(r["queries"] for r in c["replicas"])
    assert by["10.250.2.53"]["nodes"] == ["node-a", "node-b"]
    assert by["10.250.2.53"]["share"] == round(by["10.250.2.53"]["queries"] / total, 4)
    assert by["10.250.3.54"]["failure_rate"] == 1.0


def test_top_failing_names_add_up_error_findings_across_nodes() -> None:
    c = build(merge([str(p) for p in documents()]))
    top, second = c["failing_names"][:2]
    assert (top["qname"], top["qtype"], top["failures"]) == ("down.example.test", "A", 3)
    assert top["nodes"] == ["node-e", "node-f", "node-g"]
    assert (second["qname"], second["qtype"], second["failures"]) == (
        "lost.example.test", "A", 2)
    assert second["nodes"] == ["node-a", "node-d"]
    assert second["kinds"] == {"lost_in_node": 1, "upstream_timeout": 1}


def test_the_simultaneous_captures_make_one_window() -> None:
    """node-e .. node-g were recorded at once, during an incident on their DNS server."""
    c = build(merge([str(p) for p in documents()]))
    assert c["windows"] == [{
        "start": "2026-12-02T02:51:10.000000Z", "end": "2026-12-02T02:51:20.000000Z",
        "failed": 3, "nodes": [{"node": n, "failed": 1}
                               for n in ("node-e", "node-f", "node-g")]}]


def test_clients_are_grouped_by_workload_when_documents_name_pods(tmp_path: Path) -> None:
    a = node_doc("node-a", "00:00:00", "00:00:09")
    b = node_doc("node-b", "00:00:00", "00:00:09", capture_file="dns.pcap1")
    client = a["summary"]["clients"][0]["client"]
    a["pods"] = {client: {"namespace": "shop", "pod": "web-7d9f-abc", "workload": "web"}}
    b["summary"]["clients"][0]["client"] = "10.250.9.9"
    b["pods"] = {"10.250.9.9": {"namespace": "shop", "pod": "web-7d9f-xyz",
                                "workload": {"kind": "Deployment", "name": "web"}}}
    c = build(merge([write(tmp_path / "a.json", a), write(tmp_path / "b.json", b)]))
    assert c["grouping"] == "workload"
    (row,) = c["clients"]
    assert (row["client"], row["addresses"], row["nodes"]) == (
        "shop/web", [client, "10.250.9.9"], ["node-a", "node-b"])
    assert row["lookups"] == 2 * a["summary"]["clients"][0]["lookups"]


def test_an_address_without_a_pod_stays_an_address(tmp_path: Path) -> None:
    a = node_doc("node-a", "00:00:00", "00:00:09")
    a["pods"] = {"10.9.9.9": {"namespace": "x", "pod": "y"}, "junk": "not an entry"}
    c = build(merge([write(tmp_path / "a.json", a)]))
    assert c["grouping"] == "workload"
    assert [r["client"] for r in c["clients"]] == [a["summary"]["clients"][0]["client"]]
    json.dumps(c)  # plain data


def test_decapsulated_frames_are_summed_per_tunnel_type(tmp_path: Path) -> None:
    a = node_doc("node-a", "10:00:00", "10:01:00")
    b = node_doc("node-b", "10:00:00", "10:01:00", capture_file="b.pcap0")
    a["summary"]["tunnels"] = {"vxlan": 12, "geneve": 0, "gre": 3}
    b["summary"]["tunnels"] = {"vxlan": 5, "geneve": 7, "gre": 0}
    c = build(merge([write(tmp_path / "a.json", a), write(tmp_path / "b.json", b)]))
    assert c["tunnels"] == {"vxlan": 17, "geneve": 7, "gre": 3}
    rows = {n["node"]: n["tunnels"] for n in c["nodes"]}
    assert rows == {"node-a": {"vxlan": 12, "gre": 3}, "node-b": {"vxlan": 5, "geneve": 7}}
