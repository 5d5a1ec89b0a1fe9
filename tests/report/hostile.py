"""A capture whose DNS names carry HTML and JavaScript payloads.

Every payload, if a report let it through as markup, would set ``window.__pwned``; the
tests check that it never is, and that each payload shows as text. Labels hold any byte
(RFC 2181 section 11); a dot in a payload just splits it into labels and comes back as a
dot in the name's presentation form.
"""

from __future__ import annotations

from pathlib import Path

from tests.craft import query, response, write_eth

PAYLOADS = (
    "<script>window.__pwned=1</script>.evil.test",
    '"><img/src=x/onerror=window.__pwned=2>.evil.test',
    "'><svg/onload=window.__pwned=3>.evil.test",
    "</textarea></pre></code><script>window.__pwned=4</script>.evil.test",
    "<a/href=javascript:window.__pwned=5>x</a>.evil.test",
    "{{7*7}}${7*7}<!--.evil.test",
)


def write_hostile_capture(path: Path) -> Path:
    """SERVFAIL, NXDOMAIN and unanswered lookups of every payload, from a client and a
    server whose every field a report shows."""
    packets = []
    t = 1_764_000_000.0
    for i, name in enumerate(PAYLOADS):
        qid = 0x100 + i
        packets.append((t, query(name, id=qid, sport=41000 + i)))
        packets.append((t + 0.002, response(name, id=qid, dport=41000 + i, rcode=2)))
        t += 0.1
        packets.append((t, query(name, qtype="AAAA", id=qid + 0x40, sport=42000 + i)))
        packets.append((t + 0.002, response(name, qtype="AAAA", id=qid + 0x40,
                                            dport=42000 + i, rcode=3)))
        t += 0.1
        packets.append((t, query(name, qtype="TXT", id=qid + 0x80, sport=43000 + i)))
        t += 0.1
    packets.append((t + 10.0, query("end.example", id=1, sport=44000)))
    return write_eth(path, packets)


#: Pod and namespace names that would run if a report let them through as markup.
POD_PAYLOADS = (
    "<script>window.__pwned=6</script>",
    '"><img/src=x/onerror=window.__pwned=7>',
)


def write_hostile_pods(path: Path) -> Path:
    """A pods listing (``kubectl get pods -o json`` and a Service) naming the hostile
    capture's client and server with payloads and control characters."""
    import json

    from tests.craft import CLIENT, SERVER

    items = [
        {"kind": "Pod",
         "metadata": {"name": POD_PAYLOADS[0] + "\x1b[2J", "namespace": POD_PAYLOADS[1],
                      "ownerReferences": [{"kind": "DaemonSet", "name": POD_PAYLOADS[0],
                                           "controller": True}]},
         "spec": {"nodeName": "node\x07<b>"},
         "status": {"phase": "Running", "podIP": CLIENT}},
        {"kind": "Service",
         "metadata": {"name": POD_PAYLOADS[1], "namespace": "kube-system",
                      "labels": {"k8s-app": "kube-dns"}},
         "spec": {"clusterIP": SERVER}},
    ]
    path.write_text(json.dumps({"kind": "List", "items": items}))
    return path
