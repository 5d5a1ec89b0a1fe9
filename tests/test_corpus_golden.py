"""Golden JSON documents of the public corpus (../shared/corpus): every capture the analysis
accepts, frozen so that a new engine must give the same answers (docs/analysis.md defines
each field). Regenerate after an intended change with::

    python3 -m pytest tests/test_corpus_golden.py --update-golden

and review the diff like code. Skips when the corpus is not beside the checkout (a user's
clone has none).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcapdns.errors import InputError
from tests.conftest import CORPUS
from tests.test_samples import golden_document

GOLDEN = Path(__file__).resolve().parent / "corpus_golden"


def _captures() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir()
                  if p.is_file() and ".expected." not in p.name and p.suffix != ".md")


def _golden(capture: Path) -> Path:
    return GOLDEN / f"{capture.name}.json"


@pytest.mark.parametrize("capture", _captures(), ids=lambda p: p.name)
def test_corpus_golden(capture: Path, update_golden: bool) -> None:
    golden = _golden(capture)
    try:
        doc = golden_document(capture)
    except InputError as e:
        # Refused captures (unsupported link types) have no golden file.
        assert not golden.exists() or update_golden, f"{capture.name} is refused now: {e}"
        if update_golden and golden.exists():
            golden.unlink()
        return
    if update_golden:
        golden.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        return
    assert golden.exists(), f"no golden for {capture.name}; run with --update-golden"
    assert json.loads(golden.read_text()) == doc


def test_corpus_goldens_have_their_capture(corpus: Path) -> None:
    names = {p.name for p in _captures()}
    stale = [g.name for g in GOLDEN.glob("*.json") if g.name[:-5] not in names]
    assert not stale, f"golden files without a corpus capture: {stale}"
