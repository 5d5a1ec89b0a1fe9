"""Reading the per-node analysis documents that ``pcapdns merge`` joins.

Each input must be a whole ``pcapdns.analysis/1`` document (docs/analysis.md). A file that
is missing, is not JSON, is cut short or has another shape is refused with one line naming
it (MergeError); nothing is half-read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from pcapdns.errors import PcapdnsError
from pcapdns.output.document import SCHEMA

#: A per-node document larger than this is not one an analysis wrote for merging (it
#: would be one with every transaction: still read, up to this size).
MAX_SIZE = 1 << 30


class MergeError(PcapdnsError):
    """An input of ``pcapdns merge`` cannot be used, or the inputs cannot be joined."""


@dataclass(frozen=True, slots=True)
class NodeDoc:
    """One per-node analysis document, read and checked."""

    #: The path as given.
    path: str
    #: The node: the capture agent's ``capture.node``, else the file's name.
    node: str
    #: Whether ``node`` came from the capture agent's record (False: the file name).
    node_from_capture: bool
    #: The document itself, as parsed.
    doc: dict[str, Any]


def load(path: str) -> NodeDoc:
    """Read one document.

    Raises:
        MergeError: missing or unreadable, not JSON (a cut-off file is this too), or not a
            pcapdns analysis document.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SIZE + 1)
    except OSError as e:
        raise MergeError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_SIZE:
        raise MergeError(f"{path}: larger than {MAX_SIZE >> 20} MiB; not an analysis document")
    if not data.strip():
        raise MergeError(f"{path}: empty; not an analysis document")
    try:
        text = data.decode("utf-8")  # the documents are UTF-8 (RFC 8259 section 8.1)
    except UnicodeDecodeError:
        raise MergeError(f"{path}: not JSON (not UTF-8 text)") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        # The parser stopped at the end, or in a string that never ends (its closing
        # quote was cut off with the rest): the file was cut short.
        if e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string"):
            raise MergeError(f"{path}: truncated JSON (ends at byte {len(data)})") from None
        raise MergeError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    _check_shape(path, doc)
    capture = doc.get("capture")
    node = capture.get("node") if isinstance(capture, dict) else None
    if isinstance(node, str) and node:
        return NodeDoc(path, node, True, doc)
    return NodeDoc(path, os.path.basename(path), False, doc)


def _check_shape(path: str, doc: Any) -> None:
    """The fields the merge reads must be there with their documented types."""
    if not isinstance(doc, dict) or "schema" not in doc:
        raise MergeError(f"{path}: not a pcapdns analysis document (no schema field)")
    if doc["schema"] != SCHEMA:
        raise MergeError(f"{path}: schema {str(doc['schema'])[:60]!r}, not {SCHEMA}; "
                         "merge joins analysis documents only")
    summary = doc.get("summary")
    problems = []
    if not isinstance(doc.get("pcapdns_version"), str):
        problems.append("pcapdns_version")
    if not isinstance(doc.get("inputs"), list):
        problems.append("inputs")
    if not isinstance(summary, dict):
        problems.append("summary")
    else:
        for key in ("lookups", "lookups_failed"):
            if not isinstance(summary.get(key), int):
                problems.append(f"summary.{key}")
        for key in ("servers", "clients", "replicas"):
            if not isinstance(summary.get(key), list):
                problems.append(f"summary.{key}")
    if not isinstance(doc.get("findings"), list):
        problems.append("findings")
    if problems:
        raise MergeError(f"{path}: not a pcapdns analysis document (missing or wrong: "
                         f"{', '.join(problems)})")
