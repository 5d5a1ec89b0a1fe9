"""Every input the fuzz campaign (tests/fuzz/run.py) crashed on, run again through the
same harness on every test run: the analysis and everything the commands render must
come out of it without an exception other than InputError.

The inputs are in tests/fuzz/crashes/, named after what they show; the README there says
where each came from. The harness is plain Python: atheris is needed only for a campaign.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fuzz import harness, seeds

CRASHES = Path(__file__).resolve().parent / "crashes"

#: Seconds one reproducer may take, the page's charts included (a few seconds on a loaded
#: machine); the campaign's -timeout is 30. Longer is a hang.
LIMIT = 60

#: Reproducers of failures outside the reader, capture.json and the time formatter, by
#: file name: where the fault is. They are not run (a hang would cost the whole LIMIT on
#: every test run); a strict expected failure below pins each one down instead, and
#: turns into a failure once it is fixed, to be moved out of here.
KNOWN: dict[str, str] = {}


class Hang(Exception):
    """The input ran longer than LIMIT seconds."""


@contextmanager
def _limit(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _reproducers() -> list[Path]:
    return sorted(p for p in CRASHES.iterdir() if p.is_file() and p.name != "README.md")


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=p.name, marks=pytest.mark.xfail(reason=KNOWN[p.name], run=False))
     if p.name in KNOWN else pytest.param(p, id=p.name) for p in _reproducers()],
)
def test_reproducer_runs_clean(path: Path, tmp_path: Path) -> None:
    with _limit(LIMIT):
        harness.run_one(path.read_bytes(), tmp_path, full=True)


@pytest.mark.parametrize("years", [97, 230])
def test_timeline_of_decades_has_a_handful_of_ticks(years: int) -> None:
    """The fault behind the two reproducers of decades-long captures, without drawing: the
    timeline's axis once got a tick for every week of such a span. A classic pcap alone
    can span 1970..2106 (unsigned 32-bit seconds), and the reader believes pcapng times
    from 1970 to 2200."""
    from pcapdns.report import charts

    ticks, _, _ = charts._time_ticks(0.0, years * 365.25 * 86400)
    assert len(ticks) <= 15, f"{len(ticks)} ticks on the timeline's time axis"


def test_every_reproducer_is_described() -> None:
    readme = (CRASHES / "README.md").read_text()
    missing = [p.name for p in _reproducers() if f"`{p.name}`" not in readme]
    assert not missing, f"not in tests/fuzz/crashes/README.md: {missing}"


def test_every_seed_runs_clean(tmp_path: Path) -> None:
    """The campaign's starting inputs, without atheris: the harness works on this machine
    (the public corpus is used when present, and is not needed)."""
    refused = []
    for data in seeds.seeds(4096):
        message = harness.run_one(data, tmp_path)
        if message is not None:
            refused.append(message)
    # A few seeds are captures of link types pcapdns does not read: refused in one line.
    assert all("\n" not in m for m in refused), refused


def test_split_and_join_are_inverse() -> None:
    capture, meta = b"\xd4\xc3\xb2\xa1rest", b'{"format": "x"}'
    assert harness.split(harness.join(capture, meta)) == (capture, meta)
    assert harness.split(harness.join(capture, None)) == (capture, None)
    # Only the last mark separates: a capture may hold the mark's bytes itself.
    doubled = capture + harness.META_MARK + capture
    assert harness.split(harness.join(doubled, meta)) == (doubled, meta)
