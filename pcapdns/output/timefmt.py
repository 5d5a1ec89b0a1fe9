"""Times in output: UTC, ISO 8601, microseconds, a trailing Z."""

from __future__ import annotations

from datetime import UTC, datetime

#: What a time that cannot be written (outside datetime's years 1..9999, or not a finite
#: number) reads as. It keeps the shape of a real one, so readers that cut the date or the
#: time of day out of it by position still get a piece of the right length.
UNREPRESENTABLE = "????-??-??T??:??:??.??????Z"


def iso(t: float | None) -> str | None:
    """``t`` (seconds since the epoch) as ``2026-11-25T10:00:00.123456Z``; None for None.

    Never raises: a time that cannot be written gives ``UNREPRESENTABLE``. The capture
    reader already skips records whose time is implausible, so this is the last line of
    defence for times from elsewhere (capture.json, arithmetic on times).
    """
    if t is None:
        return None
    try:
        when = datetime.fromtimestamp(t, UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        # OverflowError/OSError: outside the platform's or datetime's range;
        # ValueError: NaN, or a year datetime cannot hold.
        return UNREPRESENTABLE
    # isoformat, not strftime: it writes years before 1000 with four digits too.
    return when.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
