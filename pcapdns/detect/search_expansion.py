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

This detector keeps state across lookups: the NXDOMAIN lookups of the last ``2 * WINDOW``
seconds, at most ``AnalysisConfig.max_search_tries`` of them (the oldest beyond that are
forgotten and counted in ``evicted``). A node-local cache or a busy gateway is one client
with hundreds of queries a second, so the tries are indexed, not scanned: an NXDOMAIN
lookup costs O(L log n) to file and an answer O(L (log n + L)) to match, where L is the
number of labels (at most ``MAX_NDOTS``) and n the tries kept.

Its clock is a fact about every answered lookup, kept by ``pcapdns._core.Facts``
(core/src/facts.rs) so that a healthy lookup need not reach this detector: it is given the
NXDOMAIN lookups and the answers whose (client, type, class, first label) is that of a try
with more than one label (``watch_name``): a chain needs one, as a try is the final name
with labels inserted after at least its first. Tries are expired when it is given a lookup,
by the clock of then; expiring is the same done late as done at each lookup in between,
since a try expires by the clock alone and none of those lookups could match one.

The index rests on what a try is: the final name with labels inserted after its first
``k`` labels (``api.example.com`` + ``default.svc.cluster.local``; ``kube-dns.kube-system``
+ ``default`` + ``svc.cluster.local``). A try is filed under each of its first
``1 .. MAX_NDOTS`` labels (a trie of labels, so that the prefixes are walked, not built and
hashed); under one such prefix, the tries are kept sorted by their labels read from the
end, so the tries that end with the final name's remaining labels are one contiguous run,
found by bisection. ``k`` is at most ``MAX_NDOTS``: glibc and musl cap
``ndots`` at 15, so a name with more labels than that is never tried with a suffix.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field

from pcapdns import _core
from pcapdns.config import AnalysisConfig
from pcapdns.detect.base import Finding, finding, ms
from pcapdns.dns.message import Message
from pcapdns.match.records import Lookup

#: A suffix attempt belongs to a chain when sent at most this long before the final name.
WINDOW = 10.0
#: The longest name (in labels) that a resolver tries with a search suffix: resolv.conf's
#: ``ndots`` is capped at 15 (glibc resolv.conf(5), musl), and only a name with fewer dots
#: than ``ndots`` is tried with the suffixes first.
MAX_NDOTS = 15
_NXDOMAIN = 3

#: A name's labels (lower case, without the root's empty label).
Labels = tuple[str, ...]
#: A name's labels, last label first: the key tries are sorted by.
Reversed = tuple[str, ...]
#: A prefix of k labels in the trie: [the prefixes of k + 1 labels by their last label, the
#: names that start with the k labels, sorted]. A list, not a record: it is walked for
#: every try filed, matched or removed.
_Prefix = list  # [dict[str, _Prefix], list[Reversed]]


class _Try:
    """One NXDOMAIN lookup kept as a possible search-suffix try."""

    __slots__ = ("lookup", "seq", "time", "space", "labels", "rev", "alive")

    def __init__(self, lookup: Lookup, seq: int, time: float, space: _Space,
                 labels: Labels) -> None:
        self.lookup: Lookup | None = lookup
        #: Order of arrival, which is the order chains list their tries in.
        self.seq = seq
        self.time = time
        self.space = space
        #: The name's labels (lower case), kept so that they are split once per try.
        self.labels = labels
        self.rev: Reversed = labels[::-1]
        #: False once matched, expired or evicted (it may still sit in the arrival queue).
        self.alive = True


@dataclass(slots=True)
class _Space:
    """The tries of one client for one question type and class."""

    #: (client, qtype, qclass)
    key: tuple[str, int, int]
    #: Tries by name (labels last first), each list sorted by (time, arrival).
    names: dict[Reversed, list[tuple[float, int, _Try]]] = field(default_factory=dict)
    #: Names by their first k labels (k = 1 .. MAX_NDOTS): the prefixes of one label.
    prefixes: dict[str, _Prefix] = field(default_factory=dict)


