"""The capture agent on real traffic: network namespaces, dnsmasq, dig and glibc.

A client and a server namespace joined by one veth pair (10.251.0.0/24, made inside the
namespaces, never in the host's), dnsmasq answering from local data only (``--no-resolv``,
``--address``, ``--txt-record``: it never forwards), and real clients: ``dig -f`` batches
and glibc's ``getent ahosts``. The agent captures the client namespace with a ring of
three 1 MB files, and large TXT answers wrap that ring several times.

Needs root and the tools; skips elsewhere with the reason. Every namespace, process and
file is removed in the fixtures' teardown; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pcapdns import _core
from pcapdns.agent import dns_filter
from pcapdns.analysis import analyze
from pcapdns.read import capture_meta
from tests.conftest import ROOT
from tests.test_agent import OTHER_PYTHONS, decoy_package

TOOLS = ("tcpdump", "dnsmasq", "dig", "ip", "getent")
missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(bool(missing), reason=f"missing tools: {', '.join(missing)}"),
]

AGENT = ROOT / "pcapdns" / "agent.py"
CLIENT, SERVER = "10.251.0.10", "10.251.0.53"
#: Answers of ~1 kB (four 250-byte strings) pad the traffic so the ring wraps quickly.
BIG_TXT = ",".join('"' + "x" * 250 + '"' for _ in range(4))
RESOLV = f"search svc.example.test example.test\nnameserver {SERVER}\noptions ndots:2 timeout:1\n"
QTYPES = {"A": 1, "AAAA": 28, "TXT": 16}
#: A query line of ``tcpdump -nn -r`` (SLL2): "... > 10.251.0.53.53: 4242+ [1au] A? n. (47)"
QUERY_LINE = re.compile(r" > [\d.]+\.53: \d+\S* (?:\[\w+\] )*(A|AAAA|TXT)\? (\S+)\. ")


def run(argv: list[str], timeout: float = 30, ok: tuple[int, ...] = (0,)) -> str:
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode in ok, f"{argv}: {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
    return cp.stdout


@dataclass
class Lab:
    """Two namespaces, dnsmasq in one, and what must be removed afterwards."""

    client: str
    server: str
    procs: list[subprocess.Popen] = field(default_factory=list)  # type: ignore[type-arg]
    netns_dirs: list[Path] = field(default_factory=list)
    made_etc_netns: bool = False

    def exec(self, *argv: str, timeout: float = 30, ok: tuple[int, ...] = (0,)) -> str:
        return run(["ip", "netns", "exec", self.client, *argv], timeout=timeout, ok=ok)

    def spawn(self, argv: list[str], **kw: object) -> subprocess.Popen:  # type: ignore[type-arg]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def dig_batch(self, path: Path, lines: list[str]) -> None:
        path.write_text("".join(f"@{SERVER} +tries=1 +time=2 {line}\n" for line in lines))
        self.exec("dig", "-f", str(path), timeout=60)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:  # type: ignore[type-arg]
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    tag = f"pcapdns-a-{os.getpid()}"
    lab = Lab(client=f"{tag}-client", server=f"{tag}-server")
    made: list[str] = []
    try:
        for ns in (lab.client, lab.server):
            run(["ip", "netns", "add", ns])
            made.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", lab.client, "link", "add", "eth0", "type", "veth", "peer", "name",
             "eth0", "netns", lab.server])
        for ns, addr in ((lab.client, CLIENT), (lab.server, SERVER)):
            run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        etc_netns = Path("/etc/netns")
        if not etc_netns.exists():
            etc_netns.mkdir(mode=0o755)
            lab.made_etc_netns = True
        d = etc_netns / lab.client
        d.mkdir(mode=0o755)
        lab.netns_dirs.append(d)
        (d / "resolv.conf").write_text(RESOLV)
        lab.spawn(["ip", "netns", "exec", lab.server, "dnsmasq", "--keep-in-foreground",
                   "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
                   "--bind-interfaces", f"--listen-address={SERVER}", "--port=53",
                   "--pid-file", "--log-facility=/dev/null",
                   "--address=/example.test/10.251.1.1",
                   "--address=/example.test/fd00:251:1::1",
                   f"--txt-record=big.example.test,{BIG_TXT}"],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while "10.251.1.1" not in lab.exec("dig", "+short", "+time=1", "+tries=1",
                                           f"@{SERVER}", "ready.example.test", ok=(0, 9)):
            assert time.monotonic() < deadline, "dnsmasq never answered"
            time.sleep(0.1)
        yield lab
    finally:
        for proc in reversed(lab.procs):
            _stop(proc)
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=15)
        for d in lab.netns_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if lab.made_etc_netns:
            try:
                Path("/etc/netns").rmdir()
            except OSError:
                pass


# helpers ------------------------------------------------------------------------------


def wait_for_meta(cap: Path, agent: subprocess.Popen) -> dict:  # type: ignore[type-arg]
    """The capture.json the agent writes once tcpdump listens."""
    deadline = time.monotonic() + 20
    while not (cap / "capture.json").exists():
        assert agent.poll() is None, f"agent exited with {agent.returncode}"
        assert time.monotonic() < deadline, "no capture.json within 20 s"
        time.sleep(0.05)
    return json.loads((cap / "capture.json").read_text())


def children(pid: int) -> set[int]:
    """Child PIDs of ``pid``, from /proc (never by process name)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(x) for x in (task / "children").read_text().split()}
    return out


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def queries_in(path: Path) -> list[tuple[str, int]]:
    """(name, qtype) of every query in one file, read by tcpdump, not by pcapdns."""
    out = run(["tcpdump", "-nn", "-r", str(path)], timeout=60)
    return [(m.group(2), QTYPES[m.group(1)]) for m in map(QUERY_LINE.search, out.splitlines())
            if m]


