"""The capture agent's pieces that need no root: options, the disk check, the parsers of
what it records, the capture directory, and its one-line errors.

The agent's real runs (tcpdump in network namespaces) are in tests/test_agent_netns.py.
"""

from __future__ import annotations

import ast
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pcapdns import agent
from pcapdns.agent import AgentError
from tests.conftest import ROOT, SAMPLES

AGENT = ROOT / "pcapdns" / "agent.py"
UTC = datetime.timezone.utc  # noqa: UP017 - the agent keeps to Python 3.8


def opts(*argv: str) -> agent.Options:
    return agent.parse_options(list(argv))


def opened(path: Path) -> agent.CaptureDir:
    """An existing directory as the agent holds its capture directory (closed when the
    test process exits)."""
    return agent.CaptureDir(str(path), os.open(path, os.O_RDONLY | os.O_DIRECTORY), False)


# options ------------------------------------------------------------------------------


def test_defaults_are_the_documented_ring() -> None:
    o = opts()
    assert (o.interface, o.bpf, o.size_mb, o.files) == ("any", agent.dns_filter((53,)), 20, 200)
    assert o.ports == (53,) and o.bpf.startswith("port 53 or (")
    assert (o.duration, o.pid, o.netns, o.directory, o.force) == (None, None, None, None, False)
    assert o.keep_free == 10.0 and o.buffer_kb == 8192 and not o.analyze


def test_options_map_to_tcpdump_arguments() -> None:
    o = opts("-i", "eth0", "--port", "5353", "--port", "53", "--size-mb", "5", "--files",
             "7", "--buffer-kb", "4096")
    argv = agent.tcpdump_command("/usr/sbin/tcpdump", o)
    pairs = {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("-")}
    assert pairs["-i"] == "eth0" and pairs["-s"] == "0" and pairs["-B"] == "4096"
    assert pairs["-C"] == "5" and pairs["-W"] == "7" and pairs["-Z"] == "root"
    assert pairs["-w"] == "dns.pcap"  # in the capture directory, opened (see _child_setup)
    assert "-U" in argv and "--immediate-mode" not in argv  # see tcpdump_command
    assert argv[-1] == agent.dns_filter((53, 5353))  # one argument, no shell
    assert argv[-1].startswith("port 53 or port 5353 or (")


def test_custom_filter_replaces_the_default_filter() -> None:
    o = opts("--filter", "port 53 or icmp")
    assert o.bpf == "port 53 or icmp" and o.ports == ()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--filter", "udp", "--port", "5353"], "--filter and --port do not mix"),
        (["--filter", "  "], "--filter needs a BPF expression"),
        (["--pid", "1", "--netns", "x"], "not allowed with argument"),
        (["--size-mb", "0"], "0 is not in 1..100000"),
        (["--files", "many"], "'many' is not a whole number"),
        (["--duration", "0"], "is not a duration"),
        (["--duration", "soon"], "is not a duration"),
        (["--keep-free", "100"], "not in 0..99"),
        (["--port", "70000"], "70000 is not in 1..65535"),
        (["--interface", "../x"], "is not an interface name"),
        (["--netns", ""], "--netns needs a name or a path"),
    ],
)
def test_bad_options_are_refused_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        agent.parse_options(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seconds"),
                         [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("0.5", 0.5)])
def test_durations(text: str, seconds: float) -> None:
    assert agent.parse_duration(text) == seconds


def test_keep_free_takes_a_percent_sign() -> None:
    assert opts("--keep-free", "5%").keep_free == 5.0


# disk check ---------------------------------------------------------------------------


def test_disk_check_counts_every_file_with_its_overshoot() -> None:
    space = agent.disk_space(20, 200, 10, total=100 * 10**9, free=50 * 10**9)
    assert space.need == 200 * (20 * 10**6 + agent.MAX_RECORD)
    assert space.reserve == 10 * 10**9 and space.enough


