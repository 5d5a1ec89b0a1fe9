"""The correlation's JSON document: every field is documented, the five fates are always
there, and the document is the same however often it is made."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pcapdns.correlate import correlate, document
from tests.conftest import ROOT, SAMPLES

DOC = (ROOT / "docs" / "analysis.md").read_text()
CLIENT = str(SAMPLES / "two-points-lost.pcap")
SERVER = str(SAMPLES / "two-points-lost.server.pcap")


def _keys(value: Any, skip: frozenset[str]) -> set[str]:
    """Every key of nested objects, except inside the ones named in ``skip``."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            if k not in skip:
                out |= _keys(v, skip)
    elif isinstance(value, list):
        for v in value:
            out |= _keys(v, skip)
    return out


def test_every_field_is_documented() -> None:
    doc = document.build(correlate([CLIENT], [SERVER]))
    # inputs[] is the analysis document's, documented there; sides are named in the text.
    names = _keys(doc, frozenset({"inputs"})) - {"client", "server"}
    missing = sorted(n for n in names if not re.search(rf"`{re.escape(n)}`", DOC))
    assert not missing, f"not in docs/analysis.md: {missing}"


def test_schema_and_deterministic() -> None:
    a = document.dumps(correlate([CLIENT], [SERVER]))
    b = document.dumps(correlate([CLIENT], [SERVER]))
    assert a == b and '"schema": "pcapdns.correlation/1"' in a


def test_without_an_offset_the_quality_fields_are_null(tmp_path: Path) -> None:
    from tests.correlate.scenario import write_sides

    client, server = write_sides(tmp_path, [("a.test", 1, 0.0, "at")], 3.0)
    doc = document.build(correlate([str(client)], [str(server)]))
    assert doc["clock_offset_s"] is None
    assert doc["clock_offset"] == {"pairs": 0, "rejected": 0, "error_bound_s": None,
                                   "spread_s": None, "interval_s": None, "method": None}
    assert doc["fates"]["unknown"] == 1
    assert doc["lookups"][0]["attempts"][0]["fate"] == "unknown"
