"""Search-list expansion: a name tried with search suffixes before the one that worked.

With ``ndots:5`` (the Kubernetes default) a name with fewer than 5 dots is tried with each
``search`` suffix first (``name.<ns>.svc.cluster.local``, ``name.svc.cluster.local``,
``name.cluster.local``, ...), each an NXDOMAIN round trip, before the name as written.
On the wire: NXDOMAIN lookups from one client for the same type whose names are the final
name's labels plus a longer suffix, shortly before it. A chain ends at the first lookup that
is not answered NXDOMAIN; a name that exists under no suffix shows only as NXDOMAIN
findings.

Without the pod's resolv.conf the suffixes are inferred from the names: a failed name and
the final name share their leading labels, and the failed name's remaining labels end with
the final name's remaining labels (search suffixes nest: ``default.svc.cluster.local``,
``svc.cluster.local``, ``cluster.local``), or the final name is that shared part itself.

This detector keeps state across lookups, bounded by ``WINDOW`` seconds per client.
"""

from __future__ import annotations

from collections import deque

from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding, ms
from pcapdns.match.records import Lookup

#: A suffix attempt belongs to a chain when sent at most this long before the final name.
WINDOW = 10.0
_NXDOMAIN = 3


class SearchExpansion:
    """Window detector: feed lookups as they close; returns findings for whole chains."""

    def __init__(self, config: AnalysisConfig) -> None:
        self.config = config
        #: Recent NXDOMAIN lookups by client, oldest first.
        self._failed: dict[str, deque[Lookup]] = {}
        self._now = float("-inf")
        self._fed = 0

    def _expire(self) -> None:
        """Forget clients whose tries are all too old to start a chain."""
        limit = self._now - 2 * WINDOW
        for client in list(self._failed):
            recent = self._failed[client]
            while recent and recent[0].first.time < limit:
                recent.popleft()
            if not recent:
                del self._failed[client]

    def feed(self, lookup: Lookup) -> list[Finding]:
        q = lookup.first
        if lookup.answer is None or lookup.answer.response is None or q.qname is None:
            return []
        self._now = max(self._now, q.time)
        self._fed += 1
        if not self._fed % 4096:
            self._expire()
        if lookup.answer.response.flags & 0xF == _NXDOMAIN:
            # Not the end of a chain: it may be one of the tries of a later name.
            self._failed.setdefault(q.src, deque()).append(lookup)
            return []
        recent = self._failed.get(q.src)
        out: list[Finding] = []
        if recent:
            while recent and recent[0].first.time < self._now - 2 * WINDOW:
                recent.popleft()
            chain = [x for x in recent if _is_suffix_attempt(x, lookup)]
            if chain:
                for x in chain:
                    recent.remove(x)
                out.append(_finding(lookup, chain))
            if not recent:
                del self._failed[q.src]
        return out

    def finish(self) -> list[Finding]:
        self._failed.clear()
        return []


def _labels(name: str) -> list[str]:
    return name.lower().rstrip(".").split(".")


def _is_suffix_attempt(x: Lookup, final: Lookup) -> bool:
    """Whether NXDOMAIN lookup ``x`` is a search-suffix try of ``final``'s name."""
    xq, fq = x.first, final.first
    if x is final or xq.qtype != fq.qtype or xq.qclass != fq.qclass or xq.qname is None:
        return False
    if not (fq.time - WINDOW <= xq.time <= fq.time):
        return False
    lx, lf = _labels(xq.qname), _labels(fq.qname or "")
    k = _common(lx, lf)
    if k == 0:
        return False
    rest_x, rest_f = lx[k:], lf[k:]
    if not rest_x or len(rest_x) <= len(rest_f):
        return False
    return not rest_f or rest_x[-len(rest_f):] == rest_f


def _finding(final: Lookup, chain: list[Lookup]) -> Finding:
    chain.sort(key=lambda lk: lk.first.time)
    fq = final.first
    base = len(_labels(fq.qname or ""))
    tried = list(dict.fromkeys(
        ".".join(_labels(lk.first.qname or "")[_common(_labels(lk.first.qname or ""),
                                                        _labels(fq.qname or "")):])
        for lk in chain
    ))
    queries = sum(len(lk.attempts) for lk in chain)
    frames = [lk.first.frame for lk in chain]
    answer = final.answer
    assert answer is not None and answer.response is not None
    frames += [fq.frame, answer.response.frame]
    spent = answer.response.time - chain[0].first.time
    detail = (
        f"{queries} NXDOMAIN {'query' if queries == 1 else 'queries'} for search suffixes "
        f"({', '.join(tried)}) came before {fq.qname} ({base - 1} dots) was answered; "
        f"the whole lookup took {ms(spent)}"
    )
    return finding("search_expansion", "info", final, frames, detail + ".",
                   subjects=(*chain, final))


def _common(a: list[str], b: list[str]) -> int:
    """How many leading labels two names share."""
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    return k
