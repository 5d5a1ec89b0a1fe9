#!/usr/bin/env python3
"""Make the sample captures in this directory from real DNS traffic.

Every capture is recorded in network namespaces made for it and deleted afterwards: a
client namespace and a server namespace joined by a veth pair (10.250.0.0/24 and
fd00:250::/64), and for the DNAT sample a "node" namespace routing between them. Nothing
is sent outside those namespaces: they have no default route and no link to the host.

* servers: dnsmasq and unbound, answering from local data only (no upstream, no
  recursion; unbound refuses everything outside its local zones);
* clients: glibc (``getent ahosts``), ``dig`` and ``tools/musl_lookup.c`` built with
  ``musl-gcc -static`` (musl's stub resolver);
* faults: iptables rules inside the server or node namespace, and a delaying UDP relay
  (this script with ``--relay``) standing in front of dnsmasq;
* tunnels: kernel VXLAN devices, Open vSwitch's userspace datapath (Geneve, GRE, ERSPAN),
  and for IP in IP, which the recording kernel has no devices for, this script with
  ``--ipip`` in each node: a TUN device and raw IP sockets of protocols 4 and 41;
* recorder: tcpdump (``-U --immediate-mode -s 0``), stopped with SIGINT so every file
  ends on a whole record, once its counts (SIGUSR1) say it has written every packet its
  filter received;
* checks: each capture is read back with ``tcpdump -r`` and must show what its sample is
  for; one that does not (timing on a loaded machine) is recorded again, up to
  ``ATTEMPTS`` times.

Usage (as root):

    sudo python3 sample_pcaps/make_samples.py                 # every capture
    sudo python3 sample_pcaps/make_samples.py --only musl-fanout
    sudo python3 sample_pcaps/make_samples.py --out /tmp/samples --verbose

Needs: tcpdump, dnsmasq, unbound, dnsutils (dig), musl-tools, iptables, iproute2, and
glibc's getent; the Geneve/GRE overlay and the ERSPAN samples also need
openvswitch-switch (Open vSwitch's userspace datapath, no kernel module; the
distribution's service is not used) and ethtool, and are skipped, with the reason,
without them; the IP-in-IP sample needs the TUN driver (``/dev/net/tun``). The whole
run takes well under a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
MUSL_SOURCE = HERE / "tools" / "musl_lookup.c"

#: DNS, plus the ICMP errors that quote it (ICMPv6 types below 128 are the error
#: messages; neighbour discovery and router solicitations are left out).
CAPTURE_FILTER = "port 53 or icmp or (icmp6 and ip6[40] < 128)"

# Client and server addresses of the two-namespace samples.
CLIENT4, SERVER4, SERVER4_B = "10.250.0.10", "10.250.0.53", "10.250.0.54"
CLIENT6, SERVER6 = "fd00:250::10", "fd00:250::53"
#: Inside the server namespace, where nothing listens: unbound's unreachable forwarder.
DEAD_FORWARDER = "10.250.0.99"
#: The DNAT sample: a "ClusterIP" for DNS, the client (pod) side and the server side.
CLUSTER_IP = "10.250.96.10"
POD4, NODE_POD4, NODE_DNS4, DNS_POD4 = "10.250.1.10", "10.250.1.1", "10.250.2.1", "10.250.2.53"

#: Recordings of one sample before giving up. Real clients on a loaded machine do not
#: always show what a sample is for (glibc's AAAA query can leave after the A query's answer
#: when the scheduler runs something else between the two), so a capture whose check fails
#: is recorded again.
ATTEMPTS = 5

#: How long any single command may take, and how long any wait for readiness may take.
COMMAND_TIMEOUT = 30.0
READY_TIMEOUT = 10.0

#: Local data of the dnsmasq samples (the names live under example.test, which dnsmasq
#: answers authoritatively with --local, so missing names/types get NXDOMAIN/NODATA).
DNSMASQ_HOSTS = [
    ("web.example.test", "10.250.100.10", "fd00:250:100::10"),
    ("db.example.test", "10.250.100.11", "fd00:250:100::11"),
    ("cache.example.test", "10.250.100.12", None),  # IPv4 only: AAAA is NODATA
    ("api.example.test", "10.250.100.13", "fd00:250:100::13"),
    ("gone.example.test", "10.250.100.14", "fd00:250:100::14"),
    ("late.example.test", "10.250.100.15", "fd00:250:100::15"),
    ("slow.example.test", "10.250.100.16", "fd00:250:100::16"),
    ("probe.example.test", "10.250.100.99", None),
    ("lost.example.test", "10.250.100.17", None),
    ("undelivered.example.test", "10.250.100.18", None),
]
BIG_NAME = "big.example.test"
BIG_COUNT = 60  # 60 A records: 994 bytes, far over the 512 bytes of plain UDP DNS

#: The programs every sample run needs.
MAIN_PROGRAMS = ("tcpdump", "dnsmasq", "unbound", "unbound-checkconf", "dig", "getent",
                 "iptables", "ip")

VERBOSE = False


class SampleError(Exception):
    """A capture could not be made, or does not show what it should."""


def log(msg: str) -> None:
    if VERBOSE:
        print(f"    {msg}", flush=True)


# --------------------------------------------------------------------------------------
# Commands and namespaces


def run(argv: list[str], *, timeout: float = COMMAND_TIMEOUT, ok: tuple[int, ...] = (0,),
        what: str = "") -> subprocess.CompletedProcess[str]:
    """Run a command to completion (bounded by ``timeout``); fail unless its status is ok."""
    log("$ " + " ".join(argv))
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise SampleError(f"{what or argv[0]}: timed out after {timeout:.0f} s: {argv}") from e
    if cp.returncode not in ok:
        raise SampleError(f"{what or argv[0]}: exit status {cp.returncode} (expected "
                          f"{'/'.join(map(str, ok))}): {' '.join(argv)}\n"
                          f"{cp.stdout.strip()}\n{cp.stderr.strip()}".rstrip())
    for line in cp.stdout.splitlines()[:80]:
        log("  | " + line)
    return cp


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 5.0) -> None:
    """Stop one process we started, by its PID: signal, wait, then kill."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    except ProcessLookupError:
        pass


def read_until(proc: subprocess.Popen, stream, needle: str, timeout: float,
               what: str = "") -> str:
    """Read ``stream`` (a pipe of ``proc``) until ``needle`` shows up; bounded in time."""
    fd = stream.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise SampleError(f"{what or proc.pid}: no '{needle}' within {timeout:.0f} s "
                              f"(got {seen.decode(errors='replace').strip()!r})")
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                continue
            seen += chunk
    return seen.decode(errors="replace")


#: tcpdump's answer to SIGUSR1: "N packets captured, N packets received by filter, N
#: packets dropped by kernel" (captured: written to the file; with -U, flushed too).
COUNTS = re.compile(rb"(\d+) packets? captured, (\d+) packets? received by filter, "
                    rb"(\d+) packets? dropped by kernel")
#: Seconds between two readings of tcpdump's counts while waiting for it to catch up.
SETTLE_POLL = 0.1


