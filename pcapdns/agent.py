#!/usr/bin/env python3
"""pcapdns capture agent: record a node's or a pod's DNS traffic into a tcpdump ring.

This one file is the whole agent. It imports only the standard library, so it can be
copied to a node that has nothing but python3 and tcpdump and run there:

    sudo python3 agent.py --pid 4242 --duration 10m        # a pod's network namespace
    sudo python3 agent.py --size-mb 50 --files 40          # the node's own namespace

In the full package the same code is ``pcapdns capture``. It stays compatible with
Python 3.8, the oldest python3 still found on node images, which is why the records below
are ``frozen`` but not ``slots`` dataclasses (slots need 3.10).

What it does, in order: check the options, tcpdump, privileges, the target namespace and
the free disk space; create a private capture directory (0700); run tcpdump in the target's
network namespace with a ``-C``/``-W`` ring whose files are 0600; show a status line on a
terminal; on SIGINT/SIGTERM/SIGHUP or ``--duration`` stop tcpdump so that every file ends
on a whole record; write ``capture.json`` beside the ring (format in capture/README.md);
optionally run ``pcapdns report`` on the ring.

Exit status: 0 the capture ran and was stopped (and --analyze wrote its report); 1 the
capture is kept but tcpdump stopped by itself or had to be killed, or --analyze wrote no
report; 2 nothing was captured (bad option, missing tool or privilege, no disk space).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import errno
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

FORMAT = "pcapdns.capture/1"
#: tcpdump's ring files are RING_PREFIX0 .. RING_PREFIX<N-1> (zero-padded to N's width).
#: The ".pcap" stem matters: Ubuntu's AppArmor profile for tcpdump lets it write only
#: files named like *.pcap and *.pcap<digits>.
RING_PREFIX = "dns.pcap"
META_NAME = "capture.json"
REPORT_NAME = "report.html"
#: --save-pods: kubectl's listings of pods and Services, read by the analysis to name
#: addresses (``pcapdns analyze --pods``).
PODS_NAME = "pods.json"
SERVICES_NAME = "services.json"
#: How long one kubectl call may take (an API server far away, a large cluster), and the
#: largest listing kept (the analysis reads at most 1 GiB a file).
KUBECTL_TIMEOUT = 60.0
KUBECTL_MAX_BYTES = 1 << 30
#: The analysis document --analyze writes beside the report, for ``pcapdns merge``.
ANALYSIS_NAME = "analysis.json"
#: tcpdump's -C counts millions of bytes; a file grows past it by at most one record.
MB = 1_000_000
MAX_RECORD = 262_144 + 16
#: How long tcpdump may take to start listening, and to stop after SIGINT.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
#: tcpdump's packet buffer timeout (its pcap_set_timeout is 1000 ms): the kernel hands
#: over a partly filled block at least this often, and a block not yet handed over when
#: tcpdump stops is lost. So a stop waits this long (plus a margin) first.
BLOCK_TIMEOUT = 1.0
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
CAP_SETGID, CAP_SETUID, CAP_NET_RAW, CAP_SYS_PTRACE, CAP_SYS_ADMIN = 6, 7, 13, 19, 21
#: Where tcpdump may live when PATH (of a non-root shell, say) lacks the sbin directories.
EXTRA_PATH = "/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin"


class AgentError(Exception):
    """A problem that stops the agent: one line saying what is wrong and what to do."""


# --------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class Options:
    """The validated command line."""

    interface: str
    #: The BPF expression given to tcpdump: dns_filter(ports), or --filter.
    bpf: str
    #: The DNS ports of the default filter (53 and each --port); empty with --filter.
    ports: tuple[int, ...]
    size_mb: int
    files: int
    buffer_kb: int
    #: Seconds before the capture stops by itself; None runs until a signal.
    duration: float | None
    pid: int | None
    netns: str | None
    directory: str | None
    force: bool
    keep_free: float
    analyze: bool
    #: Save kubectl's pods and Services listings beside the ring.
    save_pods: bool = False


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h`` -> seconds.

    Raises:
        argparse.ArgumentTypeError: not a positive duration.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90, 90s, 15m, 2h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return convert


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage") from None
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"{text} is not in 0..99 %")
    return value


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Record DNS traffic of this node or of one pod into a tcpdump ring, "
                    "with the metadata the analysis needs (capture.json). Runs in the "
                    "foreground; Ctrl-C, SIGTERM or --duration stop it cleanly.",
    )
    what = p.add_argument_group("what to capture")
    what.add_argument("-i", "--interface", default="any",
                      help="interface inside the target namespace (default: any)")
    what.add_argument("--port", type=_int_range(1, 65535), action="append", default=[],
                      metavar="N", help="also capture this port besides 53 (repeatable)")
    what.add_argument("--filter", metavar="EXPR",
                      help="a BPF expression replacing the default: DNS on port 53 and "
                           "each --port, with its IP fragments and the ICMP errors that "
                           "quote it (quote EXPR as one argument)")
    target = what.add_mutually_exclusive_group()
    target.add_argument("--pid", type=_int_range(1, 2**22), metavar="PID",
                        help="capture in the network namespace of this process (a pod's "
                             "container), as nsenter -t PID -n does")
    target.add_argument("--netns", metavar="NAME|PATH",
                        help="capture in this network namespace: a name from 'ip netns "
                             "list' or a path such as /run/netns/NAME")
    ring = p.add_argument_group("the ring")
    ring.add_argument("--size-mb", type=_int_range(1, 100_000), default=20, metavar="MB",
                      help="size of each ring file in millions of bytes, tcpdump -C "
                           "(default: 20)")
    ring.add_argument("--files", type=_int_range(1, 100_000), default=200, metavar="N",
                      help="number of ring files, tcpdump -W (default: 200)")
    ring.add_argument("--duration", type=parse_duration, metavar="TIME",
                      help="stop by itself after this long: 90, 90s, 15m, 2h "
                           "(default: run until Ctrl-C or SIGTERM)")
    ring.add_argument("--buffer-kb", type=_int_range(64, 4_194_304), default=8192,
                      metavar="KIB", help="kernel capture buffer in KiB, tcpdump -B; a "
                                          "bigger one drops fewer packets in bursts "
                                          "(default: 8192)")
    out = p.add_argument_group("output")
    out.add_argument("--dir", dest="directory", metavar="DIR",
                     help="directory for the ring and capture.json, created 0700 "
                          "(default: a new pcapdns-capture-<UTC time> in the current "
                          "directory)")
    out.add_argument("--force", action="store_true",
                     help="reuse an existing --dir, deleting the ring and capture.json "
                          "of the earlier capture in it; only a directory of the user "
                          "running the agent that no one else can write in")
    out.add_argument("--keep-free", type=_percent, default=10.0, metavar="PCT",
                     help="refuse to start unless this share of the filesystem stays free "
                          "with the ring full (default: 10)")
    out.add_argument("--analyze", action="store_true",
                     help="when the capture stops, write DIR/report.html and the JSON "
                          "document DIR/analysis.json (for 'pcapdns merge') with "
                          "'pcapdns report' (needs the pcapdns package)")
    out.add_argument("--save-pods", action="store_true",
                     help=f"save 'kubectl get pods -A -o json' and 'kubectl get svc -A -o "
                          f"json' beside the ring ({PODS_NAME}, {SERVICES_NAME}), so that the "
                          "analysis names pods; needs kubectl and RBAC to list pods and "
                          "services (capture/README.md). Without them: a warning, and the "
                          "capture goes on")
    return p


def dns_filter(ports: tuple[int, ...]) -> str:
    """The default BPF expression: DNS over UDP and TCP on ``ports``, and the packets
    that belong to it without carrying a port where libpcap's ``port`` looks for one.

    - ``port N``: UDP and TCP over IPv4 (the first fragment only: libpcap tests the
      fragment offset) and over IPv6 without extension headers.
    - The later fragments of IPv4 UDP datagrams: they have no UDP header, so every one is
      kept; the analysis reassembles large EDNS answers from them and drops the rest.
    - IPv6 UDP fragments (a Fragment header right after the fixed header): the first one
      by its ports, the later ones all.
    - ICMP errors that quote a UDP or TCP datagram to or from a DNS port: destination
      unreachable (3), time exceeded (11), parameter problem (12); ICMPv6 destination
      unreachable (1), packet too big (2), time exceeded (3), parameter problem (4). An
      ICMP error quotes the IP header and at least 8 bytes after it (RFC 792, RFC 4443
      2.4), so the ports are always there. The quoted IPv4 header's length is read from
      the quote (IP options move the ports); ``icmp[]`` and ``ip6[]`` are offsets from
      the network header, so the same test holds on every link type (``-i any``
      included). ICMPv6 is tested through ``ip6[]`` at fixed offsets (ICMPv6 right
      after the fixed header, as every error is sent), which old libpcaps also compile.

    In pcap-filter, ``and`` and ``or`` have equal precedence: every group is bracketed.
    """
    def on_port(*offsets: str) -> str:
        return " or ".join(f"{at} == {port}" for port in ports for at in offsets)

    quoted_ihl = "((icmp[8] & 0xf) << 2)"
    return " or ".join([
        " or ".join(f"port {port}" for port in ports),
        "(ip[6:2] & 0x1fff != 0 and ip[9] == 17)",
        "(ip6[6] == 44 and ip6[40] == 17 and (ip6[42:2] & 0xfff8 != 0 or "
        f"{on_port('ip6[48:2]', 'ip6[50:2]')}))",
        "((icmp[0] == 3 or icmp[0] == 11 or icmp[0] == 12) and "
        "(icmp[17] == 17 or icmp[17] == 6) and "
        f"({on_port(f'icmp[8 + {quoted_ihl}:2]', f'icmp[10 + {quoted_ihl}:2]')}))",
        "(ip6[6] == 58 and ip6[40] >= 1 and ip6[40] <= 4 and "
        f"(ip6[54] == 17 or ip6[54] == 6) and ({on_port('ip6[88:2]', 'ip6[90:2]')}))",
    ])


def parse_options(argv: list[str], prog: str | None = None) -> Options:
    """Parse and validate the command line.

    Raises:
        SystemExit: bad usage (argparse prints the message, status 2), or --help.
    """
    parser = build_parser(prog)
    a = parser.parse_args(argv)
    if a.filter is not None and a.port:
        parser.error("--filter and --port do not mix: put the ports in the --filter "
                     "expression")
    if a.filter is not None:
        bpf = a.filter.strip()
        if not bpf or bpf.startswith("-"):
            parser.error("--filter needs a BPF expression such as 'port 53 or icmp'")
        ports: tuple[int, ...] = ()
    else:
        ports = tuple(dict.fromkeys([53, *a.port]))
        bpf = dns_filter(ports)
    if not a.interface or a.interface.startswith("-") or "/" in a.interface:
        parser.error(f"--interface {a.interface!r} is not an interface name")
    if a.netns is not None and not a.netns.strip():
        parser.error("--netns needs a name or a path")
    return Options(
        interface=a.interface, bpf=bpf, ports=ports, size_mb=a.size_mb, files=a.files,
        buffer_kb=a.buffer_kb, duration=a.duration, pid=a.pid, netns=a.netns,
        directory=a.directory, force=a.force, keep_free=a.keep_free, analyze=a.analyze,
        save_pods=a.save_pods,
    )


# --------------------------------------------------------------------------------------
# The target: the node, a process's network namespace, or a named one


@dataclass(frozen=True)
class Target:
    """Where tcpdump runs."""

    #: "node" (the agent's own namespace), "pid" or "netns".
    kind: str
    pid: int | None
    #: --netns as given (a name or a path).
    netns: str | None
    #: The namespace file entered; None for the node.
    netns_path: str | None
    #: The namespace's inode number (ties one capture to one namespace), when known.
    netns_inode: int | None
    #: The resolv.conf the target's resolver reads, as the agent reaches it.
    resolv_conf_path: str
    #: The target's root directory, a prefix of resolv_conf_path: "/proc/PID/root" (a
    #: pod's), or "/". Symlinks in the file's path are resolved inside it.
    resolv_conf_root: str = "/"

    @property
    def resolv_conf_in_root(self) -> str:
        """resolv_conf_path as the target's own processes name it."""
        return "/" + os.path.relpath(self.resolv_conf_path, self.resolv_conf_root)

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "pid": self.pid, "netns": self.netns,
                "netns_path": self.netns_path, "netns_inode": self.netns_inode}


