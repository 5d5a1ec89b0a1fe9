"""capture.json: what the capture agent (pcapdns/agent.py) recorded beside a ring.

The analysis uses it to name SLL2 interface indexes, to show the target's resolv.conf
(search list and ndots explain search-expansion findings) and to tell whether conntrack's
``insert_failed``/``drop`` counters rose during the capture (the A/AAAA race's fingerprint
on the node). Its format, field by field, is in capture/README.md.

``load(paths)`` takes the inputs of an analysis (files and/or directories) and looks for
capture.json in each directory given and in the directory of each file. It never raises:
no capture.json gives ``(None, [])``, a damaged one ``(None, [warning])``.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeGuard, cast

from pcapdns._core import MAX_TIME, MIN_TIME

NAME = "capture.json"
FORMAT_PREFIX = "pcapdns.capture/"
#: A capture.json larger than this is not one the agent wrote.
MAX_SIZE = 1 << 20
#: Every whole number the agent writes (pids, inode numbers, packet and conntrack counts,
#: ndots, interface indexes) fits in 64 unsigned bits; a larger or negative one is damage.
_MAX_INT = (1 << 64) - 1

TargetKind = Literal["node", "pid", "netns"]


class CaptureMetaError(ValueError):
    """capture.json is not valid JSON or does not hold what the format says."""


@dataclass(frozen=True, slots=True)
class CaptureTarget:
    """The network namespace tcpdump ran in."""

    #: "node" (the agent's own namespace), "pid" (--pid) or "netns" (--netns).
    kind: TargetKind
    #: The process whose namespace was entered (--pid).
    pid: int | None
    #: --netns as given: a name from ``ip netns list`` or a path.
    netns: str | None
    #: The namespace file entered (/proc/PID/ns/net, /run/netns/NAME); None for the node.
    netns_path: str | None
    #: The namespace's inode number: two captures with the same one saw the same namespace.
    netns_inode: int | None


@dataclass(frozen=True, slots=True)
class ResolvConf:
    """The target's resolv.conf as its stub resolver reads it."""

    #: Where it was read (/proc/PID/root/etc/resolv.conf for a pod).
    path: str
    nameservers: tuple[str, ...]
    #: The search list, in order.
    search: tuple[str, ...]
    #: options ndots:N (1 when absent).
    ndots: int
    #: Every option word as written (ndots:5, timeout:2, single-request-reopen, ...).
    options: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConntrackDelta:
    """How much conntrack's counters rose during the capture (None: not recorded)."""

    #: Entries that could not be inserted: two packets of one flow raced (A and AAAA from
    #: one socket through DNAT) and the second was dropped.
    insert_failed: int | None
    #: Packets conntrack dropped (insert failures among them, and a full table).
    drop: int | None


@dataclass(frozen=True, slots=True)
class ConntrackStats:
    """Conntrack counters of one namespace, summed over CPUs, before and after."""

    #: "/proc/net/stat/nf_conntrack" or "conntrack -S".
    source: str
    before: Mapping[str, int] | None
    after: Mapping[str, int] | None

    def delta(self) -> ConntrackDelta | None:
        """The rise of insert_failed and drop; None without both readings."""
        if self.before is None or self.after is None:
            return None
        before, after = self.before, self.after

        def rise(key: str) -> int | None:
            if key not in before or key not in after:
                return None
            return after[key] - before[key]

        return ConntrackDelta(rise("insert_failed"), rise("drop"))


