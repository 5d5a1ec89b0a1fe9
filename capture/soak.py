#!/usr/bin/env python3
"""Soak test of the capture agent: a long capture of steady DNS load in network namespaces.

    sudo python3 capture/soak.py --minutes 30 --rate 2000

Two network namespaces joined by a veth pair (10.253.0.0/24, made inside them, never in
the host's), dnsmasq in the server one answering from local data only, and a load
generator in the client one: this same file run with ``--load-generator``, a paced UDP
client that sends RATE queries/s to the server address and to nothing else. The agent
(``pcapdns/agent.py``, the file alone, as it runs on a node) captures the client
namespace into a small ring (5 x 2 MB by default) that rotates every few seconds.

Every ``--interval`` seconds the script records the ring's size on disk, its number of
files, and the RSS and open descriptors of the agent and of its tcpdump. At the end it
stops the agent with SIGTERM, reads capture.json and checks:

- the disk budget: the ring files never held more than FILES x (SIZE_MB x 10^6 + 262,160)
  bytes, the agent's own bound (tcpdump tests a file's size before each write, so a file
  outgrows -C by at most one record, and a record is at most 16 + 262,144 bytes);
- the ring rotated: all FILES files there, more packets written than the ring holds, and
  every file ends on a whole record;
- the agent's RSS stayed flat, and tcpdump's: after a warm-up (10% of the run, at least
  30 s), the median of the last quarter of the samples is at most max(10%, 2 MiB) above
  the median of the first quarter;
- every kernel drop is reported: ``packets_dropped_by_kernel`` in capture.json is a
  number, the same as in tcpdump's own counters line and in the agent's closing line;
  tcpdump received by its filter at least every query sent and every answer the
  generator read, and each packet it received was either written or counted as dropped;
- the agent stopped cleanly (exit 0, SIGTERM, tcpdump exit 0), and the load was there
  (at least 90% of RATE x the run's length sent).

It prints PASS or FAIL with the figures (``--json``: one JSON document) and exits 0 on
PASS, 1 on FAIL, 2 when it cannot run, 130 on SIGINT or SIGTERM. Namespaces and processes
(by PID) are removed in every case; the ring too, unless ``--keep``.

Standard library only; needs root, ip (iproute2), dnsmasq and tcpdump. Not part of the
test suite (tests/test_capture_soak.py checks only its options).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = os.path.join(ROOT, "pcapdns", "agent.py")
CLIENT_ADDR, SERVER_ADDR = "10.253.0.10", "10.253.0.53"
ZONE = "soak.test"
#: Names dnsmasq knows (A and AAAA); every other name in ZONE is NXDOMAIN (--local).
HOSTS = tuple(f"host{i:02d}.{ZONE}" for i in range(64))
TXT_NAME = f"txt.{ZONE}"
QTYPE_A, QTYPE_AAAA, QTYPE_TXT = 1, 28, 16
RCODE_NOERROR, RCODE_NXDOMAIN = 0, 3
FLAG_QR, FLAG_RD = 0x8000, 0x0100
#: The agent's ring bound per file: -C in millions of bytes, plus one record at snap
#: length 0 (tcpdump's 262,144 bytes) with its 16-byte pcap header (agent.MAX_RECORD).
MB = 1_000_000
MAX_RECORD = 262_144 + 16
RING_PREFIX = "dns.pcap"
MIB = 1024 * 1024
#: RSS "flat": last-quarter median at most this much above the first-quarter median.
RSS_GROWTH_SHARE, RSS_GROWTH_FLOOR_KIB = 0.10, 2048
#: Load "there": at least this share of rate x seconds sent.
LOAD_SHARE = 0.90
TOOLS = ("ip", "dnsmasq", "tcpdump")


class SoakError(Exception):
    """The soak test cannot run: one line saying why."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the message is the signal's name."""