def resolve_target(pid: int | None, netns: str | None) -> Target:
    """Find the namespace file and the resolv.conf of the target.

    Raises:
        AgentError: the process or namespace does not exist or cannot be opened.
    """
    if pid is not None:
        if not os.path.isdir(f"/proc/{pid}"):
            raise AgentError(f"PID {pid} not found: give the PID of a process running in "
                             "the pod (crictl inspect CONTAINER shows it as info.pid)")
        path = f"/proc/{pid}/ns/net"
        return Target("pid", pid, None, path, _inode(path), f"/proc/{pid}/root/etc/resolv.conf",
                      f"/proc/{pid}/root")
    if netns is not None:
        if "/" in netns:
            path, name = netns, None
            if os.path.dirname(os.path.abspath(netns)) in ("/run/netns", "/var/run/netns"):
                name = os.path.basename(netns)
        else:
            path, name = f"/run/netns/{netns}", netns
            if not os.path.exists(path) and os.path.exists(f"/var/run/netns/{netns}"):
                path = f"/var/run/netns/{netns}"
        if not os.path.exists(path):
            raise AgentError(f"network namespace {netns!r} not found ({path}): list them "
                             "with 'ip netns list', or give a path such as /proc/PID/ns/net")
        # ip netns exec NAME bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf.
        resolv = "/etc/resolv.conf"
        if name and os.path.isfile(f"/etc/netns/{name}/resolv.conf"):
            resolv = f"/etc/netns/{name}/resolv.conf"
        return Target("netns", None, netns, path, _inode(path), resolv)
    # The node: in a hostPID container PID 1 is the node's init, and its root is the
    # node's filesystem; on the node itself the two paths are the same file. When it
    # cannot be read (an AppArmor profile), nothing is recorded rather than the
    # container's own resolv.conf, which would describe a different resolver.
    return Target("node", None, None, None, _inode("/proc/self/ns/net"),
                  "/proc/1/root/etc/resolv.conf", "/proc/1/root")


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except PermissionError:
        raise AgentError(f"cannot open {path}: run as root (entering another process's "
                         "namespace needs CAP_SYS_PTRACE)") from None
    except OSError:
        return None


