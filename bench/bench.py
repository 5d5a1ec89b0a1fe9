#!/usr/bin/env python3
"""Throughput and memory benchmark: pcapdns versus tshark on one synthetic capture.

The script writes a reproducible classic pcap of Kubernetes DNS traffic (see
``CaptureGenerator``), runs each tool on it sequentially, measures wall-clock time and the
peak RSS of every child process, and prints the figures side by side together with each
row's target (``TARGETS``): ``analyze --format json`` at least 10x tshark's packets/s with
at most 0.1x its peak RSS, ``report`` at most 1.5x the time of that, the compiled core alone
(``bench/core.py``) at least 3M packets/s; with ``--flat``, the same peak RSS on a capture
5x as long; with ``--ring``, the same summary and findings from the capture cut into 10
files.

Standard library only.  Run ``python3 bench/bench.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_PACKETS = 1_000_000
DEFAULT_SEED = 20240529
DEFAULT_TIMEOUT = 900.0

JSON_PPS_TARGET = 10.0  # analyze --format json: at least this multiple of tshark's packets/s
JSON_RSS_TARGET = 0.1  # ... with a peak RSS at most this fraction of tshark's
REPORT_TIME_TARGET = 1.5  # report: at most this multiple of the json row's seconds
CORE_PPS_TARGET = 3_000_000  # bench/core.py: packets/s of the engine's step loop and finish
FLAT_FACTOR = 5  # --flat: the long capture is this many times --packets
FLAT_TOLERANCE = 0.20  # ... and its json run peaks within this fraction of the json row's
RING_FILES = 10  # --ring: files the capture is cut into

# ---------------------------------------------------------------------------------------------
# pcap writing helpers
# ---------------------------------------------------------------------------------------------

PCAP_MAGIC_US = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
CAPTURE_START = 1_717_000_000  # 2024-05-29T16:26:40Z, seconds since the epoch

_pcap_global = struct.Struct("<IHHiIII")
_pcap_rec = struct.Struct("<IIII")
_ip_udp = struct.Struct("!BBHHHBBH4s4sHHHH")
_ip_hdr = struct.Struct("!BBHHHBBH4s4s")
_tcp_hdr = struct.Struct("!HHIIHHHH")
_u16 = struct.Struct("!H")
_u16x2 = struct.Struct("!HH")

_LITTLE = sys.byteorder == "little"

TCP_FIN, TCP_SYN, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x08, 0x10


def word_sum(data: bytes) -> int:
    """Unfolded one's-complement sum of big-endian 16-bit words (odd length padded)."""
    if len(data) & 1:
        data = data + b"\x00"
    words = array("H", data)
    if _LITTLE:
        words.byteswap()
    return sum(words)


def fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ip_sum(addr: bytes) -> int:
    return (addr[0] << 8 | addr[1]) + (addr[2] << 8 | addr[3])


def count_pcap_packets(path: str) -> int | None:
    """Number of records in a classic pcap file, or None if it is not one or is truncated."""
    try:
        with open(path, "rb", buffering=1 << 20) as f:
            head = f.read(24)
            if len(head) != 24:
                return None
            magic = struct.unpack("<I", head[:4])[0]
            if magic in (0xA1B2C3D4, 0xA1B23C4D):
                rec = struct.Struct("<IIII")
            elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
                rec = struct.Struct(">IIII")
            else:
                return None
            size = os.fstat(f.fileno()).st_size
            pos, count = 24, 0
            while pos < size:
                f.seek(pos)
                raw = f.read(16)
                if len(raw) != 16:
                    return None
                incl = rec.unpack(raw)[2]
                pos += 16 + incl
                count += 1
            return count if pos == size else None
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# DNS message construction (cached per distinct message; only the ID varies per packet)
# ---------------------------------------------------------------------------------------------

QTYPE_A, QTYPE_NS, QTYPE_CNAME, QTYPE_SOA, QTYPE_AAAA, QTYPE_OPT = 1, 2, 5, 6, 28, 41
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
EDNS_SIZE = 1232


class _MessageBuilder:
    """Builds one DNS message with RFC 1035 name compression."""

    def __init__(self) -> None:
        self.buf = bytearray(12)
        self.offsets: dict[str, int] = {}

    def name(self, name: str) -> None:
        labels = [label for label in name.split(".") if label]
        for i, label in enumerate(labels):
            suffix = ".".join(labels[i:])
            off = self.offsets.get(suffix)
            if off is not None:
                self.buf += _u16.pack(0xC000 | off)
                return
            if len(self.buf) < 0x3FFF:
                self.offsets[suffix] = len(self.buf)
            raw = label.encode("ascii")
            self.buf.append(len(raw))
            self.buf += raw
        self.buf.append(0)

    def question(self, name: str, qtype: int) -> None:
        self.name(name)
        self.buf += _u16x2.pack(qtype, 1)

    def record(self, name: str, rtype: int, ttl: int, rdata: Any) -> None:
        self.name(name)
        self.buf += struct.pack("!HHI", rtype, 1, ttl)
        start = len(self.buf)
        self.buf += b"\x00\x00"
        if rtype in (QTYPE_A, QTYPE_AAAA):
            self.buf += rdata
        elif rtype == QTYPE_CNAME:
            self.name(rdata)
        elif rtype == QTYPE_SOA:
            mname, rname, serial, refresh, retry, expire, minimum = rdata
            self.name(mname)
            self.name(rname)
            self.buf += struct.pack("!IIIII", serial, refresh, retry, expire, minimum)
        else:
            raise ValueError(rtype)
        struct.pack_into("!H", self.buf, start, len(self.buf) - start - 2)

    def opt(self) -> None:
        self.buf += b"\x00" + struct.pack("!HHIH", QTYPE_OPT, EDNS_SIZE, 0, 0)

    def finish(self, flags: int, qd: int, an: int, ns: int, ar: int) -> bytes:
        struct.pack_into("!HHHHHH", self.buf, 0, 0, flags, qd, an, ns, ar)
        return bytes(self.buf)


CLUSTER_SOA = ("ns.dns.cluster.local", "hostmaster.cluster.local", 1717000000, 7200, 1800, 86400, 5)
TLD_SOA = ("a.gtld-servers.net", "nstld.verisign-grs.com", 1717000123, 1800, 900, 604800, 86400)
ROOT_SOA = ("a.root-servers.net", "nstld.verisign-grs.com", 2024052901, 1800, 900, 604800, 86400)


@dataclass
class NameData:
    """What the DNS server answers for one name."""

    a: list[bytes] = field(default_factory=list)
    aaaa: list[bytes] = field(default_factory=list)
    cname: str | None = None
    ttl: int = 5
    cluster: bool = True


# ---------------------------------------------------------------------------------------------
# Synthetic Kubernetes DNS capture
# ---------------------------------------------------------------------------------------------

NAMESPACES = [
    ("default", 8),
    ("kube-system", 3),
    ("monitoring", 6),
    ("logging", 3),
    ("ingress-nginx", 4),
    ("cert-manager", 1),
    ("payments", 7),
    ("orders", 7),
    ("checkout", 6),
    ("catalog", 6),
    ("search", 5),
    ("users", 5),
    ("auth", 5),
    ("notifications", 4),
    ("billing", 4),
    ("analytics", 4),
    ("media", 3),
    ("shipping", 4),
    ("inventory", 5),
    ("frontend", 8),
]