@dataclass(frozen=True, slots=True)
class CaptureMeta:
    """One capture.json."""

    #: The file it was read from.
    path: str
    #: The format version, "pcapdns.capture/1".
    format: str
    #: Host name of the node the agent ran on.
    node: str
    target: CaptureTarget
    #: Capture start and stop, seconds since the epoch; stop is None while the capture
    #: runs or when the agent was killed outright.
    start: float | None
    stop: float | None
    #: Why it stopped: "SIGINT", "SIGTERM", "SIGHUP", "duration", "tcpdump-exited".
    stop_reason: str | None
    #: The exact tcpdump argument list, and its version line.
    tcpdump_command: tuple[str, ...]
    tcpdump_version: str
    #: tcpdump's closing counters (None when it did not print them).
    packets_captured: int | None
    packets_received: int | None
    kernel_dropped: int | None
    #: Interface names of the target namespace by ifindex (SLL2 records carry the index).
    interfaces: Mapping[int, str]
    resolv_conf: ResolvConf | None
    #: Conntrack of the node's namespace (where kube-proxy's DNAT runs).
    conntrack: ConntrackStats | None
    #: Conntrack of the target namespace, when it is not the node's.
    target_conntrack: ConntrackStats | None
    #: The pods and Services listings the agent saved beside the ring (``--save-pods``),
    #: as paths beside this file; empty when none were saved.
    pods_files: tuple[str, ...] = ()

    def conntrack_delta(self) -> ConntrackDelta | None:
        """The node's insert_failed and drop rises during the capture, when recorded."""
        return self.conntrack.delta() if self.conntrack is not None else None

    def ring_files(self) -> list[str]:
        """The ring files beside this capture.json now: tcpdump's ``-w`` name followed by
        its ``-C`` file number (dns.pcap0, dns.pcap000, ...)."""
        cmd = self.tcpdump_command
        if "-w" not in cmd[:-1]:
            return []
        stem = os.path.basename(cmd[cmd.index("-w") + 1])
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        return sorted(os.path.join(folder, n) for n in names
                      if n.startswith(stem) and n[len(stem):].isdigit())


def find(paths: Sequence[str]) -> list[str]:
    """The capture.json files beside ``paths`` (in a directory given, or in the directory
    of a file given), each once, in the order of the inputs."""
    out: list[str] = []
    seen: set[str] = set()
    for p in paths:
        folder = p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))
        candidate = os.path.join(folder, NAME)
        real = os.path.realpath(candidate)
        if real not in seen and os.path.isfile(candidate):
            seen.add(real)
            out.append(candidate)
    return out


def load(paths: Sequence[str]) -> tuple[CaptureMeta | None, list[str]]:
    """The capture metadata of an analysis of ``paths``, and warnings; never raises.

    With several capture.json (files from several capture directories) the first is used
    and a warning says so.
    """
    found = find(paths)
    if not found:
        return None, []
    warnings: list[str] = []
    if len(found) > 1:
        warnings.append(f"{len(found)} {NAME} files beside the inputs; using {found[0]}")
    try:
        return read(found[0]), warnings
    except CaptureMetaError as e:
        return None, [*warnings, f"{found[0]}: ignored: {e}"]


def read(path: str) -> CaptureMeta:
    """Read and check one capture.json.

    Raises:
        CaptureMetaError: it cannot be read, is not JSON, or does not fit the format.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SIZE + 1)
    except OSError as e:
        raise CaptureMetaError(f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_SIZE:
        raise CaptureMetaError(f"larger than {MAX_SIZE} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CaptureMetaError(f"not valid JSON ({e})") from None
    except RecursionError:
        # json's parser recurses once per nesting level: "[[[[..." a few thousand deep.
        raise CaptureMetaError("not valid JSON (nested too deeply)") from None
    return parse(data, path)


def parse(data: object, path: str = NAME) -> CaptureMeta:
    """Build a CaptureMeta from decoded JSON.

    Raises:
        CaptureMetaError: a field is missing or has the wrong type.
    """
    top = _obj(data, "capture.json")
    fmt = _str(top, "format")
    if not fmt.startswith(FORMAT_PREFIX):
        raise CaptureMetaError(f"format {fmt!r} is not {FORMAT_PREFIX}N")
    target = _obj(top.get("target"), "target")
    kind = _str(target, "kind")
    if kind not in ("node", "pid", "netns"):
        raise CaptureMetaError(f"target.kind {kind!r} is not node, pid or netns")
    td = _obj(top.get("tcpdump"), "tcpdump")
    command = td.get("command")
    if not isinstance(command, list) or not all(_is_text(a) for a in command):
        raise CaptureMetaError("tcpdump.command is not a list of strings")
    return CaptureMeta(
        path=path,
        format=fmt,
        node=_str(top, "node"),
        target=CaptureTarget(
            kind=cast(TargetKind, kind),
            pid=_opt_int(target, "pid"),
            netns=_opt_str(target, "netns"),
            netns_path=_opt_str(target, "netns_path"),
            netns_inode=_opt_int(target, "netns_inode"),
        ),
        start=_time(top, "start"),
        stop=_time(top, "stop"),
        stop_reason=_opt_str(top, "stop_reason"),
        tcpdump_command=tuple(command),
        tcpdump_version=_opt_str(td, "version") or "",
        packets_captured=_opt_int(td, "packets_captured"),
        packets_received=_opt_int(td, "packets_received"),
        kernel_dropped=_opt_int(td, "packets_dropped_by_kernel"),
        interfaces=_interfaces(top.get("interfaces")),
        resolv_conf=_resolv_conf(top.get("resolv_conf")),
        conntrack=_conntrack(top.get("conntrack"), "conntrack"),
        target_conntrack=_conntrack(top.get("target_conntrack"), "target_conntrack"),
        pods_files=_pods_files(top, path),
    )


def _pods_files(top: Mapping[str, object], path: str) -> tuple[str, ...]:
    """``pods_files``: names of files in capture.json's own directory (never a path
    elsewhere: the analysis reads only what is beside the capture)."""
    names = _strings(top, "pods_files")
    for name in names:
        if not name or "/" in name or name in (".", ".."):
            raise CaptureMetaError(f"pods_files entry {name!r} is not a file name")
    folder = os.path.dirname(os.path.abspath(path))
    return tuple(os.path.join(folder, n) for n in names)


# field readers ------------------------------------------------------------------------


def _obj(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise CaptureMetaError(f"{where} is not an object")
    return value


def _is_text(value: object) -> TypeGuard[str]:
    """A string that can be written out as UTF-8: JSON's ``\\ud800`` escapes decode to lone
    surrogates, which no output file, terminal or HTML page can hold."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_count(value: object) -> TypeGuard[int]:
    return (isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= _MAX_INT)


