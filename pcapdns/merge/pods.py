"""The pod names a document may carry (``pods``, written with ``--pods``; null without).

Read defensively: a document written before the section existed, or without ``--pods``,
has none, and any entry that is not what is expected is passed over, so the client stays
an address. An entry maps an address to its namespace, pod and workload (owner).
"""

from __future__ import annotations

from typing import Any


def _table(pods: Any) -> dict[str, Any] | None:
    """The address -> entry mapping: the section itself, or one of its members."""
    if not isinstance(pods, dict):
        return None
    for key in ("addresses", "by_address", "pods"):
        inner = pods.get(key)
        if isinstance(inner, dict):
            return inner
    return pods


def has_pods(doc: dict[str, Any]) -> bool:
    """Whether the document names pods at all."""
    table = _table(doc.get("pods"))
    return table is not None and any(isinstance(v, dict) for v in table.values())


def workload_of(pods: Any, address: str) -> str | None:
    """``namespace/workload`` (or ``namespace/pod`` without an owner) of ``address``, or
    None when the document does not name it."""
    table = _table(pods)
    entry = table.get(address) if table else None
    if not isinstance(entry, dict):
        return None
    ns = entry.get("namespace")
    ns = ns if isinstance(ns, str) and ns else None
    workload = entry.get("workload")
    if isinstance(workload, dict):
        workload = workload.get("name")
    if not isinstance(workload, str) or not workload:
        workload = entry.get("workload_name")
    if not isinstance(workload, str) or not workload:
        workload = entry.get("pod") or entry.get("name")
    if not isinstance(workload, str) or not workload:
        return None
    if ns and "/" not in workload:
        return f"{ns}/{workload}"
    return workload