SERVICE_WORDS = [
    "api",
    "web",
    "frontend",
    "backend",
    "redis",
    "redis-master",
    "postgres",
    "postgres-ro",
    "mysql",
    "mongodb",
    "kafka",
    "kafka-headless",
    "zookeeper",
    "rabbitmq",
    "memcached",
    "elasticsearch",
    "prometheus",
    "alertmanager",
    "grafana",
    "loki",
    "tempo",
    "jaeger-collector",
    "otel-collector",
    "vault",
    "consul",
    "etcd",
    "minio",
    "nats",
    "keycloak",
    "gateway",
    "worker",
    "scheduler",
    "cache",
    "session-store",
    "rate-limiter",
    "config-server",
    "feature-flags",
    "metrics",
    "ledger",
    "pricing",
    "recommendations",
    "thumbnailer",
]

EXTERNAL_NAMES = [
    "api.github.com",
    "github.com",
    "objects.githubusercontent.com",
    "registry-1.docker.io",
    "auth.docker.io",
    "production.cloudflare.docker.com",
    "quay.io",
    "gcr.io",
    "ghcr.io",
    "pkg-containers.githubusercontent.com",
    "s3.amazonaws.com",
    "s3.us-east-1.amazonaws.com",
    "sts.amazonaws.com",
    "sts.us-east-1.amazonaws.com",
    "ec2.us-east-1.amazonaws.com",
    "sqs.us-east-1.amazonaws.com",
    "dynamodb.us-east-1.amazonaws.com",
    "logs.us-east-1.amazonaws.com",
    "monitoring.us-east-1.amazonaws.com",
    "www.googleapis.com",
    "oauth2.googleapis.com",
    "storage.googleapis.com",
    "pubsub.googleapis.com",
    "www.google.com",
    "accounts.google.com",
    "api.stripe.com",
    "hooks.slack.com",
    "api.twilio.com",
    "api.sendgrid.com",
    "sentry.io",
    "o123456.ingest.sentry.io",
    "api.datadoghq.com",
    "http-intake.logs.datadoghq.com",
    "api.honeycomb.io",
    "collector.newrelic.com",
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "proxy.golang.org",
    "repo.maven.apache.org",
    "deb.debian.org",
    "dl-cdn.alpinelinux.org",
    "api.openai.com",
    "login.microsoftonline.com",
    "graph.microsoft.com",
    "management.azure.com",
    "api.segment.io",
    "cdn.segment.com",
    "api.mailgun.net",
    "www.example.com",
    "example.org",
    "time.cloudflare.com",
    "cloudflare-dns.com",
    "api.pagerduty.com",
    "events.pagerduty.com",
    "api.launchdarkly.com",
    "clientstream.launchdarkly.com",
    "checkout.paypal.com",
    "api.paypal.com",
    "maps.googleapis.com",
]

CNAME_TARGETS = [
    "edge.example-cdn.net",
    "d1a2b3c4.cloudfront.net",
    "star.c10r.facebook.com",
    "github.map.fastly.net",
    "dualstack.s3.amazonaws.com",
    "cdn.cloudflare.net",
    "lb.prod.example-cloud.net",
    "global.azurefd.net",
]

MISSING_WORDS = [
    "legacy-api",
    "old-redis",
    "mysql-primary",
    "db",
    "cache-v1",
    "auth-service",
    "metrics-proxy",
    "statsd",
    "graphite",
    "kafka-0",
    "internal-api",
    "smtp",
]

SERVER_IPS = (bytes([10, 96, 0, 10]), bytes([169, 254, 20, 10]))
SERVER_MACS = (bytes.fromhex("0a580af40001"), bytes.fromhex("0a580af40001"))


class _Host:
    __slots__ = ("ip", "ipsum", "mac", "ns", "go", "server", "eth_out", "eth_in")

    def __init__(self, ip: bytes, mac: bytes) -> None:
        self.ip = ip
        self.ipsum = ip_sum(ip)
        self.mac = mac
        self.ns = ""
        self.go = False
        self.server = 0
        self.eth_out = b""
        self.eth_in = b""


