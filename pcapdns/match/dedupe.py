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
that on purpose (fan-out), and the copies differ in destination address.
"""

from __future__ import annotations

from collections import deque

from pcapdns.dns.message import Message

_Key = tuple[str, int, bytes]
_Seen = tuple[float, int, str, int, str, int, int]


class Deduplicator:
    """Remembers each kept message for ``window`` seconds and recognises its copies."""

    def __init__(self, window: float, record_copies: bool = False) -> None:
        self.window = window
        #: Frame of each dropped copy -> frame of the copy that was kept (when recording).
        self.copies: dict[int, int] | None = {} if record_copies else None
        self._seen: dict[_Key, list[_Seen]] = {}
        self._order: deque[tuple[float, _Key]] = deque()
        #: Copies dropped.
        self.duplicates = 0

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
        client_port = m.dport if m.flags & 0x8000 else m.sport
        key = (m.transport, client_port, m.data)
        # On one TCP connection, reassembly already dropped segments captured twice; two
        # identical messages there are two messages (a client may repeat a query).
        udp = m.transport == "udp"
        lst = self._seen.get(key)
        if lst is not None:
            for first_t, iface, src, sport, dst, dport, frame in lst:
                if t - first_t <= self.window and (
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
                    if self.copies is not None:
                        self.copies[m.frame] = frame
                    return True
            lst.append((t, m.iface, m.src, m.sport, m.dst, m.dport, m.frame))
        else:
            self._seen[key] = [(t, m.iface, m.src, m.sport, m.dst, m.dport, m.frame)]
        order.append((t, key))
        return False
