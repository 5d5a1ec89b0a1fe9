"""Times in output: UTC, ISO 8601, microseconds, a trailing Z."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