def open_netns(target: Target) -> int | None:
    """Open the target's namespace file; the open descriptor keeps the namespace usable
    even when the process it came from exits during the capture. None for the node.

    Raises:
        AgentError: it cannot be opened.
    """
    if target.netns_path is None:
        return None
    try:
        return os.open(target.netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise AgentError(f"cannot open {target.netns_path}: {e.strerror}: run as root, "
                         "and check the PID or namespace still exists") from None


def enter_netns(fd: int) -> None:
    """Move the calling thread into the network namespace open at ``fd``.

    Raises:
        OSError: setns(2) failed (not a network namespace, no CAP_SYS_ADMIN).
    """
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def call_in_netns(fd: int | None, fn: Callable[[], object]) -> object:
    """Run ``fn`` in the namespace open at ``fd`` (here when None) and return its result,
    which must be JSON-serializable.

    A forked child enters the namespace, so the agent itself never leaves the node's
    (where it reads the node's conntrack counters). Called only while no other thread runs.

    Raises:
        OSError: the child could not enter the namespace or ``fn`` failed in it.
    """
    if fd is None:
        return fn()
    return call_in_child(fn, fd)


def call_in_child(fn: Callable[[], object], netns_fd: int | None = None,
                  timeout: float | None = None,
                  cancelled: Callable[[], bool] | None = None) -> object:
    """Run ``fn`` in a forked child (in the namespace open at ``netns_fd``, if given) and
    return its JSON-serializable result. A child that takes longer than ``timeout``
    seconds, or is still running when ``cancelled()`` turns true, is killed: a read that
    blocks (a FUSE or NFS file) cannot hold the agent. Called only while no other thread
    runs.

    Raises:
        OSError: the child could not enter the namespace, ``fn`` failed, timed out or
            was cancelled.
    """
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.close(r)
            if netns_fd is not None:
                enter_netns(netns_fd)
            data = json.dumps({"ok": fn()}).encode()
            while data:
                data = data[os.write(w, data):]
            status = 0
        except BaseException as e:  # noqa: B036 - the child must never return to the caller
            try:
                os.write(w, json.dumps({"error": str(e)}).encode())
            except BaseException:  # noqa: B036
                pass
        finally:
            os._exit(status)
    os.close(w)
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        while True:
            # Slices of 0.1 s: a signal handler has run by the next look at cancelled().
            ready, _, _ = select.select([r], [], [], 0.1)
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            elif cancelled is not None and cancelled():
                raise OSError(errno.EINTR, "interrupted")
            elif deadline is not None and time.monotonic() > deadline:
                raise OSError(errno.ETIMEDOUT, f"no answer within {timeout:g} s")
    except BaseException:
        os.kill(child, signal.SIGKILL)
        raise
    finally:
        os.close(r)
        _reap(child)
    try:
        reply = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        reply = {}
    if "ok" not in reply:
        raise OSError(reply.get("error") or "could not enter the network namespace")
    return reply["ok"]


def _reap(child: int) -> None:
    """Wait for ``child`` a little: one stuck in an uninterruptible read (D state) dies
    only when the read ends, and is then left to init rather than waited for."""
    for _ in range(50):
        try:
            if os.waitpid(child, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.01)


# --------------------------------------------------------------------------------------
# Metadata: resolv.conf, conntrack counters, interfaces, tcpdump's counters


@dataclass(frozen=True)
class ResolvConf:
    """What a stub resolver takes from resolv.conf (resolv.conf(5))."""

    path: str
    nameservers: tuple[str, ...]
    #: The search list (the last ``search`` or ``domain`` line wins, as in glibc).
    search: tuple[str, ...]
    #: options ndots:N; 1 when absent (the glibc and musl default).
    ndots: int
    #: Every option word as written (ndots:5, timeout:2, single-request-reopen, ...).
    options: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "nameservers": list(self.nameservers),
                "search": list(self.search), "ndots": self.ndots,
                "options": list(self.options)}


#: What glibc and musl split a resolv.conf line into words on.
_RESOLV_WORDS = re.compile(r"[ \t\r\f\v]+")
#: The digits of ndots:N that glibc's atoi and musl's strtoul read (ndots:2x is 2).
_NDOTS = re.compile(r"ndots:([0-9]+)")


def parse_resolv_conf(text: str, path: str = "") -> ResolvConf:
    """Parse resolv.conf text; unknown lines are ignored, as resolvers do. Never raises:
    the text is the target's, and may be anything."""
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    ndots = 1
    for line in text.split("\n"):
        words = [w for w in _RESOLV_WORDS.split(line) if w]
        if not words or words[0][0] in "#;":
            continue
        key, args = words[0], words[1:]
        for i, word in enumerate(args):
            if word[0] in "#;":
                args = args[:i]
                break
        if key == "nameserver" and args:
            nameservers.append(args[0])
        elif key in ("search", "domain"):
            search = args if key == "search" else args[:1]
        elif key == "options":
            options.extend(args)
            for word in args:
                m = _NDOTS.match(word)
                if m:
                    # glibc caps ndots at 15; a thousand digits must not reach int().
                    digits = m.group(1).lstrip("0") or "0"
                    ndots = 15 if len(digits) > 2 else min(int(digits), 15)
    return ResolvConf(path, tuple(nameservers), tuple(search), ndots, tuple(options))


#: A resolv.conf larger than this is not read (glibc reads any size; kubelet writes
#: a few hundred bytes).
RESOLV_MAX = 1 << 16
#: How long reading it may take (its path may cross a FUSE or NFS mount of the pod).
RESOLV_TIMEOUT = 5.0
#: Symlinks followed in one path, as Linux's own limit (MAXSYMLINKS).
MAX_SYMLINKS = 40


def open_in_root(root: str, path: str) -> int:
    """Open ``path`` for reading as a process whose root directory is ``root`` sees it:
    each component is looked up under the one before, an absolute symlink starts again
    at ``root`` and ``..`` never climbs above it (what openat2's RESOLVE_IN_ROOT does,
    on any kernel). The kernel would resolve an absolute symlink met below
    /proc/PID/root against the agent's own root, the node's: a pod could point its
    /etc/resolv.conf at any file of the node. The file is opened O_NONBLOCK (a FIFO
    does not wait for a writer), O_NOFOLLOW and O_NOCTTY; the caller checks its type.

    Raises:
        OSError: a component is missing or not a directory, too many symlinks, or the
            file cannot be opened.
    """
    todo = [c for c in path.split("/") if c]
    dirs = [os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            if name == ".":
                continue
            if name == "..":
                if len(dirs) > 1:
                    os.close(dirs.pop())
                continue
            try:
                target = os.readlink(name, dir_fd=dirs[-1])
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: there, and not a symlink
                    raise
            else:
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many symlinks")
                if target.startswith("/"):
                    while len(dirs) > 1:
                        os.close(dirs.pop())
                todo[:0] = [c for c in target.split("/") if c]
                continue
            if not todo:
                return os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW
                               | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dirs[-1])
            dirs.append(os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW
                                | os.O_CLOEXEC, dir_fd=dirs[-1]))
        raise OSError(errno.EISDIR, "names a directory")
    finally:
        for fd in dirs:
            os.close(fd)