# --------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class Options:
    minutes: float
    #: Queries per second the generator sends.
    rate: int
    size_mb: int
    files: int
    #: Seconds between two samples of the ring and of the processes.
    interval: float
    #: --buffer-kb for the agent (tcpdump -B), or None for the agent's default.
    buffer_kb: int | None
    keep: bool
    json: bool


def _number(kind: type, low: float, high: float):  # type: ignore[no-untyped-def]
    def convert(text: str):  # type: ignore[no-untyped-def]
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in {low}..{high}")
        return value

    return convert


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="soak.py",
        description="Soak test of the pcapdns capture agent: steady DNS load against "
                    "dnsmasq in network namespaces, a small rotating ring, and checks of "
                    "its disk budget, the agent's RSS and the kernel-drop report. Needs "
                    "root. Exit status: 0 PASS, 1 FAIL, 2 cannot run, 130 interrupted.")
    p.add_argument("--minutes", type=_number(float, 1, 1440), default=30.0,
                   metavar="MIN",
                   help="length of the load, 1..1440 (default: 30)")
    p.add_argument("--rate", type=_number(int, 1, 20_000), default=2000,
                   metavar="QPS",
                   help="queries per second, 1..20000 (default: 2000)")
    p.add_argument("--size-mb", type=_number(int, 1, 1000), default=2,
                   metavar="MB",
                   help="agent --size-mb, each ring file in 10^6 bytes (default: 2)")
    p.add_argument("--files", type=_number(int, 2, 1000), default=5,
                   metavar="N",
                   help="agent --files, ring files, at least 2 (default: 5)")
    p.add_argument("--interval", type=_number(float, 1, 60), default=5.0,
                   metavar="SEC",
                   help="seconds between samples, 1..60 (default: 5)")
    p.add_argument("--buffer-kb", type=_number(int, 64, 4_194_304), default=None,
                   metavar="KIB",
                   help="agent --buffer-kb (tcpdump -B); small values provoke kernel "
                        "drops (default: the agent's own)")
    p.add_argument("--keep", action="store_true",
                   help="keep the ring, capture.json and the logs, and print where")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document (figures, checks, samples) instead of "
                        "the text summary")
    return p


def parse_options(argv: list[str]) -> Options:
    """Raises SystemExit: bad usage (status 2, one line from argparse) or --help."""
    a = build_parser().parse_args(argv)
    return Options(minutes=a.minutes, rate=a.rate, size_mb=a.size_mb, files=a.files,
                   interval=a.interval, buffer_kb=a.buffer_kb, keep=a.keep, json=a.json)


# --------------------------------------------------------------------------------------
# The load generator (runs inside the client namespace)


