"""The command line: exact exit codes, clean stdout, one-line errors naming the file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pcapdns.cli import main
from tests.craft import eth, query, response, write_eth, write_pcap

CONTRACT_SUMMARY = {
    "packets", "dns_messages", "duplicates", "malformed", "queries", "responses",
    "queries_udp", "queries_tcp", "answered_queries", "unanswered_queries",
    "unsolicited_responses", "retransmissions", "failed_lookups", "tc_responses",
    "tc_followed_by_tcp", "tc_without_tcp_retry", "a_aaaa_same_port_concurrent",
    "a_aaaa_race_lost", "fanout_groups", "rcodes", "latency_ms",
}
CONTRACT_FINDING = {"kind", "severity", "time", "client", "server", "qname", "qtype",
                    "frames", "detail"}
CONTRACT_INPUT = {"path", "packets", "link_type", "first_time", "last_time", "truncated"}


def _capture(tmp_path: Path) -> Path:
    return write_eth(tmp_path / "one.pcap", [
        (100.0, query(id=1)),
        (100.002, response(id=1)),
        (101.0, query("gone.example", id=2)),
        (120.0, query("late.example", id=3)),
    ])


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_summary_on_terminal(tmp_path: Path) -> None:
    code, out, err = run("analyze", str(_capture(tmp_path)))
    assert code == 0, err
    assert out.splitlines()[1].startswith("1 file, 4 packets")
    assert "timeout" in out
    assert err == ""


def test_json_document_follows_the_contract(tmp_path: Path) -> None:
    code, out, _ = run("analyze", "--format", "json", str(_capture(tmp_path)))
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "pcapdns.analysis/1"
    assert CONTRACT_SUMMARY <= set(doc["summary"])
    assert set(doc["summary"]["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert CONTRACT_INPUT <= set(doc["inputs"][0])
    assert doc["findings"] and all(CONTRACT_FINDING <= set(f) for f in doc["findings"])
    assert "transactions" not in doc
    s = doc["summary"]
    assert (s["queries"], s["responses"], s["answered_queries"]) == (3, 1, 1)
    assert s["failed_lookups"] == 2 and s["lookups_open_at_end"] == 1
    timeout = [f for f in doc["findings"] if f["kind"] == "timeout"]
    assert [f["frames"] for f in timeout] == [[3]]


def test_transactions_only_when_asked(tmp_path: Path) -> None:
    code, out, _ = run("analyze", "--format", "json", "--transactions", str(_capture(tmp_path)))
    assert code == 0
    tx = json.loads(out)["transactions"]
    assert [(t["query_frame"], t["response_frame"]) for t in tx] == [(1, 2), (3, None), (4, None)]
    assert tx[0]["latency_ms"] == 2.0


def test_output_file(tmp_path: Path) -> None:
    out_file = tmp_path / "result.json"
    code, out, _ = run("analyze", "--format", "json", "-o", str(out_file),
                       str(_capture(tmp_path)))
    assert code == 0 and out == ""
    assert json.loads(out_file.read_text())["summary"]["packets"] == 4


def test_refuses_to_overwrite_an_input(tmp_path: Path) -> None:
    cap = _capture(tmp_path)
    before = cap.read_bytes()
    code, _, err = run("analyze", "--format", "json", "-o", str(cap), str(cap))
    assert code == 2
    assert "refusing to overwrite" in err
    assert cap.read_bytes() == before


def test_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    code, out, err = run("analyze", str(tmp_path / "nope.pcap"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "nope.pcap" in err and "no such file" in err
    assert "Traceback" not in err


def test_not_a_capture_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pcap"
    bad.write_text("hello, this is not a capture\n")
    code, _, err = run("analyze", str(bad))
    assert code == 2
    assert err.count("\n") == 1 and "notes.pcap" in err and "not a pcap or pcapng" in err


SUPPORTED = ("supported: NULL (0), ETHERNET (1), RAW (12, 14, 101), LOOP (108), "
             "LINUX_SLL (113), IPV4 (228), IPV6 (229), LINUX_SLL2 (276)")


def test_unsupported_link_type_names_it_and_what_is_supported(tmp_path: Path) -> None:
    cap = write_pcap(tmp_path / "wifi.pcap", [(1.0, b"\x00" * 40)], link_type=105)
    code, out, err = run("analyze", str(cap))
    assert code == 2 and out == ""
    assert err == f"pcapdns: {cap}: unsupported link type IEEE802_11 (105); {SUPPORTED}\n"


def test_unsupported_link_type_in_a_directory_is_skipped_with_a_warning(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    ring.mkdir()
    _capture(ring)
    wifi = write_pcap(ring / "wifi.pcap", [(1.0, b"\x00" * 40)], link_type=105)
    code, out, err = run("analyze", str(ring))
    assert code == 0, err
    assert out.splitlines()[1].startswith("1 file, 4 packets")
    assert err == (f"pcapdns: warning: {wifi}: unsupported link type IEEE802_11 (105); "
                   f"{SUPPORTED}; skipped\n")


def test_files_far_apart_in_time_are_merged_with_a_warning(tmp_path: Path) -> None:
    day = 24 * 3600.0
    monday = write_eth(tmp_path / "monday.pcap", [(100.0, query(id=1)),
                                                  (100.01, response(id=1))])
    friday = write_eth(tmp_path / "friday.pcap", [(100.0 + 4 * day, query(id=2)),
                                                  (100.01 + 4 * day, response(id=2))])
    code, out, err = run("analyze", str(monday), str(friday))
    assert code == 0, err
    assert out.splitlines()[1].startswith("2 files, 4 packets")
    assert err == (f"pcapdns: warning: {friday} starts 4.0 days after {monday} ends, a gap "
                   "longer than any input file lasts: merged as one capture, though they "
                   "do not look like one\n")


def test_transactions_with_text_output_is_an_error(tmp_path: Path) -> None:
    code, out, err = run("analyze", "--transactions", str(_capture(tmp_path)))
    assert code == 2 and out == ""
    assert err == "pcapdns: --transactions needs --format json\n"
    code, out, err = run("analyze", "--transactions", "--format", "text", "--html",
                         str(tmp_path / "r.html"), str(_capture(tmp_path)))
    assert code == 2 and err == "pcapdns: --transactions needs --format json\n"
    assert not (tmp_path / "r.html").exists()


def test_cut_off_capture_is_analyzed_with_a_warning(tmp_path: Path) -> None:
    cap = _capture(tmp_path)
    data = cap.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-20])
    code, out, err = run("analyze", "--format", "json", str(cut))
    assert code == 0
    doc = json.loads(out)  # stdout stays clean JSON
    assert doc["inputs"][0]["truncated"] is True
    assert doc["summary"]["packets"] == 3
    assert "warning" in err and "cut.pcap" in err and "cut off" in err


def test_port_option(tmp_path: Path) -> None:
    cap = write_eth(tmp_path / "alt.pcap", [
        (1.0, query(dport=5353)), (1.001, response(sport=5353)),
    ])
    code, out, _ = run("analyze", "--format", "json", str(cap))
    assert json.loads(out)["summary"]["dns_messages"] == 0
    code, out, _ = run("analyze", "--format", "json", "--port", "5353", str(cap))
    assert json.loads(out)["summary"]["answered_queries"] == 1


def test_timeout_and_slow_options(tmp_path: Path) -> None:
    cap = write_eth(tmp_path / "slow.pcap", [
        (1.0, query(id=7)), (1.5, response(id=7)), (10.0, query("x.example", id=8)),
        (12.0, query("end.example", id=9)),
    ])
    _, out, _ = run("analyze", "--format", "json", "--slow", "0.2", "--timeout", "1", str(cap))
    kinds = {f["kind"] for f in json.loads(out)["findings"]}
    assert {"slow_response", "timeout"} <= kinds


def test_every_command_and_option_has_help() -> None:
    for name, cmd in main.commands.items():
        assert cmd.help, name
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert p.help, f"{name} {p.name}"


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and "pcapdns" in out


def test_streamed_json_equals_the_document(tmp_path: Path) -> None:
    import io

    from pcapdns.analysis import analyze
    from pcapdns.output import document

    a = analyze([str(_capture(tmp_path))], keep_lookups=True)
    buf = io.StringIO()
    document.write(a, buf)
    assert buf.getvalue() == document.dumps(a)
    a = analyze([str(_capture(tmp_path))])
    buf = io.StringIO()
    document.write(a, buf)
    assert buf.getvalue() == document.dumps(a)


def test_unwritable_output_is_one_line_exit_2(tmp_path: Path) -> None:
    code, _, err = run("analyze", "-o", str(tmp_path / "no" / "such" / "dir.json"),
                       str(_capture(tmp_path)))
    assert code == 2
    assert err.count("\n") == 1 and "cannot write" in err


def test_same_file_twice_is_read_once(tmp_path: Path) -> None:
    cap = _capture(tmp_path)
    code, out, err = run("analyze", "--format", "json", str(cap), str(cap))
    assert code == 0
    assert json.loads(out)["summary"]["packets"] == 4
    assert "given more than once" in err


def test_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    many = write_eth(tmp_path / "many.pcap", [
        (100.0 + i * 0.01, query(f"n{i}.example", id=i % 65536)) for i in range(1500)
    ])
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcapdns", "analyze", "--format", "json", "--transactions",
         str(many)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b'{\n  "schem'
    proc.stdout.close()  # the reader goes away, as `| head` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 1)
    assert "Traceback" not in err


def test_progress_bar_only_on_a_terminal(monkeypatch) -> None:
    import io

    from pcapdns.cli import _Bar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    bar = _Bar()
    bar(50, 100)
    bar(100, 100)
    assert " 50%" in tty.getvalue() and "100%" in tty.getvalue()

    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    bar = _Bar()
    bar(50, 100)
    bar.end_line()
    assert pipe.getvalue() == ""


def test_a_drawn_bar_line_is_ended_before_a_message(monkeypatch) -> None:
    import io

    from pcapdns.cli import _Bar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    bar = _Bar()
    bar(40, 100)
    bar.end_line()
    assert tty.getvalue().endswith(" 40% 0.0/0.0 MB\n")
    bar.end_line()  # once only
    bar(100, 100)
    before = tty.getvalue()
    bar.end_line()  # a finished bar has wiped its line: nothing to end
    assert tty.getvalue() == before


def test_ctrl_c_on_a_terminal_starts_interrupted_on_its_own_line(tmp_path: Path) -> None:
    """Real terminal, real SIGINT: the bar's line is ended before the message."""
    import os
    import select
    import signal
    import subprocess
    import sys
    import time

    # Enough frames that the analysis is still running when the first bar is drawn (the
    # bar is refreshed every 16,384 frames): copies of one query frame, crafted once.
    frame = bytes(eth(query()))
    big = write_pcap(tmp_path / "big.pcap", ((100.0 + i * 1e-4, frame) for i in range(200_000)))
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcapdns", "analyze", str(big)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"% " not in seen and time.monotonic() < deadline:
            if select.select([primary], [], [], 1.0)[0]:
                seen += os.read(primary, 4096)
        assert b"% " in seen, f"no progress bar within 60 s: {seen!r}"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        while select.select([primary], [], [], 0.2)[0]:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    text = seen.decode()
    assert code == 130, text
    # The terminal turns "\n" into "\r\n".
    assert text.endswith(" MB\r\npcapdns: interrupted\r\n"), repr(text[-200:])


