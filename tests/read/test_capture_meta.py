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


# -- hostile files: each is one warning, never a traceback --------------------------------


def _one_warning(folder: Path, content: str | bytes) -> str:
    folder.mkdir(exist_ok=True)
    (folder / "capture.json").write_bytes(
        content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    meta, warnings = load([str(folder)])
    assert meta is None and len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{folder / 'capture.json'}: ignored: ")
    return warnings[0]


@pytest.mark.parametrize("key", ["²", "١", "𝟘", "+3", " 3", "3 ", "-1", "", "1" * 11,
                                 "9" * 5000],
                         ids=["superscript-2", "arabic-indic-1", "math-0", "plus", "space-before",
                              "space-after", "negative", "empty", "11-digits", "5000-digits"])
def test_an_interface_key_int_refuses_is_a_warning(tmp_path: Path, key: str) -> None:
    # "²".isdigit() and "١" (Arabic-Indic one) pass str.isdigit(); int("²") raises, and
    # int() refuses more than 4,300 digits.
    data = copy.deepcopy(META)
    data["interfaces"] = {key: "eth0"}
    assert "interfaces is not a map of ifindex to name" in _one_warning(
        tmp_path, json.dumps(data))


def test_an_interface_index_of_ten_ascii_digits_is_read(tmp_path: Path) -> None:
    data = copy.deepcopy(META)
    data["interfaces"] = {"0042": "eth0", "4294967295": "last"}
    meta = capture_meta.parse(data)
    assert dict(meta.interfaces) == {42: "eth0", 4294967295: "last"}


@pytest.mark.parametrize("opening", ["[", '{"a":', '{"b":['])
def test_nesting_100k_levels_deep_is_a_warning(tmp_path: Path, opening: str) -> None:
    text = opening * 100_000
    assert len(text) <= capture_meta.MAX_SIZE
    warning = _one_warning(tmp_path, text)
    assert "not valid JSON" in warning


@pytest.mark.parametrize("where", [("node",), ("interfaces", "3"), ("tcpdump", "command"),
                                   ("resolv_conf", "search"), ("target", "netns_path")])
def test_a_lone_surrogate_no_output_can_hold_is_a_warning(tmp_path: Path, where: tuple) -> None:
    # JSON's \ud800 escape decodes to a lone surrogate: writing it to the terminal, the
    # JSON file or the HTML page would raise UnicodeEncodeError.
    data = copy.deepcopy(META)
    value: object = ["\ud800"] if where[-1] in ("command", "search") else "\ud800"
    data = _replace(data, where, value)
    assert "is not" in _one_warning(tmp_path, json.dumps(data))


@pytest.mark.parametrize("where", [("target", "pid"), ("tcpdump", "packets_received"),
                                   ("resolv_conf", "ndots"), ("conntrack", "after", "drop")])
@pytest.mark.parametrize("number", [-1, 2**64, -(10**4299), 10**4299],
                         ids=["-1", "2**64", "-10**4299", "10**4299"])
def test_a_number_outside_64_unsigned_bits_is_a_warning(
    tmp_path: Path, where: tuple, number: int
) -> None:
    # Two counters of 4,300 digits would give a rise of 4,301, which str() refuses.
    data = _replace(META, where, number)
    assert "whole number from 0 to 2**64-1" in _one_warning(tmp_path, json.dumps(data))


@pytest.mark.parametrize("stop", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00",
                                  "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z"])
def test_a_time_outside_1970_to_2200_is_a_warning(tmp_path: Path, stop: str) -> None:
    data = _replace(META, ("stop",), stop)
    assert "is not between 1970 and 2200" in _one_warning(tmp_path, json.dumps(data))


def test_a_file_that_is_not_regular_is_not_read(tmp_path: Path) -> None:
    # A FIFO named capture.json would block the read forever.
    import os

    os.mkfifo(tmp_path / "capture.json")
    assert load([str(tmp_path)]) == (None, [])


def test_only_the_first_mebibyte_is_read(tmp_path: Path) -> None:
    big = tmp_path / "capture.json"
    with open(big, "wb") as fh:
        fh.truncate(1 << 40)  # a sparse terabyte: reading it all would never end
    meta, warnings = load([str(tmp_path)])
    assert meta is None and warnings == [f"{big}: ignored: larger than {1 << 20} bytes"]


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _mutated_meta() -> st.SearchStrategy:
    """The agent's document with fields replaced by arbitrary JSON values."""
    paths = _paths(META)
    return st.lists(st.tuples(st.sampled_from(paths), _JSON), max_size=4).map(
        lambda changes: _apply(changes))


def _apply(changes: list[tuple[tuple[str, ...], object]]) -> dict:
    data = copy.deepcopy(META)
    for keys, value in changes:
        try:
            data = _replace(data, keys, value)
        except (KeyError, TypeError):  # an earlier change removed the parent
            continue
    return data


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(data=_JSON | _mutated_meta())
def test_any_json_document_parses_or_raises_capture_meta_error(data: object) -> None:
    try:
        meta = capture_meta.parse(data)
    except capture_meta.CaptureMetaError:
        return
    # What the outputs write must be writable.
    json.dumps([meta.node, meta.tcpdump_command, dict(meta.interfaces)]).encode("utf-8")
    meta.conntrack_delta()
    meta.ring_files()