def encode_name(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


def make_query(qid: int, qname: bytes, qtype: int) -> bytes:
    return struct.pack("!HHHHHH", qid, FLAG_RD, 1, 0, 0, 0) + qname + struct.pack(
        "!HH", qtype, 1)


def pick_question(rng: random.Random) -> tuple[bytes, int]:
    """A mix like a cluster's: mostly A and AAAA of known names, some TXT, and 20% of
    names that do not exist (fresh ones, so no cache of any kind answers them)."""
    roll = rng.random()
    if roll < 0.20:
        return encode_name(f"nx-{rng.getrandbits(32):08x}.{ZONE}"), QTYPE_A
    if roll < 0.25:
        return _TXT, QTYPE_TXT
    qtype = QTYPE_A if roll < 0.65 else QTYPE_AAAA
    return rng.choice(_HOSTS), qtype


_HOSTS = tuple(encode_name(h) for h in HOSTS)
_TXT = encode_name(TXT_NAME)


@dataclass
class LoadCounts:
    sent: int = 0
    #: Datagrams read back that are DNS responses (QR set), by RCODE.
    answered: int = 0
    noerror: int = 0
    nxdomain: int = 0
    other_rcode: int = 0
    #: A send refused because the socket's buffer was full (the query was not sent).
    send_blocked: int = 0
    #: ICMP errors reported on a socket (ECONNREFUSED): the server's port was closed.
    icmp_errors: int = 0
    seconds: float = 0.0


def generate(server: str, rate: int, seconds: float, sockets: int = 4,
             seed: int | None = None) -> LoadCounts:
    """Send ``rate`` queries/s to ``server``:53 for ``seconds``, reading answers as they
    come. Bounded twice: at most rate x seconds queries, and never past ``seconds``
    (plus one second to read the last answers). SIGTERM ends it early."""
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    rng = random.Random(seed)
    counts = LoadCounts()
    socks = []
    for _ in range(sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect((server, 53))  # a connected socket sends to, and reads from, only it
        socks.append(s)
    limit = int(rate * seconds)
    start = time.monotonic()
    deadline = start + seconds
    # Catch up after a stall by at most 100 ms of queries at a time: no large bursts.
    step = max(1, rate // 10)
    try:
        while counts.sent < limit and not stop:
            now = time.monotonic()
            if now >= deadline:
                break
            due = min(limit, int((now - start) * rate) + 1, counts.sent + step)
            while counts.sent < due:
                qname, qtype = pick_question(rng)
                query = make_query(rng.getrandbits(16), qname, qtype)
                try:
                    socks[counts.sent % sockets].send(query)
                except BlockingIOError:
                    counts.send_blocked += 1
                    break
                except ConnectionRefusedError:
                    counts.icmp_errors += 1
                    continue
                counts.sent += 1
            next_due = start + (counts.sent + 1) / rate
            _read_answers(socks, counts, max(0.002, min(next_due, deadline) - now))
        settle = time.monotonic() + 1.0
        while counts.answered < counts.sent and not stop:
            left = settle - time.monotonic()
            if left <= 0:
                break
            _read_answers(socks, counts, left)
    finally:
        counts.seconds = round(time.monotonic() - start, 3)
        for s in socks:
            s.close()
    return counts


def _read_answers(socks: list[socket.socket], counts: LoadCounts, timeout: float) -> None:
    try:
        ready, _, _ = select.select(socks, [], [], timeout)
    except InterruptedError:
        return
    for s in ready:
        while True:
            try:
                data = s.recv(4096)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                counts.icmp_errors += 1
                continue
            if len(data) < 12:
                continue
            flags = struct.unpack_from("!H", data, 2)[0]
            if not flags & FLAG_QR:
                continue
            counts.answered += 1
            rcode = flags & 0xF
            if rcode == RCODE_NOERROR:
                counts.noerror += 1
            elif rcode == RCODE_NXDOMAIN:
                counts.nxdomain += 1
            else:
                counts.other_rcode += 1


def generator_main(argv: list[str]) -> int:
    """``soak.py --load-generator SERVER RATE SECONDS``: prints LoadCounts as JSON."""
    server, rate, seconds = argv[0], int(argv[1]), float(argv[2])
    if server != SERVER_ADDR:  # the network rule: only the namespace's server
        print(f"soak: refusing to send to {server}", file=sys.stderr)
        return 2
    counts = generate(server, rate, seconds)
    print(json.dumps(asdict(counts)), flush=True)
    return 0


# --------------------------------------------------------------------------------------
# The lab: namespaces, dnsmasq, the agent, the generator


class Stopper:
    """SIGINT and SIGTERM become a request to stop, checked between steps, so that a
    process is never started without being recorded for the cleanup."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.reason = self.reason or signal.Signals(signum).name

    def check(self) -> None:
        if self.reason is not None:
            raise Interrupted(self.reason)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once for a signal (its handler interrupts time.sleep)."""
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))


def run(argv: list[str], timeout: float = 30) -> str:
    """Raises SoakError: the command failed."""
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                        stdin=subprocess.DEVNULL)
    if cp.returncode != 0:
        last = (cp.stderr.strip().splitlines() or ["no message"])[-1]
        raise SoakError(f"{' '.join(argv)}: exit {cp.returncode}: {last}")
    return cp.stdout


