"""What each finding kind means, what usually causes it, and how to fix it.

One entry per finding kind; ``test_knowledge`` checks that none is missing. The causes and
fixes are what a support engineer can act on without the capture at hand: the resolver
option, the Kubernetes object or the command to run. They come from resolver behaviour
(glibc resolv.conf(5), musl's resolver), Kubernetes DNS debugging practice and CoreDNS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pcapdns.detect.base import FindingKind

if TYPE_CHECKING:  # for the annotation only: no import of the correlation at run time
    from pcapdns.correlate.records import Fate


@dataclass(frozen=True, slots=True)
class Advice:
    """The report's text for one finding kind."""

    #: A short heading, e.g. "Same-port A/AAAA race (conntrack)".
    title: str
    #: One sentence: what the finding means on the wire.
    meaning: str
    #: Likely causes, most likely first.
    causes: tuple[str, ...]
    #: What to do, most effective first.
    fixes: tuple[str, ...]


_TIMEOUT_CAUSES = (
    "DNS traffic blocked on the path: a NetworkPolicy without an egress rule for UDP and TCP "
    "port 53 to kube-dns, a cloud security group or network ACL dropping UDP 53.",
    "CoreDNS overloaded or throttled (CPU limit reached, too few replicas): check "
    "`kubectl -n kube-system top pods -l k8s-app=kube-dns` and its logs.",
    "The node's conntrack table full: `nf_conntrack: table full, dropping packet` in "
    "`dmesg`; compare `conntrack -C` with `sysctl net.netfilter.nf_conntrack_max`.",
    "IPVS reusing a UDP source port after a CoreDNS pod was removed: queries from that port "
    "go to a backend that no longer exists.",
    "The client node overloaded, dropping packets before they leave.",
)

