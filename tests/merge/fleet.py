"""Per-node analysis documents made from the sample captures, as the capture agent's
``--analyze`` would write them on four nodes: each capture is copied into a directory named
after its node with a capture.json naming the node, and analyzed there. The documents are
committed in tests/merge/fleet/NODE/analysis.json (the merge tests' inputs and the sample
cluster report's); tests/merge/test_fleet.py checks they are current.

The captures were recorded at different times, so they share no moment: the sample shows
nodes, replicas, clients and failing names, and no window of nodes failing at once
(tests/merge/test_windows.py proves the windows on documents made for it).
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

#: Node name -> the sample capture analyzed as that node's ring.
NODES = {
    "node-a": "node-legs-faults.pcap",
    "node-b": "replicas-one-slow.pcap",
    "node-c": "coredns-query-log.pcap",
    "node-d": "forwarder-upstream-leg.pcap",
}


def capture_json(node: str) -> dict[str, Any]:
    """The smallest capture.json the agent writes for a node capture."""
    return {"format": "pcapdns.capture/1", "node": node, "target": {"kind": "node"},
            "tcpdump": {"command": ["tcpdump", "-i", "any", "-w", "dns.pcap", "port 53"]}}


def node_document(work: Path, node: str) -> dict[str, Any]:
    """The document of ``node``, made in ``work`` (paths in it are relative to it)."""
    folder = work / node
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "sample_pcaps" / NODES[node], folder / NODES[node])
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