class SearchExpansion:
    """Window detector: feed lookups as they close; returns findings for whole chains.

    With ``facts`` (shared with the other window detectors, told of every lookup by the
    caller) it is fed only the lookups the facts say it watches; without, it keeps facts of
    its own from every lookup it is fed.
    """

    def __init__(self, config: AnalysisConfig, facts: _core.Facts | None = None) -> None:
        self.config = config
        self._own_facts = facts is None
        self.facts = _core.Facts(config) if facts is None else facts
        self._spaces: dict[tuple[str, int, int], _Space] = {}
        #: Every try filed, oldest first; matched ones are skipped when they reach the head.
        self._queue: deque[_Try] = deque()
        self._live = 0
        self._seq = 0
        #: Tries forgotten because more than ``max_search_tries`` were kept.
        self.evicted = 0

    def feed(self, lookup: Lookup) -> list[Finding]:
        if self._own_facts:
            self.facts.closed(lookup)
        answer = lookup.answer
        if answer is None:
            return []
        response = answer.response
        q = lookup.attempts[0].query
        if response is None or q.qname is None:
            return []
        # Expiring, inline: this runs for every lookup fed, and mostly finds nothing to do.
        queue = self._queue
        if queue:
            head = queue[0]
            limit = self.facts.latest_answered_query - 2 * WINDOW
            if not head.alive or head.time < limit:
                self._expire(limit)
            # Matched tries wait in the queue behind a live head; drop them now and then so
            # that the queue stays within twice the live tries.
            if len(self._queue) > 2 * self._live + 1024:
                self._queue = deque(t for t in self._queue if t.alive)
        if response.flags & 0xF == _NXDOMAIN:
            # Not the end of a chain: it may be one of the tries of a later name.
            self._file(lookup, q)
            return []
        space = self._spaces.get((q.src, q.qtype, q.qclass))
        if space is None:
            return []
        labels = _labels(q.qname)
        chain = self._match(space, q.time, labels)
        if not chain:
            return []
        found = _finding(lookup, labels, chain)
        for t in chain:
            self._remove(t)
        return [found]

    def tick(self) -> list[Finding]:
        """Time passed: nothing to do until a lookup comes (tries expire then)."""
        return []

    def finish(self) -> list[Finding]:
        self._spaces.clear()
        self._queue.clear()
        self._live = 0
        if self._own_facts:
            self.facts.finish()  # the collector finishes shared facts after every detector
        return []

    # -- the index -------------------------------------------------------------------------

    def _file(self, lookup: Lookup, q: Message) -> None:
        key = (q.src, q.qtype, q.qclass)
        space = self._spaces.get(key)
        if space is None:
            space = self._spaces[key] = _Space(key)
        labels = _labels(q.qname or "")
        self._seq += 1
        t = _Try(lookup, self._seq, q.time, space, labels)
        rev = t.rev
        tries = space.names.get(rev)
        if tries is None:
            space.names[rev] = [(t.time, t.seq, t)]
            # Filed under each prefix that leaves at least one label to insert.
            level = space.prefixes
            for k in range(min(len(labels) - 1, MAX_NDOTS)):
                prefix = level.get(labels[k])
                if prefix is None:
                    prefix = level[labels[k]] = [{}, [rev]]
                    if k == 0:  # a final name starting with this label may end a chain
                        self.facts.watch_name(*key, labels[0])
                else:
                    insort(prefix[1], rev)
                level = prefix[0]
        else:
            insort(tries, (t.time, t.seq, t))
        self._queue.append(t)
        self._live += 1
        while self._live > self.config.max_search_tries:
            head = self._queue.popleft()
            if head.alive:
                self.evicted += 1
                self._remove(head)

    def _match(self, space: _Space, time: float, labels: Labels) -> list[_Try]:
        """The live tries that are search-suffix tries of the final name ``labels`` asked
        at ``time``, in arrival order."""
        n = len(labels)
        rev_f = labels[::-1]
        lo, hi = time - WINDOW, time
        level, by_name = space.prefixes, space.names
        found: dict[int, _Try] = {}
        for k in range(1, min(n, MAX_NDOTS) + 1):
            prefix = level.get(labels[k - 1])
            if prefix is None:
                break  # nothing starts with these k labels, so nothing with more either
            level, names = prefix
            tail = rev_f[: n - k]  # the final name's labels after the first k, last first
            m = n - k
            i = bisect_left(names, tail)
            while i < len(names) and names[i][:m] == tail:
                rev = names[i]
                i += 1
                if len(rev) <= n:
                    continue  # no label inserted: the prefix and the tail overlap
                tries = by_name[rev]
                j = bisect_left(tries, (lo,))
                while j < len(tries) and tries[j][0] <= hi:
                    t = tries[j][2]
                    found[t.seq] = t
                    j += 1
        if not found:
            return []
        chain = [found[s] for s in sorted(found)]
        # The index's candidates share a prefix and a tail with the final name, in its
        # space and window; whether labels were inserted right after the longest shared
        # prefix is ``_is_suffix_attempt``'s test.
        return [t for t in chain if t.lookup is not None and _inserted(t.labels, labels)]

    def _remove(self, t: _Try) -> None:
        """Take a try out of the index (it stays in the queue until it reaches the head)."""
        if not t.alive:
            return
        t.alive = False
        t.lookup = None
        self._live -= 1
        space = t.space
        tries = space.names[t.rev]
        if len(tries) == 1:
            del space.names[t.rev]
            labels = t.labels
            level = space.prefixes
            for k in range(min(len(labels) - 1, MAX_NDOTS)):
                prefix = level[labels[k]]
                names = prefix[1]
                if len(names) == 1:
                    # The longer prefixes under this one hold this name alone too.
                    del level[labels[k]]
                    if k == 0:
                        self.facts.unwatch_name(*space.key, labels[0])
                    break
                del names[bisect_left(names, t.rev)]
                level = prefix[0]
            if not space.names:
                del self._spaces[space.key]
        else:
            del tries[bisect_left(tries, (t.time, t.seq))]

    def _expire(self, limit: float) -> None:
        """Forget tries too old to start a chain: sent before ``limit``, ``2 * WINDOW``
        before the latest lookup (twice the window, as lookups close out of order by a few
        seconds)."""
        queue = self._queue
        while queue and (not queue[0].alive or queue[0].time < limit):
            self._remove(queue.popleft())


