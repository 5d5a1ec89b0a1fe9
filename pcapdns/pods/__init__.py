"""Pod names for addresses: a directory built from ``kubectl get pods`` / ``get svc``.

The API, used by the analysis, its outputs and ``pcapdns merge``::

    from pcapdns import pods

    directory = pods.load(["pods.json", "svc.txt"])   # -> pods.PodDirectory (frozen)
    e = directory.lookup("10.244.1.7")                # -> pods.Endpoint or None
    e.label            # "kube-system/coredns-5d78c9869d-abcde"
    e.namespace, e.name, e.node
    e.workload_kind, e.workload_name   # "Deployment", "coredns"
    e.roles            # ("coredns",): see ``Role``
    directory.is_cluster_dns("10.96.0.10")       # a CoreDNS pod or the kube-dns Service
    directory.cluster_dns()            # {address: the fact that shows it}

``load`` reads each file as one of: ``kubectl get pods -A -o json``, ``kubectl get svc -A
-o json`` (or a ``List`` holding both), ``kubectl get pods -A -o wide`` and ``kubectl get
svc -A -o wide`` text (``--show-labels`` adds the labels). It raises
``pcapdns.errors.InputError`` naming the file when one cannot be read or parsed.

What an address is matched to (docs/analysis.md, "Pod names"): a pod's IPs
(``status.podIPs``), a Service's cluster IPs, and the node's own address for the pods
with ``hostNetwork`` (which share it: such an address is labelled as the node's host
network, never as one of its pods). CoreDNS and NodeLocal DNSCache are recognized by
their labels (``k8s-app: kube-dns``, ``k8s-app: node-local-dns``), never by their names.
"""

from pcapdns.pods.directory import (
    MAX_ENTRIES,
    Endpoint,
    PodDirectory,
    Role,
    lookup_label,
)
from pcapdns.pods.load import load

__all__ = ["MAX_ENTRIES", "Endpoint", "PodDirectory", "Role", "load", "lookup_label"]