class Lab:
    """What the soak test made, so that the cleanup removes exactly that."""

    def __init__(self, workdir: str) -> None:
        tag = f"pcapdns-soak-{os.getpid()}"
        self.client, self.server = f"{tag}-client", f"{tag}-server"
        self.workdir = workdir
        self.namespaces: list[str] = []
        self.procs: dict[str, subprocess.Popen] = {}  # type: ignore[type-arg]
        self.tcpdump_pid: int | None = None

    def spawn(self, name: str, argv: list[str], **kw: object) -> subprocess.Popen:  # type: ignore[type-arg]
        # Its own session: a terminal's Ctrl-C reaches only this script, which then
        # stops every process in order.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                                **kw)  # type: ignore[call-overload]
        self.procs[name] = proc
        return proc

    def log(self, name: str):  # type: ignore[no-untyped-def]
        return open(os.path.join(self.workdir, f"{name}.log"), "wb")

    def build(self) -> None:
        """Raises SoakError: a step failed."""
        for ns in (self.client, self.server):
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.client, "link", "add", "eth0", "type", "veth", "peer", "name",
             "eth0", "netns", self.server])
        for ns, addr in ((self.client, CLIENT_ADDR), (self.server, SERVER_ADDR)):
            run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        records = [f"--host-record={h},10.253.1.{i},fd00:253:1::{i:x}"
                   for i, h in enumerate(HOSTS, 1)]
        with self.log("dnsmasq") as log:
            self.spawn("dnsmasq", [
                "ip", "netns", "exec", self.server, "dnsmasq", "--keep-in-foreground",
                "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
                "--bind-interfaces", f"--listen-address={SERVER_ADDR}", "--port=53",
                "--pid-file", "--log-facility=/dev/null",
                # Local data only: every name of the zone not listed here is NXDOMAIN.
                f"--local=/{ZONE}/", *records, f"--txt-record={TXT_NAME},soak",
            ], stdout=log, stderr=log)

    def wait_for_dns(self, stopper: Stopper, timeout: float = 15) -> None:
        """Until dnsmasq answers a query from the client namespace (bounded)."""
        probe = (f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                 f"s.settimeout(0.5); s.connect(({SERVER_ADDR!r}, 53)); "
                 f"s.send({make_query(0x5a5a, _HOSTS[0], QTYPE_A)!r}); s.recv(512)")
        deadline = time.monotonic() + timeout
        while True:
            stopper.check()
            cp = subprocess.run(["ip", "netns", "exec", self.client, sys.executable, "-c",
                                 probe], capture_output=True, timeout=10,
                                stdin=subprocess.DEVNULL)
            if cp.returncode == 0:
                return
            if self.procs["dnsmasq"].poll() is not None:
                raise SoakError(f"dnsmasq exited ({self.procs['dnsmasq'].returncode}); see "
                                f"{self.workdir}/dnsmasq.log")
            if time.monotonic() > deadline:
                raise SoakError(f"dnsmasq did not answer within {timeout:g} s")
            stopper.sleep(0.2)

    def cleanup(self) -> list[str]:
        """Stop every process by its PID, remove the namespaces; returns what went wrong."""
        problems: list[str] = []
        for name in ("agent", "generator", "dnsmasq"):
            proc = self.procs.get(name)
            if proc is not None and _stop(proc):
                problems.append(f"{name} (PID {proc.pid}) had to be killed")
        # tcpdump gets SIGTERM when its agent dies; make sure of it, by its own PID.
        if self.tcpdump_pid is not None and _comm(self.tcpdump_pid) == "tcpdump":
            os.kill(self.tcpdump_pid, signal.SIGKILL)
            problems.append(f"tcpdump (PID {self.tcpdump_pid}) outlived the agent")
        for ns in self.namespaces:
            cp = subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            if cp.returncode != 0:
                problems.append(f"ip netns del {ns} failed")
        return problems


