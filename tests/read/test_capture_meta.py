"""capture.json beside a ring: found, parsed, and never a crash when damaged."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pcapdns.read import capture_meta
from pcapdns.read.capture_meta import ConntrackDelta, load

#: What the agent writes (pcapdns/agent.py; a real one is checked in test_agent_netns.py).
META: dict = {
    "format": "pcapdns.capture/1",
    "node": "node-a",
    "target": {"kind": "pid", "pid": 4242, "netns": None, "netns_path": "/proc/4242/ns/net",
               "netns_inode": 4026532178},
    "start": "2026-11-25T10:21:35.377378Z",
    "stop": "2026-11-25T10:31:35.500000Z",
    "stop_reason": "SIGTERM",
    "duration_limit": None,
    "directory": "/captures/pcapdns-capture-20261125T102135Z",
    "ring": {"prefix": "dns.pcap", "size_mb": 20, "files": 200, "interface": "any",
             "filter": "port 53", "names": ["dns.pcap000", "dns.pcap001"]},
    "tcpdump": {"command": ["/usr/bin/tcpdump", "-i", "any", "-w", "x", "port 53"],
                "version": "tcpdump version 4.99.3",
                "libpcap": "libpcap version 1.10.3 (with TPACKET_V3)", "pid": 999,
                "exit_status": 0, "killed": False, "packets_captured": 1532,
                "packets_received": 1540, "packets_dropped_by_kernel": 7,
                "packets_dropped_by_interface": None, "stderr": []},
    "interfaces": {"1": "lo", "3": "eth0"},
    "resolv_conf": {"path": "/proc/4242/root/etc/resolv.conf", "nameservers": ["10.96.0.10"],
                    "search": ["default.svc.cluster.local", "svc.cluster.local"],
                    "ndots": 5, "options": ["ndots:5"]},
    "conntrack": {"source": "/proc/net/stat/nf_conntrack",
                  "before": {"entries": 10, "insert_failed": 4, "drop": 4},
                  "after": {"entries": 12, "insert_failed": 9, "drop": 11}},
    "target_conntrack": None,
}


def write(folder: Path, data: object) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "capture.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_every_field_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "cap", META)
    meta, warnings = load([str(tmp_path / "cap")])
    assert warnings == [] and meta is not None
    assert meta.path == str(path) and meta.node == "node-a" and meta.format == META["format"]
    assert (meta.target.kind, meta.target.pid, meta.target.netns_inode) == (
        "pid", 4242, 4026532178)
    assert meta.target.netns_path == "/proc/4242/ns/net" and meta.target.netns is None
    assert meta.start == pytest.approx(1795602095.377378)
    assert meta.stop is not None and meta.stop - meta.start == pytest.approx(600.122622)
    assert meta.stop_reason == "SIGTERM"
    assert meta.tcpdump_command[0] == "/usr/bin/tcpdump"
    assert meta.tcpdump_version == "tcpdump version 4.99.3"
    assert (meta.packets_captured, meta.packets_received, meta.kernel_dropped) == (
        1532, 1540, 7)
    assert dict(meta.interfaces) == {1: "lo", 3: "eth0"}
    assert meta.resolv_conf is not None and meta.resolv_conf.ndots == 5
    assert meta.resolv_conf.search == ("default.svc.cluster.local", "svc.cluster.local")
    assert meta.resolv_conf.nameservers == ("10.96.0.10",)
    assert meta.conntrack_delta() == ConntrackDelta(insert_failed=5, drop=7)
    assert meta.target_conntrack is None


def test_found_beside_ring_files(tmp_path: Path) -> None:
    write(tmp_path / "cap", META)
    ring = [tmp_path / "cap" / "dns.pcap000", tmp_path / "cap" / "dns.pcap001"]
    meta, warnings = load([str(p) for p in ring])
    assert meta is not None and warnings == []


def test_absent_is_none_without_warning(tmp_path: Path) -> None:
    (tmp_path / "x.pcap").write_bytes(b"")
    assert load([str(tmp_path / "x.pcap")]) == (None, [])
    assert load([str(tmp_path)]) == (None, [])


def test_several_captures_use_the_first(tmp_path: Path) -> None:
    write(tmp_path / "a", META)
    other = copy.deepcopy(META)
    other["node"] = "node-b"
    write(tmp_path / "b", other)
    meta, warnings = load([str(tmp_path / "a"), str(tmp_path / "b")])
    assert meta is not None and meta.node == "node-a"
    assert warnings == [f"2 capture.json files beside the inputs; using "
                        f"{tmp_path / 'a' / 'capture.json'}"]


def test_a_running_or_killed_capture_has_no_stop(tmp_path: Path) -> None:
    running = copy.deepcopy(META)
    running.update(stop=None, stop_reason=None)
    running["conntrack"]["after"] = None
    running["tcpdump"].update(packets_captured=None, packets_received=None,
                              packets_dropped_by_kernel=None)
    write(tmp_path, running)
    meta, _ = load([str(tmp_path)])
    assert meta is not None and meta.stop is None and meta.conntrack_delta() is None
    assert meta.kernel_dropped is None


def test_counters_missing_from_one_reading() -> None:
    data = copy.deepcopy(META)
    data["conntrack"]["before"] = {"entries": 1}
    meta = capture_meta.parse(data)
    assert meta.conntrack_delta() == ConntrackDelta(None, None)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("{", "not valid JSON"),
        ("[]", "capture.json is not an object"),
        ('{"format": "other/1"}', "format 'other/1' is not pcapdns.capture/N"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_damaged_file_is_a_warning(tmp_path: Path, damage: str | bytes, reason: str) -> None:
    tmp_path.joinpath("capture.json").write_bytes(
        damage if isinstance(damage, bytes) else damage.encode())
    meta, warnings = load([str(tmp_path)])
    assert meta is None and len(warnings) == 1
    assert warnings[0].startswith(f"{tmp_path / 'capture.json'}: ignored: {reason}")


def _replace(data: dict, keys: tuple[str, ...], value: object) -> dict:
    out = copy.deepcopy(data)
    d = out
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value
    return out


def _paths(d: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(d, dict):
        return []
    out = []
    for k, v in d.items():
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


@pytest.mark.parametrize("bad", [None, 7, True, "x", [], {}, [1], {"a": "b"}, -1.5])
def test_any_field_of_any_type_never_raises(tmp_path: Path, bad: object) -> None:
    for keys in _paths(META):
        write(tmp_path, _replace(META, keys, bad))
        meta, warnings = load([str(tmp_path)])
        assert (meta is None) == bool(warnings), keys
        if meta is not None:  # an optional field took an acceptable value
            assert meta.node


def test_every_cut_of_the_file_is_a_warning(tmp_path: Path) -> None:
    text = json.dumps(META, indent=2)
    for cut in range(0, len(text), 7):
        write(tmp_path, text[:cut])
        meta, warnings = load([str(tmp_path)])
        assert meta is None and len(warnings) == 1


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, " " * (capture_meta.MAX_SIZE + 1))
    meta, warnings = load([str(tmp_path)])
    assert meta is None and "larger than" in warnings[0]
