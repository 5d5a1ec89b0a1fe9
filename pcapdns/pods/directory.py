"""The pod directory: one ``Endpoint`` per address, built from the pods and Services
read by ``pcapdns.pods.load``, frozen once built."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

#: Addresses kept at most (the first ones read; the rest are counted in ``evicted`` and
#: warned about): an entry is a few hundred bytes, so 200,000 stay under 100 MB, and
#: Kubernetes' largest tested clusters run 150,000 pods.
MAX_ENTRIES = 200_000

#: What a label shows an address to be, as far as DNS goes:
#: ``coredns`` a pod labelled ``k8s-app: kube-dns`` (CoreDNS, or the older kube-dns);
#: ``kube-dns-service`` a Service labelled (or selecting) ``k8s-app: kube-dns``;
#: ``node-local-dns`` a pod or Service of NodeLocal DNSCache (``k8s-app: node-local-dns``).
Role = Literal["coredns", "kube-dns-service", "node-local-dns"]

EndpointKind = Literal["pod", "service", "node"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What one address is in the cluster."""

    #: The address, in the spelling the analysis uses (``address_key``).
    address: str
    #: A pod's IP, a Service's cluster IP, or a node's address (pods with hostNetwork).
    kind: EndpointKind
    #: The namespace ("" for a node, and for ``-o wide`` text without ``-A``).
    namespace: str
    #: The pod's or Service's name; a node's name for a node.
    name: str
    #: The workload it belongs to: ``Deployment``, ``StatefulSet``, ``DaemonSet``, ``Job``,
    #: ``CronJob``, ``ReplicaSet`` (without a Deployment), another owner's kind, ``Pod``
    #: (a bare pod, or one listed without owners); ``Service``; ``Node``.
    workload_kind: str
    workload_name: str
    #: The node it runs on (None for a Service, or when the listing does not say).
    node: str | None
    #: Its DNS roles, recognized by labels (``Role``).
    roles: tuple[Role, ...] = ()
    #: For a node: the hostNetwork pods on it that share its address (the first few).
    host_network_pods: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``namespace/pod`` (``namespace/service``; ``node NAME (host network)``)."""
        if self.kind == "node":
            # With hostNetwork pods the address is theirs too; else only the node's.
            return (f"node {self.name} (host network)" if self.host_network_pods
                    else f"node {self.name}")
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def workload(self) -> str:
        """``namespace/Kind/name``, the key the per-client tables group by."""
        if self.kind == "node":
            return f"Node/{self.name}"
        head = f"{self.namespace}/" if self.namespace else ""
        return f"{head}{self.workload_kind}/{self.workload_name}"

    def to_json(self) -> dict[str, object]:
        """The document's entry for this address (docs/analysis.md, ``pods``)."""
        return {
            "kind": self.kind, "namespace": self.namespace, "name": self.name,
            "label": self.label, "workload_kind": self.workload_kind,
            "workload_name": self.workload_name, "workload": self.workload,
            "node": self.node, "roles": list(self.roles),
            "host_network_pods": list(self.host_network_pods),
        }


@dataclass(frozen=True, slots=True)
class PodDirectory:
    """Addresses to endpoints, and what was read to make it."""

    #: The files read, in order.
    files: tuple[str, ...]
    entries: Mapping[str, Endpoint]
    #: Pods and Services read (all files together), and pods with hostNetwork among them.
    pods: int
    services: int
    host_network_pods: int
    #: Addresses left out at ``MAX_ENTRIES``.
    evicted: int = 0
    #: Addresses claimed by two pods (a finished pod's IP given to a new one): the one
    #: still running is kept.
    conflicts: int = 0
    warnings: tuple[str, ...] = field(default=())

    def lookup(self, address: str | None) -> Endpoint | None:
        """The endpoint at ``address`` (any spelling of an IP), or None."""
        if not address:
            return None
        e = self.entries.get(address)
        if e is None and ":" in address:
            e = self.entries.get(address_key(address))
        return e

    def label(self, address: str | None) -> str | None:
        """``namespace/pod`` of ``address``, or None when it is not known."""
        e = self.lookup(address)
        return e.label if e is not None else None

    def is_cluster_dns(self, address: str | None) -> bool:
        """Whether ``address`` is a CoreDNS pod, the kube-dns Service or NodeLocal DNS."""
        e = self.lookup(address)
        return e is not None and bool(e.roles)

    def cluster_dns(self) -> dict[str, str]:
        """Addresses the listing shows to be the cluster's DNS, each with why."""
        out: dict[str, str] = {}
        for address, e in sorted(self.entries.items()):
            if e.roles:
                what = ("the kube-dns Service" if "kube-dns-service" in e.roles
                        else "NodeLocal DNSCache" if "node-local-dns" in e.roles
                        else "a CoreDNS pod")
                out[address] = f"{e.label} is {what} in the pods listing"
        return out