def _stop(proc: subprocess.Popen) -> bool:  # type: ignore[type-arg]
    """SIGTERM, then SIGKILL after 15 s; True when it had to be killed."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)
        return True


def _comm(pid: int) -> str | None:
    """The process's command name, None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    name, rest = stat.split(" (", 1)[1].rsplit(")", 1)
    return None if rest.split()[0] in ("Z", "X") else name


# --------------------------------------------------------------------------------------
# Samples


@dataclass(frozen=True)
class Sample:
    #: Seconds since the load started.
    t: float
    #: Sum of the sizes of the ring files, and their number.
    ring_bytes: int
    ring_files: int
    largest_file: int
    #: VmRSS (KiB) and open descriptors of the agent and of its tcpdump.
    agent_rss_kib: int
    tcpdump_rss_kib: int
    agent_fds: int
    tcpdump_fds: int


def vm_rss_kib(pid: int) -> int:
    """VmRSS of /proc/PID/status in KiB; -1 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def ring_sizes(ring: str) -> dict[str, int]:
    sizes = {}
    for name in os.listdir(ring):
        if name.startswith(RING_PREFIX):
            try:
                sizes[name] = os.stat(os.path.join(ring, name)).st_size
            except FileNotFoundError:  # never: tcpdump truncates, it does not unlink
                pass
    return sizes


def take_sample(t: float, ring: str, agent: int, tcpdump: int) -> Sample:
    sizes = ring_sizes(ring)
    return Sample(round(t, 1), sum(sizes.values()), len(sizes), max(sizes.values(), default=0),
                  vm_rss_kib(agent), vm_rss_kib(tcpdump), fd_count(agent), fd_count(tcpdump))


def read_ring_file(path: str) -> tuple[int, bool]:
    """(records, ends on a whole record) of one classic pcap file."""
    size = os.path.getsize(path)
    records = 0
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            return 0, False
        magic = struct.unpack("<I", header[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        offset = 24
        while offset < size:
            head = f.read(16)
            if len(head) < 16:
                return records, False
            caplen = struct.unpack(endian + "IIII", head)[2]
            offset += 16 + caplen
            if offset > size:
                return records, False
            f.seek(offset)
            records += 1
    return records, True


# --------------------------------------------------------------------------------------
# Checks


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Flatness:
    first_median_kib: float
    last_median_kib: float
    allowed_growth_kib: float
    #: Samples after the warm-up; each quarter is a quarter of them.
    samples: int

    @property
    def growth_kib(self) -> float:
        return self.last_median_kib - self.first_median_kib

    @property
    def ok(self) -> bool:
        return self.samples >= 4 and self.growth_kib <= self.allowed_growth_kib


def flatness(values: list[int]) -> Flatness:
    """First-quarter and last-quarter medians of samples taken after the warm-up."""
    values = [v for v in values if v >= 0]
    if len(values) < 4:
        return Flatness(0, 0, 0, len(values))
    q = len(values) // 4
    first = statistics.median(values[:q])
    last = statistics.median(values[-q:])
    return Flatness(first, last, max(RSS_GROWTH_SHARE * first, RSS_GROWTH_FLOOR_KIB),
                    len(values))


def warmup_seconds(seconds: float) -> float:
    return max(30.0, 0.10 * seconds)


def ring_bound(size_mb: int, files: int) -> tuple[int, int]:
    """(bytes a file may hold, bytes the ring may hold): the agent's disk bound."""
    per_file = size_mb * MB + MAX_RECORD
    return per_file, per_file * files


def last_count(lines: list[str], words: str) -> int | None:
    """N of the last "N packets <words>" line (tcpdump's counters)."""
    found = None
    for line in lines:
        head, _, tail = line.strip().partition(" ")
        if head.isdigit() and tail in (f"packets {words}", f"packet {words}"):
            found = int(head)
    return found


def agent_stop_line(log: str) -> tuple[int | None, int | None]:
    """(captured, dropped) from "stopped (...): N packets captured, M dropped by the
    kernel" on the agent's stderr."""
    for line in reversed(log.splitlines()):
        if "stopped (" in line and "packets captured," in line:
            words = line.split("): ", 1)[-1].split()
            try:
                return int(words[0]), int(words[3])
            except (IndexError, ValueError):
                return None, None
    return None, None