def test_disk_check_refuses_and_says_what_fits() -> None:
    o = opts("--size-mb", "20", "--files", "200")
    # 10 GB filesystem, 3 GB free, 1 GB reserve: 2 GB room, 99 files of 20 MB (+overshoot)
    space = agent.disk_space(20, 200, 10, total=10 * 10**9, free=3 * 10**9)
    assert not space.enough and space.fit_files == 2 * 10**9 // (20 * 10**6 + agent.MAX_RECORD)
    msg = agent.disk_message("/captures", o, space)
    assert msg == ("not enough disk on /captures: 200 files x 20 MB need 4.1 GB, and 2.0 GB "
                   "is free after keeping 10% (1.0 GB) free; 98 files would fit: use "
                   "--files 98")


def test_disk_check_when_not_one_file_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    class Vfs:
        f_blocks, f_frsize, f_bavail = 1000, 4096, 100

    monkeypatch.setattr(agent.os, "statvfs", lambda _p: Vfs())
    with pytest.raises(AgentError, match="not one file fits: free some space, or lower"):
        agent.check_disk("/x", opts("--size-mb", "1", "--files", "3"))


def test_disk_check_passes_on_a_roomy_filesystem(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    class Vfs:
        f_blocks, f_frsize, f_bavail = 10**7, 4096, 9 * 10**6

    monkeypatch.setattr(agent.os, "statvfs", lambda _p: Vfs())
    assert agent.check_disk(str(tmp_path), opts("--size-mb", "1", "--files", "3")).enough


# metadata parsers ---------------------------------------------------------------------

K8S_RESOLV = """\
# generated by kubelet
search default.svc.cluster.local svc.cluster.local cluster.local  # comment
nameserver 10.96.0.10
nameserver fd00::a ; second
options ndots:5 timeout:2 single-request-reopen
"""


def test_resolv_conf_of_a_pod() -> None:
    r = agent.parse_resolv_conf(K8S_RESOLV, "/proc/1/root/etc/resolv.conf")
    assert r.search == ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")
    assert r.nameservers == ("10.96.0.10", "fd00::a")
    assert r.ndots == 5 and r.options == ("ndots:5", "timeout:2", "single-request-reopen")
    assert r.to_json()["path"] == "/proc/1/root/etc/resolv.conf"


def test_resolv_conf_defaults_and_last_search_wins() -> None:
    r = agent.parse_resolv_conf("search a.test\ndomain b.test\nnameserver 10.0.0.1\n")
    assert r.search == ("b.test",) and r.ndots == 1 and r.options == ()
    r = agent.parse_resolv_conf("options ndots:30\noptions rotate\n")
    assert r.ndots == 15 and r.options == ("ndots:30", "rotate")  # glibc caps ndots at 15


NF_CONNTRACK = """\
entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
0000002a  00000001 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000002 0000000a 00000000 00000000  00000000 00000000 00000000 00000001
0000002a  00000000 00000000 00000000 00000010 00000000 00000000 00000000 00000000 00000001 00000005 00000000 00000000  00000000 00000000 00000000 00000000
"""  # noqa: E501 - the kernel's own line


def test_nf_conntrack_rows_are_summed_over_cpus() -> None:
    c = agent.parse_nf_conntrack_stat(NF_CONNTRACK)
    assert c["entries"] == 42  # the table size, on every row: taken once
    assert c["insert_failed"] == 3 and c["drop"] == 15 and c["invalid"] == 19
    assert c["clashres"] == 1 and c["search_restart"] == 1


def test_nf_conntrack_rejects_other_text() -> None:
    with pytest.raises(ValueError):
        agent.parse_nf_conntrack_stat("hello\n1 2\n")
    with pytest.raises(ValueError):
        agent.parse_nf_conntrack_stat("entries drop\n00000001\n")


CONNTRACK_S = """\
cpu=0   \tfound=3 invalid=117 insert=0 insert_failed=2 drop=2 early_drop=0 error=0 search_restart=4 clash_resolve=1 chaintoolong=0
cpu=1   \tfound=1 invalid=3 insert=0 insert_failed=5 drop=5 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0
"""  # noqa: E501


def test_conntrack_s_is_summed_over_cpus() -> None:
    c = agent.parse_conntrack_s(CONNTRACK_S)
    assert c["insert_failed"] == 7 and c["drop"] == 7 and c["invalid"] == 120
    assert "cpu" not in c
    with pytest.raises(ValueError):
        agent.parse_conntrack_s("conntrack v1.4.7: operation failed\n")


def test_tcpdump_closing_counters_win_over_a_sigusr1_report() -> None:
    text = ("tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot "
            "length 262144 bytes\n"
            "tcpdump: 2 packets captured, 4 packets received by filter, 0 packets dropped by "
            "kernel\n"
            "1532 packets captured\n1540 packets received by filter\n7 packets dropped by "
            "kernel\n1 packet dropped by interface\n")
    s = agent.parse_tcpdump_stats(text)
    assert (s.captured, s.received, s.dropped_by_kernel, s.dropped_by_interface) == (
        1532, 1540, 7, 1)
    assert agent.parse_tcpdump_stats("tcpdump: killed") == agent.TcpdumpStats(
        None, None, None, None)


def test_ip_link_names_by_index() -> None:
    text = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    "
            "link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
            "2: eth0@if17: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue\\    "
            "link/ether 0a:58:0a:f4:01:05 brd ff:ff:ff:ff:ff:ff link-netnsid 0\n"
            "14: cali12ab34cd56e@if3: <BROADCAST,MULTICAST,UP> mtu 1500\n")
    assert agent.parse_ip_link(text) == {1: "lo", 2: "eth0", 14: "cali12ab34cd56e"}


