"""``pcapdns capture --save-pods``: kubectl's listings saved beside the ring, with a fake
``kubectl`` on PATH (a script that answers as kubectl would, fails, or hangs).

The last tests run the whole agent on the loopback interface with the real tcpdump
(root needed; skipped elsewhere with the reason).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcapdns import agent
from tests.conftest import ROOT
from tests.pods import listing

AGENT = ROOT / "pcapdns" / "agent.py"
UTC = datetime.timezone.utc  # noqa: UP017 - the agent keeps to Python 3.8
NOW = datetime.datetime(2026, 11, 25, 10, 21, 35, tzinfo=UTC)


def fake_kubectl(bin_dir: Path, body: str) -> Path:
    """A ``kubectl`` script in ``bin_dir`` that logs its arguments to ``args.log`` beside
    it, then runs ``body`` (sh)."""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pods.json").write_text(json.dumps(listing.pods_json()))
    (bin_dir / "svc.json").write_text(json.dumps(listing.services_json()))
    script = bin_dir / "kubectl"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{bin_dir}/args.log"\n{body}\n')
    script.chmod(0o755)
    return bin_dir


#: Answers as kubectl does: the listing asked for.
ANSWERS = ('case "$2" in pods) cat "$(dirname "$0")/pods.json";; '
           'services) cat "$(dirname "$0")/svc.json";; *) exit 9;; esac')


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    def put(body: str) -> Path:
        where = fake_kubectl(tmp_path / "bin", body)
        monkeypatch.setenv("PATH", f"{where}:/usr/bin:/bin")
        return where
    return put


def capdir(tmp_path: Path) -> agent.CaptureDir:
    return agent.make_capture_dir(str(tmp_path / "cap"), False, NOW)


def test_both_listings_are_saved_private_without_a_shell(tmp_path: Path, on_path) -> None:  # type: ignore[no-untyped-def]
    where = on_path(ANSWERS)
    d = capdir(tmp_path)
    try:
        saved, problems = agent.save_pods(d)
    finally:
        os.close(d.fd)
    assert (saved, problems) == (["pods.json", "services.json"], [])
    for name, want in (("pods.json", listing.pods_json()),
                       ("services.json", listing.services_json())):
        path = tmp_path / "cap" / name
        assert json.loads(path.read_text()) == want
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    assert (where / "args.log").read_text().splitlines() == [
        "get pods --all-namespaces -o json", "get services --all-namespaces -o json"]
    assert sorted(p.name for p in (tmp_path / "cap").iterdir()) == [
        "pods.json", "services.json"]


def test_kubectl_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    data, why = agent.kubectl_listing("pods")
    assert data is None and why == "kubectl is not installed (not on PATH)"


def test_kubectl_refused_says_why_in_one_printable_line(on_path) -> None:  # type: ignore[no-untyped-def]
    on_path('echo "W1125 some warning" >&2\n'
            'printf \'Error from server (Forbidden): pods is forbidden: User '
            '"system:serviceaccount:pcapdns:default" cannot list resource "pods"\\033[31m\\n\' >&2'
            '\nexit 1')
    data, why = agent.kubectl_listing("pods")
    assert data is None and why is not None
    assert why.startswith("'kubectl get pods --all-namespaces -o json' failed: Error from "
                          "server (Forbidden): pods is forbidden"), why
    assert why.isprintable() and "\x1b" not in why


def test_kubectl_output_that_is_not_a_listing_is_not_saved(on_path) -> None:  # type: ignore[no-untyped-def]
    on_path('echo "error: You must be logged in to the server"')
    data, why = agent.kubectl_listing("pods")
    assert data is None and why is not None and why.endswith("did not write JSON"), why
    on_path('echo \'{"kind": "Status"}\'')
    data, why = agent.kubectl_listing("pods")
    assert data is None and why is not None and why.endswith("did not write a list"), why


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, killed and waiting to be reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_hanging_kubectl_and_its_children_are_killed(on_path) -> None:  # type: ignore[no-untyped-def]
    # A child that keeps kubectl's pipes open, as a credential plugin would.
    where = on_path('sleep 60 & echo $! > "$(dirname "$0")/child"; wait')
    start = time.monotonic()
    data, why = agent.kubectl_listing("pods", timeout=0.5)
    assert time.monotonic() - start < 10
    assert data is None and why is not None and "did not finish within 0.5 s" in why, why
    child = int((where / "child").read_text())
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child), "kubectl's child outlived the timeout"


def test_a_stop_cancels_kubectl(on_path) -> None:  # type: ignore[no-untyped-def]
    on_path("exec sleep 60")
    start = time.monotonic()
    data, why = agent.kubectl_listing("pods", cancelled=lambda: True)
    assert time.monotonic() - start < 10
    assert data is None and why == "the capture was stopped while kubectl ran"


def test_the_option_and_force_clean_up() -> None:
    assert agent.parse_options(["--save-pods"]).save_pods is True
    assert agent.parse_options([]).save_pods is False
    assert {"pods.json", "services.json"} <= set(agent.OWN_FILES)


# The whole agent -----------------------------------------------------------------------

def require_tcpdump() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run tcpdump")
    if shutil.which("tcpdump", path=agent.EXTRA_PATH) is None:
        pytest.skip("tcpdump is not installed")


def run_agent(tmp_path: Path, bin_dir: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    cap = tmp_path / "cap"
    env = dict(os.environ, PATH=f"{bin_dir}:{agent.EXTRA_PATH}")
    cp = subprocess.run([sys.executable, str(AGENT), "-i", "lo", "--duration", "2s",
                         "--size-mb", "1", "--files", "2", "--keep-free", "0",
                         "--dir", str(cap), "--save-pods"],
                        capture_output=True, text=True, timeout=120, env=env,
                        stdin=subprocess.DEVNULL)
    return cp, cap


@pytest.mark.root
def test_agent_saves_the_listings_and_analyze_uses_them(tmp_path: Path) -> None:
    require_tcpdump()
    cp, cap = run_agent(tmp_path, fake_kubectl(tmp_path / "bin", ANSWERS))
    assert cp.returncode == 0, cp.stderr
    assert "saved pods.json and services.json (kubectl)" in cp.stderr, cp.stderr
    meta = json.loads((cap / "capture.json").read_text())
    assert (meta["pods_files"], meta["pods_errors"]) == (["pods.json", "services.json"], [])
    for name in meta["pods_files"]:
        assert stat.S_IMODE((cap / name).stat().st_mode) == 0o600
    an = subprocess.run([sys.executable, "-m", "pcapdns", "analyze", "--format", "json",
                         str(cap)], capture_output=True, text=True, timeout=120,
                        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert an.returncode == 0, an.stderr
    assert "pod names from the listing saved with the capture" in an.stderr
    pods = json.loads(an.stdout)["pods"]
    assert pods["source"] == str(cap / "capture.json") and pods["pods"] == 4


@pytest.mark.root
def test_agent_with_a_refused_kubectl_warns_and_captures(tmp_path: Path) -> None:
    require_tcpdump()
    refused = fake_kubectl(tmp_path / "bin", 'echo "Error from server (Forbidden): $2 is '
                           'forbidden" >&2; exit 1')
    cp, cap = run_agent(tmp_path, refused)
    assert cp.returncode == 0, cp.stderr
    assert ("warning: no pods listing saved ('kubectl get pods --all-namespaces -o json' "
            "failed: Error from server (Forbidden): pods is forbidden); the capture goes on"
            ) in cp.stderr, cp.stderr
    meta = json.loads((cap / "capture.json").read_text())
    assert meta["pods_files"] == [] and len(meta["pods_errors"]) == 2
    assert meta["stop_reason"] == "duration" and meta["ring"]["names"]
    assert sorted(p.name for p in cap.iterdir()) == ["capture.json", "dns.pcap0"]
