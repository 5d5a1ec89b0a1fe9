#!/usr/bin/env python3
"""Record the three simultaneous node captures of the sample fleet (node-e, node-f,
node-g), as root, with real software:

    sudo python3 tests/merge/fleet/make_captures.py

Three "node" network namespaces each reach one DNS server namespace over a veth pair: the
server runs dnsmasq on 10.250.0.53 (its loopback), each node routes to it through its own
link. tcpdump runs on every node's link at once. Every node asks, with real dig, names that
resolve; then, while the server's iptables drops queries for down.example.test (an
incident on the shared server), all three ask for it at once and time out; node-g also asks for a
name dnsmasq answers NXDOMAIN. A last lookup on each node, 3 s later, lets the capture run
past the clients' waits, so the timeouts are decided. Files: NODE/dns.pcap0 beside this
script (tcpdump's -w name, as the capture agent's ring), each with a capture.json written
by tests/merge/fleet.py when the documents are made.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "sample_pcaps"))

import make_samples as ms  # noqa: E402

SERVER = "10.250.0.53"
#: Node name -> its link's subnet (the node is .2, the server's end .1).
NODES = {"node-e": "10.250.21", "node-f": "10.250.22", "node-g": "10.250.23"}
DOWN = "down.example.test"


def dig(lab: ms.Lab, ns: str, name: str, ok: tuple[int, ...] = (0,)) -> None:
    # +time=1 +tries=2: one retransmission a second after the query, then give up.
    lab.exec(ns, ["dig", "+time=1", "+tries=2", f"@{SERVER}", name, "A"], ok=ok,
             what=f"dig {name}")


def record(out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="pcapdns-fleet-"))
    lab = ms.Lab("fleet", work)
    try:
        server = lab.ns("dns")
        lab.exec(server, ["ip", "addr", "add", f"{SERVER}/32", "dev", "lo"])
        nodes = {}
        for i, (node, net) in enumerate(NODES.items()):
            ns = lab.ns(node)
            lab.link(ns, "eth0", server, f"veth{i}")
            lab.addr(ns, "eth0", f"{net}.2/24")
            lab.addr(server, f"veth{i}", f"{net}.1/24")
            lab.route(ns, f"{SERVER}/32", f"{net}.1")
            nodes[node] = ns
        ms.dnsmasq(lab, server, [SERVER])
        dumps = {}
        for node, ns in nodes.items():
            (out / node).mkdir(parents=True, exist_ok=True)
            dumps[node] = lab.tcpdump(ns, "eth0", out / node / "dns.pcap0")
        for ns in nodes.values():
            dig(lab, ns, "web.example.test")
        # The incident: the shared server drops every query for one name.
        lab.iptables(server, "-I", "INPUT", "-p", "udp", "--dport", "53", "-m", "string",
                     "--algo", "bm", "--hex-string", f"|{ms.qname_hex(DOWN)}|", "-j", "DROP")
        # Start the incident a second into a 10 s window of merge (windows are aligned on
        # the epoch), so that however slowly a loaded machine starts the three clients,
        # their failures fall in one window.
        time.sleep((1.0 - time.time() % 10.0) % 10.0)
        # All three at once, as an incident hits a cluster: one thread per node.
        asks = [threading.Thread(target=dig, args=(lab, ns, DOWN, (9,)))  # 9: no reply
                for ns in nodes.values()]
        for t in asks:
            t.start()
        for t in asks:
            t.join(timeout=ms.COMMAND_TIMEOUT)
        dig(lab, nodes["node-g"], "missing.example.test")
        time.sleep(3.0)  # past the clients' 1 s waits: the timeouts are decided
        for ns in nodes.values():
            dig(lab, ns, "web.example.test")
        for d in dumps.values():
            d.stop()
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("make_captures.py: must run as root (it creates network namespaces)")
    record(HERE)