def test_interfaces_of_this_namespace() -> None:
    assert agent.interfaces_in(None)[socket.if_nametoindex("lo")] == "lo"


# privileges and targets ---------------------------------------------------------------


def test_capabilities_from_proc_status() -> None:
    assert agent.effective_capabilities("Name:\tx\nCapEff:\t000001ffffffffff\n") == 0x1ffffffffff
    assert agent.effective_capabilities("Name:\tx\n") == 0


def _target(kind: str) -> agent.Target:
    return agent.Target(kind, None, None, None, None, "/etc/resolv.conf")


def test_privilege_errors_name_the_capability() -> None:
    full = (1 << 41) - 1
    agent.check_privileges(_target("netns"), caps=full)
    with pytest.raises(AgentError, match=r"^not allowed to capture \(no CAP_NET_RAW\): run as"):
        agent.check_privileges(_target("node"), caps=0)
    with pytest.raises(AgentError, match="CAP_SETUID and CAP_SETGID"):
        agent.check_privileges(_target("node"), caps=1 << agent.CAP_NET_RAW)
    no_admin = full & ~(1 << agent.CAP_SYS_ADMIN)
    agent.check_privileges(_target("node"), caps=no_admin)
    with pytest.raises(AgentError, match="needs CAP_SYS_ADMIN"):
        agent.check_privileges(_target("pid"), caps=no_admin)


def test_missing_pid_and_netns() -> None:
    with pytest.raises(AgentError, match=r"PID 4194000 not found: give the PID"):
        agent.resolve_target(4194000, None)
    with pytest.raises(AgentError, match=r"network namespace 'pcapdns-no-such' not found"):
        agent.resolve_target(None, "pcapdns-no-such")
    with pytest.raises(AgentError, match="not found"):
        agent.resolve_target(None, "/nonexistent/netns")


def test_node_and_own_pid_targets() -> None:
    node = agent.resolve_target(None, None)
    assert node.kind == "node" and node.netns_path is None
    me = agent.resolve_target(os.getpid(), None)
    assert me.netns_path == f"/proc/{os.getpid()}/ns/net"
    assert me.netns_inode == node.netns_inode  # the test runs in the node's namespace
    assert me.resolv_conf_path == f"/proc/{os.getpid()}/root/etc/resolv.conf"


# errors of a whole run: one line each -------------------------------------------------


