"""Every analysis a detector test runs also runs the compiled core's path (facts for every
lookup, the detectors only for the lookups that matter to them) and checks that it finds
the same (tests/detect/filtered.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.detect.filtered import TwinCollector, twins


@pytest.fixture(autouse=True)
def same_when_filtered() -> Iterator[list[TwinCollector]]:
    with twins() as made:
        yield made