ADVICE: dict[FindingKind, Advice] = {
    "upstream_timeout": Advice(
        title="Upstream server did not answer the forwarder",
        meaning="A DNS forwarder (CoreDNS, NodeLocal DNSCache, dnsmasq) asked its upstream "
                "server the question a client was waiting on, and the upstream never "
                "answered; the client's lookup timed out or got SERVFAIL because of it.",
        causes=(
            "The upstream resolver is down, overloaded or rate-limiting the forwarder "
            "(cloud resolvers limit queries per second per source address or interface).",
            "Traffic to the upstream is blocked or lost: a firewall, security group or "
            "NetworkPolicy on the node's egress, a NAT gateway out of ports.",
            "The upstream cannot resolve the name itself (its own authoritative servers do "
            "not answer) and drops the query instead of answering SERVFAIL.",
        ),
        fixes=(
            "Open a ticket with the upstream provider with the lines of the ticket summary "
            "(name, time to the second, the forwarder's node).",
            "Check reachability from the forwarder's node: `dig @UPSTREAM NAME` from the node "
            "or the CoreDNS pod's network namespace.",
            "Give the forwarder several upstream servers (`forward . IP1 IP2` in the "
            "Corefile) and a shorter upstream timeout, so that one silent server costs less.",
        ),
    ),
    "upstream_error": Advice(
        title="Upstream server answered the forwarder with an error",
        meaning="A DNS forwarder asked its upstream server the question a client was "
                "waiting on and got SERVFAIL, REFUSED or another error code, which it "
                "passed on to the client.",
        causes=(
            "REFUSED: the upstream does not serve the forwarder (an access list, a resolver "
            "that answers only its own network, a zone it is not configured for).",
            "SERVFAIL: the upstream could not resolve the name (its authoritative servers "
            "failed or timed out, or DNSSEC validation failed).",
        ),
        fixes=(
            "Open a ticket with the upstream provider with the lines of the ticket summary "
            "(name, response code, time to the second, the forwarder's node).",
            "For REFUSED: allow the forwarder's address on the upstream, or forward that zone "
            "to the server that serves it (a `forward` block per zone in the Corefile).",
            "For SERVFAIL: test the name against its authoritative servers (`dig +trace`) "
            "and check DNSSEC with `dig +cd`.",
        ),
    ),
    "aaaa_race_lost": Advice(
        title="Same-port A/AAAA race (conntrack)",
        meaning="The resolver sent the A and AAAA queries together from one socket and one "
                "of them was never answered, so the lookup stalled until the resolver's "
                "timeout (5 s by default) and a retry.",
        causes=(
            "A conntrack insertion race: two UDP packets of one socket arrive at the same "
            "instant, both NEW to conntrack, and the kernel drops one when its entry fails to "
            "insert (`insert_failed` rises in `conntrack -S` / /proc/net/stat/nf_conntrack).",
            "glibc sends A and AAAA in parallel from one socket by default; images with a libc "
            "before 2.33 (and ARM nodes in particular) are the ones usually hit.",
        ),
        fixes=(
            "Set `options single-request-reopen` (or `single-request`) through the pod's "
            "`dnsConfig.options`, so A and AAAA do not leave one socket at the same instant.",
            "Deploy NodeLocal DNSCache: the node-local cache is reached without conntrack "
            "(NOTRACK) and removes the race.",
            "Use an image with libc 2.33 or later.",
            "Shorten the stall while the fix rolls out: "
            "`options timeout:2 attempts:3 rotate single-request-reopen`.",
            "Resolve IPv4 only where the client allows it (for PHP cURL, "
            "`CURLOPT_IPRESOLVE = CURL_IPRESOLVE_V4`), so no AAAA query is sent.",
        ),
    ),
    "truncated_no_tcp_fallback": Advice(
        title="Truncated answer without a TCP retry",
        meaning="The server answered with TC=1 (the answer did not fit in UDP) and the "
                "client never asked again over TCP, so it got no usable answer.",
        causes=(
            "The answer is too big for UDP: typically a headless Service with many endpoints, "
            "or many records behind one name.",
            "A resolver that never falls back to TCP (musl before 1.2.4, as in older Alpine "
            "images), or TCP to the server blocked on the path.",
        ),
        fixes=(
            "Make the client use TCP: `options use-vc` in the pod's `dnsConfig.options`, or a "
            "Go resolver configured to dial TCP.",
            "Use a glibc-based image or musl 1.2.4+ (Alpine 3.18 or later), which retry over "
            "TCP.",
            "Allow TCP port 53 to kube-dns in NetworkPolicies and security groups.",
            "Reduce the answer size (fewer endpoints per headless Service). Note that some "
            "upstreams accept only UDP: CoreDNS `forward ... { prefer_udp }` exists for them.",
        ),
    ),
    "timeout": Advice(
        title="Lookups that timed out",
        meaning="No attempt of the lookup was answered: the query (or its answer) was lost "
                "between the client and the server.",
        causes=_TIMEOUT_CAUSES,
        fixes=(
            "Allow UDP and TCP port 53 from the pods to kube-dns (NetworkPolicy egress, "
            "security groups, NACLs).",
            "Scale CoreDNS (more replicas, or cluster-proportional-autoscaler) and raise its "
            "CPU limit; deploy NodeLocal DNSCache.",
            "Raise `net.netfilter.nf_conntrack_max` on nodes where the table is full.",
            "For IPVS source-port reuse: upgrade the kernel or kube-proxy, or lower the IPVS "
            "UDP timeout.",
        ),
    ),
    "retransmission": Advice(
        title="Retransmitted queries",
        meaning="The resolver sent the same question again because the previous attempt was "
                "not answered in time; each retry adds the resolver's timeout to the lookup.",
        causes=("Lost queries or answers (see timeouts), or a server slower than the "
                "resolver's timeout.",) + _TIMEOUT_CAUSES[1:3],
        fixes=(
            "Find where the first attempt was lost: look for the same frames in a capture on "
            "the CoreDNS side or after NAT.",
            "Lower the cost of a loss with `options timeout:2 attempts:3` in `dnsConfig`.",
        ),
    ),
    "servfail": Advice(
        title="SERVFAIL answers",
        meaning="The server (or its upstream) failed to resolve the name.",
        causes=(
            "The upstream resolver of CoreDNS is unreachable or failing (check CoreDNS logs "
            "for `i/o timeout` and the `forward` plugin's upstreams).",
            "DNSSEC validation failure, or a broken delegation for the zone.",
        ),
        fixes=(
            "Send the ticket summary below to the upstream DNS provider: names, times (UTC) "
            "and servers.",
            "Check the CoreDNS `forward` targets and their health; add a second upstream.",
        ),
    ),
    "refused": Advice(
        title="REFUSED answers",
        meaning="The server declined to answer this client or this zone.",
        causes=(
            "An access control on the server (allow-query, a view, a firewall-style policy).",
            "The query reached a server that is not a resolver for this zone (a wrong "
            "nameserver in resolv.conf or in CoreDNS `forward`).",
        ),
        fixes=(
            "Check which server refused (below) and its access rules for the client's "
            "address range.",
            "Send the ticket summary to the operator of that server.",
        ),
    ),
    "nxdomain": Advice(
        title="Names that do not exist (NXDOMAIN)",
        meaning="The server answered that the name does not exist.",
        causes=(
            "Search-list expansion: with `ndots:5`, a short name is first tried with each "
            "search suffix (`.ns.svc.cluster.local`, `.svc.cluster.local`, ...), and those "
            "tries are NXDOMAIN by design.",
            "A Service in another namespace asked by its short name: it needs "
            "`service.namespace` or `service.namespace.svc.cluster.local`.",
            "A typo or a name that was removed.",
        ),
        fixes=(
            "Write external names fully qualified with a trailing dot (`api.example.com.`) or "
            "lower `ndots` (e.g. 2) in the pod's `dnsConfig.options`.",
            "Use `service.namespace.svc.cluster.local` for cross-namespace names.",
        ),
    ),
    "slow_response": Advice(
        title="Slow answers",
        meaning="The lookup was answered, but late, counted from its first attempt.",
        causes=(
            "Slower than 5 s: the server is effectively unreachable and the answer came after "
            "a retry (see timeouts and the A/AAAA race).",
            "Slower than 1 s: CoreDNS overloaded or a slow upstream resolver.",
        ),
        fixes=(
            "Deploy NodeLocal DNSCache so that answers are cached on the node.",
            "Scale CoreDNS and check its `forward` upstream latency "
            "(`coredns_forward_request_duration_seconds`).",
        ),
    ),
    "fanout": Advice(
        title="Queries to several nameservers at once",
        meaning="The client sent one query to every nameserver in its resolv.conf at the "
                "same time, which is what the musl (Alpine) resolver does.",
        causes=(
            "A musl-based image (Alpine). It queries all nameservers in parallel, and so "
            "bypasses NodeLocal DNSCache when both addresses are listed.",
        ),
        fixes=(
            "Use a glibc-based image (Debian, Ubuntu, distroless) for workloads that need "
            "NodeLocal DNSCache or a predictable resolver order.",
            "List only one nameserver in the pod's resolv.conf (`dnsPolicy: None` with "
            "`dnsConfig.nameservers`).",
        ),
    ),
    "late_response": Advice(
        title="Answers that came after the client gave up",
        meaning="The answer arrived after the client had closed its socket; the client's "
                "kernel answered it with ICMP port unreachable.",
        causes=(
            "A server slower than the resolver's timeout: overloaded CoreDNS or a slow "
            "upstream.",
        ),
        fixes=(
            "Make the server faster (scale CoreDNS, NodeLocal DNSCache) or raise the client's "
            "`options timeout:N`.",
        ),
    ),
    "unsolicited_response": Advice(
        title="Responses that match no query",
        meaning="A response arrived for which no query was seen.",
        causes=(
            "A reply whose source was not translated back (the CoreDNS pod IP instead of the "
            "Service IP): the client drops it. Look for a conntrack entry lost or expired "
            "between the query and the answer.",
            "The query was sent before the capture started, or the answer came after "
            "`--max-wait`.",
        ),
        fixes=(
            "Check kube-proxy and conntrack on the node (`conntrack -L -p udp --dport 53`).",
            "Capture a little longer before the problem so the queries are in the capture.",
        ),
    ),
    "icmp_unreachable": Advice(
        title="ICMP errors about DNS packets",
        meaning="An ICMP destination-unreachable error quoted a DNS packet that matched no "
                "query or response in the capture.",
        causes=("A server port closed (nothing listening on 53), or a late answer to a query "
                "sent before the capture started.",),
        fixes=("Check that the server in the evidence is really serving DNS on port 53.",),
    ),
    "search_expansion": Advice(
        title="Search-list expansion (ndots)",
        meaning="Before the name was answered, the resolver tried it with each search suffix, "
                "and each try came back NXDOMAIN.",
        causes=(
            "Kubernetes pods use `ndots:5`: any name with fewer than 5 dots is tried with "
            "every search suffix first, multiplying queries and latency.",
        ),
        fixes=(
            "Write external names with a trailing dot (`api.example.com.`).",
            "Lower `ndots` (e.g. `options ndots:2`) in the pod's `dnsConfig`.",
            "Use the full `service.namespace.svc.cluster.local` name for in-cluster services.",
        ),
    ),
    "stale_port": Advice(
        title="One client port without answers",
        meaning="After a few lookups from one client source port failed, that port got no "
                "answer from the server for at least a minute (or until the capture ended), "
                "while the same client's lookups from other ports were answered.",
        causes=(
            "State kept per flow on the way to this server (a NAT or firewall connection "
            "entry, a load balancer's flow table) that still sends this port's queries, or "
            "their answers, where nothing comes back. The capture shows that it happened, "
            "not which box holds the state.",
            "The server, or something in front of it, ignoring queries from this one "
            "address and port (a rate limit or a block keyed on the source).",
        ),
        fixes=(
            "Capture at the server, or beyond the NAT, to see whether this port's queries "
            "arrive there and are answered.",
            "Let the client's resolver use a new source port for each query, so one stuck "
            "flow cannot hold every lookup.",
        ),
    ),
    "lost_in_node": Advice(
        title="Queries lost inside the node (before the DNAT)",
        meaning="The pod's query was captured on its way into the node, to the Service "
                "address, and no copy of it ever left after kube-proxy's DNAT, while other "
                "queries to that address did: the node dropped it, and the client waited "
                "for its timeout (5 s by default) before trying again.",
        causes=(
            "The conntrack insert race: two UDP packets of one socket (glibc's parallel A "
            "and AAAA queries) race to create the same conntrack entry, and the loser is "
            "dropped; `conntrack -S` shows `insert_failed` growing on the node.",
            "A drop in the node's FORWARD path: a NetworkPolicy, an iptables rule, a full "
            "conntrack table (`nf_conntrack: table full` in `dmesg`).",
        ),
        fixes=(
            "Check `conntrack -S` on the node for `insert_failed` and `drop`, and `dmesg` for "
            "conntrack messages.",
            "Deploy NodeLocal DNSCache: the pod's queries go to a local address without DNAT "
            "and on to CoreDNS over TCP.",
            "Add `options single-request-reopen` (glibc) to the pod's `dnsConfig`, so that A "
            "and AAAA go out from different sockets.",
            "In the ticket: the node, the times and the frames of the lost queries.",
        ),
    ),
    "reply_not_delivered": Advice(
        title="Answers that never reached the pod",
        meaning="The answer came back to the node from the CoreDNS pod (the DNAT target), "
                "and no copy of it with the Service address as its source reached the "
                "pod's side: the node lost it on its way back.",
        causes=(
            "Reverse-path filtering (`rp_filter`) or asymmetric routing dropping the answer "
            "on the way back.",
            "The conntrack entry gone before the answer came (expired, flushed, or removed "
            "when a CoreDNS pod was replaced), so the answer is not un-NAT'd.",
            "IPVS mode: a stale IPVS connection or a backend removed while queries were in "
            "flight.",
            "A drop in the node's FORWARD path for the answer (iptables, NetworkPolicy).",
        ),
        fixes=(
            "Check `sysctl net.ipv4.conf.all.rp_filter` and the interface's value (0 or 2 "
            "on nodes with several paths).",
            "Look for the conntrack entry while it happens: `conntrack -L -p udp --dport 53`.",
            "Check the node's FORWARD chain and NetworkPolicies for rules matching UDP 53 "
            "from CoreDNS.",
        ),
    ),
    "unexpected_source": Advice(
        title="Answers from an address the client did not ask",
        meaning="The answer came from an address that is neither the one queried nor its "
                "DNAT target; the client's socket drops it (dig says \"reply from "
                "unexpected source\").",
        causes=(
            "A multi-homed DNS server replying from another of its addresses (a server "
            "bound to 0.0.0.0 without per-interface sockets).",
            "A DNS server on the host network (hostNetwork), so that the reply does not go "
            "back through the conntrack entry that rewrote the query.",
            "A missing un-DNAT or an SNAT rule on the answer's way (`br_netfilter` not "
            "loaded, so bridged answers skip conntrack).",
        ),
        fixes=(
            "Make the server answer from the address it was asked on (unbound "
            "`interface-automatic: yes`, dnsmasq `--bind-interfaces`, or listen on the "
            "exact address).",
            "Load `br_netfilter` and set `net.bridge.bridge-nf-call-iptables=1` on nodes "
            "with a bridge CNI.",
            "Check the node's nat table for SNAT/MASQUERADE rules that match DNS answers.",
        ),
    ),
    "replica_imbalance": Advice(
        title="One DNS replica worse than the others",
        meaning="Among the CoreDNS pods behind one Service address (the DNAT targets seen in "
                "the capture), one failed far more of its queries, or answered far more "
                "slowly at the 99th percentile, than the others (docs/analysis.md says how "
                "far).",
        causes=(
            "That pod overloaded or throttled: its CPU limit reached, or it runs on a busy "
            "node.",
            "Its upstream path slower or failing: a `forward` target reachable only from "
            "some nodes, a network policy or a route that differs on its node.",
            "The pod on its way out (terminating) while it still gets traffic, or a node "
            "whose network to the pod drops packets.",
        ),
        fixes=(
            "Find the pod by its IP (`kubectl -n kube-system get pods -o wide`), read its "
            "logs and `kubectl top` it; compare its node with the others'.",
            "Delete the pod so that it is recreated elsewhere, and scale CoreDNS so that "
            "one pod's trouble weighs less.",
            "In the ticket: the pod IP, its share of the queries, its failure rate and p99 "
            "beside the others'.",
        ),
    ),
    "detector_error": Advice(
        title="Analysis problems",
        meaning="A detector failed on part of the capture; the rest of the report is "
                "complete, but this part was not examined.",
        causes=("A bug in pcapdns met by this capture.",),
        fixes=("Report it with the frames listed, so the problem can be reproduced.",),
    ),
}


