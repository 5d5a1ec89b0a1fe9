"""Per-server and per-client tallies of lookups: which server fails, which client suffers.

Fed with every closed lookup, like the detectors. Memory is bounded: at most
``MAX_SERVERS`` servers and ``MAX_CLIENTS`` clients are tallied one by one; lookups of any
further ones are added to a single "other" row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pcapdns.latency import LatencyHistogram
from pcapdns.match.records import Lookup

MAX_SERVERS = 1000
MAX_CLIENTS = 20000
OTHER = "*"

_RCODES_OF_INTEREST = {2: "servfail", 3: "nxdomain", 5: "refused"}

Row = TypeVar("Row")


@dataclass(slots=True)
class ServerTally:
    """Lookups sent to one server address (the first attempt's destination)."""

    lookups: int = 0
    answered: int = 0
    #: Failed lookups, not counting those still open at the capture's end.
    failed: int = 0
    retransmissions: int = 0
    servfail: int = 0
    nxdomain: int = 0
    refused: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass(slots=True)
class ClientTally:
    """Lookups made by one client address."""

    lookups: int = 0
    answered: int = 0
    failed: int = 0
    retransmissions: int = 0
    race_lost: int = 0
    servfail: int = 0
    nxdomain: int = 0
    refused: int = 0
    #: Slowest answered lookup, in seconds from its first attempt.
    max_latency: float = 0.0


class Breakdown:
    def __init__(self) -> None:
        self.servers: dict[str, ServerTally] = {}
        self.clients: dict[str, ClientTally] = {}

    def lookup(self, lookup: Lookup) -> None:
        q = lookup.first
        server = self._row(self.servers, q.dst, MAX_SERVERS, ServerTally)
        client = self._row(self.clients, q.src, MAX_CLIENTS, ClientTally)
        retries = lookup.retransmissions
        server.lookups += 1
        client.lookups += 1
        server.retransmissions += retries
        client.retransmissions += retries
        client.race_lost += sum(1 for t in lookup.attempts if t.pair_race_lost)
        latency = lookup.latency
        answer = lookup.answer
        if lookup.failed:
            server.failed += 1
            client.failed += 1
            return
        if answer is None or answer.response is None or latency is None:
            return  # still waiting when the capture ended: neither answered nor failed
        server.answered += 1
        client.answered += 1
        server.latency.add(latency)
        client.max_latency = max(client.max_latency, latency)
        kind = _RCODES_OF_INTEREST.get(answer.response.flags & 0xF)
        if kind is not None:
            setattr(server, kind, getattr(server, kind) + 1)
            setattr(client, kind, getattr(client, kind) + 1)

    @staticmethod
    def _row(table: dict[str, Row], key: str, cap: int, make: Callable[[], Row]) -> Row:
        row = table.get(key)
        if row is None:
            if len(table) >= cap:
                key = OTHER
                row = table.get(key)
            if row is None:
                row = table[key] = make()
        return row

