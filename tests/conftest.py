"""Shared fixtures: paths to the bundled samples and the public corpus, golden updates."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
CORPUS = ROOT.parent / "shared" / "corpus"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the golden JSON files beside the sample captures instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def corpus() -> Path:
    """The public capture corpus (../shared/corpus); skips when it is not there."""
    if not CORPUS.is_dir():
        pytest.skip(f"public corpus not present at {CORPUS}")
    return CORPUS
