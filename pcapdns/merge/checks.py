"""Whether per-node documents may be added up: what is refused, what is warned about.

The cluster's counts are sums, so a lookup must be in one document only. The rules
(docs/analysis.md, "The whole cluster"):

- the same document file twice, or two documents that read the same capture file (same
  path, size, first and last record time): refused, the sums would count it twice;
- two documents of one node whose captures overlap in time: refused, the node's lookups in
  the overlap would be counted twice (two analyses of one ring, or of a ring and a copy);
- documents written by different pcapdns versions: warned about, and added up (the schema
  is the same; a definition may have changed between them);
- a document without a timeline (written before it had one): warned about, left out of
  the windows, counted in every sum.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime

from pcapdns.merge.load import MergeError, NodeDoc


def check(docs: Sequence[NodeDoc]) -> list[str]:
    """Refuse inputs that would be double-counted; return the warnings for the rest.

    Raises:
        MergeError: the same document or capture file twice, or one node's captures overlap.
    """
    _same_document(docs)
    _same_capture(docs)
    _node_overlap(docs)
    warnings = []
    versions = sorted({d.doc["pcapdns_version"] for d in docs})
    if len(versions) > 1:
        warnings.append(f"documents written by different pcapdns versions ({', '.join(versions)}): "
                        "added up, but a definition may differ between them")
    for d in docs:
        if not isinstance(d.doc.get("timeline"), dict):
            warnings.append(f"{d.path}: no timeline (written by pcapdns "
                            f"{d.doc['pcapdns_version']}); left out of the windows")
        if not d.node_from_capture:
            warnings.append(f"{d.path}: no capture agent record (capture.json); the node is "
                            "named after the file")
    return warnings


def _same_document(docs: Sequence[NodeDoc]) -> None:
    seen: dict[tuple[int, int], str] = {}
    for d in docs:
        st = os.stat(d.path)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            raise MergeError(f"{d.path}: the same file as {seen[key]}; each document is "
                             "merged once")
        seen[key] = d.path


def _capture_key(item: object) -> tuple[object, ...] | None:
    if not isinstance(item, dict):
        return None
    return (item.get("path"), item.get("size"), item.get("first_time"), item.get("last_time"))


def _same_capture(docs: Sequence[NodeDoc]) -> None:
    """Paths alone are not enough (every node's ring has the same path), nor times alone:
    the path, the size and the first and last record times together name one file."""
    seen: dict[tuple[object, ...], str] = {}
    for d in docs:
        for item in d.doc["inputs"]:
            key = _capture_key(item)
            if key is None:
                continue
            if key in seen and seen[key] != d.path:
                raise MergeError(f"{d.path}: analyzes the same capture file ({key[0]}) as "
                                 f"{seen[key]}; its lookups would be counted twice")
            seen[key] = d.path


def span(d: NodeDoc) -> tuple[float, float] | None:
    """The document's capture span (summary.first_time .. last_time), in UNIX seconds."""
    s = d.doc["summary"]
    first, last = _time(s.get("first_time")), _time(s.get("last_time"))
    if first is None or last is None:
        return None
    return first, last


def _node_overlap(docs: Sequence[NodeDoc]) -> None:
    by_node: dict[str, list[tuple[float, float, str]]] = {}
    for d in docs:
        sp = span(d)
        if sp is not None:
            by_node.setdefault(d.node, []).append((*sp, d.path))
    for node, spans in by_node.items():
        spans.sort()
        for (_, end, path), (start, _, other) in zip(spans, spans[1:], strict=False):
            if start <= end:
                raise MergeError(f"{other}: node {node}'s capture overlaps that of {path} in "
                                 "time; the lookups of the overlap would be counted twice")


def _time(value: object) -> float | None:
    """An ISO time of the document (``2026-12-02T01:35:55.899034Z``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


parse_time = _time