def address_key(text: str) -> str:
    """One spelling of an IP address (IPv6 compressed, lower case; an IPv4-mapped IPv6
    address as IPv4); text that is no address is returned as it is."""
    if ":" not in text:
        return text
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def lookup_label(directory: PodDirectory | None, address: str | None) -> str | None:
    """``directory.label(address)``, None without a directory."""
    return directory.label(address) if directory is not None else None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One claim on an address, as read from a file."""

    endpoint: Endpoint
    #: Still running (phase Running/Pending/Unknown): wins over a finished pod.
    active: bool = True
    #: A hostNetwork pod: the address is its node's.
    host_network: bool = False
    #: A node's address, as a pod's ``status.hostIP`` says it: taken when nothing else
    #: claims the address, and never over a pod or a Service.
    node_address: bool = False


def build(files: Iterable[str], candidates: Iterable[Candidate], pods: int,
          services: int, max_entries: int = MAX_ENTRIES) -> PodDirectory:
    """The directory of ``candidates``: a Service's or pod's claim stands alone; hostNetwork
    pods make their address the node's; of two pods on one address the active one wins."""
    entries: dict[str, Endpoint] = {}
    active: dict[str, bool] = {}
    hosted: dict[str, list[str]] = {}
    conflicts = 0
    host_network: set[tuple[str, str]] = set()
    #: Addresses left out at the cap (a set: a node's address is said by all its pods).
    left_out: set[str] = set()
    for c in candidates:
        e = c.endpoint
        if not e.address:
            continue  # a pod or Service without an address: counted, nothing to match
        if c.node_address and e.address in entries:
            continue  # a node known from a pod's hostIP never takes another claim's place
        if c.host_network:
            host_network.add((e.namespace, e.name))
        if e.address not in entries and len(entries) >= max_entries:
            left_out.add(e.address)
            continue
        if c.node_address:
            entries[e.address] = e
            active[e.address] = True
            continue
        old = entries.get(e.address)
        if (not c.host_network and old is not None and old.kind == "pod" and e.kind == "pod"
                and old.name != e.name and c.active and active[e.address]
                and old.node is not None and old.node == e.node):
            # Two running pods on one node with one address: -o wide text, which does not
            # say hostNetwork, showing two pods on their node's address.
            c = Candidate(e, host_network=True)
            hosted[e.address] = [old.label]
            host_network.add((old.namespace, old.name))
            host_network.add((e.namespace, e.name))
        if c.host_network:
            # Every hostNetwork pod on a node has the node's address: the address is the
            # node's, never one pod's. It carries no DNS role either: a DNS pod on the host
            # network (NodeLocal DNSCache) answers on its own link-local address.
            names = hosted.setdefault(e.address, [])
            if len(names) < 5:
                names.append(e.label)
            entries[e.address] = Endpoint(
                address=e.address, kind="node", namespace="", name=e.node or e.address,
                workload_kind="Node", workload_name=e.node or e.address, node=e.node,
                host_network_pods=tuple(names))
            active[e.address] = True
            continue
        old = entries.get(e.address)
        if old is not None and old.kind == "node":
            continue  # a node's address stays the node's
        if old is not None and (old.kind, old.namespace, old.name) != (
                e.kind, e.namespace, e.name):
            if e.kind == "service" or (old.kind != "service" and c.active
                                        and not active[e.address]):
                entries[e.address] = e  # a running pod takes a finished one's address
                active[e.address] = c.active
            elif old.kind != "service" and c.active and active[e.address]:
                conflicts += 1
            continue
        entries[e.address] = e
        active[e.address] = c.active
    evicted = len(left_out)
    warnings = []
    if evicted:
        warnings.append(
            f"the pods listing has more than {max_entries:,} addresses: {evicted:,} were "
            "left out and show as addresses")
    if conflicts:
        warnings.append(
            f"{conflicts:,} addresses are claimed by two running pods in the pods listing "
            "(listings from different times?): the first one read is shown")
    return PodDirectory(
        files=tuple(files), entries=MappingProxyType(entries), pods=pods,
        services=services, host_network_pods=len(host_network), evicted=evicted,
        conflicts=conflicts, warnings=tuple(warnings))
