"""Two crafted capture points of one cluster: the client's node and the DNS pod's node.

Between them the service IP is DNATed to the DNS pod and the client masqueraded to its
node's address with a new source port, as in a cluster; the server's clock is ``offset``
seconds ahead. Each lookup is (name, id, client send time, how far it got); times are
seconds after ``BASE`` on the client's clock.
"""

from __future__ import annotations

from pathlib import Path

from tests.craft import query, response, write_eth

POD = "10.0.3.7"
SERVICE = "10.96.0.10"
NODE = "10.0.3.1"
DNS_POD = "10.244.1.5"
BASE = 1_764_000_000.0
#: One-way trip between the nodes, and the server's time to answer.
TRIP = 0.002
SERVER_TIME = 0.0005

#: How far a query got: "answered", "before" (never reached the server), "at" (reached
#: it, no answer left), "after" (the answer left, never reached the client).
Reach = str


def write_sides(tmp: Path, lookups: list[tuple[str, int, float, Reach]], offset: float,
                server_span: tuple[float, float] | None = None, sport: int = 40000
                ) -> tuple[Path, Path]:
    """The client and server captures of ``lookups``; ``server_span`` (client-clock
    times) adds a first and last packet to the server capture to set its time span."""
    client: list = []
    server: list = []
    for n, (name, id, t, reach) in enumerate(lookups):
        t += BASE
        port = sport + n
        masq = 20000 + n
        client.append((t, query(name, id=id, src=POD, dst=SERVICE, sport=port)))
        if reach == "before":
            continue
        arrive = t + TRIP + offset
        server.append((arrive, query(name, id=id, src=NODE, dst=DNS_POD, sport=masq)))
        if reach == "at":
            continue
        server.append((arrive + SERVER_TIME,
                       response(name, id=id, src=DNS_POD, dst=NODE, dport=masq)))
        if reach == "after":
            continue
        client.append((t + 2 * TRIP + SERVER_TIME,
                       response(name, id=id, src=SERVICE, dst=POD, dport=port)))
    if server_span is not None:
        for k, t in enumerate(server_span):
            t += BASE
            # Another node's lookups, answered: they only mark the capture's span.
            other = f"span{k}.other.test"
            server.append((t + offset, query(other, id=60000 + k, src="10.0.9.9",
                                             dst=DNS_POD, sport=30000 + k)))
            server.append((t + offset + SERVER_TIME,
                           response(other, id=60000 + k, src=DNS_POD, dst="10.0.9.9",
                                    dport=30000 + k)))
    client.sort(key=lambda x: x[0])
    server.sort(key=lambda x: x[0])
    return (write_eth(tmp / "client.pcap", client), write_eth(tmp / "server.pcap", server))