def _str(d: Mapping[str, object], key: str) -> str:
    value = d.get(key)
    if not _is_text(value):
        raise CaptureMetaError(f"{key} is not a string")
    return value


def _opt_str(d: Mapping[str, object], key: str) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not _is_text(value):
        raise CaptureMetaError(f"{key} is not a string")
    return value


def _opt_int(d: Mapping[str, object], key: str) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if not _is_count(value):
        raise CaptureMetaError(f"{key} is not a whole number from 0 to 2**64-1")
    return value


def _time(d: Mapping[str, object], key: str) -> float | None:
    text = _opt_str(d, key)
    if text is None:
        return None
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CaptureMetaError(f"{key} {text!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise CaptureMetaError(f"{key} {text!r} has no time zone")
    seconds = t.timestamp()
    # The range capture records are believed in (see core/src/read/mod.rs): the stop time
    # extends the capture's end, so one from year 9999 would stretch it as far.
    if not MIN_TIME <= seconds < MAX_TIME:
        raise CaptureMetaError(f"{key} {text!r} is not between 1970 and 2200")
    return seconds


def _strings(d: Mapping[str, object], key: str) -> tuple[str, ...]:
    value = d.get(key, [])
    if not isinstance(value, list) or not all(_is_text(v) for v in value):
        raise CaptureMetaError(f"{key} is not a list of strings")
    return tuple(value)


def _interfaces(value: object) -> Mapping[int, str]:
    if value is None:
        return MappingProxyType({})
    d = _obj(value, "interfaces")
    out: dict[int, str] = {}
    for k, v in d.items():
        # isascii: str.isdigit() is also true of "²" and other digits int() refuses; the
        # length bound keeps int() far from its limit on digits (an ifindex is 32-bit).
        if not (k.isascii() and k.isdigit() and len(k) <= 10) or not _is_text(v):
            raise CaptureMetaError("interfaces is not a map of ifindex to name")
        out[int(k)] = v
    return MappingProxyType(out)


def _resolv_conf(value: object) -> ResolvConf | None:
    if value is None:
        return None
    d = _obj(value, "resolv_conf")
    ndots = _opt_int(d, "ndots")
    return ResolvConf(
        path=_opt_str(d, "path") or "",
        nameservers=_strings(d, "nameservers"),
        search=_strings(d, "search"),
        ndots=1 if ndots is None else ndots,
        options=_strings(d, "options"),
    )


def _counters(value: object, where: str) -> Mapping[str, int] | None:
    if value is None:
        return None
    d = _obj(value, where)
    if not all(_is_count(v) for v in d.values()):
        raise CaptureMetaError(f"{where} holds a counter that is not a whole number "
                               "from 0 to 2**64-1")
    return MappingProxyType(cast(dict[str, int], d))


def _conntrack(value: object, where: str) -> ConntrackStats | None:
    if value is None:
        return None
    d = _obj(value, where)
    return ConntrackStats(
        source=_opt_str(d, "source") or "",
        before=_counters(d.get("before"), f"{where}.before"),
        after=_counters(d.get("after"), f"{where}.after"),
    )
