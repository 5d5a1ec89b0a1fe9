"""Per-node analysis documents of the sample fleet, as the capture agent's ``--analyze``
would write them on seven nodes: each capture is copied into a directory named after its
node with a capture.json naming the node, and analyzed there. The documents are committed
in tests/merge/fleet/NODE/analysis.json (the merge tests' inputs and the sample cluster
report's); tests/merge/test_fleet.py checks they are current.

node-a .. node-d are four sample captures (sample_pcaps/), recorded minutes apart: NAT legs
and CoreDNS replicas, timeouts, a forwarder's upstream. node-e .. node-g were recorded at
the same moment by tests/merge/fleet/make_captures.py (real dig, dnsmasq and tcpdump in
network namespaces), during an incident on their shared DNS server: the window in which
several nodes failed at once.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pcapdns.analysis import analyze
from pcapdns.output.document import build

ROOT = Path(__file__).resolve().parents[2]
FLEET = Path(__file__).resolve().parent / "fleet"

#: Node name -> the capture analyzed as that node's ring (relative to the repository).
NODES = {
    "node-a": "sample_pcaps/node-legs-faults.pcap",
    "node-b": "sample_pcaps/replicas-one-slow.pcap",
    "node-c": "sample_pcaps/coredns-query-log.pcap",
    "node-d": "sample_pcaps/forwarder-upstream-leg.pcap",
    "node-e": "tests/merge/fleet/node-e/dns.pcap0",
    "node-f": "tests/merge/fleet/node-f/dns.pcap0",
    "node-g": "tests/merge/fleet/node-g/dns.pcap0",
}


def capture_json(node: str) -> dict[str, Any]:
    """The smallest capture.json the agent writes for a node capture."""
    return {"format": "pcapdns.capture/1", "node": node, "target": {"kind": "node"},
            "tcpdump": {"command": ["tcpdump", "-i", "any", "-w", "dns.pcap", "port 53"]}}


def node_document(work: Path, node: str) -> dict[str, Any]:
    """The document of ``node``, made in ``work`` (paths in it are relative to it)."""
    folder = work / node
    folder.mkdir(parents=True, exist_ok=True)
    source = ROOT / NODES[node]
    shutil.copyfile(source, folder / source.name)
    (folder / "capture.json").write_text(json.dumps(capture_json(node)))
    here = os.getcwd()
    os.chdir(work)
    try:
        return build(analyze([node]))
    finally:
        os.chdir(here)


def documents() -> list[Path]:
    """The committed per-node documents, in node order."""
    return [FLEET / node / "analysis.json" for node in NODES]