# --------------------------------------------------------------------------------------
# The soak run


def soak(opts: Options, stopper: Stopper) -> dict[str, object]:
    """Build the lab, run the load under the agent, check; returns the result document.

    Raises:
        SoakError: it cannot run. Interrupted: SIGINT or SIGTERM.
    """
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise SoakError(f"missing tools: {', '.join(missing)} (install iproute2, dnsmasq, "
                        "tcpdump)")
    if os.geteuid() != 0:
        raise SoakError("needs root for network namespaces and tcpdump: run it with sudo")
    if not os.path.isfile(AGENT):
        raise SoakError(f"the agent is not at {AGENT}")
    workdir = tempfile.mkdtemp(prefix="pcapdns-soak-")
    lab = Lab(workdir)
    result: dict[str, object] = {}
    try:
        lab.build()
        lab.wait_for_dns(stopper)
        result = _load_and_measure(opts, stopper, lab)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # the cleanup runs to its end
            signal.signal(sig, signal.SIG_IGN)
        problems = lab.cleanup()
        if opts.keep:
            result["kept"] = workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        for p in problems:
            print(f"soak: cleanup: {p}", file=sys.stderr)
    return result


def _load_and_measure(opts: Options, stopper: Stopper, lab: Lab) -> dict[str, object]:
    ring = os.path.join(lab.workdir, "ring")
    argv = [sys.executable, AGENT, "--netns", lab.client, "--size-mb", str(opts.size_mb),
            "--files", str(opts.files), "--dir", ring]
    if opts.buffer_kb is not None:
        argv += ["--buffer-kb", str(opts.buffer_kb)]
    with lab.log("agent") as log:
        agent = lab.spawn("agent", argv, stdout=log, stderr=log)
    meta_path = os.path.join(ring, "capture.json")
    deadline = time.monotonic() + 30
    while not os.path.exists(meta_path):  # written once tcpdump listens
        if agent.poll() is not None:
            raise SoakError(f"the agent exited ({agent.returncode}): "
                            f"{_tail(lab, 'agent')}")
        if time.monotonic() > deadline:
            raise SoakError("the agent wrote no capture.json within 30 s")
        stopper.sleep(0.1)
    with open(meta_path) as f:
        lab.tcpdump_pid = json.load(f)["tcpdump"]["pid"]
    tcpdump = lab.tcpdump_pid
    assert tcpdump is not None

    seconds = opts.minutes * 60
    with lab.log("generator") as log:
        generator = lab.spawn("generator", [
            "ip", "netns", "exec", lab.client, sys.executable, os.path.abspath(__file__),
            "--load-generator", SERVER_ADDR, str(opts.rate), str(seconds),
        ], stdout=subprocess.PIPE, stderr=log)
    started = time.monotonic()
    samples: list[Sample] = []
    next_at = started
    while generator.poll() is None:
        if time.monotonic() - started > seconds + 60:
            raise SoakError("the load generator did not stop within a minute of its end")
        if agent.poll() is not None:
            raise SoakError(f"the agent exited ({agent.returncode}) during the load: "
                            f"{_tail(lab, 'agent')}")
        now = time.monotonic()
        if now >= next_at:
            samples.append(take_sample(now - started, ring, agent.pid, tcpdump))
            next_at += opts.interval
            if not opts.json:
                _progress(samples[-1], seconds)
        stopper.sleep(min(0.5, max(0.0, next_at - time.monotonic())))
    assert generator.stdout is not None
    out = generator.stdout.read().decode()
    if generator.returncode != 0 or not out.strip():
        raise SoakError(f"the load generator failed ({generator.returncode}): "
                        f"{_tail(lab, 'generator')}")
    load = LoadCounts(**json.loads(out))
    samples.append(take_sample(time.monotonic() - started, ring, agent.pid, tcpdump))

    # The agent waits for tcpdump's last kernel block, stops it and writes capture.json.
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise SoakError("the agent did not stop within 60 s of SIGTERM") from None
    with open(meta_path) as f:
        meta = json.load(f)
    with open(os.path.join(lab.workdir, "agent.log"), errors="replace") as f:
        agent_log = f.read()
    return evaluate(opts, load, samples, meta, agent.returncode, agent_log, ring)


