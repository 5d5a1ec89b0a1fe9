"""Messages that matched no query: unsolicited responses and stray ICMP errors.

An unsolicited response is often a reply whose source was not un-DNAT'd (the pod IP instead
of the Service IP; the client drops it), or one later than ``max_wait``.
"""

from __future__ import annotations

from pcapdns.detect.base import Finding
from pcapdns.dns import names
from pcapdns.match.records import Orphan


def detect(orphan: Orphan) -> list[Finding]:
    if orphan.kind == "unsolicited_response":
        return [
            Finding("unsolicited_response", "warning", orphan.time, orphan.client,
                    orphan.server, orphan.qname, names.qtype_name(orphan.qtype),
                    (orphan.frame,), f"response with {orphan.reason}.", (orphan,))
        ]
    return [
        Finding("icmp_unreachable", "warning", orphan.time, orphan.client, orphan.server,
                orphan.qname, names.qtype_name(orphan.qtype) if orphan.qtype else "",
                (orphan.frame,), orphan.reason + ".", (orphan,))
    ]