# --- pcapdns report / analyze --html ------------------------------------------------------


def test_report_writes_html_and_json(tmp_path: Path) -> None:
    out, doc = tmp_path / "r.html", tmp_path / "r.json"
    code, stdout, err = run("report", str(_capture(tmp_path)), "-o", str(out),
                            "--json", str(doc))
    assert code == 0, err
    assert stdout == ""
    assert err == f"pcapdns: report written to {out}\n"
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="verdict"' in page
    assert json.loads(doc.read_text())["schema"] == "pcapdns.analysis/1"
    # As private as the capture they come from.
    assert out.stat().st_mode & 0o777 == 0o600 and doc.stat().st_mode & 0o777 == 0o600


def test_report_needs_an_output_file(tmp_path: Path) -> None:
    code, _, err = run("report", str(_capture(tmp_path)))
    assert code == 2
    assert "Missing option '--output'" in err


def test_report_refuses_to_overwrite_an_input(tmp_path: Path) -> None:
    cap = _capture(tmp_path)
    before = cap.read_bytes()
    code, _, err = run("report", str(cap), "-o", str(cap))
    assert code == 2
    assert err == f"pcapdns: {cap}: is one of the inputs; refusing to overwrite\n"
    assert cap.read_bytes() == before


def test_report_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    code, _, err = run("report", str(tmp_path / "nope.pcap"), "-o", str(tmp_path / "r.html"))
    assert code == 2
    assert err.count("\n") == 1 and "nope.pcap" in err
    assert not (tmp_path / "r.html").exists()