def read_regular_file(root: str, path: str, limit: int = RESOLV_MAX) -> dict[str, object]:
    """{"text": ...} of ``path`` under ``root`` (see open_in_root) when it is a regular
    file of at most ``limit`` bytes, else {"error": why, "absent": bool}; absent: it is
    not there, or the agent may not reach it (/proc/1/root under an AppArmor profile),
    rather than there and refused. JSON-ready for call_in_child."""
    try:
        fd = open_in_root(root, path)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return {"error": "not a regular file", "absent": False}
            data = b""
            while len(data) <= limit:
                chunk = os.read(fd, limit + 1 - len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
    except OSError as e:
        absent = e.errno in (errno.ENOENT, errno.EACCES, errno.EPERM)
        return {"error": e.strerror or str(e), "absent": absent}
    if len(data) > limit:
        return {"error": f"larger than {limit} bytes", "absent": False}
    return {"text": data.decode("utf-8", errors="replace")}


def read_resolv_conf(target: Target, timeout: float = RESOLV_TIMEOUT,
                     cancelled: Callable[[], bool] | None = None
                     ) -> tuple[ResolvConf | None, str | None]:
    """The target's resolv.conf, or None and why not (None too when it does not exist or
    cannot be reached, see read_regular_file).

    It is the target's, and may be hostile: it is read in a child process that is
    killed after ``timeout`` seconds or when ``cancelled()`` (a signal came), only if it
    is a regular file of at most RESOLV_MAX bytes, and without leaving the target's root.
    """
    path = target.resolv_conf_path
    try:
        got = call_in_child(lambda: read_regular_file(target.resolv_conf_root,
                                                      target.resolv_conf_in_root),
                            timeout=timeout, cancelled=cancelled)
    except OSError as e:
        return None, e.strerror or str(e)
    assert isinstance(got, dict)
    if "text" not in got:
        return None, None if got.get("absent") else str(got.get("error"))
    return parse_resolv_conf(str(got["text"]), path), None


@dataclass(frozen=True)
class ConntrackStats:
    """Conntrack's counters, summed over CPUs; ``insert_failed`` and ``drop`` rising
    during a capture is the fingerprint of the A/AAAA insertion race."""

    #: "/proc/net/stat/nf_conntrack" or "conntrack -S".
    source: str
    counters: dict[str, int] = field(default_factory=dict)


def parse_nf_conntrack_stat(text: str) -> dict[str, int]:
    """/proc/net/stat/nf_conntrack: a header of names, then one row of hex per CPU.

    ``entries`` is the table's size, repeated on every row, so it is taken once; every
    other column is a per-CPU count and is summed.

    Raises:
        ValueError: not that table.
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0][0] != "entries":
        raise ValueError("not a /proc/net/stat/nf_conntrack table")
    names = lines[0]
    totals: dict[str, int] = {}
    for row in lines[1:]:
        if len(row) != len(names):
            raise ValueError("row and header lengths differ")
        for i, name in enumerate(names):
            n = int(row[i], 16)
            if name == "entries":
                totals.setdefault(name, n)
            else:
                totals[name] = totals.get(name, 0) + n
    return totals


def parse_conntrack_s(text: str) -> dict[str, int]:
    """``conntrack -S``: one line per CPU of ``key=value`` pairs, summed.

    Raises:
        ValueError: no counters in it.
    """
    totals: dict[str, int] = {}
    for line in text.splitlines():
        for key, value in re.findall(r"(\w+)=(\d+)", line):
            if key != "cpu":
                totals[key] = totals.get(key, 0) + int(value)
    if not totals:
        raise ValueError("no counters in conntrack -S output")
    return totals


def read_conntrack() -> dict[str, object] | None:
    """The conntrack counters of the calling thread's namespace, or None when conntrack
    is not loaded there (JSON-ready, so that call_in_netns can return it)."""
    try:
        with open("/proc/self/net/stat/nf_conntrack", encoding="ascii") as fh:
            text = fh.read()
        return {"source": "/proc/net/stat/nf_conntrack",
                "counters": parse_nf_conntrack_stat(text)}
    except (OSError, ValueError):
        pass
    tool = shutil.which("conntrack", path=os.environ.get("PATH", "") + ":" + EXTRA_PATH)
    if tool is None:
        return None
    try:
        cp = subprocess.run([tool, "-S"], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=10)
        return {"source": "conntrack -S", "counters": parse_conntrack_s(cp.stdout)}
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def conntrack_in(fd: int | None) -> ConntrackStats | None:
    try:
        raw = call_in_netns(fd, read_conntrack)
    except OSError:
        return None
    if not isinstance(raw, dict):
        return None
    return ConntrackStats(str(raw["source"]), dict(raw["counters"]))


def parse_ip_link(text: str) -> dict[int, str]:
    """``ip -o link`` lines (``5: veth1@if4: <BROADCAST,...``) -> {ifindex: name}."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(\d+):\s+([^:@\s]+)(?:@\S+)?:", line)
        if m:
            out[int(m.group(1))] = m.group(2)
    return out


