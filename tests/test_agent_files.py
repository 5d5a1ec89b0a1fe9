"""The capture agent's files: the capture directory it makes or reuses, and what it and
tcpdump write there as root.

A directory that someone else owns or can write in lets that someone put a symlink where
root is about to write: the agent refuses such a directory, writes its own files with
O_EXCL | O_NOFOLLOW, and it and tcpdump reach the directory through a descriptor, never
through its path again.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcapdns import agent
from pcapdns.agent import AgentError
from tests.conftest import ROOT

AGENT = ROOT / "pcapdns" / "agent.py"
UTC = datetime.timezone.utc  # noqa: UP017 - the agent keeps to Python 3.8
NOW = datetime.datetime(2026, 11, 25, 10, 21, 35, tzinfo=UTC)
NOBODY = 65534
EARLIER = ("dns.pcap0", "dns.pcap1", "capture.json", "capture.json.tmp", "report.html",
           "analysis.json")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


def make(directory: Path | None, force: bool = False) -> agent.CaptureDir:
    capdir = agent.make_capture_dir(None if directory is None else str(directory), force, NOW)
    return capdir


def close(capdir: agent.CaptureDir) -> str:
    os.close(capdir.fd)
    return capdir.path


# making and reusing the directory ------------------------------------------------------


def test_default_directory_is_new_timestamped_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    old = os.umask(0)  # 0700 whatever the umask
    try:
        first = close(make(None))
        second = close(make(None))
    finally:
        os.umask(old)
    assert Path(first).name == "pcapdns-capture-20261125T102135Z"
    assert Path(second).name == "pcapdns-capture-20261125T102135Z-2"
    assert Path(first).stat().st_mode & 0o777 == 0o700


def test_existing_directory_is_never_overwritten_without_force(tmp_path: Path) -> None:
    d = tmp_path / "cap"
    d.mkdir()
    (d / "dns.pcap0").write_bytes(b"old")
    with pytest.raises(AgentError, match="exists .an earlier capture..: choose another --dir"):
        make(d)
    assert (d / "dns.pcap0").read_bytes() == b"old"


def test_force_replaces_only_the_earlier_capture(tmp_path: Path) -> None:
    d = tmp_path / "cap"
    d.mkdir(mode=0o755)
    for name in (*EARLIER, "notes.txt"):
        (d / name).write_text("old")
    capdir = make(d, force=True)
    assert close(capdir) == str(d) and not capdir.created
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]
    assert d.stat().st_mode & 0o777 == 0o700


def test_unwritable_directory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"cannot create .*: choose a writable --dir"):
        make(tmp_path / "missing" / "cap")


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o702])
def test_force_refuses_a_directory_others_can_write(tmp_path: Path, mode: int) -> None:
    d = tmp_path / "cap"
    d.mkdir()
    d.chmod(mode)
    (d / "dns.pcap0").write_bytes(b"old")
    with pytest.raises(AgentError, match=rf"cap can be written by others \(mode {mode:04o}\):"
                                         " they could make tcpdump overwrite any file"):
        make(d, force=True)
    assert (d / "dns.pcap0").read_bytes() == b"old" and d.stat().st_mode & 0o7777 == mode


@needs_root
def test_force_refuses_a_directory_of_another_user(tmp_path: Path) -> None:
    d = tmp_path / "cap"
    d.mkdir(mode=0o700)
    (d / "dns.pcap0").write_bytes(b"old")
    os.chown(d, NOBODY, NOBODY)
    with pytest.raises(AgentError, match=rf"cap belongs to user {NOBODY}, not to 0 who runs "
                                         "the agent: its owner could make tcpdump overwrite"):
        make(d, force=True)
    assert (d / "dns.pcap0").read_bytes() == b"old"


def test_force_refuses_a_symlink_to_a_directory(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "dns.pcap0").write_bytes(b"old")
    (tmp_path / "cap").symlink_to(real)
    with pytest.raises(AgentError, match="cap exists and is not a directory"):
        make(tmp_path / "cap", force=True)
    assert (real / "dns.pcap0").read_bytes() == b"old"


def test_force_removes_planted_symlinks_without_following_them(tmp_path: Path) -> None:
    victims = []
    d = tmp_path / "cap"
    d.mkdir(mode=0o700)
    for name in EARLIER:
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious")
        (d / name).symlink_to(victim)
        victims.append(victim)
    close(make(d, force=True))
    assert list(d.iterdir()) == []
    assert all(v.read_text() == "precious" for v in victims)


# writing in it ---------------------------------------------------------------------


def test_capture_json_is_private_and_whole(tmp_path: Path) -> None:
    capdir = make(tmp_path / "cap")
    agent.write_json(capdir, agent.META_NAME, {"format": agent.FORMAT})
    close(capdir)
    path = tmp_path / "cap" / "capture.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "cap" / "capture.json.tmp").exists()


def test_capture_json_never_writes_through_a_symlink(tmp_path: Path) -> None:
    """Were one planted (by root itself: no one else can write in the directory), the
    temporary file is made anew and capture.json replaces the link, not its target."""
    capdir = make(tmp_path / "cap")
    victims = [tmp_path / "victim1", tmp_path / "victim2"]
    for v in victims:
        v.write_text("precious")
    (tmp_path / "cap" / "capture.json.tmp").symlink_to(victims[0])
    (tmp_path / "cap" / "capture.json").symlink_to(victims[1])
    agent.write_json(capdir, agent.META_NAME, {"format": agent.FORMAT})
    close(capdir)
    meta = tmp_path / "cap" / "capture.json"
    assert not meta.is_symlink() and agent.FORMAT in meta.read_text()
    assert all(v.read_text() == "precious" for v in victims)


def test_writes_follow_the_directory_not_its_path(tmp_path: Path) -> None:
    """A parent directory renamed and replaced after the capture directory was made:
    the agent and tcpdump still write into the directory they opened."""
    parent = tmp_path / "captures"
    parent.mkdir()
    capdir = make(parent / "cap")
    parent.rename(tmp_path / "moved")
    (tmp_path / "captures" / "cap").mkdir(parents=True)  # a lookalike at the old path
    agent.write_json(capdir, agent.META_NAME, {"format": agent.FORMAT})
    # The child set-up tcpdump runs with: it writes "dns.pcap0" relative to the directory.
    cp = subprocess.run(["sh", "-c", "echo ring > dns.pcap0"], timeout=30,
                        preexec_fn=agent._child_setup(None, os.getpid(), capdir.fd))
    assert cp.returncode == 0
    assert agent.ring_files(capdir) == ["dns.pcap0"]
    close(capdir)
    assert sorted(p.name for p in (tmp_path / "moved" / "cap").iterdir()) == [
        "capture.json", "dns.pcap0"]
    assert list((tmp_path / "captures" / "cap").iterdir()) == []


# the attack: someone else's loop planting symlinks as fast as it can ------------------

PLANTER = """
import os, sys, time
d, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
pairs = [("capture.json.tmp", sys.argv[3]), ("dns.pcap0", sys.argv[4])]
print("planting", flush=True)
while time.monotonic() < deadline:
    for name, target in pairs:
        try:
            os.symlink(target, os.path.join(d, name))
        except OSError:
            pass