def _labels(name: str) -> Labels:
    return tuple(name.lower().rstrip(".").split("."))


def _is_suffix_attempt(x: Lookup, final: Lookup) -> bool:
    """Whether NXDOMAIN lookup ``x`` is a search-suffix try of ``final``'s name."""
    xq, fq = x.first, final.first
    if x is final or xq.qtype != fq.qtype or xq.qclass != fq.qclass or xq.qname is None:
        return False
    if not (fq.time - WINDOW <= xq.time <= fq.time):
        return False
    return _inserted(_labels(xq.qname), _labels(fq.qname or ""))


def _inserted(lx: Labels, lf: Labels) -> bool:
    """Whether name ``lx`` is name ``lf`` with labels inserted right after the leading
    labels the two share (at least one), or appended when ``lf`` is that shared part."""
    k = _common(lx, lf)
    if k == 0:
        return False
    rest_x, rest_f = lx[k:], lf[k:]
    if not rest_x or len(rest_x) <= len(rest_f):
        return False
    return not rest_f or rest_x[-len(rest_f):] == rest_f


def _finding(final: Lookup, labels: Labels, chain: list[_Try]) -> Finding:
    """The finding for ``final`` (its name's ``labels``) and the live tries of its chain."""
    chain.sort(key=lambda t: t.time)
    lookups = [t.lookup for t in chain if t.lookup is not None]  # all: the chain is live
    fq = final.attempts[0].query
    tried = list(dict.fromkeys(".".join(t.labels[_common(t.labels, labels):]) for t in chain))
    queries = sum(len(lk.attempts) for lk in lookups)
    frames = [lk.attempts[0].query.frame for lk in lookups]
    answer = final.answer
    assert answer is not None and answer.response is not None
    frames += [fq.frame, answer.response.frame]
    spent = answer.response.time - chain[0].time
    detail = (
        f"{queries} NXDOMAIN {'query' if queries == 1 else 'queries'} for search suffixes "
        f"({', '.join(tried)}) came before {fq.qname} ({len(labels) - 1} dots) was answered; "
        f"the whole lookup took {ms(spent)}"
    )
    return finding("search_expansion", "info", final, frames, detail + ".",
                   subjects=(*lookups, final))


def _common(a: Labels, b: Labels) -> int:
    """How many leading labels two names share."""
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    return k
