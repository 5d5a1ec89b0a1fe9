"""capture/soak.py's command line: --help and the validation of its options.

The soak test itself (root, namespaces, 30 minutes of load) is run by hand, as
capture/README.md says; these checks need neither root nor any tool, and start nothing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

SOAK = ROOT / "capture" / "soak.py"


def soak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SOAK), *args], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def test_help_lists_every_option() -> None:
    cp = soak("--help")
    assert cp.returncode == 0, cp.stderr
    for option in ("--minutes MIN", "--rate QPS", "--size-mb MB", "--files N",
                   "--interval SEC", "--buffer-kb KIB", "--keep", "--json"):
        assert option in cp.stdout, option
    words = " ".join(cp.stdout.split())
    assert "Needs root." in words and "0 PASS, 1 FAIL, 2 cannot run" in words


@pytest.mark.parametrize(("args", "message"), [
    (["--minutes", "0"], "argument --minutes: 0 is not in 1..1440"),
    (["--minutes", "half"], "argument --minutes: 'half' is not a number"),
    (["--minutes", "1441"], "argument --minutes: 1441 is not in 1..1440"),
    (["--rate", "0"], "argument --rate: 0 is not in 1..20000"),
    (["--rate", "2e3"], "argument --rate: '2e3' is not a number"),
    (["--rate", "20001"], "argument --rate: 20001 is not in 1..20000"),
    (["--size-mb", "0"], "argument --size-mb: 0 is not in 1..1000"),
    (["--files", "1"], "argument --files: 1 is not in 2..1000"),
    (["--interval", "0.5"], "argument --interval: 0.5 is not in 1..60"),
    (["--buffer-kb", "32"], "argument --buffer-kb: 32 is not in 64..4194304"),
    (["--seconds", "5"], "unrecognized arguments: --seconds 5"),
])
def test_bad_option_is_one_line_before_anything_runs(args: list[str], message: str) -> None:
    """Options are checked before root, tools or namespaces: a usage line and one error
    line, status 2."""
    cp = soak(*args)
    assert cp.returncode == 2, cp.stderr
    assert cp.stdout == ""
    assert cp.stderr.splitlines()[-1] == f"soak.py: error: {message}", cp.stderr
    assert "Traceback" not in cp.stderr