"""


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None or shutil.which("tcpdump") is None,
                    reason="needs setpriv (to run a loop as nobody) and tcpdump")
@pytest.mark.parametrize("owner", ["nobody", "root, writable by all"])
def test_force_on_a_directory_someone_else_controls_writes_nothing(
    tmp_path: Path, owner: str
) -> None:
    d = tmp_path / "cap"
    d.mkdir()
    if owner == "nobody":
        os.chown(d, NOBODY, NOBODY)
        d.chmod(0o755)
    else:
        d.chmod(0o777)
    victims = [tmp_path / "victim1", tmp_path / "victim2"]
    for v in victims:
        v.write_text("precious")
        v.chmod(0o644)
    planter = subprocess.Popen(
        ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
         sys.executable, "-I", "-S", "-c", PLANTER, ".", "30", *map(str, victims)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
        cwd=d)  # entered as root: nobody cannot pass through pytest's 0700 directories
    try:
        assert planter.stdout is not None and planter.stdout.readline() == b"planting\n"
        deadline = time.monotonic() + 10
        while not (d / "dns.pcap0").is_symlink():
            assert time.monotonic() < deadline and planter.poll() is None, "nothing planted"
            time.sleep(0.02)
        cp = subprocess.run([sys.executable, "-I", "-S", str(AGENT), "--dir", str(d),
                             "--force", "--duration", "1", "--size-mb", "1", "--files", "2"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    finally:
        planter.kill()
        planter.wait(timeout=10)
    overwritten = [v.name for v in victims if v.read_bytes() != b"precious"]
    assert not overwritten, cp.stderr
    assert cp.returncode == 2, cp.stderr
    want = (f"belongs to user {NOBODY}, not to 0" if owner == "nobody"
            else "can be written by others (mode 0777)")
    assert cp.stderr.startswith(f"pcapdns capture: error: {d} {want}"), cp.stderr
    assert cp.stderr.count("\n") == 1