def _tail(lab: Lab, name: str) -> str:
    try:
        with open(os.path.join(lab.workdir, f"{name}.log"), errors="replace") as f:
            lines = f.read().strip().splitlines()
    except OSError:
        lines = []
    return lines[-1] if lines else "no message"


def _progress(s: Sample, seconds: float) -> None:
    print(f"  {s.t:7.0f}/{seconds:.0f} s  ring {s.ring_bytes:>11,} B in {s.ring_files} files"
          f"  agent {s.agent_rss_kib / 1024:6.1f} MiB  tcpdump {s.tcpdump_rss_kib / 1024:6.1f}"
          " MiB", file=sys.stderr, flush=True)


def evaluate(opts: Options, load: LoadCounts, samples: list[Sample], meta: dict,
             agent_status: int | None, agent_log: str, ring: str) -> dict[str, object]:
    """Turn the figures into checks; returns the result document."""
    seconds = opts.minutes * 60
    td = meta["tcpdump"]
    received, captured = td["packets_received"], td["packets_captured"]
    dropped = td["packets_dropped_by_kernel"]
    checks: list[Check] = []

    checks.append(Check(
        "agent_stopped_cleanly",
        agent_status == 0 and meta["stop_reason"] == "SIGTERM" and td["exit_status"] == 0
        and not td["killed"],
        f"agent exit {agent_status}, stop_reason {meta['stop_reason']}, tcpdump exit "
        f"{td['exit_status']}, killed {td['killed']}"))

    wanted = opts.rate * seconds
    checks.append(Check(
        "load_reached", load.sent >= LOAD_SHARE * wanted,
        f"{load.sent:,} queries sent of {wanted:,.0f} ({load.sent / load.seconds:,.0f}/s "
        f"over {load.seconds:,.0f} s), {load.answered:,} answers read"))

    per_file, bound = ring_bound(opts.size_mb, opts.files)
    worst = max(samples, key=lambda s: s.ring_bytes)
    over = [s for s in samples
            if s.ring_bytes > bound or s.largest_file > per_file or s.ring_files > opts.files]
    largest = max(s.largest_file for s in samples)
    checks.append(Check(
        "disk_budget", not over,
        f"largest ring {worst.ring_bytes:,} B (at {worst.t:.0f} s) of {bound:,} B allowed, "
        f"largest file {largest:,} B of {per_file:,} B, in {len(samples)} samples"
        + (f"; exceeded at {', '.join(f'{s.t:.0f} s' for s in over[:5])}" if over else "")))

    names = sorted(meta["ring"]["names"])
    files = [read_ring_file(os.path.join(ring, n)) for n in names]
    in_ring = sum(n for n, _ in files)
    whole = all(ok for _, ok in files)
    wraps = (captured or 0) / in_ring if in_ring else 0.0
    checks.append(Check(
        "ring_rotated", len(names) == opts.files and wraps > 1 and whole,
        f"{len(names)} files holding {in_ring:,} packets at the end, of {captured or 0:,} "
        f"written: the ring filled {wraps:.1f} times, "
        + ("every file ends on a whole record" if whole else "a file ends mid-record")))

    warm = warmup_seconds(seconds)
    steady = [s for s in samples if s.t >= warm]
    rss: dict[str, Flatness] = {}
    for who in ("agent", "tcpdump"):
        flat = flatness([getattr(s, f"{who}_rss_kib") for s in steady])
        rss[who] = flat
        checks.append(Check(
            f"{who}_rss_flat", flat.ok,
            f"median {flat.first_median_kib / 1024:.1f} MiB in the first quarter after "
            f"{warm:.0f} s, {flat.last_median_kib / 1024:.1f} MiB in the last "
            f"({flat.growth_kib / 1024:+.2f} MiB, allowed +{flat.allowed_growth_kib / 1024:.1f}"
            f" MiB; {flat.samples} samples)"))

    printed = last_count(td["stderr"], "dropped by kernel")
    _, said = agent_stop_line(agent_log)
    checks.append(Check(
        "drops_reported", isinstance(dropped, int) and dropped == printed == said,
        f"capture.json packets_dropped_by_kernel {dropped}, tcpdump printed {printed}, "
        f"the agent said {said}"))

    on_wire = load.sent + load.answered
    accounted = None if None in (received, captured, dropped) else received - captured - dropped
    checks.append(Check(
        "every_packet_accounted",
        accounted == 0 and received is not None and received >= on_wire,
        f"received by filter {received}, captured {captured}, dropped {dropped} "
        f"(unaccounted {accounted}); queries sent + answers read {on_wire:,}"))

    agent_rss = [s.agent_rss_kib for s in samples if s.agent_rss_kib >= 0]
    tcpdump_rss = [s.tcpdump_rss_kib for s in samples if s.tcpdump_rss_kib >= 0]
    return {
        "passed": all(c.ok for c in checks),
        "options": asdict(opts),
        "load": asdict(load),
        "packets_received": received,
        "packets_captured": captured,
        "kernel_dropped": dropped,
        "ring": {"bound_bytes": bound, "file_bound_bytes": per_file,
                 "max_bytes": worst.ring_bytes, "max_file_bytes": largest,
                 "packets_in_ring": in_ring, "files": names},
        "rss_kib": {who: {"first_quarter_median": f.first_median_kib,
                          "last_quarter_median": f.last_median_kib,
                          "allowed_growth": f.allowed_growth_kib,
                          "max": max(values, default=None)}
                    for (who, f), values in zip(rss.items(), (agent_rss, tcpdump_rss),
                                                strict=True)},
        "fds": {"agent": [samples[0].agent_fds, samples[-1].agent_fds],
                "tcpdump": [samples[0].tcpdump_fds, samples[-1].tcpdump_fds]},
        "warmup_seconds": warm,
        "checks": [asdict(c) for c in checks],
        "samples": [asdict(s) for s in samples],
    }


