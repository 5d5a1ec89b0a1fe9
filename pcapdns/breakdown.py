"""Per-server and per-client tallies of lookups: which server fails, which client suffers.

The core (pcapdns._core) tallies every closed lookup; these are its tables. Memory is
bounded: at most ``MAX_SERVERS`` servers and ``MAX_CLIENTS`` clients are tallied one by one;
lookups of any further ones are added to a single "other" row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pcapdns.latency import LatencyHistogram

MAX_SERVERS = 1000
MAX_CLIENTS = 20000
OTHER = "*"


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

    @classmethod
    def from_core(cls, servers: list[tuple[str, dict[str, Any]]],
                  clients: list[tuple[str, dict[str, Any]]]) -> Breakdown:
        """The tables the core tallied, rows in the order they were first needed."""
        b = cls()
        for key, row in servers:
            fields = dict(row)
            fields["latency"] = LatencyHistogram.from_core(*fields["latency"])
            b.servers[key] = ServerTally(**fields)
        for key, row in clients:
            b.clients[key] = ClientTally(**row)
        return b