def test_tcpdump_missing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(agent, "EXTRA_PATH", str(tmp_path))
    assert agent.main(["--dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcapdns capture: error: tcpdump not found: install it (apt-get")
    assert err.count("\n") == 1 and not (tmp_path / "c").exists()


def test_not_enough_disk_is_refused_before_anything_is_made(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    class Vfs:
        f_blocks, f_frsize, f_bavail = 1000, 4096, 100

    monkeypatch.setattr(agent, "check_privileges", lambda _t: None)
    monkeypatch.setattr(agent, "find_tcpdump", lambda: "/usr/sbin/tcpdump")
    monkeypatch.setattr(agent.os, "statvfs", lambda _p: Vfs())
    assert agent.main(["--dir", str(tmp_path / "c"), "--size-mb", "1", "--files", "3"]) == 2
    err = capsys.readouterr().err
    assert "error: not enough disk on" in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists()


def test_missing_parent_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent, "check_privileges", lambda _t: None)
    monkeypatch.setattr(agent, "find_tcpdump", lambda: "/usr/sbin/tcpdump")
    assert agent.main(["--dir", str(tmp_path / "no" / "c")]) == 2
    err = capsys.readouterr().err
    assert "does not exist: create it or choose another --dir" in err
    assert err.count("\n") == 1


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run the agent as an unprivileged user")
def test_not_root(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    cp = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
         sys.executable, "-I", "-S", str(AGENT), "--dir", str(tmp_path / "c")],
        capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert cp.returncode == 2
    assert cp.stderr == ("pcapdns capture: error: not allowed to capture (no CAP_NET_RAW): "
                         "run as root (sudo), or in a container with the NET_RAW "
                         "capability\n")


# one file, standard library only ------------------------------------------------------


def test_agent_imports_only_the_standard_library() -> None:
    tree = ast.parse(AGENT.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    modules.discard("__future__")
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)


def test_agent_runs_alone_when_copied(tmp_path: Path) -> None:
    copy = tmp_path / "agent.py"
    shutil.copy(AGENT, copy)
    # -I -S: no site-packages, no current directory: pcapdns is not importable.
    cp = subprocess.run([sys.executable, "-I", "-S", str(copy), "--help"],
                        capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert "--size-mb" in cp.stdout and "--netns NAME|PATH" in cp.stdout


def test_cli_capture_shows_the_agents_help() -> None:
    from pcapdns.cli import main

    result = CliRunner().invoke(main, ["capture", "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith("usage: pcapdns capture [-h]")
    assert "--keep-free PCT" in result.stdout


def test_cli_capture_passes_errors_through() -> None:
    from pcapdns.cli import main

    result = CliRunner().invoke(main, ["capture", "--files", "0"])
    assert result.exit_code == 2 and "0 is not in 1..100000" in result.stderr


# --analyze ----------------------------------------------------------------------------


def test_analyze_without_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(agent, "analyzer_root", lambda: None)
    assert agent.run_report(opened(tmp_path)) == (
        False, f"--analyze: pcapdns is not installed here; the capture is kept in {tmp_path}: "
               "copy it and run 'pcapdns report' there")


def test_analyze_runs_the_report_command(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "clean-glibc-getent.pcap", tmp_path / "dns.pcap0")
    assert agent.run_report(opened(tmp_path)) == (True, f"report: {tmp_path / 'report.html'}")
    assert (tmp_path / "report.html").stat().st_size > 0
    assert (tmp_path / "dns.pcap0").exists()
    # The JSON document beside it is what pcapdns merge joins across nodes.
    doc = json.loads((tmp_path / "analysis.json").read_text())
    assert (doc["schema"], doc["summary"]["lookups"]) == ("pcapdns.analysis/1", 6), doc["summary"]


def fake_analyzer(where: Path, main: str) -> Path:
    """A pcapdns package whose ``python -m pcapdns`` runs ``main`` and exits 0."""
    (where / "pcapdns").mkdir(parents=True)
    (where / "pcapdns" / "__init__.py").write_text("")
    (where / "pcapdns" / "__main__.py").write_text(
        "import sys\n" + main + "\nprint('pcapdns: report written to report.html', "
        "file=sys.stderr)\n")
    return where


@pytest.mark.parametrize(
    ("what", "main"),
    [
        ("nothing", "pass"),
        ("an empty file", "open('report.html', 'w').close()"),
        ("a symlink", "import os; os.symlink('/etc/hostname', 'report.html')"),
        ("a directory", "import os; os.mkdir('report.html')"),
    ],
)
def test_analyze_that_wrote_no_report_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str, main: str
) -> None:
    """An analysis that exits 0 is not taken at its word: "report: ..." was printed for
    a report that was not there."""
    root = fake_analyzer(tmp_path / "lib", main)
    monkeypatch.setattr(agent, "analyzer_root", lambda: str(root))
    cap = tmp_path / "cap"
    cap.mkdir()
    assert agent.run_report(opened(cap)) == (
        False, "--analyze: pcapdns report wrote no report.html (exit 0: pcapdns: report "
               f"written to report.html); the capture is kept in {cap}")


def test_an_earlier_report_does_not_count(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_analyzer(tmp_path / "lib", "pass")
    monkeypatch.setattr(agent, "analyzer_root", lambda: str(root))
    cap = tmp_path / "cap"
    cap.mkdir()
    (cap / "report.html").write_text("<html>an earlier capture's</html>")
    reported, line = agent.run_report(opened(cap))
    assert not reported and "wrote no report.html" in line
    assert not (cap / "report.html").exists()


def decoy_package(where: Path) -> Path:
    """A folder named pcapdns that fails loudly when imported."""
    decoy = where / "pcapdns"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy pcapdns was imported')\n")
    (decoy / "__main__.py").write_text("")
    return decoy


@pytest.mark.parametrize("decoy_in", ["current directory", "capture directory"])
def test_analyze_ignores_a_pcapdns_folder_where_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoy_in: str
) -> None:
    """``python -m pcapdns`` put the current directory first on the import path, so a
    folder named pcapdns there was imported instead of the package."""
    cap = tmp_path / "cap"
    cap.mkdir()
    shutil.copy(SAMPLES / "clean-glibc-getent.pcap", cap / "dns.pcap0")
    work = tmp_path / "work"
    work.mkdir()
    decoy_package(cap if decoy_in == "capture directory" else work)
    monkeypatch.chdir(work)
    assert agent.run_report(opened(cap)) == (True, f"report: {cap / 'report.html'}")
    html = (cap / "report.html").read_text()
    assert "<title>DNS report: dns.pcap0</title>" in html and ": 6 queries, 0 failed" in html
    assert agent.analyzer_root() == str(ROOT)


def test_agent_alone_finds_no_analyzer_beside_it_or_in_the_current_directory(
    tmp_path: Path,
) -> None:
    """The file copied alone looks for an installed package only: a pcapdns folder in
    the current directory or beside the file is not one."""
    copy = tmp_path / "agent.py"
    shutil.copy(AGENT, copy)
    decoy_package(tmp_path)
    code = "import sys, agent; print(agent.analyzer_root())"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for pythonpath, want in ((None, "None"), (str(ROOT), str(ROOT))):
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        # -S: no site-packages (where the test machine has pcapdns installed).
        cp = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True,
                            text=True, timeout=30, cwd=tmp_path, env=env)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.strip() == want


def other_pythons() -> list[str]:
    """The python3.N (N >= 8) interpreters here besides this one, on PATH or installed by
    pyenv: the agent meets such versions on nodes."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(8, 15)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        candidates += [str(p) for p in sorted(pyenv.glob("3.*/bin/python3"))]
    found: dict[str, str] = {}
    for exe in filter(None, candidates):
        try:
            cp = subprocess.run([exe, "-c", "import sys; print(sys.version_info[1])"],
                                capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        minor = cp.stdout.strip()
        if cp.returncode == 0 and minor.isdigit() and 8 <= int(minor) != sys.version_info[1]:
            found.setdefault(minor, exe)
    return [found[m] for m in sorted(found, key=int)]


OTHER_PYTHONS = other_pythons()


@pytest.mark.skipif(not OTHER_PYTHONS, reason="no other python3.N interpreter installed")
@pytest.mark.parametrize("python", OTHER_PYTHONS)
def test_agent_starts_under_other_pythons(python: str, tmp_path: Path) -> None:
    cp = subprocess.run([python, "-I", "-S", str(AGENT), "--files", "0"],
                        capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert cp.returncode == 2 and "0 is not in 1..100000" in cp.stderr, cp.stderr