#: ``stale_port`` when the server is known to be the cluster's DNS (a Service address, a
#: DNAT target, a pod's resolv.conf nameserver): only then is the Kubernetes cause named.
STALE_PORT_CLUSTER_DNS = Advice(
    title="One client port stuck (stale conntrack or IPVS entry)",
    meaning="After a few lookups from one client source port to the cluster's DNS failed, "
            "that port got no answer for at least a minute (or until the capture ended), "
            "while the same client's lookups from other ports were answered.",
    causes=(
        "A stale conntrack or IPVS entry still pointing at a CoreDNS pod that was removed; "
        "the client keeps reusing the same source port, so every query follows the dead "
        "entry (IPVS kept such UDP entries for about 5 minutes on kernels before the fix).",
    ),
    fixes=(
        "Delete the stale entry: `conntrack -D -p udp --sport PORT` on the client's node.",
        "Upgrade kube-proxy and the kernel (fixes for IPVS UDP port reuse), or use "
        "`options single-request-reopen` so that retries use a new port.",
    ),
)


def advice_for(kind: FindingKind, cluster_dns: bool = False) -> Advice:
    """The report's text for findings of ``kind``; ``cluster_dns`` when all of them are
    about servers known to be the cluster's DNS (``Finding.cluster_dns``)."""
    if kind == "stale_port" and cluster_dns:
        return STALE_PORT_CLUSTER_DNS
    return ADVICE[kind]


