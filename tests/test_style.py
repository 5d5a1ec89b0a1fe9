"""The checks configured in pyproject.toml hold: ruff (lint) and mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_ruff() -> None:
    paths = ["pcapdns", "tests", "bench", "capture", "sample_pcaps", "reports"]
    result = subprocess.run(["ruff", "check", *paths],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    pytest.importorskip("mypy")
    result = subprocess.run([sys.executable, "-m", "mypy", "pcapdns"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
