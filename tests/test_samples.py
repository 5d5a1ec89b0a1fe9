"""Golden files beside the sample captures: the whole JSON document, with transactions.

The captures in sample_pcaps/ were made by real resolvers and servers (see its README).
Regenerate the goldens after an intended change with::

    python3 -m pytest tests/test_samples.py --update-golden

and review the diff like code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pcapdns.analysis import analyze
from pcapdns.output.document import build
from tests.conftest import SAMPLES

CAPTURES = sorted(p for p in SAMPLES.glob("*.pcap*") if not p.name.endswith(".json"))


def golden_document(capture: Path) -> dict[str, Any]:
    """The document as the golden file stores it: stable across machines and versions."""
    doc = build(analyze([str(capture)], keep_lookups=True))
    doc.pop("pcapdns_version")
    for item in doc["inputs"]:
        item["path"] = Path(item["path"]).name
    doc["warnings"] = [w.replace(str(capture), capture.name) for w in doc["warnings"]]
    return doc


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_golden(capture: Path, update_golden: bool) -> None:
    golden = capture.with_name(capture.name.split(".pcap")[0] + ".golden.json")
    doc = golden_document(capture)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if update_golden:
        golden.write_text(text)
        return
    assert golden.exists(), f"no golden for {capture.name}; run with --update-golden"
    assert json.loads(golden.read_text()) == doc


def test_every_sample_has_a_golden_and_a_readme_entry() -> None:
    readme = (SAMPLES / "README.md").read_text()
    assert CAPTURES, "no sample captures"
    for capture in CAPTURES:
        assert capture.name in readme, f"{capture.name} is not described in the README"