#: What each fate of ``pcapdns correlate`` means in a Kubernetes cluster and where to look
#: next (the report of a correlation shows one entry per fate; ``test_knowledge`` checks
#: that none is missing).
FATE_ADVICE: dict[Fate, Advice] = {
    "answered": Advice(
        title="Answered",
        meaning="An answer to the lookup reached the client's capture point.",
        causes=(),
        fixes=(),
    ),
    "lost_before_server": Advice(
        title="Lost before the server",
        meaning="The client sent the query, and the capture on the DNS server's node never "
                "saw it arrive: it died on the client's node or on the network between "
                "the nodes.",
        causes=(
            "A NetworkPolicy on the client pod (or its namespace) without an egress rule "
            "for UDP and TCP port 53 to kube-dns, or one on CoreDNS without the matching "
            "ingress rule: `kubectl get networkpolicy -A`.",
            "The conntrack insert race on the client's node: two queries of one socket "
            "NEW at the same instant, one dropped (`insert_failed` rising in "
            "`conntrack -S` there).",
            "The client node's conntrack table full (`nf_conntrack: table full, dropping "
            "packet` in `dmesg`), or a stale conntrack/IPVS entry sending the query to a "
            "CoreDNS pod that is gone.",
            "The network between the nodes: a security group or network ACL dropping UDP "
            "53, the overlay (VXLAN/Geneve) MTU, a CNI agent down on either node.",
        ),
        fixes=(
            "On the client's node: `conntrack -S` (insert_failed, drop), `conntrack -L -p "
            "udp --dport 53`, `iptables-save | grep -i drop`, and the CNI agent's logs.",
            "Allow UDP and TCP 53 to kube-dns in the NetworkPolicies and security groups.",
            "Deploy NodeLocal DNSCache, which takes DNS off conntrack and off the network "
            "between nodes for the client's first hop.",
        ),
    ),
    "lost_at_server": Advice(
        title="Lost at the server",
        meaning="The query reached the DNS server's node and no answer left it: the "
                "server dropped it, or was still waiting when the client gave up.",
        causes=(
            "CoreDNS overloaded or throttled: CPU limit reached, too few replicas, its "
            "`max_concurrent` limit in the forward plugin (it then answers REFUSED or "
            "nothing).",
            "CoreDNS waiting on its upstream (forward plugin) longer than the client waits: "
            "an upstream resolver slow or unreachable from the CoreDNS node.",
            "A firewall on the CoreDNS node dropping its answers (OUTPUT chain), or the "
            "CoreDNS pod restarting (OOMKilled, liveness probe).",
        ),
        fixes=(
            "`kubectl -n kube-system top pods -l k8s-app=kube-dns` and the pods' restarts; "
            "the `coredns_dns_request_duration_seconds` and `coredns_forward_*` metrics.",
            "Enable the `log` plugin briefly and look for the names listed here; capture "
            "CoreDNS's upstream traffic on its node.",
            "Add replicas or raise the CPU limit; set the forward plugin's upstreams and "
            "timeouts to answer before the clients give up (glibc waits 5 s per try).",
        ),
    ),
    "lost_after_server": Advice(
        title="Lost after the server",
        meaning="The answer left the DNS server's node and never reached the client: it "
                "died on the way back, on the network or on the client's node.",
        causes=(
            "The return path: the client's node failed to reverse the NAT (un-DNAT of the "
            "service IP) because the conntrack entry was gone or never inserted, so the "
            "answer no longer matches the client's socket.",
            "The client's node's conntrack table full, or an entry expired early "
            "(`nf_conntrack_udp_timeout` shorter than the answer took).",
            "Asymmetric routing between the nodes, or a firewall/security group allowing "
            "queries out but not answers back; the overlay MTU for large answers.",
        ),
        fixes=(
            "On the client's node: `conntrack -S` (drop, insert_failed), `conntrack -L -p "
            "udp --sport 53`, `dmesg | grep conntrack`, the rp_filter settings and the "
            "routes back to the CoreDNS node.",
            "Check the firewall rules for UDP from source port 53 back to the pods' "
            "network, and that answers are not bigger than the path's MTU.",
        ),
    ),
    "unknown": Advice(
        title="Unknown",
        meaning="The lookup cannot be placed: it was outside the time span of the server "
                "capture (after the clock offset), or the clocks could not be compared "
                "because no lookup was seen answered on both sides.",
        causes=(
            "The two captures did not run at the same time, or not long enough.",
            "The server capture is from another CoreDNS replica than the one the client's "
            "queries went to (the service spreads them over all replicas).",
        ),
        fixes=(
            "Capture on the client's node and on every CoreDNS node at the same time, "
            "starting before the failures and stopping after them.",
        ),
    ),
}
