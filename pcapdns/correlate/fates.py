"""Pair each client query with the server query it became, and decide each lookup's fate.

Pairing: the same DNS ID, name (case-insensitive) and type, and the server's capture time
less the clock offset within ``match_window`` (plus the offset's error bound) of the
client's. Addresses and ports are not compared: DNAT rewrites the destination (service IP
to a DNS pod) and a masquerade may rewrite the source port. When several candidates fit,
the nearest in time wins, each server query pairs with one client query at most, and the
pairs are made nearest first (all candidates sorted by distance): a few sorts and binary
searches, n log n.

Fates of an attempt not answered at the client (docs/analysis.md has the full text):
``lost_after_server`` when an answer to its server query left the server,
``lost_at_server`` when the query arrived and no answer left while the server capture
ran on, ``lost_before_server`` when the server capture ran at that time and never saw it,
else ``unknown``. A lookup takes the furthest fate of its attempts; it is ``unknown`` when
one of them is and none got as far as ``lost_after_server``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from pcapdns.correlate.records import (
    FATES,
    AttemptFate,
    ClockOffset,
    CorrelateConfig,
    Fate,
    LookupFate,
    Query,
    ServerPairing,
    SideCapture,
)

#: How far along the path each fate of an unanswered attempt got.
_REACH: dict[Fate, int] = {"lost_before_server": 0, "lost_at_server": 1,
                           "lost_after_server": 2}


def pair_queries(client: Sequence[Query], server: Sequence[Query], offset: float,
                 tolerance: float) -> dict[int, int]:
    """Client query index -> server query index, nearest first, one to one. ``server``
    must be in time order."""
    by_key: dict[tuple[int, str, int], list[int]] = {}
    for j, s in enumerate(server):
        by_key.setdefault(s.key, []).append(j)
    times = {k: [server[j].packet.time - offset for j in js] for k, js in by_key.items()}
    candidates: list[tuple[float, int, int]] = []
    for i, c in enumerate(client):
        js = by_key.get(c.key)
        if js is None:
            continue
        ts = times[c.key]
        t = c.packet.time
        lo = bisect.bisect_left(ts, t - tolerance)
        hi = bisect.bisect_right(ts, t + tolerance)
        candidates.extend((abs(ts[k] - t), i, js[k]) for k in range(lo, hi))
    candidates.sort()
    paired: dict[int, int] = {}
    taken: set[int] = set()
    for _, i, j in candidates:
        if i not in paired and j not in taken:
            paired[i] = j
            taken.add(j)
    return paired


def attempt_fate(c: Query, s: Query | None, clock: ClockOffset, server: SideCapture,
                 config: CorrelateConfig) -> Fate:
    """The fate of one client attempt, given the server query paired with it (if any)."""
    if c.response is not None:
        return "answered"
    if clock.offset is None or server.first_time is None or server.last_time is None:
        return "unknown"
    err = clock.error_bound or 0.0
    if s is not None:
        if s.response is not None:
            return "lost_after_server"
        # No answer left, but only say so if the server capture went on long enough
        # after the query to have seen one leave.
        if s.packet.time + config.match_window <= server.last_time:
            return "lost_at_server"
        return "unknown"
    arrival = c.packet.time + clock.offset
    if arrival - err >= server.first_time and (
            arrival + config.match_window + err <= server.last_time):
        return "lost_before_server"
    return "unknown"


def lookup_fate(attempts: Sequence[Fate]) -> Fate:
    """One fate for a lookup from its attempts' fates."""
    if "answered" in attempts:
        return "answered"
    furthest = max((_REACH[f] for f in attempts if f in _REACH), default=None)
    if furthest == _REACH["lost_after_server"]:
        return "lost_after_server"
    if furthest is None or "unknown" in attempts:
        # An attempt outside the server capture may have got further than the others.
        return "unknown"
    return next(f for f, r in _REACH.items() if r == furthest)


def judge(client: SideCapture, server: SideCapture, clock: ClockOffset,
          config: CorrelateConfig) -> tuple[dict[Fate, int], list[LookupFate], int,
                                            tuple[ServerPairing, ...], int]:
    """Fates of the client's lookups: (counts, the lookups not answered, lookups to other
    servers, where the queries went, client queries paired)."""
    paired: dict[int, int] = {}
    if clock.offset is not None:
        tolerance = config.match_window + (clock.error_bound or 0.0)
        paired = pair_queries(client.queries, server.queries, clock.offset, tolerance)
    # Destinations that reached the server capture at least once: a lookup sent elsewhere
    # (another resolver) cannot be judged against this server's capture.
    queries, copies = client.queries, server.queries
    arrived: dict[tuple[str, int], dict[tuple[str, int], int]] = {}
    for i, j in paired.items():
        sent, got = queries[i].packet, copies[j].packet
        to = arrived.setdefault((sent.dst, sent.dport), {})
        at = (got.dst, got.dport)
        to[at] = to.get(at, 0) + 1
    counts: dict[Fate, int] = dict.fromkeys(FATES, 0)
    lost: list[LookupFate] = []
    elsewhere = 0
    for indexes in client.lookups:
        first = queries[indexes[0]].packet
        if paired and (first.dst, first.dport) not in arrived:
            elsewhere += 1
            continue
        if any(queries[i].response is not None for i in indexes):
            counts["answered"] += 1  # most lookups: nothing more to know about them
            continue
        attempts = []
        for i in indexes:
            c = queries[i]
            s = copies[paired[i]] if i in paired else None
            delay = (s.packet.time - clock.offset - c.packet.time
                     if s is not None and clock.offset is not None else None)
            attempts.append(AttemptFate(client=c, server=s, delay=delay,
                                        fate=attempt_fate(c, s, clock, server, config)))
        fate = lookup_fate([a.fate for a in attempts])
        counts[fate] += 1
        lost.append(LookupFate(lookup=c.lookup, fate=fate, attempts=tuple(attempts)))
    lost.sort(key=lambda lf: (lf.attempts[0].client.packet.time, lf.lookup))
    servers = tuple(
        ServerPairing(client_side=_address(to), server_side=tuple(
            (_address(a), n) for a, n in sorted(at.items())))
        for to, at in sorted(arrived.items()))
    return counts, lost, elsewhere, servers, len(paired)


def _address(ip_port: tuple[str, int]) -> str:
    """ip:port, written as the analysis' outputs write it."""
    ip, port = ip_port
    return f"{ip}:{port}"