def test_report_into_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "no" / "r.html"
    code, _, err = run("report", str(_capture(tmp_path)), "-o", str(target))
    assert code == 2
    assert err == f"pcapdns: {target}: cannot write: No such file or directory\n"


def test_analyze_html_beside_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, stdout, err = run("analyze", str(_capture(tmp_path)), "--html", str(out))
    assert code == 0, err
    assert stdout.splitlines()[1].startswith("1 file, 4 packets")
    assert 'id="verdict"' in out.read_text()


def test_analyze_html_and_output_must_differ(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, _, err = run("analyze", str(_capture(tmp_path)), "-o", str(out), "--html", str(out))
    assert code == 2
    assert "given for both --output and --html" in err


def test_report_html_and_json_must_differ(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, _, err = run("report", str(_capture(tmp_path)), "-o", str(out), "--json", str(out))
    assert code == 2
    assert err == f"pcapdns: {out}: given for both --output and --json\n"
    assert not out.exists()


# --- Where outputs go: as a shell redirect writes them ------------------------------------

# Each option that writes a file: (command, the option, options that send the others away).
OUTPUT_OPTIONS = {
    "analyze -o": ("analyze", "-o", ["--format", "json"]),
    "analyze --html": ("analyze", "--html", ["-o", "{tmp}/summary.txt"]),
    "report -o": ("report", "-o", []),
    "report --json": ("report", "--json", ["-o", "{tmp}/r.html"]),
}


def run_output(which: str, target: Path, tmp_path: Path) -> tuple[int, str, str]:
    """Run the command of ``which`` on a small capture with its output at ``target``."""
    command, option, others = OUTPUT_OPTIONS[which]
    cap = tmp_path / "in" / "one.pcap"
    if not cap.exists():
        cap.parent.mkdir(exist_ok=True)
        _capture(cap.parent)
    extra = [arg.format(tmp=tmp_path / "in") for arg in others]
    return run(command, str(cap), option, str(target), *extra)


def looks_written(which: str, data: bytes) -> bool:
    if which in ("analyze -o", "report --json"):
        return json.loads(data)["schema"] == "pcapdns.analysis/1"
    return data.startswith(b"<!DOCTYPE html>")


@pytest.fixture(params=sorted(OUTPUT_OPTIONS))
def which(request: pytest.FixtureRequest) -> str:
    return request.param


def test_output_to_a_fifo_is_written_into_the_pipe(which: str, tmp_path: Path) -> None:
    from tests.output.test_outfile import FifoReader

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)

    code, _, err = run_output(which, fifo, tmp_path)

    data = reader.result()
    assert code == 0, err
    assert looks_written(which, data), data[:200]
    assert stat.S_ISFIFO(fifo.stat().st_mode), "the FIFO was replaced"
    assert [p.name for p in tmp_path.iterdir() if p.name != "in"] == ["fifo"]


def test_output_to_a_symlink_replaces_its_target(which: str, tmp_path: Path) -> None:
    target = tmp_path / "kept" / "out"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(target)

    code, _, err = run_output(which, link, tmp_path)

    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert looks_written(which, target.read_bytes())
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # an existing file keeps its mode
    assert [p.name for p in target.parent.iterdir()] == ["out"]


def test_a_new_output_file_is_private_and_an_existing_one_keeps_its_mode(
    which: str, tmp_path: Path,
) -> None:
    new = tmp_path / "new"
    code, _, err = run_output(which, new, tmp_path)
    assert code == 0, err
    assert stat.S_IMODE(new.stat().st_mode) == 0o600

    old = tmp_path / "old"
    old.write_text("old")
    old.chmod(0o664)
    code, _, err = run_output(which, old, tmp_path)
    assert code == 0, err
    assert looks_written(which, old.read_bytes())
    assert stat.S_IMODE(old.stat().st_mode) == 0o664


def _full_device(tmp_path: Path) -> Path:
    """A device that answers every write with ENOSPC. As root, a node of /dev/full's own
    device made for the test, so that a failure of the test cannot replace /dev/full;
    elsewhere /dev/full itself, which only root could replace."""
    if os.geteuid() != 0:
        return Path("/dev/full")
    full = tmp_path / "dev" / "full"
    full.parent.mkdir()
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    try:
        os.close(os.open(full, os.O_WRONLY))
    except PermissionError:
        pytest.skip(f"{full.parent} is mounted nodev: devices cannot be opened there")
    return full


def test_output_to_dev_full_is_one_line_and_leaves_the_device(which: str, tmp_path: Path) -> None:
    full = _full_device(tmp_path)
    around = sorted(os.listdir(full.parent))

    code, out, err = run_output(which, full, tmp_path)

    assert code == 2
    assert err.endswith(f"pcapdns: {full}: cannot write: No space left on device\n"), err
    assert "Traceback" not in err
    assert stat.S_ISCHR(full.stat().st_mode) and full.stat().st_rdev == os.makedev(1, 7)
    assert sorted(os.listdir(full.parent)) == around, "something was left beside the device"


def test_stdout_on_a_full_device_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "pcapdns", "analyze", "--format", "json",
                               str(_capture(tmp_path))],
                              stdout=full, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.decode() == "pcapdns: stdout: cannot write: No space left on device\n"


