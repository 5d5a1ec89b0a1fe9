"""A panic in the compiled core reaches Python as an exception and the command line as one
line naming the inputs: never a traceback, never an abort of the interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from pcapdns import _core
from pcapdns.cli import main

SAMPLE = Path(__file__).resolve().parent.parent / "sample_pcaps" / "slow-response.pcap"


def test_a_panic_is_an_exception_not_an_abort() -> None:
    code = (
        "from pcapdns import _core\n"
        "try:\n"
        "    _core.panic_for_test('boom')\n"
        "except BaseException as e:\n"
        "    print(type(e).__name__, e)\n"
        "print('still running')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["PanicException boom", "still running"], done


def test_a_panic_in_the_engine_is_one_line_naming_the_input(monkeypatch) -> None:
    real = _core.Engine

    class Panicking:
        """The real engine, whose first step panics inside the core."""

        def __init__(self, *args, **kwargs) -> None:
            self._engine = real(*args, **kwargs)

        def __getattr__(self, name: str):
            return getattr(self._engine, name)

        def step(self, n: int):
            _core.panic_for_test("index out of bounds: the len is 3 but the index is 7")

    shim = SimpleNamespace(**{k: getattr(_core, k) for k in dir(_core) if not k.startswith("__")})
    shim.Engine = Panicking
    monkeypatch.setattr("pcapdns.analysis._core", shim)
    result = CliRunner().invoke(main, ["analyze", str(SAMPLE)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"pcapdns: {SAMPLE}: internal error in the capture engine"), lines
    assert "index out of bounds" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize("garbage", [b"\xd4\xc3\xb2\xa1" + b"\xff" * 60, b"\x0a\x0d\x0d\x0a" * 9])
def test_hostile_bytes_never_reach_a_panic(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "hostile.pcap"
    path.write_bytes(garbage)
    result = CliRunner().invoke(main, ["analyze", str(path)])
    assert "internal error" not in result.output and "Traceback" not in result.output, result.output