class CaptureGenerator:
    """Writes a reproducible synthetic capture of Kubernetes DNS traffic.

    Traffic model (per lookup, i.e. one getaddrinfo() call):

    * ~2,000 pod clients (10.244.x.y) on 16 nodes; pods on even nodes use NodeLocal DNSCache
      (169.254.20.10), the others the kube-dns ClusterIP (10.96.0.10).  80% of clients behave
      like glibc (A and AAAA from one socket a few microseconds apart, no EDNS), 20% like the Go
      resolver (separate sockets, EDNS0 1232).
    * Search-list expansion with ``ns.svc.cluster.local svc.cluster.local cluster.local``:
      most lookups hit on the first try; a few walk the list (NXDOMAIN per step).
    * Responses after 0.2-5 ms (a small tail up to ~80 ms), 1-3 A/AAAA records (some behind a
      CNAME), compressed names, SOA in the authority section of NXDOMAIN/NODATA answers.
    * Per query: ~0.5% SERVFAIL, ~1% unanswered then retransmitted after 5 s with the same ID
      and port (most retransmissions answered).
    * ~0.2% TC=1 responses (large headless services) followed by a retry over TCP.
    * ~3% of queries over long-ish TCP connections (handshake, length-prefixed messages, FIN).
    * Packet rate drifts between ~2,600 and ~4,400 packets per second of capture time.
    """

    # lookup mix (probabilities; remainder = same-namespace service lookups)
    P_TCP_SESSION = 0.0175
    P_TC = 0.0042
    P_EXTERNAL = 0.19
    P_EXTERNAL_EXPANDED = 0.008
    P_CROSS_NS = 0.006
    P_MISSING = 0.005
    # per-query outcomes
    P_LOST = 0.010
    P_LOST_AGAIN = 0.08
    P_SERVFAIL = 0.005
    # packets per lookup (measured; used to turn the target packet rate into a lookup rate)
    PACKETS_PER_LOOKUP = 4.5
    BASE_RATE = 3500.0  # packets per second of capture time
    RATE_SWING = 0.25
    RATE_PERIOD = 97.0  # seconds

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self.rng = random.Random(seed)
        self._msg_cache: dict[tuple, tuple[bytes, int]] = {}
        self._heap: list[tuple[int, int, bytes]] = []
        self._seq = 0
        self._ipid = 0
        self._build_world()

    # -- world ----------------------------------------------------------------------------------

    def _build_world(self) -> None:
        rng = self.rng
        self.servers = [_Host(ip, mac) for ip, mac in zip(SERVER_IPS, SERVER_MACS, strict=True)]
        self.names: dict[str, NameData] = {}

        # services per namespace
        self.ns_services: dict[str, list[str]] = {}
        self.ns_service_weights: dict[str, list[float]] = {}
        big: list[str] = []
        cluster_ip = 0x0A600000 + 20  # 10.96.0.20 onwards
        for ns, size in NAMESPACES:
            words = rng.sample(SERVICE_WORDS, min(len(SERVICE_WORDS), 3 + size))
            svcs = []
            for word in words:
                fqdn = f"{word}.{ns}.svc.cluster.local"
                data = NameData(ttl=5, cluster=True)
                if rng.random() < 0.25:  # headless: 2-3 pod IPs
                    for _ in range(rng.randint(2, 3)):
                        x, y = rng.randrange(16), rng.randrange(2, 255)
                        data.a.append(bytes([10, 244, x, y]))
                        data.aaaa.append(_v6(0xFD00_0010_0244_0000, x << 8 | y))
                else:
                    cluster_ip += rng.randint(1, 40)
                    data.a.append(struct.pack("!I", cluster_ip))
                    data.aaaa.append(_v6(0xFD00_0010_0096_0000, cluster_ip & 0xFFFF))
                self.names[fqdn] = data
                svcs.append(word)
            self.ns_services[ns] = svcs
            self.ns_service_weights[ns] = _zipf_weights(len(svcs), 1.1)
            # one large headless service per namespace (answers do not fit in UDP)
            fqdn = f"peers.{ns}.svc.cluster.local"
            data = NameData(ttl=5, cluster=True)
            for _ in range(rng.randint(50, 85)):
                data.a.append(bytes([10, 244, rng.randrange(16), rng.randrange(2, 255)]))
            self.names[fqdn] = data  # IPv4-only: AAAA is NODATA
            big.append(fqdn)
        self.big_names = big

        # external names
        self.external = list(EXTERNAL_NAMES)
        self.external_weights = _zipf_weights(len(self.external), 0.9)
        for name in self.external:
            data = NameData(ttl=rng.choice((30, 60, 60, 300, 300, 3600)), cluster=False)
            target = name
            if rng.random() < 0.3:
                target = f"{name.split('.')[0]}.{rng.choice(CNAME_TARGETS)}"
                data.cname = target
            for _ in range(rng.choice((1, 1, 2, 3))):
                data.a.append(
                    bytes(
                        [
                            rng.choice((13, 34, 52, 104, 140, 151, 172, 185)),
                            rng.randrange(256),
                            rng.randrange(256),
                            rng.randrange(1, 255),
                        ]
                    )
                )
            if rng.random() < 0.7:
                for _ in range(rng.choice((1, 1, 2))):
                    data.aaaa.append(
                        _v6(0x2606_4700_0000_0000 + rng.randrange(1 << 32), rng.randrange(1 << 64))
                    )
            self.names[name] = data

        # clients: 16 nodes, ~125 pods each
        self.clients: list[_Host] = []
        ns_names = [ns for ns, _ in NAMESPACES]
        ns_weights = [w for _, w in NAMESPACES]
        for x in range(16):
            for y in sorted(rng.sample(range(2, 255), 125)):
                ip = bytes([10, 244, x, y])
                host = _Host(ip, bytes([0x0A, 0x58]) + ip)
                host.ns = rng.choices(ns_names, ns_weights)[0]
                host.go = rng.random() < 0.2
                host.server = 1 if x % 2 == 0 else 0
                srv = self.servers[host.server]
                host.eth_out = srv.mac + host.mac + b"\x08\x00"
                host.eth_in = host.mac + srv.mac + b"\x08\x00"
                self.clients.append(host)
        # activity skew: a weighted pool to draw clients from cheaply
        weights = [rng.lognormvariate(0.0, 1.0) for _ in self.clients]
        scale = 20000 / sum(weights)
        pool: list[_Host] = []
        for host, w in zip(self.clients, weights, strict=True):
            pool.extend([host] * max(1, round(w * scale)))
        self.client_pool = pool

    # -- DNS messages ---------------------------------------------------------------------------

    def _query(self, qname: str, qtype: int, edns: bool) -> tuple[bytes, int]:
        key = ("q", qname, qtype, edns)
        hit = self._msg_cache.get(key)
        if hit is None:
            b = _MessageBuilder()
            b.question(qname, qtype)
            if edns:
                b.opt()
            msg = b.finish(0x0100, 1, 0, 0, 1 if edns else 0)
            hit = self._msg_cache[key] = (msg[2:], word_sum(msg[2:]))
        return hit

    def _response(
        self, qname: str, qtype: int, rcode: int, tc: bool, edns: bool, tcp: bool = False
    ) -> tuple[bytes, int]:
        key = ("r", qname, qtype, rcode, tc, edns)
        hit = self._msg_cache.get(key)
        if hit is None:
            msg = self._build_response(qname, qtype, rcode, tc, edns)
            if not tcp and not tc and not edns and len(msg) > 512:
                raise AssertionError(f"UDP answer for {qname} too large")
            hit = self._msg_cache[key] = (msg[2:], word_sum(msg[2:]))
        return hit

    def _build_response(self, qname: str, qtype: int, rcode: int, tc: bool, edns: bool) -> bytes:
        data = self.names.get(qname)
        if rcode == NOERROR and data is None:
            rcode = NXDOMAIN
        b = _MessageBuilder()
        b.question(qname, qtype)
        an = ns = 0
        cluster = qname.endswith("cluster.local") or "." not in qname
        if rcode == NOERROR and not tc and data is not None:
            owner = qname
            if data.cname:
                b.record(qname, QTYPE_CNAME, data.ttl, data.cname)
                owner = data.cname
                an += 1
            addrs = data.a if qtype == QTYPE_A else data.aaaa
            for addr in addrs:
                b.record(owner, qtype, data.ttl, addr)
                an += 1
            if not addrs:  # NODATA
                b.record(*_soa_for(qname))
                ns += 1
        elif rcode == NXDOMAIN:
            b.record(*_soa_for(qname))
            ns += 1
        if edns:
            b.opt()
        aa = 0x0400 if cluster and rcode != SERVFAIL else 0
        flags = 0x8000 | aa | (0x0200 if tc else 0) | 0x0100 | 0x0080 | rcode
        return b.finish(flags, 1, an, ns, 1 if edns else 0)

    # -- packets --------------------------------------------------------------------------------

    def _push(self, ts: int, frame: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (ts, self._seq, frame))

    def _udp(
        self, ts: int, cli: _Host, to_server: bool, cport: int, msg_id: int, body: tuple[bytes, int]
    ) -> None:
        rest, rest_sum = body
        srv = self.servers[cli.server]
        udp_len = 10 + len(rest)
        total = 20 + udp_len
        self._ipid = ipid = (self._ipid + 7919) & 0xFFFF
        pseudo = cli.ipsum + srv.ipsum + 17 + udp_len
        ipck = 0xFFFF ^ fold(0x4500 + 0x4000 + 0x4011 + cli.ipsum + srv.ipsum + total + ipid)
        ucs = 0xFFFF ^ fold(pseudo + cport + 53 + udp_len + msg_id + rest_sum) or 0xFFFF
        if to_server:
            hdr = _ip_udp.pack(
                0x45, 0, total, ipid, 0x4000, 64, 17, ipck, cli.ip, srv.ip, cport, 53, udp_len, ucs
            )
            frame = cli.eth_out + hdr + _u16.pack(msg_id) + rest
        else:
            hdr = _ip_udp.pack(
                0x45, 0, total, ipid, 0x4000, 64, 17, ipck, srv.ip, cli.ip, 53, cport, udp_len, ucs
            )
            frame = cli.eth_in + hdr + _u16.pack(msg_id) + rest
        self._seq += 1
        heapq.heappush(self._heap, (ts, self._seq, frame))

    def _tcp(
        self,
        ts: int,
        cli: _Host,
        to_server: bool,
        cport: int,
        seq: int,
        ack: int,
        flags: int,
        payload: bytes = b"",
        payload_sum: int = 0,
    ) -> None:
        srv = self.servers[cli.server]
        opts = b"\x02\x04\x05\xb4" if flags & TCP_SYN else b""  # MSS 1460
        hlen = 20 + len(opts)
        tcp_len = hlen + len(payload)
        total = 20 + tcp_len
        self._ipid = ipid = (self._ipid + 7919) & 0xFFFF
        ipck = 0xFFFF ^ fold(0x4500 + 0x4000 + 0x4006 + cli.ipsum + srv.ipsum + total + ipid)
        if to_server:
            src, dst, sport, dport, eth, window = cli.ip, srv.ip, cport, 53, cli.eth_out, 64240
        else:
            src, dst, sport, dport, eth, window = srv.ip, cli.ip, 53, cport, cli.eth_in, 65160
        off_flags = (hlen // 4) << 12 | flags
        hdr = _tcp_hdr.pack(sport, dport, seq, ack, off_flags, window, 0, 0) + opts
        csum = 0xFFFF ^ fold(cli.ipsum + srv.ipsum + 6 + tcp_len + word_sum(hdr) + payload_sum)
        hdr = hdr[:16] + _u16.pack(csum) + hdr[18:]
        iph = _ip_hdr.pack(0x45, 0, total, ipid, 0x4000, 64, 6, ipck, src, dst)
        self._push(ts, eth + iph + hdr + payload)

    # -- traffic model --------------------------------------------------------------------------

    def _latency(self, cluster: bool) -> int:
        """Server response time in microseconds."""
        r = self.rng.random()
        if cluster:
            if r < 0.97:
                return int(math.exp(self.rng.uniform(5.30, 7.6)))  # 0.2-2 ms
            return self.rng.randint(5_000, 60_000)
        if r < 0.70:
            return int(math.exp(self.rng.uniform(5.30, 8.5)))  # 0.2-5 ms (cache hit)
        if r < 0.95:
            return int(math.exp(self.rng.uniform(8.0, 9.9)))  # 3-20 ms (upstream)
        return self.rng.randint(20_000, 80_000)

    def _udp_exchange(
        self, t: int, cli: _Host, cport: int, qid: int, qname: str, qtype: int, cluster: bool
    ) -> int:
        """One query over UDP and whatever follows; returns the time it is settled."""
        rng = self.rng
        edns = cli.go
        q = self._query(qname, qtype, edns)
        self._udp(t, cli, True, cport, qid, q)
        if rng.random() < self.P_LOST:  # no answer: retransmit after 5 s, same ID and port
            t += 5_000_000 + rng.randint(0, 1500)
            self._udp(t, cli, True, cport, qid, q)
            if rng.random() < self.P_LOST_AGAIN:
                return t + 5_000_000  # the resolver gives up
        rcode = SERVFAIL if rng.random() < self.P_SERVFAIL else NOERROR
        t += self._latency(cluster)
        self._udp(t, cli, False, cport, qid, self._response(qname, qtype, rcode, False, edns))
        return t

    def _udp_step(self, t: int, cli: _Host, qname: str, cluster: bool) -> int:
        """A and AAAA for one candidate name; returns when both are settled."""
        rng = self.rng
        port_a = rng.randint(32768, 60999)
        id_a, id_aaaa = _two_ids(rng)
        t_a = self._udp_exchange(t, cli, port_a, id_a, qname, QTYPE_A, cluster)
        if cli.go:
            t += rng.randint(15, 250)
            port_aaaa = rng.randint(32768, 60999)
        else:
            t += rng.randint(3, 30)
            port_aaaa = port_a
        t_aaaa = self._udp_exchange(t, cli, port_aaaa, id_aaaa, qname, QTYPE_AAAA, cluster)
        return max(t_a, t_aaaa) + rng.randint(20, 200)

    def _search(self, t: int, cli: _Host, name: str, cluster: bool) -> None:
        """getaddrinfo(name) with the pod's search list (ndots:5)."""
        ns = cli.ns
        for suffix in (f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local"):
            candidate = f"{name}.{suffix}"
            t = self._udp_step(t, cli, candidate, True)
            if candidate in self.names:
                return
        self._udp_step(t, cli, name, cluster)

    def _tcp_connection(
        self, t: int, cli: _Host, queries: list[tuple[str, int, bool, int | None]]
    ) -> None:
        rng = self.rng
        cport = rng.randint(32768, 60999)
        rtt = rng.randint(40, 250)
        c = rng.getrandbits(32)
        s = rng.getrandbits(32)
        edns = cli.go
        self._tcp(t, cli, True, cport, c, 0, TCP_SYN)
        c = (c + 1) & 0xFFFFFFFF
        t += rtt
        self._tcp(t, cli, False, cport, s, c, TCP_SYN | TCP_ACK)
        s = (s + 1) & 0xFFFFFFFF
        t += rng.randint(5, 30)
        self._tcp(t, cli, True, cport, c, s, TCP_ACK)
        for qname, qtype, cluster, fixed_id in queries:
            t += rng.randint(5, 60)
            qid = rng.getrandbits(16) if fixed_id is None else fixed_id
            rest, rest_sum = self._query(qname, qtype, edns)
            payload = _u16x2.pack(len(rest) + 2, qid) + rest
            self._tcp(
                t,
                cli,
                True,
                cport,
                c,
                s,
                TCP_PSH | TCP_ACK,
                payload,
                len(rest) + 2 + qid + rest_sum,
            )
            c = (c + len(payload)) & 0xFFFFFFFF
            t += self._latency(cluster)
            rcode = SERVFAIL if rng.random() < self.P_SERVFAIL else NOERROR
            rest, rest_sum = self._response(qname, qtype, rcode, False, edns, tcp=True)
            payload = _u16x2.pack(len(rest) + 2, qid) + rest
            self._tcp(
                t,
                cli,
                False,
                cport,
                s,
                c,
                TCP_PSH | TCP_ACK,
                payload,
                len(rest) + 2 + qid + rest_sum,
            )
            s = (s + len(payload)) & 0xFFFFFFFF
            t += rng.randint(20, 80)
            self._tcp(t, cli, True, cport, c, s, TCP_ACK)
            t += rng.randint(50, 2000)
        self._tcp(t, cli, True, cport, c, s, TCP_FIN | TCP_ACK)
        c = (c + 1) & 0xFFFFFFFF
        t += rtt // 2 + rng.randint(5, 40)
        self._tcp(t, cli, False, cport, s, c, TCP_FIN | TCP_ACK)
        s = (s + 1) & 0xFFFFFFFF
        t += rtt // 2 + rng.randint(5, 40)
        self._tcp(t, cli, True, cport, c, s, TCP_ACK)

    def _random_name(self, cli: _Host) -> tuple[str, bool]:
        rng = self.rng
        if rng.random() < 0.7:
            word = rng.choices(self.ns_services[cli.ns], self.ns_service_weights[cli.ns])[0]
            return f"{word}.{cli.ns}.svc.cluster.local", True
        return rng.choices(self.external, self.external_weights)[0], False

    def _lookup(self, t: int) -> None:
        rng = self.rng
        cli = rng.choice(self.client_pool)
        r = rng.random()
        if r < self.P_TCP_SESSION:
            queries: list[tuple[str, int, bool, int | None]] = []
            for _ in range(rng.randint(2, 5)):
                name, cluster = self._random_name(cli)
                queries.append((name, rng.choice((QTYPE_A, QTYPE_A, QTYPE_AAAA)), cluster, None))
            self._tcp_connection(t, cli, queries)
            return
        r -= self.P_TCP_SESSION
        if r < self.P_TC:
            # large headless service: TC=1 over UDP, retried over TCP
            name = rng.choice(self.big_names)
            edns = cli.go
            port = rng.randint(32768, 60999)
            qid, qid6 = _two_ids(rng)
            self._udp(t, cli, True, port, qid, self._query(name, QTYPE_A, edns))
            port6 = port if not cli.go else rng.randint(32768, 60999)
            t6 = t + rng.randint(3, 30)
            self._udp_exchange(t6, cli, port6, qid6, name, QTYPE_AAAA, True)
            t += self._latency(True)
            self._udp(t, cli, False, port, qid, self._response(name, QTYPE_A, NOERROR, True, edns))
            # the resolver resends the same query (same ID) over TCP
            self._tcp_connection(t + rng.randint(20, 120), cli, [(name, QTYPE_A, True, qid)])
            return
        r -= self.P_TC
        if r < self.P_EXTERNAL:
            name, _ = self._random_name_external()
            self._udp_step(t, cli, name, False)  # absolute name (trailing dot or enough dots)
            return
        r -= self.P_EXTERNAL
        if r < self.P_EXTERNAL_EXPANDED:
            name, _ = self._random_name_external()
            self._search(t, cli, name, False)
            return
        r -= self.P_EXTERNAL_EXPANDED
        if r < self.P_CROSS_NS:
            other = rng.choice(NAMESPACES)[0]
            word = rng.choice(self.ns_services[other])
            self._search(t, cli, f"{word}.{other}", True)
            return
        r -= self.P_CROSS_NS
        if r < self.P_MISSING:
            self._search(t, cli, rng.choice(MISSING_WORDS), True)
            return
        word = rng.choices(self.ns_services[cli.ns], self.ns_service_weights[cli.ns])[0]
        self._search(t, cli, word, True)

    def _random_name_external(self) -> tuple[str, bool]:
        return self.rng.choices(self.external, self.external_weights)[0], False

    # -- driver ---------------------------------------------------------------------------------

    def write(self, path: str, packets: int) -> dict:
        """Write exactly ``packets`` records to ``path``; returns a few statistics."""
        rng = self.rng
        heap = self._heap
        heappop = heapq.heappop
        rec = _pcap_rec.pack
        t0 = CAPTURE_START * 1_000_000
        t = t0
        last = t0 - 1
        written = 0
        out: list[bytes] = []
        nbytes = 24
        two_pi = 2 * math.pi
        tmp = path + ".tmp"
        with open(tmp, "wb", buffering=1 << 20) as f:
            f.write(_pcap_global.pack(PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
            while written < packets:
                secs = (t - t0) / 1e6
                rate = self.BASE_RATE * (
                    1 + self.RATE_SWING * math.sin(two_pi * secs / self.RATE_PERIOD)
                )
                t += int(rng.expovariate(rate / self.PACKETS_PER_LOOKUP) * 1e6)
                self._lookup(t)
                # everything before t is final: later lookups start at t or after
                while heap and heap[0][0] < t and written < packets:
                    ts, _, frame = heappop(heap)
                    if ts <= last:
                        ts = last + 1
                    last = ts
                    n = len(frame)
                    out.append(rec(ts // 1_000_000, ts % 1_000_000, n, n))
                    out.append(frame)
                    nbytes += 16 + n
                    written += 1
                    if len(out) >= 8192:
                        f.write(b"".join(out))
                        out.clear()
            # packets still pending lie beyond the end of the capture (cut off, as in real life)
            f.write(b"".join(out))
        os.replace(tmp, path)
        return {"packets": written, "bytes": nbytes, "capture_seconds": (last - t0) / 1e6}


def _two_ids(rng: random.Random) -> tuple[int, int]:
    """Two distinct random DNS IDs (for the A and AAAA queries of one step)."""
    first = rng.getrandbits(16)
    second = rng.getrandbits(16)
    while second == first:
        second = rng.getrandbits(16)
    return first, second


def _v6(high: int, low: int) -> bytes:
    return struct.pack("!QQ", high & 0xFFFFFFFFFFFFFFFF, low & 0xFFFFFFFFFFFFFFFF)


def _zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (i + 1) ** s for i in range(n)]


def _soa_for(qname: str) -> tuple[str, int, int, tuple]:
    if qname.endswith("cluster.local"):
        return "cluster.local", QTYPE_SOA, 5, CLUSTER_SOA
    if "." not in qname:
        return ".", QTYPE_SOA, 86400, ROOT_SOA
    tld = qname.rsplit(".", 1)[1]
    return tld, QTYPE_SOA, 900, TLD_SOA


# ---------------------------------------------------------------------------------------------
# Running the tools
# ---------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    ok: bool
    seconds: float | None = None
    max_rss_kib: int | None = None
    status: str = "ok"
    #: The seconds a self-timed child printed on the last line of its stdout.
    own_seconds: float | None = None


@dataclass
class Tool:
    key: str
    tool: str
    argv: list[str]
    stdout: str = os.devnull
    env: dict[str, str] | None = None
    results: list[RunResult] = field(default_factory=list)
    missing: str | None = None
    #: The child times its own work and prints the seconds last (bench/core.py).
    self_timed: bool = False
    #: Packets in the input, when not the main capture's (the --flat capture).
    packets: int | None = None


def run_child(
    argv: list[str], stdout_path: str, timeout: float, env: dict[str, str] | None = None
) -> RunResult:
    """Run one child; wall-clock time, peak RSS (wait4 ru_maxrss, KiB) and status."""
    with tempfile.TemporaryFile() as err:
        out_fd = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        in_fd = os.open(os.devnull, os.O_RDONLY)
        try:
            actions = [
                (os.POSIX_SPAWN_DUP2, in_fd, 0),
                (os.POSIX_SPAWN_DUP2, out_fd, 1),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ]
            start = time.perf_counter()
            try:
                pid = os.posix_spawnp(
                    argv[0],
                    argv,
                    env if env is not None else os.environ,
                    file_actions=actions,
                    setsid=True,
                )
            except OSError as exc:
                return RunResult(False, status=f"cannot start: {exc.strerror or exc}")
        finally:
            os.close(out_fd)
            os.close(in_fd)

        lock = threading.Lock()
        state = {"done": False, "timed_out": False}

        def expire() -> None:
            with lock:
                if state["done"]:
                    return
                state["timed_out"] = True
                # the child is still unreaped here, so its id (and group id) cannot be reused
                for kill in (os.killpg, os.kill):
                    try:
                        kill(pid, signal.SIGKILL)
                    except OSError:
                        pass

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        # wait for exit without reaping, so the timer can never signal a recycled id
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except BaseException:  # e.g. Ctrl-C: do not leave the child running
            timer.cancel()
            expire()
            os.wait4(pid, 0)
            raise
        elapsed = time.perf_counter() - start
        with lock:
            state["done"] = True
        timer.cancel()
        _, status, usage = os.wait4(pid, 0)
        rss = usage.ru_maxrss  # KiB on Linux

        if state["timed_out"]:
            return RunResult(False, elapsed, rss, f"timeout: killed after {timeout:g} s")
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0, os.SEEK_END)
            size = err.tell()
            err.seek(max(0, size - 8192))
            lines = [ln.strip() for ln in err.read().decode("utf-8", "replace").splitlines()]
            lines = [ln for ln in lines if ln]
            last = lines[-1] if lines else "(no stderr)"
            what = f"signal {-code}" if code < 0 else f"exit {code}"
            return RunResult(False, elapsed, rss, f"{what}: {last}")
        return RunResult(True, elapsed, rss)


def read_own_seconds(res: RunResult, stdout_path: str) -> RunResult:
    """Take the seconds a self-timed child printed on its last stdout line."""
    if not res.ok:
        return res
    try:
        with open(stdout_path, encoding="utf-8", errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        res.own_seconds = float(lines[-1])
    except (OSError, IndexError, ValueError):
        res.ok = False
        res.status = "no seconds on the last line of its stdout"
    return res


# ---------------------------------------------------------------------------------------------
# The targets
# ---------------------------------------------------------------------------------------------

#: What each row is held to; the rows not named here have no target.
TARGETS: dict[str, list[str]] = {
    "pcapdns-json": [
        f"packets/s >= {JSON_PPS_TARGET:g}x tshark's",
        f"peak RSS <= {JSON_RSS_TARGET:g}x tshark's",
    ],
    "pcapdns-report": [f"seconds <= {REPORT_TIME_TARGET:g}x pcapdns-json's"],
    "pcapdns-core": [
        f"packets/s >= {CORE_PPS_TARGET:,} (engine.step loop and engine.finish, "
        "detectors included, timed by the child)"
    ],
    "pcapdns-flat": [
        f"peak RSS within {FLAT_TOLERANCE:.0%} of pcapdns-json's on a capture "
        f"{FLAT_FACTOR}x as long"
    ],
    "pcapdns-ring": [f"summary and findings identical to pcapdns-json's ({RING_FILES} files)"],
}


def summarize(tool: Tool, packets: int) -> dict:
    packets = tool.packets or packets
    row: dict = {"key": tool.key, "tool": tool.tool, "command": tool.argv, "packets": packets}
    if tool.missing:
        row.update(
            ok=False, status=tool.missing, seconds=None, packets_per_second=None, peak_rss_mib=None
        )
        return row
    good = [r for r in tool.results if r.ok]
    bad = [r for r in tool.results if not r.ok]
    rss_values = [r.max_rss_kib for r in tool.results if r.max_rss_kib is not None]
    row["runs"] = len(tool.results)
    row["peak_rss_mib"] = max(rss_values) / 1024 if rss_values else None
    if bad or not good:
        status = bad[0].status if bad else "not run"
        row.update(ok=False, status=status, seconds=None, packets_per_second=None)
        row["peak_rss_mib"] = None
        return row
    if tool.self_timed:
        times = [r.own_seconds for r in good if r.own_seconds is not None]
        row["timed"] = "by the child: engine.step loop and engine.finish"
        row["wall_seconds"] = min(r.seconds for r in good if r.seconds is not None)
    else:
        times = [r.seconds for r in good if r.seconds is not None]
        row["timed"] = "wall clock of the child"
    best = min(times)
    row.update(
        ok=True,
        status="ok",
        seconds=best,
        packets_per_second=packets / best if best > 0 else None,
        all_seconds=times,
    )
    return row


def _target(text: str, value: float | str | None, shown: str, met: bool | None) -> dict:
    return {"target": text, "value": value, "shown": shown, "pass": met}


def evaluate(rows: list[dict]) -> None:
    """Give each row its ratios to tshark and the verdict of each of its targets."""
    by_key = {r["key"]: r for r in rows}
    ref = by_key.get("tshark")
    ref_ok = bool(ref and ref["ok"] and ref["packets_per_second"])
    json_row = by_key.get("pcapdns-json")
    json_ok = bool(json_row and json_row["ok"])
    for row in rows:
        if row["tool"] != "pcapdns":
            continue
        pps_ratio = rss_ratio = None
        if ref_ok and row["ok"] and row["packets_per_second"]:
            assert ref is not None
            pps_ratio = row["packets_per_second"] / ref["packets_per_second"]
            if ref["peak_rss_mib"] and row["peak_rss_mib"] is not None:
                rss_ratio = row["peak_rss_mib"] / ref["peak_rss_mib"]
        row["pps_ratio_vs_tshark"] = pps_ratio
        row["rss_ratio_vs_tshark"] = rss_ratio
        texts = TARGETS.get(row["key"], [])
        targets: list[dict] = []
        key = row["key"]
        if key == "pcapdns-json":
            targets.append(
                _target(
                    f"pps >= {JSON_PPS_TARGET:g}x tshark",
                    pps_ratio,
                    _fmt(pps_ratio, ".2f", "x"),
                    None if pps_ratio is None else pps_ratio >= JSON_PPS_TARGET,
                )
            )
            targets.append(
                _target(
                    f"RSS <= {JSON_RSS_TARGET:g}x tshark",
                    rss_ratio,
                    _fmt(rss_ratio, ".3f", "x"),
                    None if rss_ratio is None else rss_ratio <= JSON_RSS_TARGET,
                )
            )
        elif key == "pcapdns-report":
            ratio = None
            if row["ok"] and json_ok and json_row and json_row["seconds"]:
                ratio = row["seconds"] / json_row["seconds"]
            row["seconds_ratio_vs_json"] = ratio
            targets.append(
                _target(
                    f"time <= {REPORT_TIME_TARGET:g}x json",
                    ratio,
                    _fmt(ratio, ".2f", "x"),
                    None if ratio is None else ratio <= REPORT_TIME_TARGET,
                )
            )
        elif key == "pcapdns-core":
            pps = row["packets_per_second"] if row["ok"] else None
            targets.append(
                _target(
                    f"pps >= {CORE_PPS_TARGET / 1e6:g}M",
                    pps,
                    "-" if pps is None else f"{pps / 1e6:.2f}M",
                    None if pps is None else pps >= CORE_PPS_TARGET,
                )
            )
        elif key == "pcapdns-flat":
            ratio = None
            if row["ok"] and json_ok and json_row and json_row["peak_rss_mib"]:
                ratio = row["peak_rss_mib"] / json_row["peak_rss_mib"]
            row["peak_rss_ratio_vs_json"] = ratio
            targets.append(
                _target(
                    f"peak within {FLAT_TOLERANCE:.0%} of json",
                    ratio,
                    _fmt(ratio, ".3f", "x"),
                    None if ratio is None else abs(ratio - 1) <= FLAT_TOLERANCE,
                )
            )
        elif key == "pcapdns-ring":
            same = row.get("identical")
            shown = {True: "identical", False: "differs", None: "-"}[same]
            targets.append(_target("summary+findings = json", shown, shown, same))
        for t, text in zip(targets, texts, strict=True):
            t["description"] = text
        row["targets"] = targets


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def display_command(argv: list[str], labels: dict[str, str]) -> str:
    parts = []
    for arg in argv:
        if arg in labels:
            parts.append(labels[arg])
        elif arg == sys.executable:
            parts.append("python3")
        else:
            parts.append(os.path.basename(arg) if arg == argv[0] else arg)
    return " ".join(parts)


def verdict(value: bool | None) -> str:
    return "n/a" if value is None else ("PASS" if value else "FAIL")


def render_table(rows: list[dict], labels: dict[str, str]) -> str:
    header = [
        "row",
        "command",
        "seconds",
        "packets/s",
        "peak RSS MiB",
        "pps ratio",
        "RSS ratio",
        "targets",
        "status",
    ]
    table = [header]
    for row in rows:
        cmd = display_command(row["command"], labels)
        is_pcapdns = row["tool"] == "pcapdns"
        status = row["status"]
        if len(status) > 70:
            status = status[:67] + "..."
        targets = "; ".join(
            f"{t['target']}: {t['shown']} {verdict(t['pass'])}" for t in row.get("targets", [])
        )
        table.append(
            [
                row["key"],
                cmd,
                _fmt(row.get("seconds"), ".2f") + ("*" if row.get("wall_seconds") else ""),
                _fmt(row.get("packets_per_second"), ",.0f"),
                _fmt(row.get("peak_rss_mib"), ".1f"),
                _fmt(row.get("pps_ratio_vs_tshark"), ".2f") if is_pcapdns else "",
                _fmt(row.get("rss_ratio_vs_tshark"), ".3f") if is_pcapdns else "",
                targets or ("-" if is_pcapdns else "(reference)"),
                status,
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6}
    lines = []
    for n, r in enumerate(table):
        cells = [
            c.rjust(w) if i in numeric and n else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The ring: the capture cut into files, analyzed as one
# ---------------------------------------------------------------------------------------------


def split_ring(pcap: str, directory: str, files: int, packets: int) -> list[str]:
    """Cut the classic pcap ``pcap`` into ``files`` pcaps of consecutive records in
    ``directory``, named as ``tcpdump -C ... -W files`` names them (``dns.pcap0`` ...).

    The records keep their order: the generator's capture is in time order, so each file
    starts where the one before ended. Returns the paths.
    """
    with open(pcap, "rb", buffering=1 << 20) as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0] if len(head) == 24 else None
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            rec = struct.Struct("<IIII")
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            rec = struct.Struct(">IIII")
        else:
            raise SystemExit(f"{pcap}: --ring needs a classic pcap file")
        per = -(-packets // files)
        width = len(str(files - 1))
        paths = []
        for i in range(files):
            path = os.path.join(directory, f"dns.pcap{i:0{width}d}")
            with open(path, "wb", buffering=1 << 20) as out:
                out.write(head)
                for _ in range(per):
                    raw = f.read(16)
                    if len(raw) < 16:
                        break
                    out.write(raw)
                    out.write(f.read(rec.unpack(raw)[2]))
            paths.append(path)
    return paths


def compare_documents(single: str, ring: str) -> tuple[bool | None, list[str]]:
    """Whether the JSON documents at ``single`` and ``ring`` have the same ``summary`` and
    ``findings``, and what differs (None when one of them cannot be read)."""
    docs = []
    for path in (single, ring):
        try:
            with open(path, encoding="utf-8") as f:
                docs.append(json.load(f))
        except (OSError, ValueError) as exc:
            return None, [f"cannot read {path}: {exc}"]
    a, b = docs
    diffs: list[str] = []
    sa, sb = a.get("summary") or {}, b.get("summary") or {}
    keys = sorted(k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k))
    if keys:
        diffs.append(f"summary differs in {len(keys)} fields: {', '.join(keys[:8])}")
    fa, fb = a.get("findings") or [], b.get("findings") or []
    if fa != fb:
        unequal = sum(x != y for x, y in zip(fa, fb, strict=False))
        diffs.append(
            f"findings differ: {len(fa)} in the single file, {len(fb)} in the ring, "
            f"{unequal} of the first {min(len(fa), len(fb))} unequal"
        )
    return not diffs, diffs


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def positive_int(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


TOOL_KEYS = (
    "pcapdns-json",
    "pcapdns-summary",
    "pcapdns-report",
    "pcapdns-core",
    "pcapdns-core-no-detectors",
    "tshark",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark pcapdns against tshark on a synthetic Kubernetes DNS capture."
    )
    p.add_argument(
        "--packets",
        type=positive_int,
        default=DEFAULT_PACKETS,
        help="packets in the synthetic capture (default %(default)s)",
    )
    p.add_argument(
        "--pcap",
        metavar="PATH",
        help="capture file to write, or to reuse with --keep; never deleted "
        "(default: pcapdns-bench-N-SEED.pcap in the temp directory, deleted after the run "
        "unless --keep)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the capture afterwards and reuse it if it already holds exactly "
        "--packets packets (the --flat capture too)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="random seed of the generator (default %(default)s)",
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="runs per tool; best time and highest peak RSS are reported",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        help="seconds before a run is killed (default %(default)g)",
    )
    p.add_argument(
        "--tool",
        action="append",
        choices=TOOL_KEYS,
        dest="tools",
        help="run only this tool row (repeatable; default: all)",
    )
    p.add_argument(
        "--flat",
        action="store_true",
        help=f"also generate a capture {FLAT_FACTOR}x as long (5,000,000 packets by default) "
        "and run the pcapdns-json command on it: its peak RSS must be within "
        f"{FLAT_TOLERANCE * 100:.0f}%% of the pcapdns-json row's",
    )
    p.add_argument(
        "--flat-packets",
        type=positive_int,
        metavar="N",
        help=f"packets in the --flat capture (default {FLAT_FACTOR}x --packets)",
    )
    p.add_argument(
        "--flat-pcap",
        metavar="PATH",
        help="--flat capture file to write, or to reuse with --keep; never deleted "
        "(default: pcapdns-bench-N-SEED.pcap in the temp directory)",
    )
    p.add_argument(
        "--ring",
        action="store_true",
        help=f"also cut the capture into a ring of {RING_FILES} pcap files and analyze the "
        "directory: its JSON summary and findings must equal the pcapdns-json row's",
    )
    p.add_argument(
        "--generate-only", action="store_true", help="write the capture and exit (implies --keep)"
    )
    p.add_argument(
        "--json", action="store_true", help="print the figures as JSON instead of the table"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless every target of every row run is met (a target that cannot be "
        "evaluated counts as not met)",
    )
    return p.parse_args(argv)


def prepare_capture(
    pcap: str | None, packets: int, seed: int, keep: bool
) -> tuple[str, dict, bool]:
    """Returns (path, info, remove_afterwards)."""
    if pcap:
        path = os.path.abspath(pcap)
        remove = False
    else:
        path = os.path.join(tempfile.gettempdir(), f"pcapdns-bench-{packets}-{seed}.pcap")
        remove = not keep
    info: dict = {"path": path, "packets": packets, "seed": seed}
    if keep and os.path.exists(path):
        log(f"checking existing capture {path} ...")
        count = count_pcap_packets(path)
        if count == packets:
            info.update(reused=True, generate_seconds=None, bytes=os.path.getsize(path))
            log(f"reusing {path} ({count} packets)")
            return path, info, remove
        log(f"existing capture holds {count} packets, not {packets}: regenerating")
    log(f"generating {packets:,} packets into {path} ...")
    start = time.perf_counter()
    stats = CaptureGenerator(seed).write(path, packets)
    elapsed = time.perf_counter() - start
    info.update(
        reused=False,
        generate_seconds=elapsed,
        bytes=stats["bytes"],
        capture_seconds=stats["capture_seconds"],
    )
    log(
        f"generated {stats['packets']:,} packets, {stats['bytes'] / 2**20:.1f} MiB, "
        f"{stats['capture_seconds']:.1f} s of capture time "
        f"({stats['packets'] / max(stats['capture_seconds'], 1e-9):,.0f} packets/s) "
        f"in {elapsed:.1f} s"
    )
    return path, info, remove


def _analyze_json(pcap: str, output: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pcapdns",
        "analyze",
        pcap,
        "--format",
        "json",
        "--output",
        output,
    ]


def build_tools(pcap: str, selected: list[str] | None, work: str) -> list[Tool]:
    """The rows of the main capture; their outputs go to files in ``work``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH", "")) if p)
    core = os.path.join(REPO_ROOT, "bench", "core.py")
    tools = [
        Tool(
            "pcapdns-json", "pcapdns", _analyze_json(pcap, os.path.join(work, JSON_NAME)), env=env
        ),
        Tool(
            "pcapdns-summary",
            "pcapdns",
            [sys.executable, "-m", "pcapdns", "analyze", pcap],
            env=env,
        ),
        Tool(
            "pcapdns-report",
            "pcapdns",
            [
                sys.executable,
                "-m",
                "pcapdns",
                "report",
                pcap,
                "-o",
                os.path.join(work, REPORT_NAME),
            ],
            env=env,
        ),
        Tool(
            "pcapdns-core",
            "pcapdns",
            [sys.executable, core, pcap],
            stdout=os.path.join(work, "core.out"),
            env=env,
            self_timed=True,
        ),
        Tool(
            "pcapdns-core-no-detectors",
            "pcapdns",
            [sys.executable, core, "--no-detectors", pcap],
            stdout=os.path.join(work, "core-no-detectors.out"),
            env=env,
            self_timed=True,
        ),
    ]
    tshark = shutil.which("tshark")
    ts = Tool("tshark", "tshark", [tshark or "tshark", "-q", "-z", "dns,tree", "-r", pcap])
    if tshark is None:
        ts.missing = "missing: tshark not found on PATH"
    tools.append(ts)
    if selected:
        tools = [t for t in tools if t.key in selected]
    return tools


JSON_NAME = "analysis.json"
REPORT_NAME = "report.html"
RING_JSON_NAME = "ring.json"
RING_NOTE = (
    "the engine reads the ring's files one after another on one core: using a second core "
    "is not implemented"
)


def run_tool(tool: Tool, args: argparse.Namespace, labels: dict[str, str]) -> None:
    if tool.missing:
        log(f"{tool.key}: {tool.missing}")
        return
    for i in range(args.repeat):
        log(f"running {tool.key} ({i + 1}/{args.repeat}): {display_command(tool.argv, labels)}")
        res = run_child(tool.argv, tool.stdout, args.timeout, tool.env)
        if tool.self_timed:
            res = read_own_seconds(res, tool.stdout)
        tool.results.append(res)
        secs = "-" if res.seconds is None else f"{res.seconds:.2f} s"
        if res.own_seconds is not None:
            secs += f" ({res.own_seconds:.2f} s timed by the child)"
        rss = "-" if res.max_rss_kib is None else f"{res.max_rss_kib / 1024:.1f} MiB"
        log(f"  {secs}, peak RSS {rss}, {res.status}")
        if not res.ok:
            break  # a failing tool is not retried


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep = args.keep or args.generate_only
    pcap, info, remove = prepare_capture(args.pcap, args.packets, args.seed, keep)
    if args.generate_only:
        print(pcap)
        return 0
    work = tempfile.mkdtemp(prefix="pcapdns-bench-")
    labels = {
        pcap: "PCAP",
        os.path.join(work, JSON_NAME): "ANALYSIS.json",
        os.path.join(work, REPORT_NAME): "REPORT.html",
        os.path.join(REPO_ROOT, "bench", "core.py"): "bench/core.py",
    }
    selected = list(args.tools) if args.tools else None
    if selected and (args.flat or args.ring) and "pcapdns-json" not in selected:
        selected.insert(0, "pcapdns-json")  # the reference of both
    flat_info: dict | None = None
    ring_info: dict | None = None
    remove_flat = False
    flat_pcap = ""
    try:
        tools = build_tools(pcap, selected, work)
        if args.flat:
            flat_packets = args.flat_packets or FLAT_FACTOR * args.packets
            flat_pcap, flat_info, remove_flat = prepare_capture(
                args.flat_pcap, flat_packets, args.seed, args.keep
            )
            labels[flat_pcap] = "PCAP_LONG"
            labels[os.path.join(work, "flat.json")] = "LONG.json"
            tools.append(
                Tool(
                    "pcapdns-flat",
                    "pcapdns",
                    _analyze_json(flat_pcap, os.path.join(work, "flat.json")),
                    env=tools[0].env,
                    packets=flat_packets,
                )
            )
        if args.ring:
            ring_dir = os.path.join(work, "ring")
            os.mkdir(ring_dir)
            log(f"cutting {pcap} into {RING_FILES} files in {ring_dir} ...")
            files = split_ring(pcap, ring_dir, RING_FILES, args.packets)
            ring_info = {"files": len(files), "note": RING_NOTE}
            labels[ring_dir] = "RING_DIR"
            labels[os.path.join(work, RING_JSON_NAME)] = "RING.json"
            tools.append(
                Tool(
                    "pcapdns-ring",
                    "pcapdns",
                    _analyze_json(ring_dir, os.path.join(work, RING_JSON_NAME)),
                    env=tools[0].env,
                )
            )
        for tool in tools:
            run_tool(tool, args, labels)
        rows = [summarize(t, args.packets) for t in tools]
        ring_row = next((r for r in rows if r["key"] == "pcapdns-ring"), None)
        json_row = next((r for r in rows if r["key"] == "pcapdns-json"), None)
        if ring_row is not None and ring_info is not None:
            same: bool | None = None
            diffs = ["not compared: a run failed"]
            if ring_row["ok"] and json_row and json_row["ok"]:
                same, diffs = compare_documents(
                    os.path.join(work, JSON_NAME), os.path.join(work, RING_JSON_NAME)
                )
            ring_row["identical"] = same
            ring_row["differences"] = diffs
            ring_info.update(identical=same, differences=diffs)
        evaluate(rows)
        sizes = {}
        for name in (JSON_NAME, REPORT_NAME):
            path = os.path.join(work, name)
            sizes[name] = os.path.getsize(path) if os.path.exists(path) else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for path, gone in ((pcap, remove), (flat_pcap, remove_flat)):
            if gone:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    checks = [t["pass"] for r in rows for t in r.get("targets", [])]
    all_pass = bool(checks) and all(c is True for c in checks)
    targets = {key: TARGETS[key] for key in TARGETS if any(r["key"] == key for r in rows)}
    if args.json:
        doc = {
            "capture": info,
            "flat_capture": flat_info,
            "ring": ring_info,
            "repeat": args.repeat,
            "timeout": args.timeout,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "rows": rows,
            "targets": targets,
            "all_pass": all_pass,
            "json_bytes": sizes[JSON_NAME],
            "report_bytes": sizes[REPORT_NAME],
        }
        if remove:
            doc["capture"]["removed"] = True
        print(json.dumps(doc, indent=2))
    else:
        size = info.get("bytes") or 0
        print(
            f"capture: {info['path']} ({args.packets:,} packets, {size / 2**20:.1f} MiB"
            + (", removed after the run" if remove else "")
            + ")"
        )
        if flat_info is not None:
            fsize = flat_info.get("bytes") or 0
            print(
                f"long capture (PCAP_LONG): {flat_info['path']} ({flat_info['packets']:,} "
                f"packets, {fsize / 2**20:.1f} MiB"
                + (", removed after the run" if remove_flat else "")
                + ")"
            )
        gens = [i.get("generate_seconds") for i in (info, flat_info or {})]
        for gen in gens:
            if gen is not None:
                print(f"generated in {gen:.1f} s")
        print(f"runs per tool: {args.repeat} (best time, highest peak RSS)")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"cpus: {os.cpu_count()}, load average now: {load}")
        print()
        print(render_table(rows, labels))
        print()
        if any(r.get("wall_seconds") for r in rows):
            print(
                "* timed by the child (bench/core.py): engine.step loop and engine.finish, "
                "without interpreter start-up, imports and output; pcapdns-core runs the "
                "detectors (a real FindingCollector), pcapdns-core-no-detectors hands over "
                "to a collector that drops what it gets"
            )
        if sizes[JSON_NAME] is not None:
            print(f"JSON document: {sizes[JSON_NAME]:,} bytes")
        if sizes[REPORT_NAME] is not None:
            print(f"HTML report: {sizes[REPORT_NAME]:,} bytes")
        flat_row = next((r for r in rows if r["key"] == "pcapdns-flat"), None)
        if flat_row is not None and json_row is not None:
            ratio = flat_row.get("peak_rss_ratio_vs_json")
            print(
                f"flat memory: peak RSS {_fmt(json_row.get('peak_rss_mib'), '.1f')} MiB on "
                f"{args.packets:,} packets, {_fmt(flat_row.get('peak_rss_mib'), '.1f')} MiB "
                f"on {flat_row['packets']:,}: ratio {_fmt(ratio, '.3f')} -> "
                + verdict(flat_row["targets"][0]["pass"])
            )
        if ring_row is not None and ring_info is not None:
            same = ring_info.get("identical")
            print(
                f"ring of {RING_FILES} files: "
                + {
                    True: "summary and findings identical to the single file",
                    False: "DIFFERENT from the single file",
                    None: "not compared",
                }[same]
                + f" -> {verdict(same)}; {RING_NOTE}"
            )
            for d in ring_info.get("differences") or []:
                print(f"  {d}")
        print("targets: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in targets.items()))
        print("all PASS" if all_pass else "not all met")
    if args.check and not all_pass:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