def test_report_to_dev_stdout_goes_to_stdout(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pcapdns", "report", str(_capture(tmp_path)),
                           "-o", "/dev/stdout"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.startswith(b"<!DOCTYPE html>")
    assert proc.stderr.decode() == "pcapdns: report written to /dev/stdout\n"


def test_dash_is_stdout_for_every_output(tmp_path: Path) -> None:
    code, out, err = run("report", str(_capture(tmp_path)), "-o", "-")
    assert code == 0, err
    assert out.startswith("<!DOCTYPE html>")
    assert err == "pcapdns: report written to stdout\n"
    assert not (tmp_path / "-").exists()
    code, out, err = run("analyze", str(_capture(tmp_path)), "--html", "-")
    assert code == 2 and out == ""
    assert err == "pcapdns: stdout given for both --output and --html\n"
    code, out, err = run("report", str(_capture(tmp_path)), "-o", "-", "--json", "-")
    assert code == 2
    assert err == "pcapdns: stdout given for both --output and --json\n"


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 16 KiB tmpfs: a real file system that runs out of space."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True, timeout=60)


@pytest.mark.parametrize("command", ["analyze", "report"])
def test_a_full_disk_leaves_the_earlier_file_and_no_partial_one(
    command: str, full_disk: Path, tmp_path: Path,
) -> None:
    # 400 lookups: the JSON document with every transaction, or the report, needs more
    # than the 16 KiB there are.
    many = write_eth(tmp_path / "many.pcap", [
        (100.0 + i * 0.01, query(f"n{i}.example", id=i)) for i in range(400)
    ])
    out = full_disk / "out"
    out.write_text("the earlier output\n")
    args = (["analyze", "--format", "json", "--transactions"] if command == "analyze"
            else ["report"])

    code, _, err = run(*args, str(many), "-o", str(out))

    assert code == 2
    assert err == f"pcapdns: {out}: cannot write: No space left on device\n"
    assert out.read_text() == "the earlier output\n"
    assert [p.name for p in full_disk.iterdir()] == ["out"]


# --- An output is never an input: compared by the files themselves ----------------------


def _ring(tmp_path: Path) -> Path:
    """A capture directory as the agent leaves it: two ring files and capture.json."""
    ring = tmp_path / "ring"
    ring.mkdir()
    write_eth(ring / "dns.pcap0", [(100.0, query(id=1)), (100.002, response(id=1))])
    write_eth(ring / "dns.pcap1", [(101.0, query(id=2)), (101.002, response(id=2))])
    (ring / "capture.json").write_text("{}")
    return ring


def _contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_file_of_an_input_directory_is_an_input(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    before = _contents(ring)
    target = ring / "dns.pcap1"

    code, out, err = run("analyze", str(ring), "-o", str(target))
    assert (code, out) == (2, "")
    assert err == f"pcapdns: {target}: is one of the inputs; refusing to overwrite\n"

    code, _, err = run("report", str(ring), "-o", str(ring / "dns.pcap0"))
    assert code == 2
    assert err == f"pcapdns: {ring / 'dns.pcap0'}: is one of the inputs; refusing to overwrite\n"

    code, _, err = run("analyze", f"{ring}/", "--html", f"{ring}/dns.pcap1")
    assert code == 2
    assert err == f"pcapdns: {ring}/dns.pcap1: is one of the inputs; refusing to overwrite\n"
    assert _contents(ring) == before


def test_a_hard_link_to_an_input_is_that_input(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    before = _contents(ring)
    linked = tmp_path / "report.html"
    os.link(ring / "dns.pcap0", linked)

    code, _, err = run("report", str(ring), "-o", str(linked))
    assert code == 2
    assert err == (f"pcapdns: {linked}: is the same file as the input {ring / 'dns.pcap0'}; "
                   "refusing to overwrite\n")

    code, _, err = run("analyze", str(ring / "dns.pcap0"), "--format", "json",
                       "-o", str(linked))
    assert code == 2
    assert err == (f"pcapdns: {linked}: is the same file as the input {ring / 'dns.pcap0'}; "
                   "refusing to overwrite\n")
    assert _contents(ring) == before


def test_a_symlink_to_an_input_is_that_input(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    before = _contents(ring)
    link = tmp_path / "out.json"
    link.symlink_to(ring / "dns.pcap1")

    code, _, err = run("report", str(ring), "-o", str(tmp_path / "r.html"),
                       "--json", str(link))
    assert code == 2
    assert err == (f"pcapdns: {link}: is the same file as the input {ring / 'dns.pcap1'}; "
                   "refusing to overwrite\n")
    assert _contents(ring) == before
    assert not (tmp_path / "r.html").exists()


def test_capture_json_beside_the_inputs_is_an_input(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    meta = ring / "capture.json"

    code, _, err = run("analyze", str(ring / "dns.pcap0"), "--format", "json", "-o", str(meta))
    assert code == 2
    assert err == f"pcapdns: {meta}: is one of the inputs; refusing to overwrite\n"

    code, _, err = run("report", str(ring), "-o", str(tmp_path / "r.html"), "--json", str(meta))
    assert code == 2
    assert err == f"pcapdns: {meta}: is one of the inputs; refusing to overwrite\n"
    assert meta.read_text() == "{}"


def test_a_file_the_directory_would_skip_is_still_not_an_output(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    notes = ring / "notes.txt"
    notes.write_text("node-3, during the incident\n")

    code, _, err = run("analyze", str(ring), "-o", str(notes))
    assert code == 2
    assert err == f"pcapdns: {notes}: is one of the inputs; refusing to overwrite\n"
    assert notes.read_text() == "node-3, during the incident\n"


def test_the_report_beside_a_ring_is_not_an_input(tmp_path: Path) -> None:
    # `pcapdns capture --analyze` writes DIR/report.html, and runs again over the same DIR.
    ring = _ring(tmp_path)
    for _ in range(2):
        code, _, err = run("report", str(ring), "-o", str(ring / "report.html"))
        assert code == 0, err
    assert (ring / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_two_outputs_that_are_one_file_by_a_hard_link(tmp_path: Path) -> None:
    first = tmp_path / "r.html"
    first.write_text("old")
    second = tmp_path / "same.json"
    os.link(first, second)

    code, _, err = run("report", str(_capture(tmp_path)), "-o", str(first),
                       "--json", str(second))
    assert code == 2
    assert err == f"pcapdns: {second}: given for both --output and --json\n"
    assert first.read_text() == "old"
