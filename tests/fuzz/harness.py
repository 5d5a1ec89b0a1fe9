"""One fuzz input through the whole analysis, as ``pcapdns analyze`` and ``report`` run it.

An input is the bytes of one capture file, optionally followed by ``META_MARK`` and the
bytes of the capture.json beside it (the part after the last mark). ``run_one`` writes
them to a directory, analyzes the capture with every transaction kept, and renders what
the commands write: the JSON document, the text summary and the HTML report's model.
Every rendered text is encoded to UTF-8, as the output files are.

``full=True`` renders exactly as the commands do: the document through
``document.write`` (indented, which uses json's slower pure-Python encoder) and the HTML
page with its charts (matplotlib: some hundred milliseconds). The campaign leaves both out
to run hundreds of inputs a second: ``document.build`` makes every field ``write`` does,
and the page is laid out from the model. The reproducer tests use ``full=True``.

An ``InputError`` (the input cannot be used; the CLI prints one line and exits 2) is an
expected outcome. Any other exception is a crash and propagates.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from pcapdns.analysis import analyze
from pcapdns.errors import InputError
from pcapdns.output import document, text
from pcapdns.read.capture_meta import NAME as META_NAME

#: Separates the capture's bytes from capture.json's in one fuzz input.
META_MARK = b"\n#pcapdns-fuzz:capture.json#\n"
#: The capture file's name in the work directory: the first file of a tcpdump ring
#: (``-w dns.pcap -C N``), so that a capture.json naming that ring has its stop time used.
RING_PREFIX = "dns.pcap"
CAPTURE_NAME = RING_PREFIX + "0"


def split(data: bytes) -> tuple[bytes, bytes | None]:
    """(capture bytes, capture.json bytes or None) of one fuzz input."""
    head, mark, meta = data.rpartition(META_MARK)
    if not mark:
        return data, None
    return head, meta


def join(capture: bytes, meta: bytes | None) -> bytes:
    """The fuzz input made of a capture and, if given, its capture.json."""
    return capture if meta is None else capture + META_MARK + meta


def run_one(data: bytes, workdir: Path, *, full: bool = False) -> str | None:
    """Analyze and render one input in ``workdir`` (a directory of its own).

    Returns the InputError's message when the input is refused, else None.

    Raises:
        Exception: anything but InputError: a crash.
    """
    capture, meta = split(data)
    path = workdir / CAPTURE_NAME
    meta_path = workdir / META_NAME
    path.write_bytes(capture)
    if meta is None:
        if meta_path.exists():
            meta_path.unlink()
    else:
        meta_path.write_bytes(meta)
    try:
        result = analyze([str(path)], keep_lookups=True)
    except InputError as e:
        if str(path) not in str(e):
            raise AssertionError(f"input error does not name the file: {e}") from e
        return str(e)
    if full:
        out = io.StringIO()
        document.write(result, out)
        out.getvalue().encode("utf-8")
    else:
        json.dumps(document.build(result), ensure_ascii=False).encode("utf-8")
    text.render(result).encode("utf-8")
    for w in result.warnings:
        w.encode("utf-8")
    # Imported here: the report pulls in jinja2 (and matplotlib for the page).
    from pcapdns.report import model

    report = model.build(result, command="pcapdns report fuzz")
    if full:
        from pcapdns.report import html as html_page

        html_page.render(report).encode("utf-8")
    return None