def summary(doc: dict) -> str:
    o, load = doc["options"], doc["load"]
    lines = [f"pcapdns capture soak: {o['minutes']:g} min at {o['rate']} queries/s, ring "
             f"{o['files']} x {o['size_mb']} MB",
             f"  load: {load['sent']:,} sent, {load['answered']:,} answered (NOERROR "
             f"{load['noerror']:,}, NXDOMAIN {load['nxdomain']:,}, other {load['other_rcode']})",
             f"  capture: packets_received {doc['packets_received']}, packets_captured "
             f"{doc['packets_captured']}, kernel_dropped {doc['kernel_dropped']}",
             f"  descriptors (first, last sample): agent {doc['fds']['agent']}, tcpdump "
             f"{doc['fds']['tcpdump']}"]
    for c in doc["checks"]:
        lines.append(f"{'PASS' if c['ok'] else 'FAIL'}  {c['name']}: {c['detail']}")
    if "kept" in doc:
        lines.append(f"kept: {doc['kept']}")
    lines.append("result: " + ("PASS" if doc["passed"] else "FAIL"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--load-generator"]:
        return generator_main(argv[1:])
    opts = parse_options(argv)
    stopper = Stopper()
    stopper.install()
    try:
        doc = soak(opts, stopper)
    except SoakError as e:
        print(f"soak: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"soak: interrupted by {e}; namespaces and processes removed", file=sys.stderr)
        return 130
    print(json.dumps(doc, indent=2) if opts.json else summary(doc), flush=True)
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
