"""The core reads and decodes on a thread of its own when the machine has a second core
(core/src/front.rs; ``PCAPDNS_CORE_THREADS=1`` keeps everything on the calling thread):
the documents are the same either way, and an interrupted analysis leaves no thread behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.craft import eth, query, response, write_pcap
from tests.test_samples import CAPTURES, golden_document

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_one_thread_gives_the_golden_document(capture: Path, monkeypatch) -> None:
    monkeypatch.setenv("PCAPDNS_CORE_THREADS", "1")
    golden = capture.with_name(capture.name.split(".pcap")[0] + ".golden.json")
    assert json.loads(golden.read_text()) == golden_document(capture)


# Counts the process's threads when the first progress report comes (the analysis is then
# a step into the capture), raises KeyboardInterrupt there as Ctrl-C would, and counts them
# again once the interrupted analysis is gone.
INTERRUPT = """
import os, sys
from pcapdns.analysis import analyze

def threads():
    return len(os.listdir("/proc/self/task"))

seen = []

def progress(done, total):
    seen.append(threads())
    raise KeyboardInterrupt

try:
    analyze([sys.argv[1]], progress=progress)
except KeyboardInterrupt:
    pass
print(seen, threads())
"""


def _busy_capture(path: Path, n: int) -> Path:
    """``n`` answered queries from as many client ports, a millisecond apart."""
    q, r = bytearray(bytes(eth(query()))), bytearray(bytes(eth(response())))
    frames = []
    for i in range(n):
        port = (20000 + i % 40000).to_bytes(2, "big")
        q[34:36], r[36:38] = port, port  # the UDP source port of the query, its answer's
        frames.append((1_700_000_000 + i / 1000, bytes(q)))
        frames.append((1_700_000_000 + i / 1000 + 0.0005, bytes(r)))
    return write_pcap(path, frames)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_an_interrupted_analysis_leaves_no_thread(tmp_path: Path, threads: str) -> None:
    capture = _busy_capture(tmp_path / "busy.pcap", 15_000)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PCAPDNS_CORE_THREADS=threads)
    done = subprocess.run([sys.executable, "-c", INTERRUPT, str(capture)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    two_cores = len(os.sched_getaffinity(0)) >= 2
    during = 2 if threads == "2" and two_cores else 1
    # During the run: the interpreter's thread, and the reading thread when there is one.
    # After it: the interpreter's alone (dropping the engine joined the reading thread).
    assert done.stdout.split() == [f"[{during}]", "1"], (done.stdout, done.stderr)
