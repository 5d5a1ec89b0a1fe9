# ruff: noqa: E501  (kubectl's tables are as wide as they are)
"""A hand-written ``kubectl get pods -A -o json`` / ``kubectl get svc -A -o json`` listing
for the addresses of the committed samples (sample_pcaps/README.md): the client pod
10.250.1.10 (``default/web-7d4b9c8f6-x2x9q`` of Deployment ``web``), the CoreDNS pods
10.250.2.53 and 10.250.3.53 behind the kube-dns Service 10.250.96.10, and a hostNetwork
pod (kube-proxy) on the node 10.250.1.1. No cluster made it: the samples were recorded in
network namespaces, and this listing names their addresses as a cluster would.

``write(tmp_path)`` writes it in each form ``--pods`` reads and returns the paths.
"""

from __future__ import annotations

import json
from pathlib import Path

CLIENT = "10.250.1.10"
SERVICE = "10.250.96.10"
COREDNS = ("10.250.2.53", "10.250.3.53")
NODE = "10.250.1.1"


def pod(namespace: str, name: str, ip: str, node: str, *, labels: dict | None = None,
        owner: tuple[str, str] | None = None, host_network: bool = False,
        host_ip: str = NODE, phase: str = "Running") -> dict:
    """One Pod item as ``kubectl get pods -o json`` writes it (the fields read)."""
    meta: dict = {"name": name, "namespace": namespace, "labels": labels or {}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0],
                                    "name": owner[1], "controller": True,
                                    "blockOwnerDeletion": True, "uid": "0"}]
    spec: dict = {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": phase, "hostIP": host_ip, "podIP": ip,
                       "podIPs": [{"ip": ip}]}}


def service(namespace: str, name: str, ip: str, labels: dict | None = None,
            selector: dict | None = None) -> dict:
    """One Service item as ``kubectl get svc -o json`` writes it."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "type": "ClusterIP",
                     "selector": selector or {},
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}


def pods_json() -> dict:
    dns = {"k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d"}
    return {"apiVersion": "v1", "kind": "List", "items": [
        pod("default", "web-7d4b9c8f6-x2x9q", CLIENT, "node-a",
            labels={"app": "web", "pod-template-hash": "7d4b9c8f6"},
            owner=("ReplicaSet", "web-7d4b9c8f6")),
        pod("kube-system", "coredns-5d78c9869d-7wq4x", COREDNS[0], "node-b", labels=dns,
            owner=("ReplicaSet", "coredns-5d78c9869d")),
        pod("kube-system", "coredns-5d78c9869d-zx6nb", COREDNS[1], "node-c", labels=dns,
            owner=("ReplicaSet", "coredns-5d78c9869d")),
        pod("kube-system", "kube-proxy-q8k2m", NODE, "node-a", host_network=True,
            labels={"k8s-app": "kube-proxy"}, owner=("DaemonSet", "kube-proxy")),
    ]}


def services_json() -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": [
        service("kube-system", "kube-dns", SERVICE,
                labels={"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
                selector={"k8s-app": "kube-dns"}),
        service("default", "kubernetes", "10.250.96.1"),
    ]}


PODS_WIDE = """\
NAMESPACE     NAME                       READY   STATUS    RESTARTS      AGE   IP            NODE     NOMINATED NODE   READINESS GATES
default       web-7d4b9c8f6-x2x9q        1/1     Running   0             5d    10.250.1.10   node-a   <none>           <none>
kube-system   coredns-5d78c9869d-7wq4x   1/1     Running   2 (3d ago)    9d    10.250.2.53   node-b   <none>           <none>
kube-system   coredns-5d78c9869d-zx6nb   1/1     Running   0             9d    10.250.3.53   node-c   <none>           <none>
"""

SERVICES_WIDE = """\
NAMESPACE     NAME         TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)                  AGE   SELECTOR
default       kubernetes   ClusterIP   10.250.96.1    <none>        443/TCP                  9d    <none>
kube-system   kube-dns     ClusterIP   10.250.96.10   <none>        53/UDP,53/TCP,9153/TCP   9d    k8s-app=kube-dns
"""


def write(folder: Path) -> dict[str, str]:
    """The listing in each form, as files in ``folder``: pods.json, svc.json,
    pods-wide.txt, svc-wide.txt."""
    out = {}
    for name, text in (("pods.json", json.dumps(pods_json(), indent=2)),
                       ("svc.json", json.dumps(services_json(), indent=2)),
                       ("pods-wide.txt", PODS_WIDE), ("svc-wide.txt", SERVICES_WIDE)):
        (folder / name).write_text(text, encoding="utf-8")
        out[name] = str(folder / name)
    return out