class Tcpdump:
    """A running tcpdump writing ``path``; ``stop()`` ends it with SIGINT once every packet
    its filter took is in the file."""

    def __init__(self, proc: subprocess.Popen, path: Path, err: bytes = b""):
        self.proc, self.path, self.report = proc, path, ""
        #: Everything tcpdump wrote to stderr so far.
        self._err = err

    def counts(self, timeout: float) -> tuple[int, int, int]:
        """(captured, received by filter, dropped by kernel), asked with SIGUSR1. tcpdump
        answers only after the packet it is writing is flushed."""
        fd = self.proc.stderr.fileno()
        start = len(self._err)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while True:
            m = COUNTS.search(self._err, start)
            if m:
                return int(m.group(1)), int(m.group(2)), int(m.group(3))
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise SampleError(f"tcpdump ({self.path.name}) did not report its counts "
                                  f"within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(left, SETTLE_POLL))
            if ready:
                self._err += os.read(fd, 4096)

    def settle(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until tcpdump has written every packet its filter received and no new one
        came between two readings. A loaded machine can leave packets in tcpdump's ring for
        a long while after the client returned, and SIGINT then loses them. Bounded: after
        ``timeout`` the capture is checked as it is (on ``lo`` libpcap skips the outgoing
        copy of each packet after the kernel counted it, so the counts never meet)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            captured, received, dropped = now = self.counts(deadline - time.monotonic())
            if now == last and captured + dropped >= received:
                return
            last = now
            time.sleep(SETTLE_POLL)
        log(f"tcpdump ({self.path.name}) still had packets to write after {timeout:.0f} s: "
            f"{last}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.settle()
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
        self.report = (self._err + (err or b"")).decode(errors="replace")
        log("tcpdump: " + " / ".join(x for x in self.report.splitlines() if x.strip()))
        return self.report


@dataclass
class Lab:
    """The namespaces, processes and files of one sample; ``close()`` removes them all."""

    tag: str
    workdir: Path
    namespaces: list[str] = field(default_factory=list)
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    netns_dirs: list[Path] = field(default_factory=list)
    made_etc_netns: bool = False

    # namespaces and links -----------------------------------------------------------

    def ns(self, role: str) -> str:
        name = f"pcapdns-s-{os.getpid()}-{self.tag}-{role}"
        run(["ip", "netns", "add", name], what="ip netns add")
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        # No router solicitations, no DAD delay: quiet, immediately usable IPv6.
        for key, value in (("net.ipv6.conf.all.accept_dad", "0"),
                           ("net.ipv6.conf.default.accept_dad", "0"),
                           ("net.ipv6.conf.all.router_solicitations", "0"),
                           ("net.ipv6.conf.default.router_solicitations", "0"),
                           ("net.ipv6.conf.default.accept_ra", "0")):
            self.exec(name, ["sysctl", "-q", "-w", f"{key}={value}"])
        return name

    def link(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth pair created directly inside the two namespaces (never in the host's)."""
        run(["ip", "-n", ns_a, "link", "add", if_a, "type", "veth",
             "peer", "name", if_b, "netns", ns_b], what="ip link add veth")

    def addr(self, ns: str, iface: str, *cidrs: str) -> None:
        for cidr in cidrs:
            extra = ["nodad"] if ":" in cidr else []
            run(["ip", "-n", ns, "addr", "add", cidr, "dev", iface, *extra])
        run(["ip", "-n", ns, "link", "set", iface, "up"])

    def route(self, ns: str, prefix: str, via: str) -> None:
        run(["ip", "-n", ns, "route", "add", prefix, "via", via])

    def exec(self, ns: str, argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", ns, *argv], **kw)

    def iptables(self, ns: str, *args: str) -> None:
        self.exec(ns, ["iptables", "-w", "5", *args], what="iptables")

    def resolv_conf(self, ns: str, text: str) -> None:
        """/etc/netns/NS/resolv.conf, which ``ip netns exec`` mounts over /etc/resolv.conf."""
        etc_netns = Path("/etc/netns")
        if not etc_netns.exists():
            etc_netns.mkdir(mode=0o755)
            self.made_etc_netns = True
        d = etc_netns / ns
        d.mkdir(mode=0o755, exist_ok=True)
        self.netns_dirs.append(d)
        (d / "resolv.conf").write_text(text)
        log(f"{d}/resolv.conf: " + text.strip().replace("\n", " | "))

    # processes ------------------------------------------------------------------------

    def spawn(self, ns: str, argv: list[str], label: str, *, stdout=None) -> subprocess.Popen:
        logf = open(self.workdir / f"{label}.log", "ab")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else logf,
                                stderr=logf)
        logf.close()
        self.procs.append((label, proc))
        log(f"started {label} (pid {proc.pid}): {' '.join(argv[:3])} ...")
        return proc

    def tcpdump(self, ns: str, iface: str, path: Path, *extra: str,
                bpf: str = CAPTURE_FILTER) -> Tcpdump:
        # --immediate-mode: without it packets wait in the kernel ring until a block fills
        # or times out, and a SIGINT before then loses them.
        argv = ["ip", "netns", "exec", ns, "tcpdump", "-i", iface, "-U", "--immediate-mode",
                "-s", "0", "-nn", "-Z", "root", *extra, "-w", str(path), bpf]
        log("$ " + " ".join(argv))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        self.procs.append(("tcpdump", proc))
        err = read_until(proc, proc.stderr, "listening on", READY_TIMEOUT, f"tcpdump -i {iface}")
        return Tcpdump(proc, path, err.encode())

    def wait_dns(self, ns: str, server: str, name: str = "probe.example.test",
                 port: int = 53) -> None:
        """Wait until ``server`` answers (any rcode) a query made inside its namespace."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            cp = self.exec(ns, ["dig", "+time=1", "+tries=1", "+short", "-p", str(port),
                                f"@{server}", name], ok=(0, 9, 10))
            if cp.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise SampleError(f"DNS server {server} in {ns} never answered")
            time.sleep(0.2)

    def close(self) -> None:
        for label, proc in reversed(self.procs):
            stop_process(proc, signal.SIGINT if label == "tcpdump" else signal.SIGTERM)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=15)
        for d in self.netns_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if self.made_etc_netns:
            try:
                Path("/etc/netns").rmdir()
            except OSError:
                pass


# --------------------------------------------------------------------------------------
# Building blocks: topology, servers, clients


def two_namespaces(lab: Lab) -> tuple[str, str]:
    """Client ("pod") and server namespaces on one veth pair, both with IPv4 and IPv6."""
    client, server = lab.ns("client"), lab.ns("server")
    lab.link(client, "eth0", server, "eth0")
    lab.addr(client, "eth0", f"{CLIENT4}/24", f"{CLIENT6}/64")
    lab.addr(server, "eth0", f"{SERVER4}/24", f"{SERVER6}/64")
    return client, server


def dnsmasq(lab: Lab, ns: str, listen: list[str], label: str = "dnsmasq",
            big: bool = False, hosts: tuple[tuple[str, str], ...] = (),
            log_file: Path | None = None) -> subprocess.Popen:
    """dnsmasq answering from DNSMASQ_HOSTS; with ``log_file``, its query log (with the
    client's address and port: ``--log-queries=extra``) goes to that file."""
    logging = (["--log-facility=-", "--log-queries"] if log_file is None else
               [f"--log-facility={log_file}", "--log-queries=extra"])
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", *logging,
            "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
            "--pid-file", "--port=53", "--local-ttl=30", "--local=/example.test/"]
    argv += [f"--listen-address={a}" for a in listen]
    for name, v4, v6 in DNSMASQ_HOSTS:
        argv.append(f"--host-record={name},{v4}" + (f",{v6}" if v6 else ""))
    if big:
        argv += [f"--host-record={BIG_NAME},10.250.200.{i}" for i in range(1, BIG_COUNT + 1)]
    argv += [f"--host-record={name},{v4}" for name, v4 in hosts]  # a sample's own names
    proc = lab.spawn(ns, argv, label)
    for a in listen:
        lab.wait_dns(ns, a)
    return proc


def unbound(lab: Lab, ns: str, listen: list[str], zones: str, label: str = "unbound",
            wait: list[str] | None = None) -> subprocess.Popen:
    """unbound answering from local zones only; everything else is REFUSED. It is asked
    on each ``listen`` address (or each ``wait`` address) until it answers."""
    conf = lab.workdir / f"{label}.conf"
    lines = ["server:",
             "    verbosity: 1",
             *[f"    interface: {a}" for a in listen],
             "    port: 53",
             "    interface-automatic: no",
             "    do-daemonize: no",
             "    chroot: \"\"",
             "    username: \"\"",
             f"    directory: \"{lab.workdir}\"",
             "    pidfile: \"\"",
             "    use-syslog: no",
             "    logfile: \"\"",
             "    log-queries: yes",
             "    log-replies: yes",
             "    module-config: \"iterator\"",
             "    num-threads: 1",
             "    so-reuseport: no",
             "    access-control: 10.250.0.0/16 allow",
             "    access-control: fd00:250::/32 allow",
             "    access-control: 127.0.0.0/8 allow",
             "    local-zone: \".\" refuse",
             zones.rstrip()]
    conf.write_text("\n".join(lines) + "\n")
    run(["unbound-checkconf", str(conf)], what="unbound-checkconf")
    proc = lab.spawn(ns, ["unbound", "-d", "-c", str(conf)], label)
    for a in listen if wait is None else wait:
        lab.wait_dns(ns, a)
    return proc


def relay(lab: Lab, ns: str, listen: str, upstream: str, delay: float, match: str
          ) -> subprocess.Popen:
    """The delaying UDP relay (this script, --relay) in front of a local server."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--relay", listen, upstream,
            f"{delay}", match]
    proc = lab.spawn(ns, argv, "relay", stdout=subprocess.PIPE)
    read_until(proc, proc.stdout, "ready", READY_TIMEOUT, f"relay on {listen}")
    return proc


#: The latency the relay adds in the glibc A/AAAA samples, standing for the network hop to
#: the DNS server. Without it dnsmasq, a veth away, can answer the A query before the
#: kernel has put the AAAA query (sent in the same sendmmsg() call) on the wire, and the
#: capture would not show the two queries in flight together.
HOP_DELAY = 0.003


def dnsmasq_one_hop_away(lab: Lab, server: str) -> None:
    """dnsmasq on the server's loopback, reached through the relay on SERVER4:53 that
    holds every answer HOP_DELAY seconds."""
    dnsmasq(lab, server, ["127.0.0.1"])
    relay(lab, server, SERVER4, "127.0.0.1", HOP_DELAY, "*")


def pod_node(lab: Lab, *servers: tuple[str, str, str, tuple[str, ...]]
             ) -> tuple[str, str, list[str]]:
    """The pod namespace (``eth0`` = POD4) behind a "node" namespace that routes to one
    namespace per DNS server, as a Kubernetes node does: ``servers`` are (role, the node's
    interface to it, the node's address there, the server's addresses (the first is its
    primary)). The pod reaches CLUSTER_IP through the node; DNAT rules are the sample's.
    Returns the pod's, the node's and the servers' namespaces."""
    client, node = lab.ns("pod"), lab.ns("node")
    lab.link(client, "eth0", node, "vethpod0")
    lab.addr(client, "eth0", f"{POD4}/24")
    lab.addr(node, "vethpod0", f"{NODE_POD4}/24")
    lab.route(client, f"{CLUSTER_IP}/32", NODE_POD4)
    out = []
    for role, node_if, node_addr, addrs in servers:
        ns = lab.ns(role)
        lab.link(node, node_if, ns, "eth0")
        lab.addr(node, node_if, f"{node_addr}/24")
        lab.addr(ns, "eth0", *(f"{a}/24" for a in addrs))
        lab.route(ns, "10.250.1.0/24", node_addr)
        out.append(ns)
    lab.exec(node, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    return client, node, out


def qname_hex(name: str) -> str:
    """A name in DNS wire format as hex, for iptables ``--hex-string``."""
    out = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return (out + b"\0").hex()


def getent(lab: Lab, ns: str, name: str, ok: tuple[int, ...] = (0,)) -> str:
    return lab.exec(ns, ["getent", "ahosts", name], ok=ok, what=f"getent ahosts {name}").stdout


def musl_lookup(lab: Lab, ns: str, tool: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    return lab.exec(ns, [str(tool), *args], ok=ok, what="musl_lookup").stdout


def dig(lab: Lab, ns: str, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    return lab.exec(ns, ["dig", *args], ok=ok, what="dig " + " ".join(args)).stdout


# --------------------------------------------------------------------------------------
# The samples


@dataclass
class Context:
    lab: Lab
    pcap: Path
    musl_tool: Path | None
    #: Further files the sample writes beside its capture (a second capture point, a
    #: server's log), by final name; written to the output directory with the capture.
    extras: dict[str, Path] = field(default_factory=dict)

    def extra(self, name: str) -> Path:
        """A path in the sample's scratch directory for the further output ``name`` (a
        file name such as ``forwarder.server.pcap``), written out with the capture."""
        path = self.pcap.with_name(name)
        self.extras[name] = path
        return path


@dataclass
class Sample:
    name: str
    make: Callable[[Context], None]
    check: Callable[[Capture], None]
    needs_musl: bool = False
    #: Programs this sample needs beyond every sample's (MAIN_PROGRAMS). Without them it
    #: is skipped in a run of every sample, and is an error when asked for by name.
    needs: tuple[str, ...] = ()


SAMPLES: list[Sample] = []


def present(need: str) -> bool:
    """A sample's need: a program on PATH, or a device or file by its absolute path."""
    return os.path.exists(need) if need.startswith("/") else shutil.which(need) is not None


def sample(name: str, check: Callable[[Capture], None], needs_musl: bool = False,
           needs: tuple[str, ...] = ()):
    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        SAMPLES.append(Sample(name, fn, check, needs_musl, needs))
        return fn
    return register


@dataclass
class Capture:
    """``tcpdump -nn -r`` of one file: its link type and one text line per packet."""

    path: Path
    linktype: str
    lines: list[str]

    @classmethod
    def read(cls, path: Path) -> Capture:
        cp = run(["tcpdump", "-tt", "-nn", "-r", str(path)], what="tcpdump -r")
        m = re.search(r"link-type (\S+)", cp.stderr)
        return cls(path, m.group(1) if m else "?", cp.stdout.splitlines())

    def times(self, pattern: str) -> list[float]:
        """Time stamps (``-tt``) of the packets whose line matches ``pattern``."""
        rx = re.compile(pattern)
        return [float(line.split(" ", 1)[0]) for line in self.lines if rx.search(line)]

    def ports(self, pattern: str) -> set[str]:
        """Source ports of the packets whose line matches ``pattern``."""
        rx = re.compile(pattern)
        src = re.compile(r" IP6? \S+?\.(\d+) > ")
        return {m.group(1) for line in self.lines if rx.search(line) and (m := src.search(line))}

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        return sum(1 for line in self.lines if rx.search(line))

    def expect(self, pattern: str, at_least: int = 1, at_most: int | None = None,
               what: str = "") -> None:
        n = self.count(pattern)
        if n < at_least or (at_most is not None and n > at_most):
            want = f"{at_least}..{at_most}" if at_most is not None else f">= {at_least}"
            raise SampleError(f"{self.path.name}: {what or pattern!r}: {n} packets, "
                              f"expected {want}")

    def pairs_in_flight(self) -> int:
        """Client ports whose first A and first AAAA query both left before the first
        answer to that port came back (glibc's A/AAAA pair seen in flight together)."""
        first: dict[str, dict[str, float]] = {}
        for line in self.lines:
            t = float(line.split(" ", 1)[0])
            if m := re.search(r" IP6? (\S+) > \S+\.53: \d+\+ (?:\[1au\] )?(A|AAAA)\? ", line):
                first.setdefault(m.group(1), {}).setdefault(m.group(2), t)
            elif m := re.search(r" IP6? \S+\.53 > (\S+): \d+", line):
                first.setdefault(m.group(1).rstrip(":"), {}).setdefault("answer", t)
        return sum(1 for f in first.values()
                   if "A" in f and "AAAA" in f and max(f["A"], f["AAAA"]) < f.get("answer", 1e18))

    def expect_linktype(self, linktype: str) -> None:
        if self.linktype != linktype:
            raise SampleError(f"{self.path.name}: link type {self.linktype}, "
                              f"expected {linktype}")


def q(qtype: str, name: str) -> str:
    """tcpdump's text for a query: ``12345+ AAAA? web.example.test.``."""
    return rf"\d+\+ (\[1au\] )?{qtype}\? {re.escape(name)}\. "


def r(name_rdata: str) -> str:
    return re.escape(name_rdata)


# 1 ------------------------------------------------------------------------------------

def check_clean(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    for host in ("web", "db", "cache"):
        name = f"{host}.example.test"
        c.expect(q("A", name), 1, 1)
        c.expect(q("AAAA", name), 1, 1)
    c.expect(r"\d+\* 1/0/0 A 10\.250\.100\.1[012] ", 3, 3, "A answers")
    c.expect(r"\d+\* 1/0/0 AAAA fd00:250:100::1[01] ", 2, 2, "AAAA answers")
    c.expect(r"\d+\*? 0/0/0 ", 1, 1, "AAAA NODATA for cache")
    c.expect(r".", 12, 12, "all packets")
    if c.pairs_in_flight() != 3:
        raise SampleError(f"{c.path.name}: {c.pairs_in_flight()} of 3 A/AAAA pairs in flight")


@sample("clean-glibc-getent", check_clean)
def make_clean(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    lab.resolv_conf(client, f"nameserver {SERVER4}\n")
    dnsmasq_one_hop_away(lab, server)
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    for host in ("web", "db", "cache"):
        getent(lab, client, f"{host}.example.test")
        time.sleep(0.2)
    cap.stop()


# 2 ------------------------------------------------------------------------------------

RACE_NAME = "api.example.test"


def check_race(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(q("AAAA", RACE_NAME), 2, 2, "AAAA queries for the raced name")
    c.expect(r"\d+\* 1/0/0 AAAA fd00:250:100::13 ", 1, 1, "AAAA answers for the raced name")
    c.expect(r"\d+\* 1/0/0 A 10\.250\.100\.13 ", 2, 2, "A answers for the raced name")
    ids = {re.search(r" (\d+)\+ ", line).group(1)  # type: ignore[union-attr]
           for line in c.lines if re.search(q("AAAA", RACE_NAME), line)}
    if len(ids) != 1:
        raise SampleError(f"{c.path.name}: the AAAA retry should reuse its ID, got {ids}")
    c.expect(q("A", "web.example.test"), 1, 1)
    c.expect(q("A", "db.example.test"), 1, 1)
    if c.pairs_in_flight() != 3:
        raise SampleError(f"{c.path.name}: {c.pairs_in_flight()} of 3 A/AAAA pairs in flight")


@sample("aaaa-same-port-race", check_race)
def make_race(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    # glibc defaults (timeout 5 s, 2 attempts): the classic 5-second stall.
    lab.resolv_conf(client, f"nameserver {SERVER4}\n")
    dnsmasq_one_hop_away(lab, server)
    # Drop only the first AAAA query for RACE_NAME that reaches the server.
    lab.iptables(server, "-A", "INPUT", "-i", "eth0", "-p", "udp", "--dport", "53",
                 "-m", "string", "--algo", "bm",
                 "--hex-string", f"|{qname_hex(RACE_NAME)}001c0001|",
                 "-m", "statistic", "--mode", "nth", "--every", "1000000", "--packet", "0",
                 "-j", "DROP")
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    getent(lab, client, "web.example.test")
    time.sleep(0.2)
    getent(lab, client, RACE_NAME)
    time.sleep(0.2)
    getent(lab, client, "db.example.test")
    cap.stop()


# 3 ------------------------------------------------------------------------------------

GONE_NAME = "gone.example.test"
#: Seconds between the failed lookup's return and the closing lookup, so that the last
#: unanswered query is well over 5 s before the last packet of the file.
TIMEOUT_TAIL = 6.5


def check_timeout(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(q("A", GONE_NAME), 2, 2, "A queries for the dropped name")
    c.expect(q("AAAA", GONE_NAME), 2, 2, "AAAA queries for the dropped name")
    c.expect(r"A 10\.250\.100\.14|AAAA fd00:250:100::14", 0, 0, "answers for the dropped name")
    c.expect(q("A", "web.example.test"), 1, 1)
    c.expect(q("A", "db.example.test"), 1, 1)
    c.expect(r"\d+\* 1/0/0 A 10\.250\.100\.1[01] ", 2, 2, "the answered lookups")
    quiet = c.times(".")[-1] - c.times(q("A+", GONE_NAME))[-1]
    if quiet < 6.0:
        raise SampleError(f"{c.path.name}: the last packet is only {quiet:.1f} s after the "
                          "last unanswered query")


@sample("timeout-dropped", check_timeout)
def make_timeout(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    lab.resolv_conf(client, f"nameserver {SERVER4}\noptions timeout:1 attempts:2\n")
    dnsmasq(lab, server, [SERVER4])
    lab.iptables(server, "-A", "INPUT", "-i", "eth0", "-p", "udp", "--dport", "53",
                 "-m", "string", "--algo", "bm", "--hex-string", f"|{qname_hex(GONE_NAME)}|",
                 "-j", "DROP")
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    getent(lab, client, "web.example.test")
    time.sleep(0.2)
    getent(lab, client, GONE_NAME, ok=(2,))
    time.sleep(TIMEOUT_TAIL)
    getent(lab, client, "db.example.test")  # marks the end of the capture
    cap.stop()


# 4 ------------------------------------------------------------------------------------

def check_tc_tcp(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(r"^(?!.*Flags \[).*" + q("A", BIG_NAME), 1, 1, "A query over UDP")
    c.expect(r"\.53 > .*: \d+\*\| 29/0/0 A ", 1, 1, "TC=1 answer over UDP")
    c.expect(r"\.53: Flags \[S\]", 1, 1, "TCP SYN to port 53")
    c.expect(r"Flags \[P\.\].*" + q("A", BIG_NAME), 1, 1, "A query over TCP")
    c.expect(rf"\.53 > .*Flags \[P\.\].* \d+\* {BIG_COUNT}/0/0 A ", 1, 1,
             "full answer over TCP")
    c.expect(q("AAAA", BIG_NAME), 0, 0, "AAAA queries for the big name")
    rx = re.compile(r" (\d+)\*?\|? \d+/0/0 A 10\.250\.200\.")
    ids = {m.group(1) for line in c.lines if (m := rx.search(line))}
    if len(ids) != 1:
        raise SampleError(f"{c.path.name}: the TCP retry should reuse the query ID: {ids}")


@sample("tc-then-tcp-retry", check_tc_tcp)
def make_tc_tcp(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    # No "options edns0": glibc sends plain DNS queries, so UDP answers stop at 512 bytes.
    lab.resolv_conf(client, f"nameserver {SERVER4}\n")
    dnsmasq(lab, server, [SERVER4], big=True)
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    getent(lab, client, "web.example.test")
    time.sleep(0.2)
    # ahostsv4 (AF_INET): one A query; AF_UNSPEC is the next sample.
    out = lab.exec(client, ["getent", "ahostsv4", BIG_NAME], what="getent ahostsv4").stdout
    if out.count("STREAM") != BIG_COUNT:
        raise SampleError(f"getent ahostsv4 {BIG_NAME}: expected {BIG_COUNT} addresses")
    cap.stop()


def check_tc_pipelined(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    # One TCP connection per round, told by its client port (a SYN sent again on a slow
    # machine is the same round).
    rounds = len(c.ports(r"\.53: Flags \[S\]"))
    if rounds < 2:
        raise SampleError(f"{c.path.name}: expected glibc to repeat the lookup, {rounds} round")
    c.expect(r"^(?!.*Flags \[).*" + q("A", BIG_NAME), rounds, rounds, "A queries over UDP")
    c.expect(r"^(?!.*Flags \[).*" + q("AAAA", BIG_NAME), rounds, rounds,
             "AAAA queries over UDP")
    c.expect(r"\.53 > .*: \d+\*\| 29/0/0 A ", rounds, rounds, "TC=1 answers over UDP")
    # glibc writes both length-prefixed queries (36 bytes each) with one writev(): usually
    # one 72-byte segment, but the kernel may send it as two. Either way each connection's
    # data ends at byte 72 (tcpdump's relative "seq N:73").
    sent = c.ports(r"\.53: Flags \[P\.\], seq (?:1|37):73, ")
    if len(sent) != rounds:
        raise SampleError(f"{c.path.name}: {len(sent)} of {rounds} TCP connections carried "
                          "the A and AAAA queries (72 bytes)")
    c.expect(rf"\.53 > .*Flags \[P\.\].* \d+\* {BIG_COUNT}/0/0 A ", rounds, rounds,
             "full A answers over TCP")


@sample("tc-glibc-a-aaaa-tcp", check_tc_pipelined)
def make_tc_pipelined(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    lab.resolv_conf(client, f"nameserver {SERVER4}\n")
    dnsmasq(lab, server, [SERVER4], big=True)
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    out = getent(lab, client, BIG_NAME)
    if out.count("STREAM") != BIG_COUNT:
        raise SampleError(f"getent ahosts {BIG_NAME}: expected {BIG_COUNT} addresses")
    cap.stop()


# 5 ------------------------------------------------------------------------------------

def check_tc_no_tcp(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(q("A", BIG_NAME), 1, 1, "A query")
    c.expect(q("AAAA", BIG_NAME), 1, 1, "AAAA query")
    c.expect(r"\.53 > .*: \d+\*\| \d+/0/0 A ", 1, 1, "TC=1 answer over UDP")
    c.expect(r"Flags \[", 0, 0, "TCP segments")
    c.expect(q("A", "web.example.test"), 1, 1, "the lookup that marks the end")
    quiet = c.times(q("A", "web.example.test"))[-1] - c.times(q("A", BIG_NAME))[-1]
    if quiet < 6.0:
        raise SampleError(f"{c.path.name}: the capture must outlast the 5 s in which a TCP "
                          f"retry could come; it goes on only {quiet:.1f} s")


@sample("tc-no-tcp-fallback", check_tc_no_tcp, needs_musl=True)
def make_tc_no_tcp(ctx: Context) -> None:
    lab = ctx.lab
    assert ctx.musl_tool is not None
    client, server = two_namespaces(lab)
    lab.resolv_conf(client, f"nameserver {SERVER4}\n")
    dnsmasq(lab, server, [SERVER4], big=True)
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    out = musl_lookup(lab, client, ctx.musl_tool, BIG_NAME)
    m = re.search(r": (\d+) address", out)
    if not m or int(m.group(1)) >= BIG_COUNT:
        raise SampleError(f"musl_lookup should see only part of the {BIG_COUNT} addresses: "
                          f"{out.strip().splitlines()[-1:]}")
    # Wait out the 5 s in which a TCP retry would have to come, so the capture proves that
    # none did; a small lookup marks the end.
    time.sleep(TIMEOUT_TAIL)
    musl_lookup(lab, client, ctx.musl_tool, "web.example.test")
    time.sleep(0.5)
    cap.stop()


# 6 ------------------------------------------------------------------------------------

SEARCH = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]
CLUSTER_ZONES = """
    local-zone: "cluster.local." static
    local-data: "web.default.svc.cluster.local. 30 IN A 10.250.97.20"
    local-data: "kube-dns.kube-system.svc.cluster.local. 30 IN A 10.250.96.10"
    local-data: "probe.cluster.local. 30 IN A 10.250.97.99"
    local-zone: "example.com." static
    local-data: "api.example.com. 300 IN A 203.0.113.10"
    local-data: "api.example.com. 300 IN AAAA 2001:db8::10"
"""


def check_ndots(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    for suffix in SEARCH:
        c.expect(q("A", f"api.example.com.{suffix}"), 1, 1)
        c.expect(q("AAAA", f"api.example.com.{suffix}"), 1, 1)
    c.expect(r" NXDomain\*? ", 8, 8, "NXDOMAIN answers")  # 6 for api + 2 for kube-dns
    c.expect(q("A", "api.example.com"), 1, 1)
    c.expect(r"A 203\.0\.113\.10 ", 1, 1, "the external answer")
    c.expect(r"AAAA 2001:db8::10 ", 1, 1, "the external AAAA answer")
    c.expect(r"A 10\.250\.97\.20 ", 1, 1, "the short-name service answer")
    c.expect(r"A 10\.250\.96\.10 ", 1, 1, "the kube-dns.kube-system answer")


@sample("ndots-search-expansion", check_ndots)
def make_ndots(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    lab.resolv_conf(client, f"search {' '.join(SEARCH)}\nnameserver {SERVER4}\n"
                            "options ndots:5\n")
    unbound(lab, server, [SERVER4], CLUSTER_ZONES)
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    getent(lab, client, "api.example.com")
    time.sleep(0.2)
    getent(lab, client, "web")
    time.sleep(0.2)
    getent(lab, client, "kube-dns.kube-system")
    cap.stop()


# 7 ------------------------------------------------------------------------------------

def check_dnat(c: Capture) -> None:
    c.expect_linktype("LINUX_SLL2")
    for host in ("web", "db"):
        name = f"{host}.example.test"
        c.expect(rf"> {re.escape(CLUSTER_IP)}\.53: " + q("A", name), 1, 1,
                 f"A {name} to the ClusterIP")
        c.expect(rf"> {re.escape(DNS_POD4)}\.53: " + q("A", name), 1, 1,
                 f"A {name} after DNAT")
    c.expect(rf"IP {re.escape(CLUSTER_IP)}\.53 > ", 4, 4, "answers from the ClusterIP")
    c.expect(rf"IP {re.escape(DNS_POD4)}\.53 > ", 4, 4, "answers before un-NAT")
    c.expect(r".", 16, 16, "all packets (8 messages, each seen twice)")


@sample("dnat-service-any", check_dnat)
def make_dnat(ctx: Context) -> None:
    lab = ctx.lab
    client, node, (server,) = pod_node(lab, ("dns", "vethdns0", NODE_DNS4, (DNS_POD4,)))
    for proto in ("udp", "tcp"):
        lab.iptables(node, "-t", "nat", "-A", "PREROUTING", "-d", f"{CLUSTER_IP}/32",
                     "-p", proto, "--dport", "53", "-j", "DNAT",
                     "--to-destination", f"{DNS_POD4}:53")
    lab.resolv_conf(client, f"nameserver {CLUSTER_IP}\n")
    dnsmasq(lab, server, [DNS_POD4])
    links = lab.exec(node, ["ip", "-o", "link", "show"]).stdout
    log("node interfaces (SLL2 ifindex): " + ", ".join(
        f"{m.group(1)}={m.group(2)}" for m in re.finditer(r"^(\d+): ([^:@]+)", links, re.M)))
    cap = lab.tcpdump(node, "any", ctx.pcap, "-y", "LINUX_SLL2")
    getent(lab, client, "web.example.test")
    time.sleep(0.2)
    getent(lab, client, "db.example.test")
    cap.stop()


# 8 ------------------------------------------------------------------------------------

def check_fanout(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    for host in ("web", "db"):
        name = f"{host}.example.test"
        for server in (SERVER4, SERVER4_B):
            c.expect(rf"> {re.escape(server)}\.53: " + q("A", name), 1, 1,
                     f"A {name} to {server}")
            c.expect(rf"> {re.escape(server)}\.53: " + q("AAAA", name), 1, 1,
                     f"AAAA {name} to {server}")
    queries = [re.search(r"IP (\S+) > (\S+): (\d+)\+", line) for line in c.lines]
    by_id: dict[str, set[tuple[str, str]]] = {}
    for m in queries:
        if m:
            src, dst, qid = m.groups()
            by_id.setdefault(qid, set()).add((src, dst.rsplit(".", 1)[0]))
    for qid, pairs in by_id.items():
        srcs = {s for s, _ in pairs}
        if len(pairs) != 2 or len(srcs) != 1:
            raise SampleError(f"{c.path.name}: query {qid} should go from one port to two "
                              f"servers: {sorted(pairs)}")
    c.expect(rf"IP {re.escape(SERVER4)}\.53 > .*: \d+\* 1/0/0 A", 4, 4, "first answers")
    c.expect(rf"IP {re.escape(SERVER4_B)}\.53 > .*: \d+\* 1/0/0 A", 4, 4, "later answers")
    c.expect(rf"IP {re.escape(CLIENT4)} > {re.escape(SERVER4_B)}: ICMP {re.escape(CLIENT4)} "
             r"udp port \d+ unreachable", 4, 4, "ICMP port unreachable for the later answers")
    c.expect(rf"IP {re.escape(CLIENT4)} > {re.escape(SERVER4)}: ICMP", 0, 0,
             "ICMP for the first answers")


FANOUT_DELAY = 0.2  # the second "replica" answers this much later than the first


@sample("musl-fanout", check_fanout, needs_musl=True)
def make_fanout(ctx: Context) -> None:
    lab = ctx.lab
    assert ctx.musl_tool is not None
    client, server = two_namespaces(lab)
    lab.addr(server, "eth0", f"{SERVER4_B}/24")
    lab.resolv_conf(client, f"nameserver {SERVER4}\nnameserver {SERVER4_B}\n")
    dnsmasq(lab, server, [SERVER4])
    # The second nameserver is the same dnsmasq behind the relay, FANOUT_DELAY slower, so
    # musl has always taken the first answers and closed its socket when these arrive.
    relay(lab, server, SERVER4_B, SERVER4, FANOUT_DELAY, "*")
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    musl_lookup(lab, client, ctx.musl_tool, "web.example.test")
    time.sleep(0.5)
    musl_lookup(lab, client, ctx.musl_tool, "db.example.test")
    time.sleep(0.5)
    cap.stop()


# 9 ------------------------------------------------------------------------------------

RCODE_ZONES = f"""
    local-zone: "example.test." static
    local-data: "ok.example.test. 30 IN A 10.250.100.20"
    local-zone: "blocked.test." refuse
    local-zone: "broken.example.test." transparent
    outgoing-interface: {SERVER4}
    infra-cache-max-rtt: 200
    outbound-msg-retry: 1
forward-zone:
    name: "broken.example.test."
    forward-addr: {DEAD_FORWARDER}
"""


def check_rcodes(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(r"\d+\* 1/0/1 A 10\.250\.100\.20 ", 1, 1, "NOERROR answer")
    c.expect(r" NXDomain\*? ", 1, 1, "NXDOMAIN answer")
    c.expect(r" Refused\*? ", 1, 1, "REFUSED answer")
    c.expect(r" ServFail\*? ", 1, 1, "SERVFAIL answer")
    c.expect(r".", 8, 8, "all packets")


@sample("servfail-refused", check_rcodes)
def make_rcodes(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    # Nothing listens here: unbound's forwarder gets ICMP port unreachable on loopback.
    run(["ip", "-n", server, "addr", "add", f"{DEAD_FORWARDER}/32", "dev", "lo"])
    lab.resolv_conf(client, f"nameserver {SERVER4}\n")
    unbound(lab, server, [SERVER4], RCODE_ZONES)
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    dig(lab, client, "ok.example.test")
    dig(lab, client, "nx.example.test")
    dig(lab, client, "www.blocked.test")
    dig(lab, client, "db.broken.example.test")
    cap.stop()


# 10 -----------------------------------------------------------------------------------

LATE_DELAY = 2.5
SLOW_DELAY = 1.5


def check_late(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(q("A", "late.example.test"), 2, 2, "A queries (dig, glibc)")
    c.expect(q("AAAA", "late.example.test"), 1, 1, "AAAA query (glibc)")
    c.expect(r"\d+\* 1/0/\d A 10\.250\.100\.15 ", 2, 2, "late A answers")
    c.expect(r"\d+\* 1/0/\d AAAA fd00:250:100::15 ", 1, 1, "late AAAA answer")
    c.expect(rf"IP {re.escape(CLIENT4)} > {re.escape(SERVER4)}: ICMP {re.escape(CLIENT4)} "
             r"udp port \d+ unreachable", 3, 3, "ICMP port unreachable quoting the answers")
    c.expect(r"\d+\* 1/0/\d A 10\.250\.100\.10 ", 1, 1, "the prompt answer")


@sample("late-response-icmp", check_late)
def make_late(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    lab.resolv_conf(client, f"nameserver {SERVER4}\noptions timeout:1 attempts:1\n")
    dnsmasq(lab, server, ["127.0.0.1"])
    relay(lab, server, SERVER4, "127.0.0.1", LATE_DELAY, "late")
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    dig(lab, client, "+timeout=1", "+tries=1", "web.example.test")
    time.sleep(0.2)
    dig(lab, client, "+timeout=1", "+tries=1", "late.example.test", ok=(9,))
    time.sleep(LATE_DELAY)
    getent(lab, client, "late.example.test", ok=(2,))
    time.sleep(LATE_DELAY)
    cap.stop()


def check_slow(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(q("A", "slow.example.test"), 1, 1, "A query, sent once")
    c.expect(q("AAAA", "slow.example.test"), 1, 1, "AAAA query, sent once")
    c.expect(r"\d+\* 1/0/0 A 10\.250\.100\.16 ", 1, 1, "slow A answer")
    c.expect(r"\d+\* 1/0/0 AAAA fd00:250:100::16 ", 1, 1, "slow AAAA answer")
    c.expect(r"ICMP", 0, 0, "ICMP")
    c.expect(r".", 8, 8, "all packets")


@sample("slow-response", check_slow)
def make_slow(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    lab.resolv_conf(client, f"nameserver {SERVER4}\n")  # glibc default timeout: 5 s
    dnsmasq(lab, server, ["127.0.0.1"])
    relay(lab, server, SERVER4, "127.0.0.1", SLOW_DELAY, "slow")
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    getent(lab, client, "web.example.test")
    time.sleep(0.2)
    t0 = time.monotonic()
    getent(lab, client, "slow.example.test")
    took = time.monotonic() - t0
    if took < SLOW_DELAY:
        raise SampleError(f"slow lookup took only {took:.2f} s")
    cap.stop()


# 11 -----------------------------------------------------------------------------------

def check_ipv6(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(rf"IP6 {re.escape(CLIENT6)}\.\d+ > {re.escape(SERVER6)}\.53: ", 6, 6,
             "queries over IPv6")
    c.expect(rf"IP6 {re.escape(SERVER6)}\.53 > {re.escape(CLIENT6)}\.\d+: \d+\*? ", 6, 6,
             "answers over IPv6")
    c.expect(r"^\S+ IP ", 0, 0, "IPv4 packets")


@sample("ipv6-clean", check_ipv6)
def make_ipv6(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    lab.resolv_conf(client, f"nameserver {SERVER6}\n")
    dnsmasq(lab, server, [SERVER6])
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    for host in ("web", "db", "cache"):
        getent(lab, client, f"{host}.example.test")
        time.sleep(0.2)
    cap.stop()


# 14 -----------------------------------------------------------------------------------

#: Queries for the raced name dropped before one gets through (one iptables rule each).
RACE_SHORT_DROPS = 2


def check_race_short(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(q("AAAA", RACE_NAME), RACE_SHORT_DROPS + 1, None, "AAAA queries, retries included")
    c.expect(r"\d+\* 1/0/0 AAAA fd00:250:100::13 ", 1, 1, "the one AAAA answer")
    if c.pairs_in_flight() < 1:
        raise SampleError(f"{c.path.name}: the A and AAAA were not in flight together")
    tail = c.times(".")[-1] - c.times(q("AAAA", RACE_NAME))[0]
    if tail >= 5.0:
        raise SampleError(f"{c.path.name}: the capture runs {tail:.1f} s past the first "
                          "AAAA query; it must stop before glibc's default 5 s timeout")


@sample("race-timeout1-short-capture", check_race_short)
def make_race_short(ctx: Context) -> None:
    lab = ctx.lab
    client, server = two_namespaces(lab)
    # `options timeout:1`, as many clusters set: glibc re-sends the lost query after 1 s,
    # then 2 s. The SRE stops the capture as soon as the lookup returned.
    lab.resolv_conf(client, f"nameserver {SERVER4}\noptions timeout:1 attempts:3\n")
    dnsmasq_one_hop_away(lab, server)
    for _ in range(RACE_SHORT_DROPS):  # each rule drops the first AAAA that reaches it
        lab.iptables(server, "-A", "INPUT", "-i", "eth0", "-p", "udp", "--dport", "53",
                     "-m", "string", "--algo", "bm",
                     "--hex-string", f"|{qname_hex(RACE_NAME)}001c0001|",
                     "-m", "statistic", "--mode", "nth", "--every", "1000000",
                     "--packet", "0", "-j", "DROP")
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    getent(lab, client, RACE_NAME)
    cap.stop()


# 15 -----------------------------------------------------------------------------------

#: Seconds the capture runs on after musl gave up: less than the 5 s --timeout.
MUSL_GAVE_UP_TAIL = 2.0


def check_musl_gave_up(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    c.expect(q("A", GONE_NAME), 2, None, "A queries for the dropped name, retries included")
    c.expect(r"A 10\.250\.100\.14|AAAA fd00:250:100::14", 0, 0, "answers for the dropped name")
    last = c.times(q("A+", GONE_NAME))[-1]
    tail = c.times(".")[-1] - last
    if not 1.0 <= tail < 5.0:
        raise SampleError(f"{c.path.name}: the capture ends {tail:.1f} s after the last "
                          "unanswered query; it should end 1-5 s after it")


@sample("musl-failed-near-end", check_musl_gave_up, needs_musl=True)
def make_musl_gave_up(ctx: Context) -> None:
    lab = ctx.lab
    assert ctx.musl_tool is not None
    client, server = two_namespaces(lab)
    # musl re-sends every timeout/attempts (1 s) and gives up after timeout (2 s): EAI_AGAIN.
    lab.resolv_conf(client, f"nameserver {SERVER4}\noptions timeout:2 attempts:2\n")
    dnsmasq(lab, server, [SERVER4])
    lab.iptables(server, "-A", "INPUT", "-i", "eth0", "-p", "udp", "--dport", "53",
                 "-m", "string", "--algo", "bm", "--hex-string", f"|{qname_hex(GONE_NAME)}|",
                 "-j", "DROP")
    cap = lab.tcpdump(client, "eth0", ctx.pcap)
    musl_lookup(lab, client, ctx.musl_tool, "web.example.test")
    musl_lookup(lab, client, ctx.musl_tool, GONE_NAME, ok=(2,))
    time.sleep(MUSL_GAVE_UP_TAIL)
    # A last lookup marks the end: the SRE stopped the capture 2 s after the failure.
    musl_lookup(lab, client, ctx.musl_tool, "db.example.test")
    cap.stop()


# 16 -----------------------------------------------------------------------------------

#: The two-capture-point sample: names answered, and one name per place a packet is lost.
CORR_ANSWERED = ("web.example.test", "db.example.test")
#: The query is dropped on the client's node (FORWARD) before it leaves for the server.
CORR_EGRESS_DROP = "egress-drop.example.test"
#: The answer is dropped in the server's OUTPUT chain: the query arrived, no answer left.
CORR_SERVER_DROP = "server-drop.example.test"
#: The answer left the server and is dropped on the client's node on its way back.
CORR_RETURN_DROP = "return-drop.example.test"
CORR_HOSTS = ((CORR_EGRESS_DROP, "10.250.100.30"), (CORR_SERVER_DROP, "10.250.100.31"),
              (CORR_RETURN_DROP, "10.250.100.32"))
#: Seconds added to every time stamp of the server-side capture after recording. All
#: namespaces share one kernel clock; the shift stands in for a CoreDNS node whose clock
#: is ahead of the client node's, which the correlation must estimate without being told.
CORR_CLOCK_SHIFT = 12.5
CORR_SERVER_PCAP = "two-points-lost.server.pcap"


def shift_pcap_times(path: Path, seconds: float) -> int:
    """Add ``seconds`` to the time stamp of every record of the pcap file at ``path`` (in
    place; microsecond or nanosecond pcap, either byte order). Returns the records shifted.
    """
    data = bytearray(path.read_bytes())
    magic = data[:4]
    orders = {b"\xd4\xc3\xb2\xa1": ("<", 10**6), b"\xa1\xb2\xc3\xd4": (">", 10**6),
              b"\x4d\x3c\xb2\xa1": ("<", 10**9), b"\xa1\xb2\x3c\x4d": (">", 10**9)}
    if bytes(magic) not in orders:
        raise SampleError(f"{path.name}: not a pcap file (magic {bytes(magic).hex()})")
    order, scale = orders[bytes(magic)]
    head = struct.Struct(order + "IIII")
    delta = round(seconds * scale)
    pos, records = 24, 0
    while pos + head.size <= len(data):
        sec, frac, incl, orig = head.unpack_from(data, pos)
        total = sec * scale + frac + delta
        head.pack_into(data, pos, total // scale, total % scale, incl, orig)
        pos += head.size + incl
        records += 1
    path.write_bytes(bytes(data))
    return records


def check_two_points(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    server = Capture.read(c.path.with_name(CORR_SERVER_PCAP))
    server.expect_linktype("EN10MB")
    to_service = rf"> {re.escape(CLUSTER_IP)}\.53: "
    from_service = rf"IP {re.escape(CLUSTER_IP)}\.53 > {re.escape(POD4)}\.\d+: "
    to_pod = rf"> {re.escape(DNS_POD4)}\.53: "
    from_pod = rf"IP {re.escape(DNS_POD4)}\.53 > {re.escape(NODE_DNS4)}\.\d+: "
    for name in CORR_ANSWERED:
        c.expect(to_service + q("A", name), 1, 1, f"client side: query for {name}")
        server.expect(to_pod + q("A", name), 1, 1, f"server side: query for {name}")
    for name in (CORR_EGRESS_DROP, CORR_SERVER_DROP, CORR_RETURN_DROP):
        c.expect(to_service + q("A", name), 2, 2, f"client side: 2 tries for {name}")
    server.expect(q("A", CORR_EGRESS_DROP), 0, 0, "server side: the egress-dropped queries")
    server.expect(to_pod + q("A", CORR_SERVER_DROP), 2, 2, "server side: server-drop queries")
    server.expect(to_pod + q("A", CORR_RETURN_DROP), 2, 2, "server side: return-drop queries")
    c.expect(from_service, 2, 2, "client side: only the two answered lookups' answers")
    server.expect(from_pod + r".* A 10\.250\.100\.1[01] ", 2, 2, "server side: answers")
    server.expect(from_pod + r".* A 10\.250\.100\.32 ", 2, 2,
                  "server side: the return-drop answers leave")
    server.expect(r"A 10\.250\.100\.31 ", 0, 0, "server side: no server-drop answer leaves")
    # The shift must show: the server's first packet is CORR_CLOCK_SHIFT after the client's.
    ahead = server.times(".")[0] - c.times(".")[0]
    if not CORR_CLOCK_SHIFT - 1.0 < ahead < CORR_CLOCK_SHIFT + 1.0:
        raise SampleError(f"{c.path.name}: the server capture starts {ahead:.3f} s after the "
                          f"client's, expected about {CORR_CLOCK_SHIFT} s (the clock shift)")


@sample("two-points-lost", check_two_points)
def make_two_points(ctx: Context) -> None:
    lab = ctx.lab
    client, node, (server,) = pod_node(lab, ("dns", "vethdns0", NODE_DNS4, (DNS_POD4,)))
    # kube-proxy's DNAT of the service IP, then a masquerade with random source ports (as
    # between nodes in some clusters): the server side sees neither the client's address
    # nor its port, so only the DNS ID, the question and the time can pair the two sides.
    lab.iptables(node, "-t", "nat", "-A", "PREROUTING", "-d", f"{CLUSTER_IP}/32",
                 "-p", "udp", "--dport", "53", "-j", "DNAT", "--to-destination",
                 f"{DNS_POD4}:53")
    lab.iptables(node, "-t", "nat", "-A", "POSTROUTING", "-o", "vethdns0", "-p", "udp",
                 "-j", "MASQUERADE", "--random-fully")
    lab.iptables(node, "-A", "FORWARD", "-i", "vethpod0", "-p", "udp", "--dport", "53",
                 "-m", "string", "--algo", "bm",
                 "--hex-string", f"|{qname_hex(CORR_EGRESS_DROP)}|", "-j", "DROP")
    lab.iptables(node, "-A", "FORWARD", "-i", "vethdns0", "-p", "udp", "--sport", "53",
                 "-m", "string", "--algo", "bm",
                 "--hex-string", f"|{qname_hex(CORR_RETURN_DROP)}|", "-j", "DROP")
    lab.iptables(server, "-A", "OUTPUT", "-p", "udp", "--sport", "53",
                 "-m", "string", "--algo", "bm",
                 "--hex-string", f"|{qname_hex(CORR_SERVER_DROP)}|", "-j", "DROP")
    dnsmasq(lab, server, [DNS_POD4], hosts=CORR_HOSTS)
    # The client's node sees the pod's packets on the pod's veth; the server's node on the
    # DNS pod's interface. Both record at once.
    client_cap = lab.tcpdump(node, "vethpod0", ctx.pcap)
    server_path = ctx.extra(CORR_SERVER_PCAP)
    server_cap = lab.tcpdump(server, "eth0", server_path)
    for name in (CORR_ANSWERED[0], CORR_EGRESS_DROP, CORR_SERVER_DROP, CORR_RETURN_DROP,
                 CORR_ANSWERED[1]):
        # Two tries of 1 s each: a lost lookup has two attempts (dig exits 9: no reply).
        dig(lab, client, "+tries=2", "+timeout=1", f"@{CLUSTER_IP}", name, "A", ok=(0, 9))
        time.sleep(0.2)
    client_cap.stop()
    server_cap.stop()
    shift_pcap_times(server_path, CORR_CLOCK_SHIFT)


# 17 -----------------------------------------------------------------------------------

#: The CoreDNS query log sample: names whose queries the node drops before the server,
#: whose answers it drops after the server, and that the server answers NXDOMAIN.
LOG_DROPPED_QUERY, LOG_DROPPED_ANSWER = "gone.example.test", "api.example.test"
LOG_NXDOMAIN = "missing.example.test"


def check_coredns_log(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    to_service = rf"> {re.escape(CLUSTER_IP)}\.53: "
    for name in (LOG_DROPPED_QUERY, LOG_DROPPED_ANSWER):
        c.expect(to_service + q("A", name), 2, 2, f"A queries for {name}, retry included")
        c.expect(to_service + q("AAAA", name), 2, 2, f"AAAA queries for {name}")
    c.expect(r"A 10\.250\.100\.1[34]|AAAA fd00:250:100::1[34]", 0, 0,
             "answers for the dropped names")
    c.expect(rf"IP {re.escape(CLUSTER_IP)}\.53 > .* NXDomain\*? ", 2, 2, "NXDOMAIN answers")
    c.expect(r"\d+\* 1/0/0 A 10\.250\.100\.1[01] ", 2, 2, "the answered A lookups")
    for name in (c.path.name.replace(".pcap", ".coredns.log"),
                 c.path.name.replace(".pcap", ".coredns-ts.log")):
        text = c.path.with_name(name).read_text()
        if f'"A IN {LOG_DROPPED_ANSWER}. udp' not in text or LOG_DROPPED_QUERY in text:
            raise SampleError(f"{name}: the server should have logged the queries whose "
                              "answers were dropped, and none of those dropped before it")


@sample("coredns-query-log", check_coredns_log)
def make_coredns_log(ctx: Context) -> None:
    """The pod's queries go to a ClusterIP that the node DNATs to the DNS pod (dnsmasq,
    logging every query with the client's address and port). The node drops the queries
    for one name on their way to the server and the answers for another on their way
    back; the capture is the pod's side of the node. The server's own capture and query
    log are turned into a CoreDNS query log (CoreDNS itself cannot run here)."""
    lab = ctx.lab
    client, node, (server,) = pod_node(lab, ("dns", "vethdns0", NODE_DNS4, (DNS_POD4,)))
    lab.iptables(node, "-t", "nat", "-A", "PREROUTING", "-d", f"{CLUSTER_IP}/32", "-p", "udp",
                 "--dport", "53", "-j", "DNAT", "--to-destination", f"{DNS_POD4}:53")
    for direction, name in (("--dport", LOG_DROPPED_QUERY), ("--sport", LOG_DROPPED_ANSWER)):
        lab.iptables(node, "-A", "FORWARD", "-p", "udp", direction, "53", "-m", "string",
                     "--algo", "bm", "--hex-string", f"|{qname_hex(name)}|", "-j", "DROP")
    lab.resolv_conf(client, f"nameserver {CLUSTER_IP}\noptions timeout:1 attempts:2\n")
    server_log = lab.workdir / "dnsmasq-queries.log"
    dnsmasq(lab, server, [DNS_POD4], log_file=server_log)
    server_pcap = lab.workdir / "server-side.pcap"
    server_cap = lab.tcpdump(server, "eth0", server_pcap)
    cap = lab.tcpdump(node, "vethpod0", ctx.pcap)
    getent(lab, client, "web.example.test")
    getent(lab, client, LOG_DROPPED_QUERY, ok=(2,))
    getent(lab, client, LOG_DROPPED_ANSWER, ok=(2,))
    getent(lab, client, LOG_NXDOMAIN, ok=(2,))
    getent(lab, client, "db.example.test")
    cap.stop()
    server_cap.stop()
    handled = wait_dnsmasq_log(server_log, 10, POD4)
    messages = read_dns_pcap(server_pcap)
    for name, stamps in (("coredns.log", False), ("coredns-ts.log", True)):
        path = ctx.extra(f"{ctx.pcap.stem}.{name}")
        path.write_text(coredns_log(handled, messages, stamps))


#: ``--log-queries=extra``: "<serial> <client>/<port> query[<type>] <name> from <client>"
#: and the reply, "<serial> <client>/<port> config <name> is <answer>".
DNSMASQ_QUERY = re.compile(r": (\d+) ([\d.]+)/(\d+) query\[(\w+)\] (\S+) from ")
DNSMASQ_REPLY = re.compile(r": (\d+) [\d.]+/\d+ (?:config|cached|reply) (\S+) is (\S+)")


def wait_dnsmasq_log(path: Path, queries: int, client: str) -> list[dict[str, str]]:
    """The queries from ``client`` that dnsmasq logged, with its reply to each, once
    ``queries`` of them are in its log (it writes the log in the background; the readiness
    probes come from elsewhere); bounded by READY_TIMEOUT."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        found: dict[str, dict[str, str]] = {}
        for line in text.splitlines():
            if m := DNSMASQ_QUERY.search(line):
                found[m[1]] = {"client": m[2], "port": m[3], "type": m[4], "name": m[5]}
            elif (m := DNSMASQ_REPLY.search(line)) and m[1] in found:
                found[m[1]].setdefault("reply", m[3])
        done = [f for f in found.values() if "reply" in f and f["client"] == client]
        if len(done) >= queries:
            return done
        if time.monotonic() > deadline:
            raise SampleError(f"dnsmasq logged {len(done)} answered queries, expected "
                              f"{queries}:\n{text}")
        time.sleep(SETTLE_POLL)


def read_dns_pcap(path: Path) -> list[dict]:
    """The DNS messages over UDP/IPv4 in an Ethernet pcap (what tcpdump -w writes): time,
    addresses, ports, the header, the question, the size and the EDNS OPT record."""
    import struct

    data = path.read_bytes()
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise SampleError(f"{path.name}: not a little-endian microsecond pcap")
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = 14 + ihl
        sport, dport = struct.unpack_from("!HH", frame, udp)
        dns = frame[udp + 8:]
        qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", dns)
        labels, i = [], 12
        while dns[i]:
            labels.append(dns[i + 1:i + 1 + dns[i]].decode())
            i += 1 + dns[i]
        qtype = struct.unpack_from("!H", dns, i + 1)[0]
        i += 5
        opt = None
        if an == ns == 0 and ar == 1 and dns[i:i + 3] == b"\x00\x00\x29":
            bufsize, _, _, doflags = struct.unpack_from("!HBBH", dns, i + 3)
            opt = (bufsize, bool(doflags & 0x8000))
        out.append({"time": sec + usec / 1e6, "src": ".".join(map(str, frame[26:30])),
                    "dst": ".".join(map(str, frame[30:34])), "sport": sport, "dport": dport,
                    "id": qid, "flags": flags, "name": ".".join(labels), "qtype": qtype,
                    "size": len(dns), "opt": opt})
    return out


#: Lines of CoreDNS's start-up and of its reload plugin, and one query line cut short (as
#: when a log stream is cut mid-line), put around the query lines of the rendered log.
COREDNS_BANNER = [".:53", "[INFO] plugin/reload: Running configuration SHA512 = "
                  "3f1c0a9e2b7d", "CoreDNS-1.11.1", "linux/amd64, go1.21.1, ae2bbc2"]
RFLAGS = ((0x8000, "qr"), (0x0400, "aa"), (0x0200, "tc"), (0x0100, "rd"), (0x0080, "ra"),
          (0x0040, "z"), (0x0020, "ad"), (0x0010, "cd"))
QTYPE_NUMBERS = {"A": 1, "AAAA": 28}


def coredns_log(handled: list[dict[str, str]], messages: list[dict], stamps: bool) -> str:
    """The log CoreDNS's ``log`` plugin would have written for the queries dnsmasq answered,
    as ``kubectl logs`` prints it (``--timestamps`` when ``stamps``): the client's address
    and port, the name, type and reply from dnsmasq's log; the DNS ID, sizes, EDNS fields,
    answer flags and the time from query to answer from the server side's capture."""
    lines: list[tuple[float, str]] = []
    used: set[int] = set()
    for h in handled:
        qtype = QTYPE_NUMBERS[h["type"]]
        qi = next((i for i, m in enumerate(messages)
                   if i not in used and not m["flags"] & 0x8000 and m["src"] == h["client"]
                   and m["sport"] == int(h["port"]) and m["name"] == h["name"]
                   and m["qtype"] == qtype), None)
        if qi is None:
            raise SampleError(f"the server side's capture has no query for {h}")
        used.add(qi)
        query = messages[qi]
        answer = next((m for m in messages[qi + 1:] if m["flags"] & 0x8000
                       and m["dst"] == query["src"] and m["dport"] == query["sport"]
                       and m["id"] == query["id"]), None)
        if answer is None:
            raise SampleError(f"the server side's capture has no answer for {h}")
        rcode = "NXDOMAIN" if h["reply"] == "NXDOMAIN" else "NOERROR"
        bufsize, do = query["opt"] if query["opt"] else (512, False)
        flags = ",".join(n for bit, n in RFLAGS if answer["flags"] & bit)
        duration = f"{answer['time'] - query['time']:.6f}".rstrip("0").rstrip(".")
        lines.append((answer["time"],
                      f'[INFO] {h["client"]}:{h["port"]} - {query["id"]} "{h["type"]} IN '
                      f'{h["name"]}. udp {query["size"]} {str(do).lower()} {bufsize}" '
                      f'{rcode} {flags} {answer["size"]} {duration}s'))
    lines.sort()
    start = lines[0][0] - 0.5
    cut = lines[1][1][:len(lines[1][1]) // 2]
    out = [(start, text) for text in COREDNS_BANNER]
    out += lines[:3] + [(lines[2][0], cut)] + lines[3:]
    if not stamps:
        return "".join(text + "\n" for _, text in out)
    return "".join(
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}000Z "
        + text + "\n" for t, text in out)


# 18 -----------------------------------------------------------------------------------

# A node whose NAT legs show three faults: a query dropped in FORWARD after the DNAT, an
# answer dropped in FORWARD on its way back, and an answer from another address.

LOST_NAME, UNDELIVERED_NAME = "lost.example.test", "undelivered.example.test"
ELSEWHERE_NAME = "elsewhere.example.test"
#: The second "CoreDNS pod": its primary address, and the secondary one the node's DNAT
#: sends ELSEWHERE_NAME to (unbound bound to 0.0.0.0 answers from the primary).
DNS2_PRIMARY, DNS2_SECONDARY, NODE_DNS2 = "10.250.3.53", "10.250.3.54", "10.250.3.1"


def check_node_legs(c: Capture) -> None:
    c.expect_linktype("LINUX_SLL2")
    cip, pod = re.escape(CLUSTER_IP), re.escape(DNS_POD4)
    for host in ("web", "db"):
        name = f"{host}.example.test"
        c.expect(rf"> {pod}\.53: " + q("A", name), 1, 1, f"A {name} after DNAT")
        c.expect(rf"> {pod}\.53: " + q("AAAA", name), 1, 1, f"AAAA {name} after DNAT")
    c.expect(rf"> {cip}\.53: " + q("A", LOST_NAME), 1, 1, "the lost query to the ClusterIP")
    c.expect(rf"> {pod}\.53: " + q("A", LOST_NAME), 0, 0, "the lost query after DNAT")
    c.expect(rf"> {pod}\.53: " + q("A", UNDELIVERED_NAME), 1, 1,
             "the query whose answer is dropped, after DNAT")
    c.expect(rf"IP {pod}\.53 > .* A 10\.250\.100\.18", 1, 1, "its answer from the pod")
    c.expect(rf"IP {cip}\.53 > .* A 10\.250\.100\.18", 0, 0, "its answer un-NAT'd")
    c.expect(rf"> {re.escape(DNS2_SECONDARY)}\.53: " + q("A", ELSEWHERE_NAME), 1, 1,
             "the query DNAT'd to the second server's secondary address")
    c.expect(rf"IP {re.escape(DNS2_PRIMARY)}\.53 > .* A 10\.250\.100\.20", 2, 2,
             "its answer from the primary address, on both sides of the node")


@sample("node-legs-faults", check_node_legs)
def make_node_legs(ctx: Context) -> None:
    lab = ctx.lab
    # The second server's primary address first: unbound's 0.0.0.0 socket answers from it.
    client, node, (server, server2) = pod_node(
        lab, ("dns", "vethdns0", NODE_DNS4, (DNS_POD4,)),
        ("dns2", "vethdns1", NODE_DNS2, (DNS2_PRIMARY, DNS2_SECONDARY)))
    for proto in ("udp", "tcp"):
        lab.iptables(node, "-t", "nat", "-A", "PREROUTING", "-d", f"{CLUSTER_IP}/32",
                     "-p", proto, "--dport", "53", "-j", "DNAT",
                     "--to-destination", f"{DNS_POD4}:53")
    lab.iptables(node, "-t", "nat", "-I", "PREROUTING", "-d", f"{CLUSTER_IP}/32",
                 "-p", "udp", "--dport", "53", "-m", "string", "--algo", "bm",
                 "--hex-string", f"|{qname_hex(ELSEWHERE_NAME)}|", "-j", "DNAT",
                 "--to-destination", f"{DNS2_SECONDARY}:53")
    lab.iptables(node, "-A", "FORWARD", "-i", "vethpod0", "-p", "udp", "--dport", "53",
                 "-m", "string", "--algo", "bm", "--hex-string",
                 f"|{qname_hex(LOST_NAME)}|", "-j", "DROP")
    lab.iptables(node, "-A", "FORWARD", "-i", "vethdns0", "-p", "udp", "--sport", "53",
                 "-m", "string", "--algo", "bm", "--hex-string",
                 f"|{qname_hex(UNDELIVERED_NAME)}|", "-j", "DROP")
    lab.resolv_conf(client, f"nameserver {CLUSTER_IP}\n")
    dnsmasq(lab, server, [DNS_POD4])
    unbound(lab, server2, ["0.0.0.0"],
            'local-zone: "example.test." static\n'
            f'local-data: "{ELSEWHERE_NAME}. A 10.250.100.20"\n',
            wait=[DNS2_PRIMARY])
    cap = lab.tcpdump(node, "any", ctx.pcap, "-y", "LINUX_SLL2")
    getent(lab, client, "web.example.test")
    time.sleep(0.2)
    for name in (LOST_NAME, UNDELIVERED_NAME, ELSEWHERE_NAME):
        out = dig(lab, client, "+tries=1", "+time=1", f"@{CLUSTER_IP}", name, "A",
                  ok=(0, 9))
        log(f"dig {name}: " + " | ".join(out.strip().splitlines()[-3:]))
        time.sleep(0.2)
    time.sleep(TIMEOUT_TAIL)
    getent(lab, client, "db.example.test")  # marks the end of the capture
    cap.stop()


# 19 -----------------------------------------------------------------------------------
# Two CoreDNS replicas behind one ClusterIP, kube-proxy style; one of them slow.

#: The second replica and the node's address towards it.
REPLICA_B, NODE_REPLICA_B = "10.250.3.53", "10.250.3.1"
#: Lookups (each dig from a new port: a new conntrack entry, so the DNAT alternates) and
#: the delay the slow replica's relay adds to each answer.
REPLICA_LOOKUPS, REPLICA_DELAY = 48, 0.3


def check_replicas(c: Capture) -> None:
    c.expect_linktype("LINUX_SLL2")
    half = REPLICA_LOOKUPS // 2
    for replica in (DNS_POD4, REPLICA_B):
        c.expect(rf"> {re.escape(replica)}\.53: \d+\+", half, half,
                 f"queries DNAT'd to {replica}")
        c.expect(rf"IP {re.escape(replica)}\.53 > ", half, half, f"answers from {replica}")
    c.expect(rf"IP {re.escape(CLUSTER_IP)}\.53 > ", REPLICA_LOOKUPS, REPLICA_LOOKUPS,
             "answers un-NAT'd to the pod")


@sample("replicas-one-slow", check_replicas)
def make_replicas(ctx: Context) -> None:
    lab = ctx.lab
    client, node, (fast, slow) = pod_node(
        lab, ("dns", "vethdns0", NODE_DNS4, (DNS_POD4,)),
        ("dns2", "vethdns1", NODE_REPLICA_B, (REPLICA_B,)))
    # kube-proxy's iptables mode: each new connection to the Service goes to one of the
    # endpoints (here every second one to each, --mode nth, so the split is exact).
    lab.iptables(node, "-t", "nat", "-A", "PREROUTING", "-d", f"{CLUSTER_IP}/32",
                 "-p", "udp", "--dport", "53", "-m", "statistic", "--mode", "nth",
                 "--every", "2", "--packet", "0", "-j", "DNAT",
                 "--to-destination", f"{DNS_POD4}:53")
    lab.iptables(node, "-t", "nat", "-A", "PREROUTING", "-d", f"{CLUSTER_IP}/32",
                 "-p", "udp", "--dport", "53", "-j", "DNAT",
                 "--to-destination", f"{REPLICA_B}:53")
    dnsmasq(lab, fast, [DNS_POD4])
    dnsmasq(lab, slow, ["127.0.0.1"])
    relay(lab, slow, REPLICA_B, "127.0.0.1", REPLICA_DELAY, "*")
    cap = lab.tcpdump(node, "any", ctx.pcap, "-y", "LINUX_SLL2")
    for i in range(REPLICA_LOOKUPS):
        name = ("web", "db", "api")[i % 3] + ".example.test"
        dig(lab, client, "+tries=1", "+time=2", f"@{CLUSTER_IP}", name, "A")
    cap.stop()


# 20 -----------------------------------------------------------------------------------

#: The forwarder sample: the client, the forwarder (asked at FWD4, asking upstream from
#: FWD4 too, as CoreDNS asks from its pod IP) and the upstream server, a link away.
FWD4, FWD_UP4, UPSTREAM4 = "10.250.0.53", "10.250.1.53", "10.250.1.1"
#: Inside the upstream namespace, where nothing listens: unbound's unreachable forwarder.
UP_DEAD = "10.250.1.99"
UPSTREAM_ZONES = f"""
    local-zone: "example.test." static
    local-data: "web.example.test. 30 IN A 10.250.100.10"
    local-data: "db.example.test. 30 IN A 10.250.100.11"
    local-data: "lost.example.test. 30 IN A 10.250.100.17"
    local-data: "slow.example.test. 30 IN A 10.250.100.16"
    local-data: "stuck.example.test. 30 IN A 10.250.100.18"
    local-zone: "blocked.test." refuse
    local-zone: "broken.example.test." transparent
    outgoing-interface: 127.0.0.1
    infra-cache-max-rtt: 200
    outbound-msg-retry: 1
forward-zone:
    name: "broken.example.test."
    forward-addr: {UP_DEAD}
"""
#: Seconds the relay in front of unbound holds the answers for slow.example.test.
UPSTREAM_SLOW = 1.5


def check_forwarder(c: Capture) -> None:
    c.expect_linktype("LINUX_SLL2")
    lost = re.escape("lost.example.test")
    c.expect(rf"{re.escape(CLIENT4)}\.\d+ > {re.escape(FWD4)}\.53: .*A\? {lost}\.", 2, 2,
             "client queries for the name the upstream drops")
    c.expect(rf"{re.escape(FWD4)}\.\d+ > {re.escape(UPSTREAM4)}\.53: .*A\? {lost}\.", 1, 4,
             "the forwarder's upstream queries for it")
    c.expect(rf"> {re.escape(CLIENT4)}\.\d+: .*{lost}", 0, 0, "an answer for it")
    c.expect(rf"{re.escape(UPSTREAM4)}\.53 > {re.escape(FWD4)}\.\d+: \d+ Refused", 1, 2,
             "REFUSED from upstream")
    c.expect(rf"{re.escape(FWD4)}\.53 > {re.escape(CLIENT4)}\.\d+: \d+ Refused", 1, 1,
             "REFUSED passed on")
    c.expect(rf"{re.escape(UPSTREAM4)}\.53 > {re.escape(FWD4)}\.\d+: \d+ ServFail", 1, 3,
             "SERVFAIL from upstream")
    c.expect(rf"{re.escape(FWD4)}\.53 > {re.escape(CLIENT4)}\.\d+: \d+ ServFail", 1, 1,
             "SERVFAIL passed on")
    c.expect(rf"> {re.escape(UPSTREAM4)}\.53: .*local\.example\.test", 0, 0,
             "an upstream query for the name the forwarder answers itself")
    c.expect(rf"{re.escape(FWD4)}\.53 > {re.escape(CLIENT4)}\.\d+: .*A 10\.250\.100\.30", 1,
             1, "the forwarder's own answer")
    c.expect(rf"> {re.escape(UPSTREAM4)}\.53: .*stuck\.example\.test", 0, 0,
             "an upstream query for the name dropped at the forwarder")
    slow_up = c.times(rf"{re.escape(FWD4)}\.\d+ > {re.escape(UPSTREAM4)}\.53: .*slow\.")
    slow_ans = c.times(rf"{re.escape(UPSTREAM4)}\.53 > {re.escape(FWD4)}\.\d+: .*"
                       r"A 10\.250\.100\.16 ")
    if not slow_up or not slow_ans or slow_ans[0] - slow_up[0] < UPSTREAM_SLOW:
        raise SampleError(f"{c.path.name}: the slow upstream answer is not slow")
    quiet = c.times(".")[-1] - c.times(lost)[-1]
    if quiet < 6.0:
        raise SampleError(f"{c.path.name}: the last packet is only {quiet:.1f} s after the "
                          "last unanswered query")


@sample("forwarder-upstream-leg", check_forwarder)
def make_forwarder(ctx: Context) -> None:
    lab = ctx.lab
    client, fwd, up = lab.ns("client"), lab.ns("fwd"), lab.ns("up")
    lab.link(client, "eth0", fwd, "eth0")
    lab.link(fwd, "eth1", up, "eth0")
    lab.addr(client, "eth0", f"{CLIENT4}/24")
    lab.addr(fwd, "eth0", f"{FWD4}/24")
    lab.addr(fwd, "eth1", f"{FWD_UP4}/24")
    lab.addr(up, "eth0", f"{UPSTREAM4}/24")
    lab.route(up, "10.250.0.0/24", FWD_UP4)
    # The upstream's answers come back to FWD4 on eth1.
    for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.eth1.rp_filter"):
        lab.exec(fwd, ["sysctl", "-q", "-w", f"{key}=0"])
    run(["ip", "-n", up, "addr", "add", f"{UP_DEAD}/32", "dev", "lo"])
    # The upstream: unbound with local data only, behind the delaying relay.
    unbound(lab, up, ["127.0.0.1"], UPSTREAM_ZONES, label="upstream")
    relay(lab, up, UPSTREAM4, "127.0.0.1", UPSTREAM_SLOW, "slow")
    # It never sees the queries for lost.example.test.
    lab.iptables(up, "-A", "INPUT", "-i", "eth0", "-p", "udp", "--dport", "53",
                 "-m", "string", "--algo", "bm",
                 "--hex-string", f"|{qname_hex('lost.example.test')}|", "-j", "DROP")
    # The forwarder: dnsmasq forwarding everything (no cache) to the upstream from the
    # address it is asked at, answering local.example.test itself.
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--log-facility=-",
            "--log-queries", "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
            "--pid-file", "--port=53", "--cache-size=0", f"--listen-address={FWD4}",
            f"--server={UPSTREAM4}@{FWD4}", "--address=/local.example.test/10.250.100.30"]
    lab.spawn(fwd, argv, "forwarder")
    lab.wait_dns(fwd, FWD4, "web.example.test")
    # Queries for stuck.example.test reach the forwarder's interface (and the capture) but
    # never its socket: a failure with no upstream leg.
    lab.iptables(fwd, "-A", "INPUT", "-i", "eth0", "-p", "udp", "--dport", "53",
                 "-m", "string", "--algo", "bm",
                 "--hex-string", f"|{qname_hex('stuck.example.test')}|", "-j", "DROP")
    lab.resolv_conf(client, f"nameserver {FWD4}\noptions timeout:1 attempts:2\n")
    cap = lab.tcpdump(fwd, "any", ctx.pcap)
    getent(lab, client, "web.example.test")
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", "db.example.test")
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", "local.example.test")
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", "nx.example.test")
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", "www.blocked.test")
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", "db.broken.example.test")
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=5", "slow.example.test")
    dig(lab, client, f"@{FWD4}", "+tries=2", "+timeout=1", "stuck.example.test", ok=(9,))
    dig(lab, client, f"@{FWD4}", "+tries=2", "+timeout=1", "lost.example.test", ok=(9,))
    time.sleep(TIMEOUT_TAIL)
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", "web.example.test")  # the end
    cap.stop()


# 21 -----------------------------------------------------------------------------------

#: The two-homed forwarder sample: lookups of distinct names, for the forwarder to be
#: learned before the faults (the analysis learns it after 20 prompt matches).
TWO_HOMED_NAMES = 30
TWO_HOMED_ZONES = UPSTREAM_ZONES.replace(
    "    local-zone: \"blocked.test.\" refuse\n",
    "".join(f"    local-data: \"n{i}.example.test. 30 IN A 10.250.101.{i}\"\n"
            for i in range(1, TWO_HOMED_NAMES + 1))
    + "    local-zone: \"blocked.test.\" refuse\n")


def check_two_homed(c: Capture) -> None:
    c.expect_linktype("LINUX_SLL2")
    fwd, up, fwd_up = re.escape(FWD4), re.escape(UPSTREAM4), re.escape(FWD_UP4)
    c.expect(rf"{fwd_up}\.\d+ > {up}\.53: .*A\? n\d+\.example\.test\.", TWO_HOMED_NAMES,
             TWO_HOMED_NAMES, "the forwarder's upstream queries, from its other address")
    c.expect(rf"{fwd}\.\d+ > {up}\.53: ", 0, 0, "an upstream query from the address asked")
    c.expect(rf"{fwd}\.53 > {re.escape(CLIENT4)}\.\d+: .*A 10\.250\.101\.", TWO_HOMED_NAMES,
             TWO_HOMED_NAMES, "the answers passed on")
    lost = re.escape("lost.example.test")
    c.expect(rf"{fwd_up}\.\d+ > {up}\.53: .*A\? {lost}\.", 1, 4,
             "the forwarder's upstream queries for the name the upstream drops")
    c.expect(rf"> {re.escape(CLIENT4)}\.\d+: .*{lost}", 0, 0, "an answer for it")
    c.expect(rf"{up}\.53 > {fwd_up}\.\d+: \d+ Refused", 1, 2, "REFUSED from upstream")
    c.expect(rf"{fwd}\.53 > {re.escape(CLIENT4)}\.\d+: \d+ Refused", 1, 1, "REFUSED passed on")
    c.expect(rf"{up}\.53 > {fwd_up}\.\d+: \d+ ServFail", 1, 3, "SERVFAIL from upstream")
    c.expect(rf"{fwd}\.53 > {re.escape(CLIENT4)}\.\d+: \d+ ServFail", 1, 1,
             "SERVFAIL passed on")
    quiet = c.times(".")[-1] - c.times(lost)[-1]
    if quiet < 6.0:
        raise SampleError(f"{c.path.name}: the last packet is only {quiet:.1f} s after the "
                          "last unanswered query")


@sample("forwarder-two-homed", check_two_homed)
def make_two_homed(ctx: Context) -> None:
    lab = ctx.lab
    client, fwd, up = lab.ns("client"), lab.ns("fwd"), lab.ns("up")
    lab.link(client, "eth0", fwd, "eth0")
    lab.link(fwd, "eth1", up, "eth0")
    lab.addr(client, "eth0", f"{CLIENT4}/24")
    lab.addr(fwd, "eth0", f"{FWD4}/24")
    lab.addr(fwd, "eth1", f"{FWD_UP4}/24")
    lab.addr(up, "eth0", f"{UPSTREAM4}/24")
    run(["ip", "-n", up, "addr", "add", f"{UP_DEAD}/32", "dev", "lo"])
    unbound(lab, up, [UPSTREAM4], TWO_HOMED_ZONES, label="upstream")
    lab.iptables(up, "-A", "INPUT", "-i", "eth0", "-p", "udp", "--dport", "53",
                 "-m", "string", "--algo", "bm",
                 "--hex-string", f"|{qname_hex('lost.example.test')}|", "-j", "DROP")
    # The forwarder: dnsmasq asked at FWD4 on eth0, asking the upstream from FWD_UP4, the
    # address of the interface it is reached through (as NodeLocal DNSCache asks from the
    # node's address), with no cache.
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--log-facility=-",
            "--log-queries", "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
            "--pid-file", "--port=53", "--cache-size=0", f"--listen-address={FWD4}",
            f"--server={UPSTREAM4}"]
    lab.spawn(fwd, argv, "forwarder")
    lab.wait_dns(fwd, FWD4, "web.example.test")
    cap = lab.tcpdump(fwd, "any", ctx.pcap)
    for i in range(1, TWO_HOMED_NAMES + 1):
        dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", f"n{i}.example.test")
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", "www.blocked.test")
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", "db.broken.example.test")
    dig(lab, client, f"@{FWD4}", "+tries=2", "+timeout=1", "lost.example.test", ok=(9,))
    time.sleep(TIMEOUT_TAIL)
    dig(lab, client, f"@{FWD4}", "+tries=1", "+timeout=3", "web.example.test")  # the end
    cap.stop()


# 22 -----------------------------------------------------------------------------------

#: The overlay sample: two "nodes" on an underlay veth pair, joined by two kernel VXLAN
#: devices, each carrying a pod subnet: VNI 42 on the IANA port 4789, and VNI 1 on 8472,
#: the port of flannel's VXLAN backend (the Linux default before the IANA port). Only
#: the underlay is captured: every DNS message in it is inside VXLAN. (Geneve, IP-in-IP
#: and GRE devices are not in every kernel, nor in the recording machine's: Geneve, GRE
#: and ERSPAN come from Open vSwitch's userspace datapath in the samples below, IP in IP
#: from this script's TUN forwarder in sample 25.)
NODE_A4, NODE_B4 = "10.250.50.1", "10.250.50.2"
OVERLAY_PODS = (
    # (device, VNI, UDP port, node A's address, node B's address (dnsmasq))
    ("vxlan0", "42", "4789", "10.250.60.1", "10.250.60.2"),
    ("flannel.1", "1", "8472", "10.250.61.1", "10.250.61.2"),
)
#: What the underlay capture keeps: the two VXLAN ports.
OVERLAY_FILTER = "udp port 4789 or udp port 8472"


def check_overlay(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    # tcpdump prints the inner packet on a line of its own after the VXLAN header (as OTV
    # on 8472, the port OTV shares): join the two.
    joined = Capture(c.path, c.linktype, [
        f"{line} | {c.lines[i + 1] if i + 1 < len(c.lines) else ''}"
        for i, line in enumerate(c.lines) if re.search(r": (VXLAN|OTV), ", line)])
    a, b = re.escape(NODE_A4), re.escape(NODE_B4)
    for _dev, vni, port, pod_a, pod_b in OVERLAY_PODS:
        header = rf"(VXLAN, .* vni {vni}|OTV, .* instance {vni})\b"
        joined.expect(rf"IP {a}\.\d+ > {b}\.{port}: {header}.* \| IP "
                      rf"{re.escape(pod_a)}\.\d+ > {re.escape(pod_b)}\.53: ", 3, 6,
                      f"queries inside VXLAN {vni} on port {port}")
        joined.expect(rf"IP {b}\.\d+ > {a}\.{port}: {header}.* \| IP "
                      rf"{re.escape(pod_b)}\.53 > {re.escape(pod_a)}\.\d+: ", 3, 6,
                      f"answers inside VXLAN {vni} on port {port}")
    joined.expect(r"NXDomain", 1, 2, "the NXDOMAIN answer")
    c.expect(r"^\d+\.\d+ IP \S+ > \S+\.53: ", 0, 0, "DNS outside the tunnels")


@sample("overlay-vxlan-underlay", check_overlay)
def make_overlay(ctx: Context) -> None:
    lab = ctx.lab
    node_a, node_b = lab.ns("node-a"), lab.ns("node-b")
    lab.link(node_a, "eth0", node_b, "eth0")
    lab.addr(node_a, "eth0", f"{NODE_A4}/24")
    lab.addr(node_b, "eth0", f"{NODE_B4}/24")
    for dev, vni, port, pod_a, pod_b in OVERLAY_PODS:
        for ns, local, remote, pod in ((node_a, NODE_A4, NODE_B4, pod_a),
                                       (node_b, NODE_B4, NODE_A4, pod_b)):
            run(["ip", "-n", ns, "link", "add", dev, "type", "vxlan", "id", vni,
                 "dstport", port, "remote", remote, "local", local, "dev", "eth0"],
                what="ip link add vxlan")
            lab.addr(ns, dev, f"{pod}/24")
    dnsmasq(lab, node_b, [pod_b for *_, pod_b in OVERLAY_PODS])
    lab.resolv_conf(node_a, f"nameserver {OVERLAY_PODS[0][4]}\noptions attempts:1 timeout:2\n")
    cap = lab.tcpdump(node_a, "eth0", ctx.pcap, bpf=OVERLAY_FILTER)
    # glibc over VNI 42 (A and AAAA), dig over both.
    getent(lab, node_a, "web.example.test")
    for *_, pod_b in OVERLAY_PODS:
        dig(lab, node_a, f"@{pod_b}", "+tries=1", "+timeout=2", "db.example.test")
    dig(lab, node_a, f"@{OVERLAY_PODS[1][4]}", "+tries=1", "+timeout=2",
        "missing.example.test")
    dig(lab, node_a, f"@{OVERLAY_PODS[1][4]}", "+tries=1", "+timeout=2", "api.example.test")
    cap.stop()


# 23 -----------------------------------------------------------------------------------

#: The Open vSwitch overlay sample: two "nodes" on an underlay veth pair, each running its
#: own ovsdb-server and ovs-vswitchd with the userspace datapath (``datapath_type=netdev``),
#: which implements Geneve and GRE tunnel ports itself: the recording machine's kernel has
#: no geneve, ipip, gre or gretap devices. Each node has ``br-phy`` (the underlay veth as a
#: port, the node's underlay address on the bridge's own interface, where the userspace
#: datapath sends and receives its tunnels) and one bridge per tunnel with a pod's veth and
#: the tunnel port, as OVN-Kubernetes and Antrea join pods on different nodes. Only the
#: underlay is captured: every DNS message in it is inside Geneve or GRE.
OVS_NODE_A4, OVS_NODE_B4 = "10.250.52.1", "10.250.52.2"
OVS_TUNNELS = (
    # (OVS interface type, the pods' interface, key (Geneve VNI, GRE key), pod A's
    # address, pod B's address (dnsmasq))
    ("geneve", "eth0", "5001", "10.250.62.10", "10.250.62.53"),
    ("gre", "eth1", "5002", "10.250.63.10", "10.250.63.53"),
)
#: What the underlay capture keeps: Geneve and GRE.
OVS_FILTER = "udp port 6081 or ip proto 47"
#: The IP-in-IP sample's tunnel endpoints are TUN devices.
TUN_DEVICE = "/dev/net/tun"
#: Open vSwitch's programs (package openvswitch-switch), and ethtool for the pods' veths.
OVS_PROGRAMS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ethtool")
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


def ovs_node(lab: Lab, ns: str, role: str) -> Callable[..., None]:
    """ovsdb-server and ovs-vswitchd of one node, started inside its namespace with their
    database, sockets and logs in the sample's scratch directory (never the system's
    /var/run/openvswitch); they stop with the lab. Returns ``ovs-vsctl`` for that node."""
    d = lab.workdir / f"ovs-{role}"
    d.mkdir()
    db, sock = d / "conf.db", d / "db.sock"
    run(["ovsdb-tool", "create", str(db), str(OVS_SCHEMA)], what="ovsdb-tool create")
    # OVS_RUNDIR: the bridges' management sockets go there too.
    env = ["env", f"OVS_RUNDIR={d}", f"OVS_LOGDIR={d}", f"OVS_DBDIR={d}"]
    lab.spawn(ns, [*env, "ovsdb-server", str(db), f"--remote=punix:{sock}",
                   f"--unixctl={d / 'ovsdb-server.ctl'}"], f"ovsdb-server-{role}")
    deadline = time.monotonic() + READY_TIMEOUT
    while not sock.exists():
        if time.monotonic() > deadline:
            raise SampleError(f"ovsdb-server in {ns} made no socket within "
                              f"{READY_TIMEOUT:.0f} s")
        time.sleep(0.05)

    def vsctl(*args: str) -> None:
        # Without --no-wait each change waits until ovs-vswitchd has applied it.
        lab.exec(ns, ["ovs-vsctl", f"--db=unix:{sock}", f"--timeout={COMMAND_TIMEOUT:.0f}",
                      *args], what="ovs-vsctl")

    vsctl("--no-wait", "init")
    lab.spawn(ns, [*env, "ovs-vswitchd", f"unix:{sock}",
                   f"--unixctl={d / 'ovs-vswitchd.ctl'}"], f"ovs-vswitchd-{role}")
    return vsctl


def check_ovs_overlay(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    a, b = re.escape(OVS_NODE_A4), re.escape(OVS_NODE_B4)
    for kind, _ifname, key, pod_a, pod_b in OVS_TUNNELS:
        header = (rf"{b}\.6081: Geneve, .*vni {int(key):#x}:" if kind == "geneve" else
                  rf"{b}: GREv0, key={int(key):#x}, length \d+:")
        back = header.replace(b, a)
        c.expect(rf"IP {a}(\.\d+)? > {header} IP {re.escape(pod_a)}\.\d+ > "
                 rf"{re.escape(pod_b)}\.53: ", 2, 6, f"queries inside {kind}")
        c.expect(rf"IP {b}(\.\d+)? > {back} IP {re.escape(pod_b)}\.53 > "
                 rf"{re.escape(pod_a)}\.\d+: ", 2, 6, f"answers inside {kind}")
    c.expect(r"NXDomain", 1, 2, "the NXDOMAIN answer")
    c.expect(r"^\d+\.\d+ IP \S+ > \S+\.53: ", 0, 0, "DNS outside the tunnels")


@sample("overlay-geneve-gre-underlay", check_ovs_overlay, needs=OVS_PROGRAMS)
def make_ovs_overlay(ctx: Context) -> None:
    lab = ctx.lab
    pod_a, node_a = lab.ns("pod-a"), lab.ns("node-a")
    node_b, pod_b = lab.ns("node-b"), lab.ns("pod-b")
    lab.link(node_a, "eth0", node_b, "eth0")
    for node, pod, local, remote, role in ((node_a, pod_a, OVS_NODE_A4, OVS_NODE_B4, "a"),
                                           (node_b, pod_b, OVS_NODE_B4, OVS_NODE_A4, "b")):
        vsctl = ovs_node(lab, node, role)
        run(["ip", "-n", node, "link", "set", "eth0", "up"])
        vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
              "--", "add-port", "br-phy", "eth0")
        lab.addr(node, "br-phy", f"{local}/24")
        for kind, ifname, key, addr_a, addr_b in OVS_TUNNELS:
            br, port = f"br-{kind}", f"pod-{kind}"
            lab.link(pod, ifname, node, port)
            run(["ip", "-n", node, "link", "set", port, "up"])
            lab.addr(pod, ifname, f"{addr_a if role == 'a' else addr_b}/24")
            # The userspace datapath reads the pod's frames from an AF_PACKET socket and
            # does not complete a UDP checksum the veth left to offload: the far pod's
            # kernel would drop every query. Open vSwitch's documentation turns it off.
            lab.exec(pod, ["ethtool", "-K", ifname, "tx", "off"], what="ethtool")
            vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
                  "--", "add-port", br, port,
                  "--", "add-port", br, f"tun-{kind}", "--", "set", "interface",
                  f"tun-{kind}", f"type={kind}", f"options:remote_ip={remote}",
                  f"options:local_ip={local}", f"options:key={key}")
    dnsmasq(lab, pod_b, [addr_b for *_, addr_b in OVS_TUNNELS])
    # A lookup through each tunnel before the capture: the nodes learn each other's MAC
    # address (the userspace datapath drops the packet that sends its first ARP request).
    for *_, addr_b in OVS_TUNNELS:
        lab.wait_dns(pod_a, addr_b)
    geneve_b, gre_b = (addr_b for *_, addr_b in OVS_TUNNELS)
    lab.resolv_conf(pod_a, f"nameserver {geneve_b}\noptions attempts:1 timeout:2\n")
    cap = lab.tcpdump(node_a, "eth0", ctx.pcap, bpf=OVS_FILTER)
    # glibc over Geneve (A and AAAA), dig over both.
    getent(lab, pod_a, "web.example.test")
    for addr_b in (geneve_b, gre_b):
        dig(lab, pod_a, f"@{addr_b}", "+tries=1", "+timeout=2", "db.example.test")
    dig(lab, pod_a, f"@{geneve_b}", "+tries=1", "+timeout=2", "missing.example.test")
    dig(lab, pod_a, f"@{gre_b}", "+tries=1", "+timeout=2", "api.example.test")
    cap.stop()


# 24 -----------------------------------------------------------------------------------

#: The ERSPAN sample: a node's Open vSwitch (userspace datapath, as in the sample above)
#: mirrors two client pods' ports to a collector with ERSPAN, the way a switch or a
#: node mirrors traffic to an analysis host; only the collector's link is captured. One
#: pod's port goes out as ERSPAN type II (``erspan_ver=1``), the other's as type III
#: (``erspan_ver=2``). ERSPAN has a node of its own: in one ovs-vswitchd, GRE and ERSPAN
#: ports both listen for IP protocol 47 on every local address, and the first one's
#: wins, so the GRE node of the sample above cannot also receive ERSPAN.
MIRROR_NODE4, COLLECTOR4 = "10.250.53.1", "10.250.53.2"
MIRROR_SERVER4 = "10.250.64.53"
MIRROR_CLIENTS = (
    # (the pod's role, its address, ERSPAN version (1: type II, 2: type III), session ID)
    ("pod-a", "10.250.64.10", "1", "101"),
    ("pod-c", "10.250.64.12", "2", "102"),
)
#: What the collector's capture keeps: GRE, which ERSPAN is carried in.
MIRROR_FILTER = "ip proto 47"


def check_erspan_mirror(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    node, collector = re.escape(MIRROR_NODE4), re.escape(COLLECTOR4)
    server = re.escape(MIRROR_SERVER4)
    # tcpdump 4.99 prints ERSPAN (0x88be, 0x22eb) as an unknown GRE protocol: a query and
    # its answer for each of the three lookups of each pod, and what else the port saw.
    for proto in ("0x88be", "0x22eb"):
        c.expect(rf"IP {node} > {collector}: GREv0, .*gre-proto-{proto}", 6, 12,
                 f"ERSPAN ({proto}) frames from the node to the collector")
    c.expect(rf"IP {collector} > {node}: ", 0, 0, "anything sent back to the node")
    c.expect(rf"> {server}\.53: ", 0, 0, "DNS outside ERSPAN")
    # ... so the names asked are looked for in the mirrored bytes themselves.
    data = c.path.read_bytes()
    for name in ("web.example.test", "missing.example.test", "db.example.test",
                 "api.example.test"):
        if bytes.fromhex(qname_hex(name)) not in data:
            raise SampleError(f"{c.path.name}: no {name} inside the mirrored frames")


@sample("erspan-mirror-collector", check_erspan_mirror, needs=OVS_PROGRAMS)
def make_erspan_mirror(ctx: Context) -> None:
    lab = ctx.lab
    node, server, collector = lab.ns("node"), lab.ns("pod-b"), lab.ns("collector")
    lab.link(node, "eth0", collector, "eth0")
    lab.addr(collector, "eth0", f"{COLLECTOR4}/24")
    # The collector only records: no GRE handler, so no ICMP back for the frames.
    lab.iptables(collector, "-A", "INPUT", "-p", "gre", "-j", "DROP")
    vsctl = ovs_node(lab, node, "node")
    run(["ip", "-n", node, "link", "set", "eth0", "up"])
    vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
          "--", "add-port", "br-phy", "eth0")
    lab.addr(node, "br-phy", f"{MIRROR_NODE4}/24")
    vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
    pods = [(server, "pod-b", MIRROR_SERVER4, None, None)]
    pods += [(lab.ns(role), role, addr, ver, sid) for role, addr, ver, sid in MIRROR_CLIENTS]
    for ns, port, addr, ver, sid in pods:
        lab.link(ns, "eth0", node, port)
        run(["ip", "-n", node, "link", "set", port, "up"])
        lab.addr(ns, "eth0", f"{addr}/24")
        lab.exec(ns, ["ethtool", "-K", "eth0", "tx", "off"], what="ethtool")  # as above
        vsctl("add-port", "br-int", port)
        if ver is None:
            continue
        # The pod's port, both directions, mirrored to an ERSPAN port of its own.
        tun = f"erspan-{port}"
        vsctl("add-port", "br-int", tun, "--", "set", "interface", tun, "type=erspan",
              f"options:remote_ip={COLLECTOR4}", f"options:local_ip={MIRROR_NODE4}",
              f"options:key={sid}", f"options:erspan_ver={ver}",
              *(["options:erspan_idx=1"] if ver == "1" else
                ["options:erspan_dir=0", "options:erspan_hwid=1"]),
              "--", "--id=@p", "get", "port", port, "--", "--id=@o", "get", "port", tun,
              "--", "--id=@m", "create", "mirror", f"name=m-{port}", "select-src-port=@p",
              "select-dst-port=@p", "output-port=@o",
              "--", "add", "bridge", "br-int", "mirrors", "@m")
    dnsmasq(lab, server, [MIRROR_SERVER4])
    clients = pods[1:]
    for ns, *_ in clients:  # each pod has reached the server (ARP) before the capture
        lab.wait_dns(ns, MIRROR_SERVER4)
    for ns, *_ in clients:
        lab.resolv_conf(ns, f"nameserver {MIRROR_SERVER4}\noptions attempts:1 timeout:2\n")
    cap = lab.tcpdump(collector, "eth0", ctx.pcap, bpf=MIRROR_FILTER)
    (pod_a, *_), (pod_c, *_) = clients
    getent(lab, pod_a, "web.example.test")
    dig(lab, pod_a, "+tries=1", "+timeout=2", "missing.example.test")
    getent(lab, pod_c, "db.example.test")
    dig(lab, pod_c, "+tries=1", "+timeout=2", "api.example.test")
    cap.stop()


# 25 -----------------------------------------------------------------------------------

#: The IP-in-IP sample: pod-a - node-a == node-b - pod-b, the nodes on an underlay veth
#: pair with IPv4 and IPv6 addresses, each node routing the far pod's prefixes into a TUN
#: device. The recording machine's kernel has no ipip, sit or ip6tnl devices and Open
#: vSwitch has no IP-in-IP port, so the tunnel endpoints are this script (``--ipip``, see
#: ipip_main): it reads each inner packet from the TUN device and sends it on a raw IP
#: socket of protocol 4 (IPv4 inside) or 41 (IPv6 inside) to the far node, the kernel
#: writing the outer header; what arrives on those sockets goes into the TUN device. Inner
#: packets of pod-b's second pair of addresses cross the IPv6 underlay, the others the
#: IPv4 one: the four forms ipip, ip6in4, ip4in6 and ip6in6. Only the underlay is captured.
IPIP_NODE_A4, IPIP_NODE_B4 = "10.250.54.1", "10.250.54.2"
IPIP_NODE_A6, IPIP_NODE_B6 = "fd00:250:54::1", "fd00:250:54::2"
#: pod-a's addresses, and its node's on the pod's veth.
IPIP_POD_A = ("10.250.65.10", "fd00:250:65::10")
IPIP_GW_A = ("10.250.65.1", "fd00:250:65::1")
#: pod-b (dnsmasq): over the IPv4 underlay, then over the IPv6 underlay; its node's side.
IPIP_POD_B = ("10.250.66.53", "fd00:250:66::53")
IPIP_POD_B_OVER6 = ("10.250.67.53", "fd00:250:67::53")
IPIP_GW_B = ("10.250.66.1", "fd00:250:66::1")
#: The pods' prefixes, and the ones whose packets take the IPv6 underlay.
IPIP_PREFIXES_A = ("10.250.65.0/24", "fd00:250:65::/64")
IPIP_PREFIXES_B = ("10.250.66.0/24", "fd00:250:66::/64", "10.250.67.0/24", "fd00:250:67::/64")
IPIP_OVER6 = ("10.250.67.0/24", "fd00:250:67::/64")
#: What the underlay capture keeps: IPv4 and IPv6 inside IPv4 and IPv6.
IPIP_FILTER = "ip proto 4 or ip proto 41 or ip6 proto 4 or ip6 proto 41"
#: The MTU of the TUN devices: the underlay's 1500 less an outer IPv6 header.
IPIP_MTU = 1460


def check_ipip(c: Capture) -> None:
    c.expect_linktype("EN10MB")
    a4, b4 = re.escape(IPIP_NODE_A4), re.escape(IPIP_NODE_B4)
    a6, b6 = re.escape(IPIP_NODE_A6), re.escape(IPIP_NODE_B6)
    for outer, (src, dst), inner, (pod_a, pod_b), kind in (
            ("IP", (a4, b4), "IP", (IPIP_POD_A[0], IPIP_POD_B[0]), "ipip"),
            ("IP", (a4, b4), "IP6", (IPIP_POD_A[1], IPIP_POD_B[1]), "ip6in4"),
            ("IP6", (a6, b6), "IP", (IPIP_POD_A[0], IPIP_POD_B_OVER6[0]), "ip4in6"),
            ("IP6", (a6, b6), "IP6", (IPIP_POD_A[1], IPIP_POD_B_OVER6[1]), "ip6in6")):
        pa, pb = re.escape(pod_a), re.escape(pod_b)
        c.expect(rf" {outer} {src} > {dst}: {inner} {pa}\.\d+ > {pb}\.53: ", 1, 6,
                 f"queries inside {kind}")
        c.expect(rf" {outer} {dst} > {src}: {inner} {pb}\.53 > {pa}\.\d+: ", 1, 6,
                 f"answers inside {kind}")
    c.expect(r"NXDomain", 1, 2, "the NXDOMAIN answer")
    c.expect(r"^\d+\.\d+ IP6? \S+ > \S+\.53: ", 0, 0, "DNS outside the tunnels")


def ipip_node(lab: Lab, ns: str, role: str, local: tuple[str, str], remote: tuple[str, str],
              far: tuple[str, ...]) -> None:
    """The tunnel endpoint of one node: this script with ``--ipip`` opens the TUN device
    ``ipip0`` in the node's namespace; the node routes the far pod's prefixes into it."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--ipip", "ipip0", *local,
            *remote, ",".join(IPIP_OVER6)]
    proc = lab.spawn(ns, argv, f"ipip-{role}", stdout=subprocess.PIPE)
    read_until(proc, proc.stdout, "ready", READY_TIMEOUT, f"IP-in-IP forwarder in {ns}")
    run(["ip", "-n", ns, "link", "set", "ipip0", "mtu", str(IPIP_MTU), "up"])
    for prefix in far:
        run(["ip", "-n", ns, "route", "add", prefix, "dev", "ipip0"])
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        lab.exec(ns, ["sysctl", "-q", "-w", f"{key}=1"])


@sample("overlay-ipip-underlay", check_ipip, needs=(TUN_DEVICE,))
def make_ipip(ctx: Context) -> None:
    lab = ctx.lab
    pod_a, node_a = lab.ns("pod-a"), lab.ns("node-a")
    node_b, pod_b = lab.ns("node-b"), lab.ns("pod-b")
    lab.link(node_a, "eth0", node_b, "eth0")
    lab.addr(node_a, "eth0", f"{IPIP_NODE_A4}/24", f"{IPIP_NODE_A6}/64")
    lab.addr(node_b, "eth0", f"{IPIP_NODE_B4}/24", f"{IPIP_NODE_B6}/64")
    lab.link(pod_a, "eth0", node_a, "vethpod0")
    lab.addr(pod_a, "eth0", f"{IPIP_POD_A[0]}/24", f"{IPIP_POD_A[1]}/64")
    lab.addr(node_a, "vethpod0", f"{IPIP_GW_A[0]}/24", f"{IPIP_GW_A[1]}/64")
    lab.link(pod_b, "eth0", node_b, "vethpod0")
    lab.addr(pod_b, "eth0", f"{IPIP_POD_B[0]}/24", f"{IPIP_POD_B[1]}/64",
             f"{IPIP_POD_B_OVER6[0]}/24", f"{IPIP_POD_B_OVER6[1]}/64")
    lab.addr(node_b, "vethpod0", f"{IPIP_GW_B[0]}/24", f"{IPIP_GW_B[1]}/64",
             "10.250.67.1/24", "fd00:250:67::1/64")
    for prefix in IPIP_PREFIXES_B:
        lab.route(pod_a, prefix, IPIP_GW_A[":" in prefix])
    for prefix in IPIP_PREFIXES_A:
        lab.route(pod_b, prefix, IPIP_GW_B[":" in prefix])
    ipip_node(lab, node_a, "a", (IPIP_NODE_A4, IPIP_NODE_A6), (IPIP_NODE_B4, IPIP_NODE_B6),
              IPIP_PREFIXES_B)
    ipip_node(lab, node_b, "b", (IPIP_NODE_B4, IPIP_NODE_B6), (IPIP_NODE_A4, IPIP_NODE_A6),
              IPIP_PREFIXES_A)
    servers = [*IPIP_POD_B, *IPIP_POD_B_OVER6]
    dnsmasq(lab, pod_b, servers)
    for addr in servers:  # through each tunnel before the capture: the nodes have met
        lab.wait_dns(pod_a, addr)
    lab.resolv_conf(pod_a, f"nameserver {IPIP_POD_B[0]}\noptions attempts:1 timeout:2\n")
    cap = lab.tcpdump(node_a, "eth0", ctx.pcap, bpf=IPIP_FILTER)
    # glibc over ipip (A and AAAA), dig over each of the four forms.
    getent(lab, pod_a, "web.example.test")
    dig(lab, pod_a, f"@{IPIP_POD_B[0]}", "+tries=1", "+timeout=2", "missing.example.test")
    dig(lab, pod_a, f"@{IPIP_POD_B[1]}", "+tries=1", "+timeout=2", "db.example.test")
    dig(lab, pod_a, f"@{IPIP_POD_B_OVER6[0]}", "+tries=1", "+timeout=2", "api.example.test")
    dig(lab, pod_a, f"@{IPIP_POD_B_OVER6[1]}", "+tries=1", "+timeout=2", "db.example.test",
        "AAAA")
    cap.stop()


# --------------------------------------------------------------------------------------
# The IP-in-IP forwarder (a separate process, started inside a node namespace)

#: From linux/if_tun.h: the ioctl that makes the TUN device, and its flags (IP packets,
#: no packet information header in front of them).
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
IPPROTO_IPIP, IPPROTO_IPV6 = 4, 41


def ipip_main(ifname: str, local4: str, local6: str, remote4: str, remote6: str,
              over6: str, lifetime: float = 120.0, max_packets: int = 10_000) -> int:
    """Forward between the TUN device ``ifname`` and the far node: an inner packet read
    from the TUN device goes out on the raw socket of its protocol (4: IPv4, 41: IPv6) to
    ``remote6`` when its source or destination is in one of the ``over6`` prefixes
    (comma-separated), else to ``remote4``; the kernel writes the outer header. A packet
    from the far node on one of those sockets goes into the TUN device without its outer
    header (an IPv4 raw socket returns it, an IPv6 one does not). Multicast is not carried.
    Ends on SIGTERM, after ``lifetime`` seconds, or after ``max_packets`` packets."""
    import fcntl
    import ipaddress

    stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH22x", ifname.encode(), IFF_TUN | IFF_NO_PI))
    nets = [ipaddress.ip_network(p) for p in over6.split(",") if p]
    socks: dict[tuple[int, int], socket.socket] = {}
    for fam, local in ((socket.AF_INET, local4), (socket.AF_INET6, local6)):
        for proto in (IPPROTO_IPIP, IPPROTO_IPV6):
            s = socket.socket(fam, socket.SOCK_RAW, proto)
            s.bind((local, 0))
            socks[fam, proto] = s
    remote = {socket.AF_INET: remote4, socket.AF_INET6: remote6}

    def addresses(pkt: bytes):
        if pkt[0] >> 4 == 4 and len(pkt) >= 20:
            return ipaddress.IPv4Address(pkt[12:16]), ipaddress.IPv4Address(pkt[16:20])
        if pkt[0] >> 4 == 6 and len(pkt) >= 40:
            return ipaddress.IPv6Address(pkt[8:24]), ipaddress.IPv6Address(pkt[24:40])
        return None

    print("ready", flush=True)
    deadline = time.monotonic() + lifetime
    handled = 0
    while not stop and time.monotonic() < deadline and handled < max_packets:
        ready, _, _ = select.select([tun, *socks.values()], [], [], 0.2)
        handled += len(ready)
        for fd in ready:
            if fd == tun:
                pkt = os.read(tun, 65535)
                addrs = addresses(pkt) if pkt else None
                if addrs is None or addrs[1].is_multicast:
                    continue
                fam = (socket.AF_INET6 if any(a in n for a in addrs for n in nets
                                              if a.version == n.version)
                       else socket.AF_INET)
                proto = IPPROTO_IPIP if addrs[0].version == 4 else IPPROTO_IPV6
                try:
                    socks[fam, proto].sendto(pkt, (remote[fam], 0))
                except OSError as e:
                    print(f"send to {remote[fam]}: {e}", file=sys.stderr, flush=True)
                continue
            data, peer = fd.recvfrom(65535)
            if peer[0] != remote[fd.family]:
                continue
            if fd.family == socket.AF_INET:  # the outer IPv4 header comes with it
                data = data[(data[0] & 0x0F) * 4:]
            if data:
                try:
                    os.write(tun, data)
                except OSError as e:  # not an IP packet the TUN device takes
                    print(f"write to {ifname}: {e}", file=sys.stderr, flush=True)
    return 0


# --------------------------------------------------------------------------------------
# The relay (a separate process, started inside the server namespace)


def relay_main(listen: str, upstream: str, delay: float, match: str,
               lifetime: float = 120.0, max_queries: int = 200) -> int:
    """Forward each UDP query on listen:53 to upstream:53; hold answers for names that
    have a label equal to ``match`` (or for every name, when ``match`` is ``*``) for
    ``delay`` seconds before sending them back."""
    fam = socket.AF_INET6 if ":" in listen else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    lock = threading.Lock()

    def labels(msg: bytes) -> list[str]:
        out: list[str] = []
        i = 12
        while i < len(msg) and msg[i] and len(out) < 64:
            n = msg[i]
            out.append(msg[i + 1:i + 1 + n].decode("ascii", "replace").lower())
            i += 1 + n
        return out

    def handle(query: bytes, peer) -> None:
        up = socket.socket(socket.AF_INET6 if ":" in upstream else socket.AF_INET,
                           socket.SOCK_DGRAM)
        up.settimeout(2.0)
        try:
            up.sendto(query, (upstream, 53))
            answer = up.recv(65535)
        except OSError:
            return
        finally:
            up.close()
        if match == "*" or match in labels(query):
            time.sleep(delay)
        with lock:
            sock.sendto(answer, peer)

    print("ready", flush=True)
    deadline = time.monotonic() + lifetime
    handled = 0
    while time.monotonic() < deadline and handled < max_queries:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if not ready:
            continue
        query, peer = sock.recvfrom(65535)
        handled += 1
        threading.Thread(target=handle, args=(query, peer), daemon=True).start()
    time.sleep(min(delay, 5.0) + 0.5)
    return 0


# --------------------------------------------------------------------------------------


def build_musl_tool(workdir: Path) -> Path:
    out = workdir / "musl_lookup"
    run(["musl-gcc", "-static", "-O2", "-Wall", "-o", str(out), str(MUSL_SOURCE)],
        timeout=120, what="musl-gcc")
    return out


def make_one(s: Sample, index: int, attempt: int, out_dir: Path, workdir: Path,
             musl_tool: Path | None) -> Capture:
    scratch = workdir / f"{s.name}.{attempt}"
    scratch.mkdir()
    tmp_pcap = scratch / f"{s.name}.pcap"
    lab = Lab(tag=f"{index}-{attempt}", workdir=scratch)
    ctx = Context(lab, tmp_pcap, musl_tool)
    try:
        s.make(ctx)
    except BaseException:
        for logf in sorted(scratch.glob("*.log")):
            tail = logf.read_text(errors="replace").strip().splitlines()[-15:]
            if tail:
                print(f"  --- {logf.name} (last lines)\n  " + "\n  ".join(tail),
                      file=sys.stderr)
        raise
    finally:
        lab.close()
    os.chmod(tmp_pcap, 0o600)
    cap = Capture.read(tmp_pcap)
    if not cap.lines:
        raise SampleError(f"{s.name}: the capture is empty")
    try:
        s.check(cap)
    except SampleError:
        print(f"  --- tcpdump -nn -r {s.name}.pcap ({len(cap.lines)} packets)\n  "
              + "\n  ".join(line[:200] for line in cap.lines[:80]), file=sys.stderr)
        raise
    for name, path in ctx.extras.items():
        if not path.exists():
            raise SampleError(f"{s.name}: {name} was not written")
    final = out_dir / f"{s.name}.pcap"
    shutil.copyfile(tmp_pcap, final)
    os.chmod(final, 0o600)
    for name, path in ctx.extras.items():
        shutil.copyfile(path, out_dir / name)
        os.chmod(out_dir / name, 0o600)
    cap.path = final
    return cap


def main(argv: list[str] | None = None) -> int:
    global VERBOSE
    names = [s.name for s in SAMPLES]
    ap = argparse.ArgumentParser(
        description="Record the sample DNS captures from real servers and clients "
                    "in throwaway network namespaces (needs root).")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="make only this capture (repeatable, or comma-separated): "
                         + ", ".join(names))
    ap.add_argument("--out", type=Path, default=HERE,
                    help="directory for the .pcap files (default: %(default)s)")
    ap.add_argument("--list", action="store_true", help="list the capture names and exit")
    ap.add_argument("--verbose", "-v", action="store_true",
                    help="show every command and the clients' output")
    ap.add_argument("--relay", nargs=4, metavar=("LISTEN", "UPSTREAM", "DELAY", "MATCH"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--ipip", nargs=6, help=argparse.SUPPRESS,
                    metavar=("TUN", "LOCAL4", "LOCAL6", "REMOTE4", "REMOTE6", "OVER6"))
    args = ap.parse_args(argv)

    if args.relay:
        listen, upstream, delay, match = args.relay
        return relay_main(listen, upstream, float(delay), match)
    if args.ipip:
        return ipip_main(*args.ipip)
    if args.list:
        print("\n".join(names))
        return 0
    if os.geteuid() != 0:
        print("make_samples.py: must run as root (it creates network namespaces)",
              file=sys.stderr)
        return 1
    VERBOSE = args.verbose

    wanted = names
    if args.only:
        wanted = [n.strip().removesuffix(".pcap") for item in args.only
                  for n in item.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            ap.error(f"unknown capture(s): {', '.join(unknown)} (known: {', '.join(names)})")
    selected = [s for s in SAMPLES if s.name in wanted]
    missing = [t for t in MAIN_PROGRAMS if shutil.which(t) is None]
    if any(s.needs_musl for s in selected) and shutil.which("musl-gcc") is None:
        missing.append("musl-gcc")
    skipped: list[str] = []
    for s in list(selected):
        absent = [t for t in s.needs if not present(t)]
        if not absent:
            continue
        if args.only:  # asked for by name: an error
            print(f"make_samples.py: {s.name} needs what is missing here: {', '.join(absent)}",
                  file=sys.stderr)
            missing += [t for t in absent if t not in missing]
        else:  # a run of every sample makes the others
            print(f"skipping {s.name}: missing {', '.join(absent)}",
                  file=sys.stderr, flush=True)
            selected.remove(s)
            skipped.append(s.name)
    if missing:
        print(f"make_samples.py: missing: {', '.join(missing)}", file=sys.stderr)
        return 1

    def on_sigterm(signum, frame):  # clean up (finally blocks) on kill PID, too
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    os.umask(0o077)
    failures = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pcapdns-samples-") as tmp:
        workdir = Path(tmp)
        musl_tool = build_musl_tool(workdir) if any(s.needs_musl for s in selected) else None
        for index, s in enumerate(selected):
            t0 = time.monotonic()
            print(f"{s.name} ...", flush=True)
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    cap = make_one(s, index, attempt, out_dir, workdir, musl_tool)
                    break
                except SampleError as e:
                    if attempt == ATTEMPTS:
                        failures += 1
                        print(f"FAILED {s.name} ({ATTEMPTS} attempts): {e}", file=sys.stderr,
                              flush=True)
                    else:
                        print(f"  attempt {attempt} did not show it, recording again: {e}",
                              flush=True)
            else:
                continue
            size = cap.path.stat().st_size
            print(f"  made {cap.path} ({len(cap.lines)} packets, {size} bytes, "
                  f"{cap.linktype}, {time.monotonic() - t0:.1f} s)", flush=True)
    print(f"{len(selected) - failures}/{len(selected)} captures made in "
          f"{time.monotonic() - started:.0f} s"
          + (f"; skipped for what is missing here: {', '.join(skipped)}" if skipped else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