def assert_private(cap: Path) -> None:
    assert cap.stat().st_mode & 0o777 == 0o700
    for p in cap.iterdir():
        assert p.stat().st_mode & 0o777 == 0o600, p.name


def kill_leftover(meta: dict | None) -> None:
    """Never leave a tcpdump behind, even when an assertion failed."""
    pid = (meta or {}).get("tcpdump", {}).get("pid")
    if pid and running(pid):
        os.kill(pid, signal.SIGKILL)


# the ring -----------------------------------------------------------------------------


def test_ring_wraps_and_keeps_every_query_that_survived(lab: Lab, tmp_path: Path) -> None:
    cap = tmp_path / "cap"
    agent = lab.spawn([sys.executable, "-m", "pcapdns", "capture", "--netns", lab.client,
                       "--size-mb", "1", "--files", "3", "--dir", str(cap)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    meta = None
    try:
        meta = wait_for_meta(cap, agent)
        tcpdump_pid = meta["tcpdump"]["pid"]
        assert tcpdump_pid in children(agent.pid) and running(tcpdump_pid)

        # Each client sends its names in order; big TXT answers in between wrap the ring.
        dig_names: list[str] = []
        glibc_names: list[str] = []
        started = time.monotonic()
        for batch in range(14):
            lab.dig_batch(tmp_path / "fill.txt", ["big.example.test TXT"] * 400)
            names = [f"d{batch:02d}-{i:02d}.example.test" for i in range(25)]
            lab.dig_batch(tmp_path / "probe.txt", [f"{n} A" for n in names])
            dig_names += names
            names = [f"g{batch:02d}-{i:02d}.example.test" for i in range(8)]
            lab.exec("getent", "ahosts", *names)
            glibc_names += names
            assert time.monotonic() - started < 40, "traffic took too long"
        time.sleep(0.5)
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
    finally:
        _stop(agent, signal.SIGKILL)
        kill_leftover(meta)
    assert agent.returncode == 0, err
    assert not running(tcpdump_pid)

    meta = json.loads((cap / "capture.json").read_text())
    ring = [cap / n for n in ("dns.pcap0", "dns.pcap1", "dns.pcap2")]
    assert sorted(p.name for p in cap.iterdir()) == ["capture.json"] + [p.name for p in ring]
    assert_private(cap)
    for p in ring:
        assert p.stat().st_size <= 1_000_000 + 262_160

    # The files are whole, and pcapdns reads them as one capture.
    records = 0
    for p in ring:
        reader = _core.CaptureReader(str(p))
        records += sum(1 for _ in reader)
        info = reader.info()
        assert not info["truncated"] and not info["warnings"], info["warnings"]
    result = analyze([str(cap)], keep_lookups=True)
    assert result.warnings == []
    assert all(not f.truncated for f in result.files)

    # It wrapped: tcpdump wrote more packets than the ring keeps, and the first names
    # are gone.
    td = meta["tcpdump"]
    assert td["packets_captured"] > records
    assert td["packets_dropped_by_kernel"] == 0

    # "Survived" means: the query frame is in the ring. The oldest file may begin with the
    # answer to a query that was in the overwritten file; that name did not survive.
    in_ring = {q for p in ring for q in queries_in(p)}
    found = {(a.query.qname, a.query.qtype) for lk in result.lookups or [] for a in lk.attempts}
    assert in_ring <= found, sorted(in_ring - found)[:10]
    print(f"ring: {records} of {td['packets_captured']} packets kept, "
          f"{len(in_ring)} queries in it, {len(found)} lookups found")
    for sent, qtypes in ((dig_names, (1,)), (glibc_names, (1, 28))):
        for qtype in qtypes:
            kept = [n for n in sent if (n, qtype) in in_ring]
            print(f"  qtype {qtype}: {len(kept)} of {len(sent)} names kept, from "
                  f"#{sent.index(kept[0]) if kept else None}")
            assert kept, f"no {qtype} queries in the ring"
            first = sent.index(kept[0])
            # A whole tail of what the client sent: nothing lost inside the ring's span,
            # up to the very last query, and the oldest were overwritten.
            assert kept == sent[first:], (qtype, sorted(set(sent[first:]) - set(kept))[:10])
            assert first > 0
    stats_line = [line for line in err.decode().splitlines() if "stopped (SIGTERM)" in line]
    assert stats_line and f"{td['packets_captured']} packets captured" in stats_line[0]
    check_meta(meta, lab, cap)

    # The analyzer's loader reads what the agent wrote.
    loaded, warnings = capture_meta.load([str(p) for p in ring])
    assert warnings == [] and loaded is not None
    assert loaded.interfaces == {int(k): v for k, v in meta["interfaces"].items()}
    assert loaded.target.netns == lab.client and loaded.resolv_conf is not None
    assert loaded.resolv_conf.search == ("svc.example.test", "example.test")
    assert loaded.kernel_dropped == 0 and loaded.packets_captured == td["packets_captured"]
    assert loaded.start is not None and loaded.stop is not None
    assert result.first_time is not None and result.last_time is not None
    assert loaded.start <= result.first_time <= result.last_time <= loaded.stop
    if loaded.conntrack is not None:
        assert loaded.conntrack_delta() is not None


def check_meta(meta: dict, lab: Lab, cap: Path) -> None:
    """capture.json is complete and says true things."""
    assert list(meta) == ["format", "node", "target", "start", "stop", "stop_reason",
                          "duration_limit", "directory", "ring", "tcpdump", "interfaces",
                          "resolv_conf", "conntrack", "target_conntrack"]
    assert meta["format"] == "pcapdns.capture/1" and meta["node"] == socket.gethostname()
    assert meta["target"] == {"kind": "netns", "pid": None, "netns": lab.client,
                              "netns_path": f"/run/netns/{lab.client}",
                              "netns_inode": os.stat(f"/run/netns/{lab.client}").st_ino}
    assert meta["start"] < meta["stop"] and meta["stop_reason"] == "SIGTERM"
    assert meta["duration_limit"] is None and meta["directory"] == str(cap)
    default_filter = dns_filter((53,))
    assert meta["ring"] == {"prefix": "dns.pcap", "size_mb": 1, "files": 3, "interface": "any",
                            "filter": default_filter,
                            "names": ["dns.pcap0", "dns.pcap1", "dns.pcap2"]}
    td = meta["tcpdump"]
    cmd = td["command"]
    assert cmd[0].endswith("/tcpdump") and cmd[-1] == default_filter
    assert cmd[cmd.index("-C") + 1] == "1" and cmd[cmd.index("-W") + 1] == "3"
    assert cmd[cmd.index("-w") + 1] == "dns.pcap"  # run in the capture directory
    assert td["version"].startswith("tcpdump version ") and td["libpcap"].startswith("libpcap")
    assert td["exit_status"] == 0 and td["killed"] is False
    assert td["packets_received"] >= td["packets_captured"] > 0
    # The interfaces of the client namespace, as ip sees them there.
    links = run(["ip", "-n", lab.client, "-o", "link"])
    want = {m.group(1): m.group(2)
            for m in re.finditer(r"^(\d+): ([^:@]+)[:@]", links, re.M)}
    assert meta["interfaces"] == want and set(want.values()) == {"lo", "eth0"}
    # What `ip netns exec` shows the client: /etc/netns/NAME/resolv.conf.
    assert meta["resolv_conf"] == {"path": f"/etc/netns/{lab.client}/resolv.conf",
                                   "nameservers": [SERVER],
                                   "search": ["svc.example.test", "example.test"],
                                   "ndots": 2, "options": ["ndots:2", "timeout:1"]}
    # Every field is documented in capture/README.md.
    doc = (ROOT / "capture" / "README.md").read_text()
    undocumented = [p for p in _field_paths(meta) if f"`{p}`" not in doc]
    assert not undocumented, undocumented
    if os.path.exists("/proc/net/stat/nf_conntrack"):
        for key in ("conntrack", "target_conntrack"):
            ct = meta[key]
            assert ct["source"] == "/proc/net/stat/nf_conntrack", key
            assert {"insert_failed", "drop"} <= set(ct["before"]) & set(ct["after"]), key


# lifecycle ----------------------------------------------------------------------------


def _field_paths(meta: dict) -> list[str]:
    """``a`` and ``a.b`` for every field; maps of counters and of interfaces, and
    target_conntrack (the same shape as conntrack), count as one field."""
    out = []
    for key, value in meta.items():
        if isinstance(value, dict) and key not in ("interfaces", "target_conntrack"):
            out += [f"{key}.{sub}" for sub in value]
        else:
            out.append(key)
    return out


def test_a_killed_agent_leaves_no_tcpdump(lab: Lab, tmp_path: Path) -> None:
    """SIGKILL cannot be caught; tcpdump still stops (parent-death signal), cleanly."""
    copy = tmp_path / "agent.py"
    shutil.copy(AGENT, copy)
    cap = tmp_path / "cap"
    agent = lab.spawn([sys.executable, "-I", "-S", str(copy), "--netns", lab.client,
                       "--size-mb", "1", "--files", "2", "--dir", str(cap)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    meta = None
    try:
        meta = wait_for_meta(cap, agent)
        pid = meta["tcpdump"]["pid"]
        assert pid in children(agent.pid)
        lab.dig_batch(tmp_path / "q.txt", [f"k{i}.example.test A" for i in range(20)])
        time.sleep(1.5)  # the kernel hands packets to tcpdump in blocks, at least each 1 s
        agent.kill()
        agent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while running(pid):
            assert time.monotonic() < deadline, f"tcpdump {pid} outlived the agent"
            time.sleep(0.05)
    finally:
        _stop(agent, signal.SIGKILL)
        kill_leftover(meta)
    reader = _core.CaptureReader(str(cap / "dns.pcap0"))
    assert sum(1 for _ in reader) >= 40 and not reader.info()["truncated"]
    # The capture.json written at the start is there, without a stop time.
    meta = json.loads((cap / "capture.json").read_text())
    assert meta["stop"] is None and meta["tcpdump"]["pid"] == pid


def console_script(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of an installed ``pcapdns`` console script (its
    own directory first on the import path, not the current one), importing this tree."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pcapdns"
    script.write_text("import sys\nfrom pcapdns.cli import main\nsys.exit(main())\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return [sys.executable, str(script)], env


def test_pid_target_status_line_and_analyze(lab: Lab, tmp_path: Path) -> None:
    """--pid enters the namespace of a process living in it (as nsenter -t PID -n) and
    reads that process's resolv.conf through /proc/PID/root. --analyze writes the report
    although the current directory holds a folder named pcapdns."""
    sleeper = lab.spawn(["ip", "netns", "exec", lab.client, "sleep", "60"])
    inode = os.stat(f"/run/netns/{lab.client}").st_ino
    deadline = time.monotonic() + 10
    while _netns_inode(sleeper.pid) != inode:  # ip netns exec has switched, then exec'd
        assert time.monotonic() < deadline and sleeper.poll() is None
        time.sleep(0.02)
    cap = tmp_path / "cap"
    master, slave = pty.openpty()
    seen: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, seen), daemon=True)
    decoy_package(tmp_path)
    pcapdns, env = console_script(tmp_path)
    agent = lab.spawn([*pcapdns, "capture", "--pid", str(sleeper.pid),
                       "--duration", "4", "--size-mb", "1", "--files", "2", "--analyze",
                       "--dir", str(cap)], stdout=subprocess.DEVNULL, stderr=slave,
                      cwd=tmp_path, env=env)
    os.close(slave)
    reader.start()
    meta = None
    try:
        meta = wait_for_meta(cap, agent)
        names = [f"pid{i}.example.test" for i in range(5)]
        lab.dig_batch(tmp_path / "q.txt", [f"{n} A" for n in names])
        lab.exec("getent", "ahosts", "glibc-pid.example.test")
        agent.wait(timeout=30)
    finally:
        _stop(agent, signal.SIGKILL)
        _stop(sleeper, signal.SIGKILL)
        kill_leftover(meta)
    reader.join(timeout=5)
    os.close(master)
    assert agent.returncode == 0
    tty = b"".join(seen).decode(errors="replace")
    assert re.search(r"\rcapturing: 1 files, [\d.]+ [kMG]?B, \d+ packets, 0:00:0\d", tty), tty
    assert f"report: {cap / 'report.html'}" in tty, tty
    report = cap / "report.html"
    assert report.stat().st_size > 0 and report.stat().st_mode & 0o777 == 0o600

    meta = json.loads((cap / "capture.json").read_text())
    # The document pcapdns merge joins names the node it was captured on.
    doc = json.loads((cap / "analysis.json").read_text())
    assert doc["capture"]["node"] == meta["node"] and doc["summary"]["lookups"] > 0, doc
    assert meta["target"] == {"kind": "pid", "pid": sleeper.pid, "netns": None,
                              "netns_path": f"/proc/{sleeper.pid}/ns/net",
                              "netns_inode": inode}
    assert meta["stop_reason"] == "duration" and meta["duration_limit"] == 4.0
    # ip netns exec bind-mounted /etc/netns/NAME/resolv.conf in the sleeper's mount
    # namespace: /proc/PID/root/etc/resolv.conf is what that process's resolver reads.
    assert meta["resolv_conf"]["path"] == f"/proc/{sleeper.pid}/root/etc/resolv.conf"
    assert meta["resolv_conf"]["ndots"] == 2 and meta["resolv_conf"]["nameservers"] == [SERVER]
    assert set(meta["interfaces"].values()) == {"lo", "eth0"}
    result = analyze([str(cap)], keep_lookups=True)
    found = {lk.first.qname for lk in result.lookups or []}
    assert set(names) | {"glibc-pid.example.test"} <= found


def _pod_with(lab: Lab, source: Path, target: str) -> subprocess.Popen:  # type: ignore[type-arg]
    """A process in the client namespace whose own mount namespace has ``source``
    bind-mounted on ``target``: a pod's container with a resolv.conf of its choosing. It
    waits in a shell builtin (no binary is loaded after the mount) until stdin closes."""
    proc = subprocess.Popen(["ip", "netns", "exec", lab.client, "unshare", "--mount",
                             "--propagation", "private", "sh", "-c",
                             'mount --bind "$1" "$2" && echo ready && read x', "sh",
                             str(source), target],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lab.procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


@pytest.mark.parametrize("hostile", ["ndots:²", "fifo", "symlink in the pod",
                                     "symlink out of the pod"])
def test_pid_target_with_a_hostile_resolv_conf(lab: Lab, tmp_path: Path,
                                               hostile: str) -> None:
    """With --pid, 'options ndots:²' crashed the agent and a FIFO held it forever; an
    absolute symlink was followed from the node's root. The agent now captures, and
    records what the pod's own resolver would read."""
    want: dict | None
    if hostile in ("ndots:²", "fifo"):
        source = tmp_path / "resolv.conf"
        if hostile == "fifo":
            os.mkfifo(source)
            want = None
        else:
            source.write_text(f"nameserver {SERVER}\noptions ndots:² timeout:1\n")
            want = {"nameservers": [SERVER], "ndots": 1, "options": ["ndots:²", "timeout:1"]}
        pod = _pod_with(lab, source, "/etc/resolv.conf")
    else:
        source = tmp_path / "etc"
        source.mkdir()
        node_only = f"/etc/netns/{lab.client}/resolv.conf"  # the node has it, the pod not
        if hostile == "symlink in the pod":
            (source / "real.conf").write_text("nameserver 10.251.0.99\n")
            (source / "resolv.conf").symlink_to("/etc/real.conf")
            want = {"nameservers": ["10.251.0.99"], "ndots": 1, "options": []}
        else:
            (source / "resolv.conf").symlink_to(node_only)
            want = None
        pod = _pod_with(lab, source, "/etc")
    cap = tmp_path / "cap"
    try:
        cp = subprocess.run([sys.executable, "-m", "pcapdns", "capture", "--pid", str(pod.pid),
                             "--duration", "1", "--size-mb", "1", "--files", "2",
                             "--dir", str(cap)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    finally:
        _stop(pod, signal.SIGKILL)
    assert cp.returncode == 0, cp.stderr
    meta = json.loads((cap / "capture.json").read_text())
    got = meta["resolv_conf"]
    path = f"/proc/{pod.pid}/root/etc/resolv.conf"
    if want is None:
        assert got is None
    else:
        assert got is not None and got["path"] == path
        assert {k: got[k] for k in want} == want
    if hostile == "fifo":
        assert (f"pcapdns capture: {path} not read (not a regular file): resolv_conf is null "
                "in capture.json") in cp.stderr.splitlines()
    else:
        assert " not read " not in cp.stderr


def test_standalone_agent_without_the_package(lab: Lab, tmp_path: Path) -> None:
    """The file copied alone captures; --analyze says in one line that pcapdns is not
    installed, the capture is kept, and the exit status says a report was asked for and
    not written."""
    copy = tmp_path / "agent.py"
    shutil.copy(AGENT, copy)
    agent = lab.spawn([sys.executable, "-I", "-S", str(copy), "--netns", lab.client,
                       "--duration", "2", "--size-mb", "1", "--files", "2", "--analyze"],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        _, err = agent.communicate(timeout=30)
    finally:
        _stop(agent, signal.SIGKILL)
    assert agent.returncode == 1, err
    (cap,) = tmp_path.glob("pcapdns-capture-*")
    assert re.fullmatch(r"pcapdns-capture-\d{8}T\d{6}Z", cap.name)
    lines = err.decode().splitlines()
    assert (f"pcapdns capture: --analyze: pcapdns is not installed here; the capture is kept "
            f"in {cap}: copy it and run 'pcapdns report' there") in lines
    assert_private(cap)
    assert sorted(p.name for p in cap.iterdir()) == ["capture.json", "dns.pcap0"]


@pytest.mark.skipif(not OTHER_PYTHONS, reason="no other python3.N interpreter installed")
@pytest.mark.parametrize("python", OTHER_PYTHONS)
def test_agent_captures_under_other_pythons(lab: Lab, tmp_path: Path, python: str) -> None:
    """Nodes carry older (and newer) python3s than the package needs: 3.8 has no
    os.setns, 3.12 has it and warns about fork() beside threads."""
    cap = tmp_path / "cap"
    agent = lab.spawn([python, "-I", "-S", str(AGENT), "--netns", lab.client,
                       "--duration", "2", "--size-mb", "1", "--files", "2", "--dir", str(cap)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        wait_for_meta(cap, agent)
        lab.dig_batch(tmp_path / "q.txt", [f"py{i}.example.test A" for i in range(3)])
        _, err = agent.communicate(timeout=30)
    finally:
        _stop(agent, signal.SIGKILL)
    assert agent.returncode == 0, err
    assert "Warning" not in err.decode(), err
    meta = json.loads((cap / "capture.json").read_text())
    assert set(meta["interfaces"].values()) == {"lo", "eth0"}
    assert meta["target_conntrack"] is None or meta["target_conntrack"]["after"] is not None
    result = analyze([str(cap)], keep_lookups=True)
    assert {f"py{i}.example.test" for i in range(3)} <= {
        lk.first.qname for lk in result.lookups or []}


def test_default_filter_keeps_the_icmp_error_about_a_late_answer(lab: Lab,
                                                                   tmp_path: Path) -> None:
    """A server answers after dig gave up and closed its port; the client's kernel
    answers with ICMP port unreachable quoting the answer. The agent's default filter
    keeps that error, and the analysis finds the late answer through it."""
    late = "10.251.0.54"
    run(["ip", "-n", lab.server, "addr", "add", f"{late}/24", "dev", "eth0"])
    relay = lab.spawn(["ip", "netns", "exec", lab.server, sys.executable,
                       str(ROOT / "sample_pcaps" / "make_samples.py"), "--relay", late, SERVER,
                       "2", "late"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    cap = tmp_path / "cap"
    agent = None
    meta = None
    try:
        assert relay.stdout is not None and relay.stdout.readline() == b"ready\n"
        agent = lab.spawn([sys.executable, "-m", "pcapdns", "capture", "--netns", lab.client,
                           "--size-mb", "1", "--files", "2", "--dir", str(cap)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
        meta = wait_for_meta(cap, agent)
        lab.exec("dig", "+tries=1", "+time=1", f"@{late}", "late.example.test", ok=(9,))
        deadline = time.monotonic() + 20
        while "udp port" not in run(["tcpdump", "-nn", "-r", str(cap / "dns.pcap0"), "icmp"]):
            assert time.monotonic() < deadline, "no ICMP error in the ring within 20 s"
            time.sleep(0.2)
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
    finally:
        if agent is not None:
            _stop(agent, signal.SIGKILL)
        _stop(relay, signal.SIGKILL)
        kill_leftover(meta)
        run(["ip", "-n", lab.server, "addr", "del", f"{late}/24", "dev", "eth0"])
    assert agent.returncode == 0, err
    result = analyze([str(cap)], keep_lookups=True)
    assert result.decode.icmp_errors >= 1
    kinds = [f.first.kind for f in result.findings]
    assert "late_response" in kinds, kinds


def test_bad_filter_is_one_line_and_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    cp = subprocess.run([sys.executable, "-m", "pcapdns", "capture", "--netns", lab.client,
                         "--filter", "port fifty-three", "--dir", str(tmp_path / "cap")],
                        capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert cp.returncode == 2
    assert cp.stderr.startswith("pcapdns capture: error: tcpdump did not start (tcpdump: ")
    assert cp.stderr.rstrip().endswith("check --filter and --interface")
    assert cp.stderr.count("\n") == 1 and not (tmp_path / "cap").exists()


def _netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _drain(fd: int, into: list[bytes]) -> None:
    """Read a pty's master side until its slave side is closed everywhere."""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        into.append(chunk)
