"""Times in the outputs: ISO 8601 UTC with microseconds, and never an exception."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from pcapdns.output.timefmt import UNREPRESENTABLE, iso


@pytest.mark.parametrize(
    ("t", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1_700_000_000.123456, "2023-11-14T22:13:20.123456Z"),
        (1_700_000_000, "2023-11-14T22:13:20.000000Z"),
        (-1, "1969-12-31T23:59:59.000000Z"),
        (-62_135_596_800, "0001-01-01T00:00:00.000000Z"),  # four-digit year, as ISO 8601 says
        (253_402_300_799, "9999-12-31T23:59:59.000000Z"),
    ],
)
def test_iso(t: float, text: str) -> None:
    assert iso(t) == text


def test_none_is_none() -> None:
    assert iso(None) is None


@pytest.mark.parametrize(
    "t",
    [2.0**48, 253_402_300_800, -62_135_596_801, 1e300, -1e300, math.inf, -math.inf, math.nan],
    ids=["2**48", "year-10000", "year-0", "1e300", "-1e300", "inf", "-inf", "nan"],
)
def test_a_time_datetime_cannot_hold_is_a_marker(t: float) -> None:
    assert iso(t) == UNREPRESENTABLE


def test_the_marker_has_the_shape_of_a_time() -> None:
    # The report cuts the date ([:10]) and the time of day ([11:-1]) out by position.
    real = iso(0)
    assert real is not None and len(UNREPRESENTABLE) == len(real)
    assert [i for i, c in enumerate(UNREPRESENTABLE) if c in "-T:.Z"] == [
        i for i, c in enumerate(real) if c in "-T:.Z"]


hypothesis = pytest.importorskip("hypothesis")


@hypothesis.given(t=hypothesis.strategies.floats() | hypothesis.strategies.integers())
def test_never_raises(t: float) -> None:
    text = iso(t)
    assert text is not None and len(text) >= 27 and text.endswith("Z")
    if text != UNREPRESENTABLE:
        assert datetime.fromisoformat(text[:-1] + "+00:00").timestamp() == pytest.approx(
            t, abs=1e-6, rel=1e-15)
