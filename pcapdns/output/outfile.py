"""Write an output file (the JSON document, the summary, the HTML report) the way a shell
redirect would, and no worse than one when something fails.

- A device (``/dev/null``, ``/dev/full``, a terminal), a FIFO, or ``/dev/stdout`` and the
  other ``/proc/<pid>/fd`` links is opened and written in place, as ``> FILE`` would.
  Replacing it would put a regular file where the device node or the pipe was.
- A symlink is followed to its target, which is then treated by the rules here.
- Only a regular file, or a path where nothing is yet, is replaced atomically: the text is
  written to a temporary file beside the target and renamed over it, so a reader never
  sees half a file, and a failure (a full disk, Ctrl-C) leaves what was at the path as it
  was, and no partial file.

A new file is created 0600: the output holds the capture's addresses and names, which are
as private as the capture. A replaced file keeps its mode, and its owner and group where
the process may set them.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from collections.abc import Callable
from typing import TextIO

# How many symlinks in a row are followed before giving up (Linux's own limit).
_MAX_LINKS = 40
# The directories whose entries are a process's open files (``/dev/stdout`` links to
# ``/proc/self/fd/1``); reopening such an entry reaches the file, pipe or terminal that
# descriptor has open.
_FD_DIR = re.compile(r"/proc/[^/]+/(task/[^/]+/)?fd")


def write(path: str, produce: Callable[[TextIO], object]) -> None:
    """Write to ``path`` what ``produce`` writes to the text stream it is given.

    Raises:
        OSError: the target cannot be opened or written (``ENOSPC`` from a full disk or
            ``/dev/full`` included); nothing partial is left behind at a regular file's
            path.
    """
    target, in_place = _resolve(path)
    if in_place:
        # As `>` opens it. A FIFO blocks here until a reader opens the other end.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            produce(fh)
    else:
        _replace(target, produce)


def _resolve(path: str) -> tuple[str, bool]:
    """The path to write, following symlinks, and whether to write it in place.

    Raises:
        OSError: too many symlinks, or a directory on the way cannot be searched.
    """
    current = path
    for _ in range(_MAX_LINKS):
        parent = os.path.dirname(os.path.abspath(current))
        if _FD_DIR.fullmatch(os.path.realpath(parent)):
            return current, True
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return current, False  # a new file, or the missing target of a symlink
        if not stat.S_ISLNK(st.st_mode):
            return current, not stat.S_ISREG(st.st_mode)
        current = os.path.join(os.path.dirname(current), os.readlink(current))
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def _replace(target: str, produce: Callable[[TextIO], object]) -> None:
    directory = os.path.dirname(os.path.abspath(target))
    # mkstemp creates the file 0600.
    fd, tmp = tempfile.mkstemp(prefix=".pcapdns-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            produce(fh)
            fh.flush()
            # Errors some file systems report only now (NFS, quotas) must come before
            # the rename, while the old file is still in place.
            os.fsync(fh.fileno())
        _keep_mode_and_owner(tmp, target)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _keep_mode_and_owner(tmp: str, target: str) -> None:
    """Give ``tmp`` the mode (and where allowed the owner) of the file it replaces."""
    try:
        old = os.stat(target)
    except FileNotFoundError:
        return
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.chown(tmp, old.st_uid, old.st_gid)
        except PermissionError:
            pass  # only root may give a file away; the content is still written
    # Permission bits only: a report is never made set-user-ID.
    os.chmod(tmp, old.st_mode & 0o777)
