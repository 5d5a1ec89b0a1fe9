"""The committed per-node documents are what the current analysis makes from the sample
captures (tests/merge/fleet.py), and their merge is the golden cluster document.
Regenerate both after an intended change with::

    python3 -m pytest tests/merge/test_fleet.py --update-golden
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pcapdns.merge import merge
from pcapdns.merge.document import build
from pcapdns.output import jsontext
from tests.merge.fleet import FLEET, NODES, documents, node_document

GOLDEN = FLEET / "cluster.golden.json"


def _stable(doc: dict[str, Any]) -> dict[str, Any]:
    """Without the version that wrote it, which changes with every release."""
    return {k: v for k, v in doc.items() if k != "pcapdns_version"}


@pytest.mark.parametrize("node", sorted(NODES))
def test_node_document_is_current(node: str, tmp_path: Path, update_golden: bool) -> None:
    fresh = node_document(tmp_path, node)
    committed = FLEET / node / "analysis.json"
    if update_golden:
        committed.parent.mkdir(parents=True, exist_ok=True)
        committed.write_text(jsontext.dumps(fresh) + "\n")
        return
    assert _stable(json.loads(committed.read_text())) == _stable(fresh), (
        f"{committed} is stale: run with --update-golden")


def test_merged_golden(update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FLEET)
    doc = _stable(build(merge([str(p.relative_to(FLEET)) for p in documents()])))
    if update_golden:
        GOLDEN.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    assert json.loads(GOLDEN.read_text()) == doc, "run with --update-golden and review"
