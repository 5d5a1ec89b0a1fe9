"""Drop capture artifacts: the same DNS message recorded more than once.

``tcpdump -i any`` on a node records each packet on several interfaces (the pod's veth, the
bridge, the uplink), before and after kube-proxy's DNAT, so addresses differ between copies
while the DNS payload stays identical. A copy is a **duplicate** when, within
``duplicate_window`` of the first copy, it has the same transport, identical DNS payload
bytes and the same client port, and either it was seen on a different capture interface or
its addresses and ports are identical (a real duplicate datagram).

Over TCP only the different-interface case applies: reassembly already removed segments
captured twice on one interface, so identical messages on one connection are real.

An identical query sent to two servers on the same interface is NOT a duplicate: musl does
that on purpose (fan-out), and the copies differ in destination address. Nor is a query
sent again after a response to it was captured: a copy of one packet cannot come after
the answer to it, while glibc does send the same query again, same ID and port, within
microseconds of a REFUSED answer (and the server answers it again, byte for byte). So a
message is a copy only while nothing went the other way between the client port and the
server under that ID since the first copy.
"""

from __future__ import annotations

from collections import deque

from pcapdns.dns.message import Message

#: Server addresses remembered as DNAT'd: a cluster has a few DNS addresses, a hostile
#: capture could show any number.
MAX_DNAT_SERVERS = 64

_Key = tuple[str, int, bytes]
_Seen = tuple[float, int, str, int, str, int, int]


class Deduplicator:
    """Remembers each kept message for ``window`` seconds and recognises its copies."""

    def __init__(self, window: float, record_copies: bool = False,
                 max_entries: int = 100_000) -> None:
        self.window = window
        #: Frame of each dropped copy -> frame of the copy that was kept (when recording).
        self.copies: dict[int, int] | None = {} if record_copies else None
        self._seen: dict[_Key, list[_Seen]] = {}
        self._order: deque[tuple[float, _Key]] = deque()
        #: (transport, client port, ID, is response) -> time of the last message kept in
        #: that direction, for a window.
        self._turn: dict[tuple[str, int, int, bool], float] = {}
        #: Size of ``_turn`` that triggers the next sweep of entries older than the window
        #: (amortized: the per-message cost stays one dict store).
        self._turn_sweep_at = 4096
        #: Copies dropped.
        self.duplicates = 0
        #: Messages forgotten before their window was over because ``max_entries`` were
        #: remembered (a burst, often with one time stamp): a copy of one is kept.
        self.evicted = 0
        self.max_entries = max_entries
        #: Server addresses on either side of a DNAT: a copy whose server address differs
        #: from the first copy's (a Service address and the pod behind it). At most
        #: ``MAX_DNAT_SERVERS``.
        self.dnat_servers: set[str] = set()

    def is_duplicate(self, m: Message) -> bool:
        """True when ``m`` is a copy of a message kept earlier; else remember ``m``."""
        t = m.time
        order = self._order
        while order and order[0][0] < t - self.window:
            _, old = order.popleft()
            lst = self._seen.get(old)
            if lst is not None:
                while lst and lst[0][0] < t - self.window:
                    lst.pop(0)
                if not lst:
                    del self._seen[old]
        is_response = bool(m.flags & 0x8000)
        client_port = m.dport if is_response else m.sport
        key = (m.transport, client_port, m.data)
        # On one TCP connection, reassembly already dropped segments captured twice; two
        # identical messages there are two messages (a client may repeat a query).
        udp = m.transport == "udp"
        lst = self._seen.get(key)
        if lst is not None:
            other_way = self._turn.get((m.transport, client_port, m.id, not is_response),
                                       -1.0)
            for first_t, iface, src, sport, dst, dport, frame in lst:
                if t - first_t <= self.window and other_way < first_t and (
                    iface != m.iface
                    or (
                        udp
                        and src == m.src
                        and sport == m.sport
                        and dst == m.dst
                        and dport == m.dport
                    )
                ):
                    self.duplicates += 1
                    server, was = (m.src, src) if is_response else (m.dst, dst)
                    if server != was and len(self.dnat_servers) < MAX_DNAT_SERVERS - 1:
                        self.dnat_servers.update((server, was))
                    if self.copies is not None:
                        self.copies[m.frame] = frame
                    return True
            lst.append((t, m.iface, m.src, m.sport, m.dst, m.dport, m.frame))
        else:
            self._seen[key] = [(t, m.iface, m.src, m.sport, m.dst, m.dport, m.frame)]
        order.append((t, key))
        if len(order) > self.max_entries:
            # Nothing expires by time in a burst with one time stamp: forget by count too.
            _, old = order.popleft()
            lst = self._seen.get(old)
            if lst:
                lst.pop(0)
                if not lst:
                    del self._seen[old]
            self.evicted += 1
        turns = self._turn
        turns[(m.transport, client_port, m.id, is_response)] = t
        if len(turns) >= self._turn_sweep_at:
            limit = t - self.window
            kept = {k: v for k, v in turns.items() if v >= limit}
            if len(kept) > self.max_entries:  # a burst: keep the newest half of the cap
                newest = list(kept.items())[-(self.max_entries // 2):]
                self.evicted += len(kept) - len(newest)
                kept = dict(newest)
            self._turn = kept
            self._turn_sweep_at = max(4096, 2 * len(self._turn))
        return False
