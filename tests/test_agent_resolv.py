"""The target's resolv.conf belongs to the target, and may be hostile: odd bytes, a FIFO,
a file that never finishes reading, symlinks out of a pod's root. The agent records
what it can and never crashes, hangs or reads a file of the node in its place.

The reads are checked here on a directory standing for a pod's root; the same through a
real ``--pid`` target is in tests/test_agent_netns.py.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcapdns import agent
from tests.conftest import ROOT

# parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "ndots"),
    [
        ("ndots:\u00b2", 1),  # a superscript two: str.isdigit() says yes, int() says no
        ("ndots:\u0663", 1),  # an Arabic-Indic three: the same
        ("ndots:5x", 5),  # glibc's atoi and musl's strtoul read the leading digits
        ("ndots:007", 7),
        ("ndots:" + "9" * 5000, 15),  # past Python's int() digit limit
        ("ndots:-1", 1),
        ("ndots:", 1),
    ],
)
def test_odd_ndots_never_crash(option: str, ndots: int) -> None:
    r = agent.parse_resolv_conf(f"nameserver 10.96.0.10\noptions {option} timeout:1\n")
    assert r.ndots == ndots and r.options == (option, "timeout:1")
    assert r.nameservers == ("10.96.0.10",)


def test_any_text_parses() -> None:
    alphabet = "nameserver search domain options ndots:\u00b2\u0663\u2028\x85\x00\xff#;:\t\r\n 1."
    rng = random.Random(53)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(80)))
        agent.parse_resolv_conf(text)


def test_lines_and_words_split_as_resolvers_split_them() -> None:
    """Lines end at newline only and words at space and tab, as in glibc and musl."""
    r = agent.parse_resolv_conf("nameserver 10.0.0.1\u2028nameserver 10.0.0.2\n"
                                "search\ta.test\xa0b.test\n")
    assert r.nameservers == ("10.0.0.1\u2028nameserver",)
    assert r.search == ("a.test\xa0b.test",)


# reading it from a pod's root ---------------------------------------------------------


def pod(tmp_path: Path) -> tuple[Path, agent.Target]:
    """A directory standing for a pod's root, and a target whose resolv.conf is in it."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    return root, agent.Target("pid", 1, None, None, None, f"{root}/etc/resolv.conf",
                              str(root))


RESOLV = "nameserver 10.96.0.10\nsearch default.svc.cluster.local\noptions ndots:5\n"


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    root, target = pod(tmp_path)
    (root / "etc" / "resolv.conf").write_text(RESOLV)
    resolv, why = agent.read_resolv_conf(target)
    assert why is None and resolv is not None
    assert resolv.nameservers == ("10.96.0.10",) and resolv.ndots == 5
    assert resolv.path == f"{root}/etc/resolv.conf"


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    root, target = pod(tmp_path)
    os.mkfifo(root / "etc" / "resolv.conf")
    started = time.monotonic()
    assert agent.read_resolv_conf(target) == (None, "not a regular file")
    assert time.monotonic() - started < agent.RESOLV_TIMEOUT


def test_a_directory_and_a_missing_file(tmp_path: Path) -> None:
    root, target = pod(tmp_path)
    assert agent.read_resolv_conf(target) == (None, None)  # missing: nothing to say
    (root / "etc" / "resolv.conf").mkdir()
    assert agent.read_resolv_conf(target) == (None, "not a regular file")


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    root, target = pod(tmp_path)
    (root / "etc" / "resolv.conf").write_text("# padding\n" * 7000)
    assert agent.read_resolv_conf(target) == (None, "larger than 65536 bytes")


@pytest.mark.parametrize(
    ("link", "where"),
    [
        ("/etc/kube/resolv.conf", "etc/kube/resolv.conf"),  # absolute: from the pod's root
        ("kube/resolv.conf", "etc/kube/resolv.conf"),
        ("../run/resolv.conf", "run/resolv.conf"),
        ("/../../../run/resolv.conf", "run/resolv.conf"),  # ".." stops at the root
        ("/run/../etc/./kube//resolv.conf", "etc/kube/resolv.conf"),
        ("/lnk/resolv.conf", "etc/kube/resolv.conf"),  # a symlinked directory on the way
    ],
)
def test_symlinks_resolve_inside_the_pods_root(tmp_path: Path, link: str, where: str) -> None:
    root, target = pod(tmp_path)
    (root / "run").mkdir()
    (root / "etc" / "kube").mkdir()
    (root / "lnk").symlink_to("/etc/kube")
    (root / where).write_text("nameserver 10.0.0.53\n")
    (root / "etc" / "resolv.conf").symlink_to(link)
    resolv, why = agent.read_resolv_conf(target)
    assert why is None and resolv is not None and resolv.nameservers == ("10.0.0.53",)


@pytest.mark.parametrize("link", ["/etc/hostname", "../../../../../../../etc/hostname",
                                  "/proc/1/root/etc/hostname"])
def test_symlinks_never_reach_the_nodes_files(tmp_path: Path, link: str) -> None:
    """/etc/hostname exists on the node, not in the pod: the pod's resolver would find
    nothing there, and neither does the agent."""
    assert os.path.exists("/etc/hostname")
    root, target = pod(tmp_path)
    (root / "etc" / "resolv.conf").symlink_to(link)
    assert agent.read_resolv_conf(target) == (None, None)


def test_a_symlink_loop_ends(tmp_path: Path) -> None:
    root, target = pod(tmp_path)
    (root / "etc" / "resolv.conf").symlink_to("/etc/loop")
    (root / "etc" / "loop").symlink_to("resolv.conf")
    assert agent.read_resolv_conf(target) == (None, "too many symlinks")


def stall(_root: str, _path: str) -> dict[str, object]:
    """Stands for a read that never returns (a FUSE file whose server hangs)."""
    print("stalled", file=sys.stderr, flush=True)
    time.sleep(60)
    return {"text": ""}


def test_a_read_that_never_ends_times_out(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _, target = pod(tmp_path)
    monkeypatch.setattr(agent, "read_regular_file", stall)
    started = time.monotonic()
    assert agent.read_resolv_conf(target, timeout=0.5) == (None, "no answer within 0.5 s")
    assert time.monotonic() - started < 3


def test_a_read_is_given_up_when_asked(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, target = pod(tmp_path)
    monkeypatch.setattr(agent, "read_regular_file", stall)
    started = time.monotonic()
    stop_at = started + 0.3
    got = agent.read_resolv_conf(target, timeout=60, cancelled=lambda: time.monotonic() > stop_at)
    assert got == (None, "interrupted") and time.monotonic() - started < 3


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("tcpdump") is None,
                    reason="needs root and tcpdump (the agent's checks come first)")
def test_sigint_stops_an_agent_stuck_reading_resolv_conf(tmp_path: Path) -> None:
    """A resolv.conf that never finished reading held the agent until SIGKILL: SIGINT
    now ends it, in one line, before anything was captured."""
    code = ("import sys; from pcapdns import agent; from tests.test_agent_resolv import stall; "
            "agent.read_regular_file = stall; sys.exit(agent.main(sys.argv[1:]))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", code, "--dir", str(tmp_path / "cap")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        assert proc.stderr is not None and proc.stderr.readline() == "stalled\n"
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 2, err
    assert err == ("pcapdns capture: error: SIGINT before the capture started; nothing "
                   "captured\n")
    assert not (tmp_path / "cap").exists()
