"""The fuzz campaign over the whole analysis (atheris, libFuzzer's engine).

    python3 -m tests.fuzz.run [libFuzzer options] [CORPUS_DIR]

Each input is a capture file (optionally with a capture.json: see harness.META_MARK); it is
analyzed and rendered as ``pcapdns analyze`` and ``report`` do, and any exception but an
InputError is a crash. Seeds (sample_pcaps/, the public corpus when present, the committed
crash reproducers) are written to a temporary directory and read with CORPUS_DIR, into
which libFuzzer writes the inputs that found new code; without CORPUS_DIR that is a
scratch directory too (on tmpfs when there is one; libFuzzer ends the process without
Python's clean-up, so the next campaign removes the scratch of campaigns that ended).
Defaults, each overridden by giving the option:

    -max_len=4096        one run costs time per packet; small inputs keep hundreds a second
    -rss_limit_mb=2048   the analysis's memory is bounded; more than this is a finding
    -timeout=30          seconds for one input; longer is a hang
    -artifact_prefix=./fuzz-crashes/   where a crashing input is written

It runs in one process on one core (libFuzzer's -jobs/-workers start more). A crash
leaves the input in the artifact directory; copy it into tests/fuzz/crashes/ with a name
that says what it shows, where tests/fuzz/test_reproducers.py runs it on every test run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["pcapdns"]):
    import pcapdns.report.html  # noqa: F401 - instrumented now, imported again by the harness
    import pcapdns.report.model  # noqa: F401
    from tests.fuzz import harness, seeds

DEFAULTS = {
    "-max_len": "4096",
    "-rss_limit_mb": "2048",
    "-timeout": "30",
    "-artifact_prefix": "./fuzz-crashes/",
}


SCRATCH_PREFIX = "pcapdns-fuzz-scratch-"


def scratch_dir() -> Path:
    """This campaign's scratch directory, named by its process id; those of campaigns
    whose process is gone are removed first."""
    shm = "/dev/shm"
    base = Path(shm if os.path.isdir(shm) and os.access(shm, os.W_OK)
                else tempfile.gettempdir())
    for old in base.glob(SCRATCH_PREFIX + "*"):
        pid = old.name[len(SCRATCH_PREFIX):]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    scratch = base / f"{SCRATCH_PREFIX}{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    return scratch


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str]) -> None:
    flags = [a for a in argv[1:] if a.startswith("-")]
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    given = {f.split("=", 1)[0] for f in flags}
    flags += [f"{k}={v}" for k, v in DEFAULTS.items() if k not in given]
    options = dict(f.split("=", 1) for f in flags if "=" in f)
    os.makedirs(options["-artifact_prefix"].rstrip("/") or ".", exist_ok=True)
    scratch = scratch_dir()
    seed_dir = scratch / "seeds"
    count = seeds.write(seed_dir, int(options["-max_len"]))
    print(f"pcapdns fuzz: {count} seeds", file=sys.stderr)
    if not dirs:
        dirs = [str(scratch / "corpus")]
        os.makedirs(dirs[0])
    workdir = scratch / "work"
    workdir.mkdir()

    def one_input(data: bytes) -> None:
        harness.run_one(data, workdir)

    atheris.Setup([argv[0], *flags, *dirs, str(seed_dir)], one_input)
    atheris.Fuzz()  # never returns: libFuzzer exits the process


if __name__ == "__main__":
    main(sys.argv)