def list_interfaces() -> dict[str, str]:
    """{ifindex: name} of the calling thread's namespace (JSON keys are strings).

    Raises:
        OSError: neither if_nameindex(3) nor ``ip -o link`` worked.
    """
    try:
        return {str(i): name for i, name in socket.if_nameindex()}
    except OSError:
        cp = subprocess.run(["ip", "-o", "link"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=10)
        links = parse_ip_link(cp.stdout)
        if not links:
            raise
        return {str(i): name for i, name in links.items()}


def interfaces_in(fd: int | None) -> dict[int, str]:
    """The target namespace's interfaces by index: SLL2 records (tcpdump -i any) carry
    only the index, and it means nothing outside that namespace.

    Raises:
        AgentError: the namespace cannot be entered.
    """
    try:
        raw = call_in_netns(fd, list_interfaces)
    except OSError as e:
        raise AgentError(f"cannot enter the target network namespace ({e}): run as root "
                         "(setns needs CAP_SYS_ADMIN)") from None
    assert isinstance(raw, dict)
    return {int(k): str(v) for k, v in raw.items()}


@dataclass(frozen=True)
class TcpdumpStats:
    """The counters tcpdump prints on stderr when it stops."""

    captured: int | None
    received: int | None
    dropped_by_kernel: int | None
    dropped_by_interface: int | None


def parse_tcpdump_stats(text: str) -> TcpdumpStats:
    """Find tcpdump's closing counters; the last of each wins (a SIGUSR1 report earlier
    in the text prints the same words on one line)."""

    def last(pattern: str) -> int | None:
        found = re.findall(r"(\d+) packets? " + pattern, text)
        return int(found[-1]) if found else None

    return TcpdumpStats(last("captured"), last("received by filter"),
                        last("dropped by kernel"), last("dropped by interface"))


def tcpdump_version(tcpdump: str) -> tuple[str, str]:
    """(tcpdump's version line, libpcap's version line)."""
    try:
        cp = subprocess.run([tcpdump, "--version"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "", ""
    lines = (cp.stdout + cp.stderr).splitlines()
    tcp = next((x for x in lines if x.startswith("tcpdump version")), "")
    pcap = next((x for x in lines if x.startswith("libpcap version")), "")
    return tcp.strip(), pcap.strip()


# --------------------------------------------------------------------------------------
# Tools, privileges, disk space, the capture directory


def find_tcpdump() -> str:
    """Raises AgentError: tcpdump is not installed."""
    path = shutil.which("tcpdump", path=os.environ.get("PATH", "") + ":" + EXTRA_PATH)
    if path is None:
        raise AgentError("tcpdump not found: install it (apt-get install tcpdump, "
                         "dnf install tcpdump or apk add tcpdump) or use the pcapdns "
                         "agent image")
    return path


def effective_capabilities(status_text: str) -> int:
    m = re.search(r"^CapEff:\s*([0-9a-fA-F]+)", status_text, re.M)
    return int(m.group(1), 16) if m else 0


def check_privileges(target: Target, caps: int | None = None) -> None:
    """Raises AgentError naming the first missing capability and how to get it."""
    if caps is None:
        try:
            with open("/proc/self/status", encoding="ascii") as fh:
                caps = effective_capabilities(fh.read())
        except OSError:
            caps = 0

    def has(cap: int) -> bool:
        return bool(caps is not None and caps >> cap & 1)

    if not has(CAP_NET_RAW):
        raise AgentError("not allowed to capture (no CAP_NET_RAW): run as root (sudo), or "
                         "in a container with the NET_RAW capability")
    if not (has(CAP_SETUID) and has(CAP_SETGID)):
        raise AgentError("tcpdump -Z root needs CAP_SETUID and CAP_SETGID: run as root, "
                         "or add SETUID and SETGID to the container's capabilities")
    if target.kind != "node" and not has(CAP_SYS_ADMIN):
        raise AgentError("entering another network namespace needs CAP_SYS_ADMIN: run as "
                         "root, or add SYS_ADMIN to the container's capabilities")


@dataclass(frozen=True)
class DiskSpace:
    """The ring's worst case against the filesystem that will hold it."""

    #: Bytes the full ring may take: files x size, plus one record of overshoot per file.
    need: int
    #: Bytes free to an unprivileged writer (statvfs f_bavail).
    free: int
    #: Bytes to leave free (--keep-free of the filesystem's size).
    reserve: int
    #: Ring files of --size-mb that fit in free - reserve.
    fit_files: int

    @property
    def enough(self) -> bool:
        return self.need <= self.free - self.reserve


def disk_space(size_mb: int, files: int, keep_free: float, total: int, free: int
               ) -> DiskSpace:
    per_file = size_mb * MB + MAX_RECORD
    reserve = int(total * keep_free / 100)
    return DiskSpace(per_file * files, free, reserve, max(0, (free - reserve) // per_file))


def check_disk(where: str, opts: Options) -> DiskSpace:
    """Raises AgentError: the full ring would leave less than --keep-free free."""
    st = os.statvfs(where)
    space = disk_space(opts.size_mb, opts.files, opts.keep_free,
                       st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)
    if not space.enough:
        raise AgentError(disk_message(where, opts, space))
    return space


def disk_message(where: str, opts: Options, space: DiskSpace) -> str:
    room = max(0, space.free - space.reserve)
    head = (f"not enough disk on {where}: {opts.files} files x {opts.size_mb} MB need "
            f"{_size(space.need)}, and {_size(room)} is free after keeping "
            f"{opts.keep_free:g}% ({_size(space.reserve)}) free")
    if space.fit_files:
        return f"{head}; {space.fit_files} files would fit: use --files {space.fit_files}"
    return f"{head}; not one file fits: free some space, or lower --size-mb or --keep-free"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


@dataclass(frozen=True)
class CaptureDir:
    """The capture directory, open. Every file in it is reached through ``fd`` (the
    agent's with dir_fd, tcpdump's and the report's relative to a working directory
    set with fchdir), never through ``path`` again: renaming or replacing a directory
    above it cannot send a write elsewhere."""

    #: Absolute path, for messages and capture.json.
    path: str
    #: The directory, opened O_DIRECTORY | O_NOFOLLOW.
    fd: int
    #: True when the agent made it (so it may remove it again while it is empty).
    created: bool


#: An earlier capture's files, deleted by --force.
OWN_FILES = (META_NAME, META_NAME + ".tmp", REPORT_NAME, ANALYSIS_NAME, PODS_NAME,
             PODS_NAME + ".tmp", SERVICES_NAME, SERVICES_NAME + ".tmp")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def make_capture_dir(directory: str | None, force: bool, now: datetime.datetime
                     ) -> CaptureDir:
    """Create the capture directory (0700) and open it.

    Without --dir a new ``pcapdns-capture-<UTC time>`` is made in the current directory
    (with -2, -3 ... if that exists). An existing --dir is refused unless --force, which
    deletes only what an earlier capture left there (its ring, capture.json, report), and
    only in a directory that the agent's own user owns and no one else can write in:
    anyone else who can create files there can put a symlink where tcpdump or the agent
    is about to write, and so have root overwrite any file.

    Raises:
        AgentError: it exists (without --force), is not safe to reuse, or cannot be
            created.
    """
    if directory is None:
        base = "pcapdns-capture-" + now.strftime("%Y%m%dT%H%M%SZ")
        for n in range(1, 101):
            capdir = _create(os.path.abspath(base if n == 1 else f"{base}-{n}"))
            if capdir is not None:
                return capdir
        raise AgentError(f"{base}: 100 directories of that name exist: use --dir")
    path = os.path.abspath(directory)
    capdir = _create(path)
    if capdir is not None:
        return capdir
    if not force:
        raise AgentError(f"{directory} exists (an earlier capture?): choose another --dir, "
                         "or add --force to replace the capture in it")
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as e:
        raise AgentError(f"{directory} exists and is not a directory ({e.strerror}): choose "
                         "another --dir") from None
    try:
        _check_private(fd, directory)
        for name in os.listdir(fd):
            if name.startswith(RING_PREFIX) or name in OWN_FILES:
                try:
                    os.unlink(name, dir_fd=fd)  # a symlink itself, never its target
                except OSError as e:
                    raise AgentError(f"cannot remove {os.path.join(path, name)}: "
                                     f"{e.strerror}: remove it, or choose another --dir"
                                     ) from None
        os.fchmod(fd, 0o700)
    except BaseException:
        os.close(fd)
        raise
    return CaptureDir(path, fd, created=False)


def _check_private(fd: int, shown: str) -> None:
    """Raises AgentError: the directory open at ``fd`` is not the agent user's alone."""
    st = os.fstat(fd)
    euid = os.geteuid()
    if st.st_uid != euid:
        raise AgentError(f"{shown} belongs to user {st.st_uid}, not to {euid} who runs the "
                         "agent: its owner could make tcpdump overwrite any file: choose a "
                         "directory of your own")
    if st.st_mode & 0o022:
        # With a POSIX ACL the group bits are its mask: a user or group the ACL lets
        # write shows up here too.
        raise AgentError(f"{shown} can be written by others (mode {st.st_mode & 0o7777:04o})"
                         ": they could make tcpdump overwrite any file: choose a directory "
                         "only you can write in")


def _create(path: str) -> CaptureDir | None:
    """Make ``path`` (0700) and open it; None when it exists.

    Raises:
        AgentError: it cannot be created, or what was opened is not what was made.
    """
    parent, name = os.path.split(path)
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise AgentError(f"cannot create {path}: {e.strerror}: choose a writable --dir"
                         ) from None
    try:
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            return None
        except OSError as e:
            raise AgentError(f"cannot create {path}: {e.strerror}: choose a writable --dir"
                             ) from None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as e:
            raise AgentError(f"cannot open {path} just made: {e.strerror}") from None
    finally:
        os.close(parent_fd)
    try:
        # In a parent others can write in, the directory may have been swapped since
        # mkdir: what is open must still be the agent's own.
        _check_private(fd, path)
        os.fchmod(fd, 0o700)  # exactly 0700, whatever the umask
    except BaseException:
        os.close(fd)
        raise
    return CaptureDir(path, fd, created=True)


def ring_files(capdir: CaptureDir) -> list[str]:
    try:
        return sorted(n for n in os.listdir(capdir.fd) if n.startswith(RING_PREFIX))
    except OSError:
        return []


# --------------------------------------------------------------------------------------
# Running tcpdump


def tcpdump_command(tcpdump: str, opts: Options) -> list[str]:
    """The tcpdump argument list (never a shell string). It runs in the capture
    directory (see _child_setup) and names its files relative to it."""
    return [
        tcpdump, "-i", opts.interface, "-nn",
        "-s", "0",  # whole packets: DNS over TCP and EDNS answers are long
        "-U",  # write each packet when it arrives, so a file always ends on a record
        # No --immediate-mode: with it libpcap uses a ring of fixed snaplen-sized slots,
        # and for -i any (no MTU to cap them) -s 0 leaves room for only a few dozen
        # packets, so bursts are dropped. Without it packets are packed into kernel
        # blocks handed over at least every BLOCK_TIMEOUT; stop_tcpdump waits that long.
        "-B", str(opts.buffer_kb),
        "-C", str(opts.size_mb), "-W", str(opts.files),
        # Stay root: Debian's tcpdump otherwise switches to the tcpdump user, which can
        # neither write into the 0700 directory nor open the next ring file.
        "-Z", "root",
        "-v",  # with -w: a "Got N" packet count every second, for the status line
        "-w", RING_PREFIX,
        opts.bpf,
    ]


def _set_pdeathsig(sig: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _child_setup(netns_fd: int | None, parent: int, dir_fd: int) -> Callable[[], None]:
    """What tcpdump's process does between fork and exec."""

    def setup() -> None:
        # tcpdump opens its files by name (following symlinks, without O_EXCL): it
        # writes them relative to the capture directory open at dir_fd, which no one
        # but the agent's user can write in (make_capture_dir).
        os.fchdir(dir_fd)
        # Its own process group: a terminal's Ctrl-C reaches only the agent, which then
        # stops tcpdump once, in order.
        os.setpgid(0, 0)
        os.umask(0o077)  # ring files 0600
        # Never an orphan: if the agent dies (even by SIGKILL) tcpdump is sent SIGTERM.
        _set_pdeathsig(signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)  # the agent died before the line above took effect
        if netns_fd is not None:
            enter_netns(netns_fd)

    return setup


class StderrReader(threading.Thread):
    """Reads tcpdump's stderr: keeps the last lines, the "Got N" count, and notes when
    tcpdump says it is listening."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(name="tcpdump-stderr", daemon=True)
        self.stream = stream
        self.lines: deque[str] = deque(maxlen=200)
        self.seen = 0
        self.listening = threading.Event()

    def run(self) -> None:
        fd = self.stream.fileno()
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *done, pending = re.split(rb"[\r\n]", pending)
            for raw in done:
                self._line(raw.decode(errors="replace").strip())
        self._line(pending.decode(errors="replace").strip())

    def _line(self, line: str) -> None:
        if not line:
            return
        m = re.fullmatch(r"Got (\d+)", line)
        if m:
            self.seen = int(m.group(1))
            return
        self.lines.append(line)
        if "listening on" in line:
            self.listening.set()


class Stopper:
    """Turns SIGINT, SIGTERM and SIGHUP into a request to stop, remembered by name."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.reason is None:
            self.reason = signal.Signals(signum).name


def start_tcpdump(argv: list[str], netns_fd: int | None, capdir: CaptureDir
                  ) -> tuple[subprocess.Popen, StderrReader]:  # type: ignore[type-arg]
    """Start tcpdump and wait until it listens.

    Raises:
        AgentError: it could not start, or stopped with an error.
    """
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE,
                                preexec_fn=_child_setup(netns_fd, os.getpid(), capdir.fd))
    except (OSError, subprocess.SubprocessError) as e:
        raise AgentError(f"cannot start tcpdump: {e}") from None
    assert proc.stderr is not None
    reader = StderrReader(proc.stderr)
    reader.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not reader.listening.wait(0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_tcpdump(proc, reader, drain=0)
            last = next((x for x in reversed(reader.lines) if x.startswith("tcpdump:")),
                        reader.lines[-1] if reader.lines else "no message")
            raise AgentError(f"tcpdump did not start ({last}): {_start_hint(last)}")
    return proc, reader


def _start_hint(message: str) -> str:
    """What to do about tcpdump's own start-up error."""
    if "not permitted" in message or "ermission denied" in message:
        return "run as root (tcpdump needs CAP_NET_RAW, and SETUID/SETGID for -Z root)"
    if "No space" in message:
        return "free some disk space"
    return "check --filter and --interface"


def stop_tcpdump(proc: subprocess.Popen, reader: StderrReader,  # type: ignore[type-arg]
                 drain: float = BLOCK_TIMEOUT + 0.25) -> bool:
    """Stop tcpdump with SIGINT (it then finishes the record it writes, prints its
    counters and exits) after ``drain`` seconds for the kernel to hand over the packets
    it holds; SIGKILL only if it hangs. True when it had to be killed."""
    killed = False
    if proc.poll() is None:
        try:
            proc.wait(timeout=drain)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
    reader.join(timeout=5)
    return killed


class StatusLine:
    """One line on stderr, rewritten each second, when stderr is a terminal."""

    def __init__(self, capdir: CaptureDir, enabled: bool) -> None:
        self.capdir, self.enabled = capdir, enabled
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, seen: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 1.0):
            return
        self._last = now
        names = ring_files(self.capdir)
        size = 0
        for n in names:
            try:
                size += os.stat(n, dir_fd=self.capdir.fd, follow_symlinks=False).st_size
            except OSError:
                pass
        elapsed = int(now - self.started)
        sys.stderr.write(f"\rcapturing: {len(names)} files, {_size(size)}, {seen} packets, "
                         f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
                         " (Ctrl-C stops) ")
        sys.stderr.flush()

    def end(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


# --------------------------------------------------------------------------------------
# capture.json


def utc_iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(  # noqa: UP017
        "%Y-%m-%dT%H:%M:%S.%fZ")


def write_json(capdir: CaptureDir, name: str, data: dict[str, object]) -> None:
    """Write ``name`` (0600) in the capture directory atomically: a reader never sees
    half a file. The temporary file is new (O_EXCL) and never a symlink (O_NOFOLLOW).

    Raises:
        OSError: it cannot be written.
    """
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    write_file(capdir, name, text.encode("utf-8"))


def write_file(capdir: CaptureDir, name: str, data: bytes) -> None:
    """Write ``data`` as ``name`` (0600) in the capture directory, atomically, as
    ``write_json`` does.

    Raises:
        OSError: it cannot be written.
    """
    tmp = name + ".tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=capdir.fd)
    except FileExistsError:  # left by an agent killed while writing it
        os.unlink(tmp, dir_fd=capdir.fd)
        fd = os.open(tmp, flags, 0o600, dir_fd=capdir.fd)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=capdir.fd)
        except OSError:
            pass
        raise
    os.replace(tmp, name, src_dir_fd=capdir.fd, dst_dir_fd=capdir.fd)


def kubectl_listing(kind: str, timeout: float = KUBECTL_TIMEOUT,
                    cancelled: Callable[[], bool] = lambda: False
                    ) -> tuple[bytes | None, str | None]:
    """``kubectl get KIND -A -o json`` (run directly, never through a shell): its output
    when it is a listing, else None and why, in one line.

    kubectl finds its credentials as usual: $KUBECONFIG or ~/.kube/config, or in a pod the
    ServiceAccount's token (in-cluster configuration). It is given up on after
    ``timeout`` seconds, or as soon as ``cancelled()`` (the capture was told to stop)."""
    argv = ["kubectl", "get", kind, "--all-namespaces", "-o", "json"]
    try:
        # A session of its own: on a timeout its whole process group is killed, so that a
        # credential plugin kubectl started cannot keep the pipes open.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError:
        return None, "kubectl is not installed (not on PATH)"
    except OSError as e:
        return None, f"kubectl cannot run: {e.strerror or e}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = proc.communicate(timeout=0.25)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() < deadline and not cancelled():
                continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        if cancelled():
            return None, "the capture was stopped while kubectl ran"
        return None, f"'{' '.join(argv)}' did not finish within {timeout:g} s"
    if proc.returncode != 0:
        why = _one_line(err) or f"exit status {proc.returncode}"
        return None, f"'{' '.join(argv)}' failed: {why}"
    if len(out) > KUBECTL_MAX_BYTES:
        return None, f"'{' '.join(argv)}' wrote more than {KUBECTL_MAX_BYTES:,} bytes"
    try:
        data = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, f"'{' '.join(argv)}' did not write JSON"
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        return None, f"'{' '.join(argv)}' did not write a list"
    return out, None


def _one_line(raw: bytes) -> str:
    """The last non-empty line of a program's stderr, printable and at most 200
    characters: kubectl's error message, safe to show."""
    lines = [x.strip() for x in raw.decode("utf-8", "replace").splitlines() if x.strip()]
    text = lines[-1] if lines else ""
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def save_pods(capdir: CaptureDir, cancelled: Callable[[], bool] = lambda: False
              ) -> tuple[list[str], list[str]]:
    """Save kubectl's pods and Services listings in the capture directory: the names
    written, and a line per listing that could not be saved."""
    saved: list[str] = []
    problems: list[str] = []
    for kind, name in (("pods", PODS_NAME), ("services", SERVICES_NAME)):
        data, why = kubectl_listing(kind, cancelled=cancelled)
        if data is None:
            problems.append(f"{kind}: {why}")
            continue
        try:
            write_file(capdir, name, data)
        except OSError as e:
            problems.append(f"{kind}: cannot write {name}: {e.strerror or e}")
            continue
        saved.append(name)
    return saved, problems


def conntrack_json(before: ConntrackStats | None, after: ConntrackStats | None
                   ) -> dict[str, object] | None:
    if before is None and after is None:
        return None
    source = (before or after).source  # type: ignore[union-attr]
    return {"source": source,
            "before": before.counters if before else None,
            "after": after.counters if after else None}


# --------------------------------------------------------------------------------------
# --analyze


#: The analysis runs as ``python -c REPORT_CODE ROOT report ...``: ROOT, the directory
#: holding the pcapdns package, replaces the current directory that ``-c`` (like ``-m``)
#: puts first on the import path, so a folder named pcapdns where the agent was started
#: cannot stand in for the package (nor a click/ or jinja2/ for its dependencies).
REPORT_CODE = ("import sys; root = sys.argv.pop(1); "
               "sys.path[:] = [root] + [p for p in sys.path if p not in ('', '.')]; "
               "import runpy; runpy.run_module('pcapdns', run_name='__main__', alter_sys=True)")


def analyzer_root() -> str | None:
    """The directory to import the pcapdns package from, or None when there is none.

    Run as ``pcapdns capture``, the agent is part of the package: the analysis is that
    same package. Run alone (``python3 agent.py``), it looks for an installed one on the
    interpreter's path, leaving out its first entry (the current directory, or the
    directory the file was copied to) and the current directory.
    """
    package = sys.modules.get("pcapdns") if __package__ == "pcapdns" else None
    init = getattr(package, "__file__", None)
    if init:
        return os.path.dirname(os.path.dirname(os.path.abspath(init)))
    cwd = os.getcwd()
    saved = sys.path[:]
    # find_spec also asks the import hooks on sys.meta_path (an editable install is one).
    sys.path[:] = [p for p in saved[1:] if p and os.path.abspath(p) != cwd]
    try:
        spec = importlib.util.find_spec("pcapdns")
    except (ImportError, ValueError):
        spec = None
    finally:
        sys.path[:] = saved
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.dirname(os.path.abspath(list(spec.submodule_search_locations)[0]))


def run_report(capdir: CaptureDir) -> tuple[bool, str]:
    """Run ``pcapdns report`` on the ring (never through a shell), writing report.html and
    the JSON document analysis.json (what ``pcapdns merge`` joins across nodes). Returns
    whether both were written, and one line to show.

    The analysis runs in the capture directory (through its descriptor: it writes
    report.html there, whatever happened to the path) and imports the package from
    analyzer_root(): where the agent was started does not matter. Success is the file,
    not the exit status: a report.html or analysis.json that is not there afterwards, or
    is empty, or is not a regular file, is a failure.
    """
    directory = capdir.path
    kept = f"the capture is kept in {directory}"
    root = analyzer_root()
    if root is None:
        return False, (f"--analyze: pcapdns is not installed here; {kept}: copy it and run "
                       "'pcapdns report' there")
    for name in (REPORT_NAME, ANALYSIS_NAME):
        try:
            os.unlink(name, dir_fd=capdir.fd)  # so that one there afterwards is new
        except FileNotFoundError:
            pass
    argv = [sys.executable, "-c", REPORT_CODE, root, "report", directory, "-o", REPORT_NAME,
            "--json", ANALYSIS_NAME]
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=3600, preexec_fn=lambda: os.fchdir(capdir.fd))
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"--analyze: pcapdns report failed ({e}); {kept}"
    last = (cp.stderr.strip().splitlines() or ["no message"])[-1]
    if cp.returncode != 0:
        return False, f"--analyze: pcapdns report failed (exit {cp.returncode}: {last}); {kept}"
    for name in (REPORT_NAME, ANALYSIS_NAME):
        try:
            st = os.stat(name, dir_fd=capdir.fd, follow_symlinks=False)
            written = stat.S_ISREG(st.st_mode) and st.st_size > 0
        except FileNotFoundError:
            written = False
        if not written:
            return False, (f"--analyze: pcapdns report wrote no {name} (exit 0: {last}); "
                           f"{kept}")
    return True, f"report: {os.path.join(directory, REPORT_NAME)}"


# --------------------------------------------------------------------------------------
# main


def say(message: str) -> None:
    print(f"pcapdns capture: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the agent; returns the exit status (see the module docstring)."""
    opts = parse_options(sys.argv[1:] if argv is None else list(argv), prog)
    try:
        return capture(opts)
    except AgentError as e:
        say(f"error: {e}")
        return 2
    except OSError as e:  # the disk filled, the directory went away, ...
        say(f"error: {e}; the capture stopped")
        return 1


def capture(opts: Options) -> int:
    """One capture from checks to capture.json.

    Raises:
        AgentError: a check failed before anything was captured.
    """
    tcpdump = find_tcpdump()
    target = resolve_target(opts.pid, opts.netns)
    check_privileges(target)
    now = time.time()
    directory = opts.directory
    where = os.path.abspath(directory if directory and os.path.isdir(directory)
                            else os.path.dirname(os.path.abspath(directory or "x")))
    if not os.path.isdir(where):
        raise AgentError(f"cannot create {directory}: {where} does not exist: create it or "
                         "choose another --dir")
    check_disk(where, opts)
    netns_fd = open_netns(target)
    try:
        return _run(opts, tcpdump, target, netns_fd, now)
    finally:
        if netns_fd is not None:
            os.close(netns_fd)


def _resolv_conf(target: Target, stopper: Stopper) -> ResolvConf | None:
    resolv, why = read_resolv_conf(target, cancelled=lambda: stopper.reason is not None)
    if why is not None and stopper.reason is None:
        say(f"{target.resolv_conf_path} not read ({why}): resolv_conf is null in "
            f"{META_NAME}")
    return resolv


@dataclass(frozen=True)
class Before:
    """What is read about the target before tcpdump starts."""

    interfaces: dict[int, str]
    resolv: ResolvConf | None
    node_conntrack: ConntrackStats | None
    target_conntrack: ConntrackStats | None
    #: tcpdump's and libpcap's version lines.
    versions: tuple[str, str]


def _run(opts: Options, tcpdump: str, target: Target, netns_fd: int | None,
         now: float) -> int:
    # From here on a signal is a request to stop, never an abrupt end that could leave
    # an empty capture directory or a tcpdump without its agent.
    stopper = Stopper()
    stopper.install()
    before = Before(
        interfaces=interfaces_in(netns_fd),
        resolv=_resolv_conf(target, stopper),
        node_conntrack=conntrack_in(None),
        target_conntrack=conntrack_in(netns_fd) if netns_fd is not None else None,
        versions=tcpdump_version(tcpdump),
    )
    utc = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)  # noqa: UP017 - 3.8
    capdir = make_capture_dir(opts.directory, opts.force, utc)
    try:
        return _record(opts, tcpdump, target, netns_fd, stopper, capdir, before)
    finally:
        os.close(capdir.fd)


def _record(opts: Options, tcpdump: str, target: Target, netns_fd: int | None,
            stopper: Stopper, capdir: CaptureDir, before: Before) -> int:
    """Run tcpdump into ``capdir`` until it is told to stop; write capture.json."""
    directory = capdir.path
    argv = tcpdump_command(tcpdump, opts)
    try:
        if stopper.reason is not None:
            raise AgentError(f"{stopper.reason} before the capture started; nothing captured")
        proc, reader = start_tcpdump(argv, netns_fd, capdir)
    except AgentError:
        if capdir.created and not os.listdir(capdir.fd):
            os.rmdir(directory)
        raise
    meta: dict[str, object] = {
        "format": FORMAT,
        "node": socket.gethostname(),
        "target": target.to_json(),
        "start": utc_iso(time.time()),
        "stop": None,
        "stop_reason": None,
        "duration_limit": opts.duration,
        "directory": directory,
        "ring": {"prefix": RING_PREFIX, "size_mb": opts.size_mb, "files": opts.files,
                 "interface": opts.interface, "filter": opts.bpf, "names": []},
        "tcpdump": {"command": argv, "version": before.versions[0],
                    "libpcap": before.versions[1],
                    "pid": proc.pid, "exit_status": None, "killed": False,
                    "packets_captured": None, "packets_received": None,
                    "packets_dropped_by_kernel": None,
                    "packets_dropped_by_interface": None, "stderr": []},
        "interfaces": {str(k): v for k, v in sorted(before.interfaces.items())},
        "resolv_conf": before.resolv.to_json() if before.resolv else None,
        "conntrack": conntrack_json(before.node_conntrack, None),
        "target_conntrack": conntrack_json(before.target_conntrack, None),
    }
    status = StatusLine(capdir, sys.stderr.isatty())
    reason = "error"
    try:
        write_json(capdir, META_NAME, meta)  # there already if the agent is killed outright
        what = (f"DNS on port {', '.join(map(str, opts.ports))} with its fragments and "
                "ICMP errors" if opts.ports else repr(opts.bpf))
        say(f"capturing {what} on {opts.interface} ({_target_words(target)}) into "
            f"{directory}: {opts.files} files x {opts.size_mb} MB")
        if opts.save_pods and stopper.reason is None:
            # With tcpdump already running: kubectl may take a while, the capture not.
            _save_pods(capdir, meta, lambda: stopper.reason is not None)
        reason = _wait(proc, reader, stopper, status, opts.duration)
    finally:
        # Whatever happened above, tcpdump does not outlive this call.
        killed = stop_tcpdump(proc, reader)
    status.update(reader.seen, force=True)
    status.end()
    stats = parse_tcpdump_stats("\n".join(reader.lines))
    names = ring_files(capdir)
    meta["stop"] = utc_iso(time.time())
    meta["stop_reason"] = reason
    meta["ring"].update(names=names)  # type: ignore[attr-defined]
    meta["tcpdump"].update(  # type: ignore[attr-defined]
        exit_status=proc.returncode, killed=killed,
        packets_captured=stats.captured, packets_received=stats.received,
        packets_dropped_by_kernel=stats.dropped_by_kernel,
        packets_dropped_by_interface=stats.dropped_by_interface,
        stderr=list(reader.lines)[-20:])
    meta["conntrack"] = conntrack_json(before.node_conntrack, conntrack_in(None))
    if netns_fd is not None:
        meta["target_conntrack"] = conntrack_json(before.target_conntrack,
                                                  conntrack_in(netns_fd))
    write_json(capdir, META_NAME, meta)
    say(f"stopped ({reason}): {_count(stats.captured)} packets captured, "
        f"{_count(stats.dropped_by_kernel)} dropped by the kernel; {len(names)} ring files "
        f"and {META_NAME} in {directory}")
    exit_status = 0
    if opts.analyze:
        reported, line = run_report(capdir)
        say(line)
        if not reported:
            exit_status = 1
    if reason == "tcpdump-exited" or killed:
        last = next((x for x in reversed(reader.lines) if x.startswith("tcpdump:")), "")
        how = "had to be killed" if killed else f"stopped by itself (exit {proc.returncode})"
        say(f"tcpdump {how} {last}".rstrip())
        exit_status = 1
    return exit_status


def _save_pods(capdir: CaptureDir, meta: dict[str, object],
               cancelled: Callable[[], bool]) -> None:
    """--save-pods: the listings beside the ring, named in capture.json; what failed is a
    warning, never the end of the capture."""
    saved, problems = save_pods(capdir, cancelled)
    meta["pods_files"] = saved
    meta["pods_errors"] = problems
    write_json(capdir, META_NAME, meta)
    if saved:
        say(f"saved {' and '.join(saved)} (kubectl) for the analysis to name pods")
    for p in problems:
        say(f"warning: no {p.split(':', 1)[0]} listing saved ({p.split(': ', 1)[1]}); "
            "the capture goes on")


def _wait(proc: subprocess.Popen, reader: StderrReader,  # type: ignore[type-arg]
          stopper: Stopper, status: StatusLine, duration: float | None) -> str:
    """Wait for a signal, the end of --duration or tcpdump's exit; return which."""
    deadline = time.monotonic() + duration if duration else None
    while True:
        if stopper.reason is not None:
            return stopper.reason
        if proc.poll() is not None:
            return "tcpdump-exited"
        if deadline is not None and time.monotonic() >= deadline:
            return "duration"
        status.update(reader.seen)
        time.sleep(0.1)


def _count(n: int | None) -> str:
    return "?" if n is None else str(n)


def _target_words(target: Target) -> str:
    if target.kind == "pid":
        return f"network namespace of PID {target.pid}"
    if target.kind == "netns":
        return f"network namespace {target.netns}"
    return "this node's network namespace"


if __name__ == "__main__":
    sys.exit(main())
