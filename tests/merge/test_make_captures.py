"""Record the fleet's three simultaneous node captures again (tests/merge/fleet/
make_captures.py: network namespaces, dnsmasq, dig, iptables, tcpdump) into a temporary
directory, and find the window in which the three nodes failed at once. Needs root and the
tools; skips elsewhere with the reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pcapdns.analysis import analyze
from pcapdns.merge import merge
from pcapdns.output.document import build
from tests.merge.fleet import FLEET, capture_json

TOOLS = ("tcpdump", "dnsmasq", "dig", "iptables", "ip")
missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(bool(missing), reason=f"missing tools: {', '.join(missing)}"),
]


def test_three_nodes_recorded_at_once_fail_in_one_window(tmp_path: Path) -> None:
    code = ("import sys, pathlib; sys.path.insert(0, sys.argv[1]); import make_captures; "
            "make_captures.record(pathlib.Path(sys.argv[2]))")
    cp = subprocess.run([sys.executable, "-c", code, str(FLEET), str(tmp_path)],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr[-2000:]
    docs = []
    for node in ("node-e", "node-f", "node-g"):
        (tmp_path / node / "capture.json").write_text(json.dumps(capture_json(node)))
        doc = build(analyze([str(tmp_path / node)]))
        assert doc["summary"]["lookups_failed"] == 1, (node, doc["summary"])
        path = tmp_path / f"{node}.json"
        path.write_text(json.dumps(doc))
        docs.append(str(path))
    c = merge(docs)
    assert len(c.windows) == 1, c.windows
    assert [n["node"] for n in c.windows[0]["nodes"]] == ["node-e", "node-f", "node-g"]
    assert c.failing_names[0]["qname"] == "down.example.test"
