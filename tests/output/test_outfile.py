"""Output files are written the way a shell redirect writes them: devices, FIFOs and
/dev/stdout in place, symlinks followed, only regular files replaced atomically."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pcapdns.output import outfile


def write_text(path: Path | str, text: str) -> None:
    outfile.write(str(path), lambda fh: fh.write(text))


class FifoReader:
    """Reads a FIFO to its end in a thread, as `cat fifo` would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = b""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as fh:
            self.data = fh.read()

    def result(self, timeout: float = 60) -> bytes:
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Nobody opened the FIFO for writing: open and close it to free the thread.
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self._thread.join(timeout)
            raise AssertionError(f"{self.path} was never opened for writing")
        return self.data


def test_a_new_file_is_created_private(tmp_path: Path) -> None:
    write_text(tmp_path / "out.json", "{}\n")

    assert (tmp_path / "out.json").read_text() == "{}\n"
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_regular_file_is_replaced_and_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("old")
    out.chmod(0o644)
    before = out.stat().st_ino

    write_text(out, "new")

    assert out.read_text() == "new"
    assert out.stat().st_ino != before, "a regular file is replaced, not rewritten"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can own a file for another user")
def test_a_replaced_file_keeps_its_owner_when_root_writes_it(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("old")
    os.chown(out, 4242, 4343)

    write_text(out, "new")

    assert (out.stat().st_uid, out.stat().st_gid) == (4242, 4343)


def test_a_failure_leaves_the_old_file_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("old")

    def half_then_fail(fh) -> None:
        fh.write("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="No space left on device"):
        outfile.write(str(out), half_then_fail)

    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_ctrl_c_while_writing_leaves_nothing_behind(tmp_path: Path) -> None:
    def interrupted(fh) -> None:
        fh.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        outfile.write(str(tmp_path / "out.json"), interrupted)

    assert list(tmp_path.iterdir()) == []


def test_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)

    write_text(fifo, "through the pipe\n")

    assert reader.result() == b"through the pipe\n"
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["fifo"]


def test_a_symlink_is_followed_to_its_target(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    target = tmp_path / "reports" / "today.json"
    target.write_text("old")
    target.chmod(0o640)
    (tmp_path / "latest").symlink_to("reports/today.json")
    (tmp_path / "current").symlink_to("latest")  # a chain of two links

    write_text(tmp_path / "current", "new")

    assert (tmp_path / "current").is_symlink() and (tmp_path / "latest").is_symlink()
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["today.json"]


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("made.json")

    write_text(tmp_path / "link", "new")

    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "made.json").read_text() == "new"
    assert stat.S_IMODE((tmp_path / "made.json").stat().st_mode) == 0o600


def test_a_symlink_loop_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")

    with pytest.raises(OSError) as e:
        write_text(tmp_path / "a", "x")

    assert e.value.errno == errno.ELOOP


def test_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        write_text(tmp_path, "x")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a device node")
def test_a_device_is_written_in_place(tmp_path: Path) -> None:
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the same device as /dev/null

    write_text(null, "discarded")

    assert stat.S_ISCHR(null.stat().st_mode)
    assert null.stat().st_rdev == os.makedev(1, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def test_dev_stdout_is_written_in_place_even_onto_a_regular_file(tmp_path: Path) -> None:
    """`> /dev/stdout` writes into the file stdout has open; replacing that file would
    leave the caller's descriptor pointing at the old one."""
    out = tmp_path / "stdout.txt"
    code = ("import sys; from pcapdns.output import outfile; "
            "outfile.write('/dev/stdout', lambda fh: fh.write('via /dev/stdout\\n'))")
    with open(out, "wb") as fh:
        before = os.fstat(fh.fileno()).st_ino
        proc = subprocess.run([sys.executable, "-c", code], stdout=fh, stderr=subprocess.PIPE,
                              timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.read_text() == "via /dev/stdout\n"
    assert out.stat().st_ino == before
    assert [p.name for p in tmp_path.iterdir()] == ["stdout.txt"]
