"""Per-node documents for the merge tests: the committed fleet, and small made-up ones."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.merge.fleet import documents


def fleet_docs() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in documents()]


def write(path: Path, doc: dict[str, Any]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return str(path)


def node_doc(node: str | None, first: str, last: str,
             failed: list[tuple[str, int]] = (),  # type: ignore[assignment]
             capture_file: str = "dns.pcap0", version: str = "0.1.0") -> dict[str, Any]:
    """A small document of ``node`` spanning first..last (times of one day, HH:MM:SS.f)
    with failed lookups in the timeline buckets given."""
    day = "2026-12-02T"
    base = copy.deepcopy(json.loads(documents()[1].read_text()))
    base["pcapdns_version"] = version
    base["capture"] = None if node is None else {**(base["capture"] or {}), "node": node}
    base["summary"]["first_time"] = f"{day}{first}Z"
    base["summary"]["last_time"] = f"{day}{last}Z"
    base["inputs"] = [{**base["inputs"][0], "path": capture_file,
                       "first_time": f"{day}{first}Z", "last_time": f"{day}{last}Z"}]
    base["summary"]["lookups_failed"] = sum(n for _, n in failed)
    base["timeline"] = {"bucket_seconds": 0.1,
                        "failed": [{"time": f"{day}{t}Z", "lookups": n} for t, n in failed]}
    return base
