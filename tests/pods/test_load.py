"""pcapdns.pods: each form of kubectl's listings read, addresses matched, workloads
named, hostile text made harmless, and bad files refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcapdns import pods
from pcapdns.errors import InputError
from tests.pods import listing
from tests.pods.listing import CLIENT, COREDNS, NODE, SERVICE, pod, service


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    return listing.write(tmp_path)


def test_pods_and_services_json(files: dict[str, str]) -> None:
    d = pods.load([files["pods.json"], files["svc.json"]])
    assert (d.pods, d.services, d.host_network_pods) == (4, 2, 1)
    web = d.lookup(CLIENT)
    assert web is not None, d.entries
    assert (web.kind, web.namespace, web.name, web.node) == (
        "pod", "default", "web-7d4b9c8f6-x2x9q", "node-a")
    assert (web.workload_kind, web.workload_name, web.workload) == (
        "Deployment", "web", "default/Deployment/web")
    assert web.label == "default/web-7d4b9c8f6-x2x9q" and web.roles == ()
    for address in COREDNS:
        e = d.lookup(address)
        assert e is not None and e.roles == ("coredns",), e
        assert e.workload == "kube-system/Deployment/coredns"
    svc = d.lookup(SERVICE)
    assert svc is not None and (svc.kind, svc.label, svc.roles) == (
        "service", "kube-system/kube-dns", ("kube-dns-service",))
    assert d.is_cluster_dns(SERVICE) and d.is_cluster_dns(COREDNS[0])
    assert not d.is_cluster_dns(CLIENT) and not d.is_cluster_dns("10.250.96.1")
    assert sorted(d.cluster_dns()) == sorted([*COREDNS, SERVICE])


def test_an_address_not_listed_is_none(files: dict[str, str]) -> None:
    d = pods.load([files["pods.json"]])
    assert d.lookup("192.0.2.1") is None and d.label("192.0.2.1") is None
    assert d.lookup("") is None and d.lookup(None) is None


def test_host_network_pods_leave_the_node_address_to_the_node(
        files: dict[str, str]) -> None:
    d = pods.load([files["pods.json"]])
    e = d.lookup(NODE)
    assert e is not None, d.entries
    assert (e.kind, e.label, e.roles) == ("node", "node node-a (host network)", ())
    assert e.host_network_pods == ("kube-system/kube-proxy-q8k2m",)


def test_several_host_network_pods_on_one_node(tmp_path: Path) -> None:
    items = [pod("kube-system", f"ds-{i}", NODE, "node-a", host_network=True,
                 owner=("DaemonSet", f"ds{i}")) for i in range(3)]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"kind": "List", "items": items}))
    d = pods.load([str(path)])
    e = d.lookup(NODE)
    assert e is not None and e.kind == "node" and len(e.host_network_pods) == 3
    assert d.host_network_pods == 3


def test_wide_text_of_pods_and_services(files: dict[str, str]) -> None:
    d = pods.load([files["pods-wide.txt"], files["svc-wide.txt"]])
    assert (d.pods, d.services) == (3, 2)
    web = d.lookup(CLIENT)
    assert web is not None and web.label == "default/web-7d4b9c8f6-x2x9q"
    # No owner references in the text: the Deployment is read from the pod's name.
    assert web.workload == "default/Deployment/web" and web.node == "node-a"
    # RESTARTS "2 (3d ago)" holds spaces: the columns are cut by the header.
    dns = d.lookup(COREDNS[0])
    assert dns is not None and dns.node == "node-b", dns
    svc = d.lookup(SERVICE)
    # The Service's SELECTOR column names the CoreDNS pods' label.
    assert svc is not None and svc.roles == ("kube-dns-service",)


def test_wide_text_with_labels_and_a_shared_node_address(tmp_path: Path) -> None:
    text = (
        "NAMESPACE     NAME                READY   STATUS    RESTARTS   AGE   IP           NODE     NOMINATED NODE   READINESS GATES   LABELS\n"  # noqa: E501
        "kube-system   coredns-a           1/1     Running   0          1d    10.1.0.5     node-a   <none>           <none>            k8s-app=kube-dns,pod-template-hash=5d78c9869d\n"  # noqa: E501
        "kube-system   kube-proxy-x        1/1     Running   0          1d    10.0.0.1     node-a   <none>           <none>            k8s-app=kube-proxy\n"  # noqa: E501
        "kube-system   node-exporter-y     1/1     Running   0          1d    10.0.0.1     node-a   <none>           <none>            app=node-exporter\n"  # noqa: E501
        "default       done-job-z          0/1     Completed 0          1d    10.1.0.9     node-a   <none>           <none>            <none>\n"  # noqa: E501
        "default       new-pod             1/1     Running   0          1m    10.1.0.9     node-a   <none>           <none>            <none>\n"  # noqa: E501
    )
    path = tmp_path / "wide.txt"
    path.write_text(text)
    d = pods.load([str(path)])
    dns = d.lookup("10.1.0.5")
    assert dns is not None and dns.roles == ("coredns",)
    node = d.lookup("10.0.0.1")
    assert node is not None and node.kind == "node" and node.name == "node-a", node
    reused = d.lookup("10.1.0.9")
    assert reused is not None and reused.name == "new-pod"  # the running pod wins


def test_owner_references_name_the_workload(tmp_path: Path) -> None:
    items = [
        pod("db", "pg-0", "10.1.0.1", "n", owner=("StatefulSet", "pg")),
        pod("kube-system", "fluent-7xk2p", "10.1.0.2", "n", owner=("DaemonSet", "fluent")),
        pod("batch", "backup-29012345-q2w4r", "10.1.0.3", "n",
            owner=("Job", "backup-29012345")),
        pod("batch", "once-x7k9m", "10.1.0.4", "n", owner=("Job", "once")),
        pod("default", "bare", "10.1.0.5", "n"),
        pod("kube-system", "etcd-n", "10.1.0.6", "n", owner=("Node", "n")),
        pod("default", "api-6c9f8b7d5-zzzzz", "10.1.0.7", "n",
            owner=("ReplicaSet", "api-6c9f8b7d5")),  # no pod-template-hash label
        pod("default", "rs-only-abcde", "10.1.0.8", "n", owner=("ReplicaSet", "rs-only")),
    ]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"kind": "List", "items": items}))
    d = pods.load([str(path)])
    got = {a: e.workload for a, e in d.entries.items()}
    assert got == {
        "10.1.0.1": "db/StatefulSet/pg",
        "10.1.0.2": "kube-system/DaemonSet/fluent",
        "10.1.0.3": "batch/CronJob/backup",
        "10.1.0.4": "batch/Job/once",
        "10.1.0.5": "default/Pod/bare",
        "10.1.0.6": "kube-system/Pod/etcd-n",
        "10.1.0.7": "default/Deployment/api",
        "10.1.0.8": "default/ReplicaSet/rs-only",
        NODE: "Node/n",  # the pods' hostIP
    }


def test_node_local_dns_and_ipv6_spellings(tmp_path: Path) -> None:
    items = [pod("kube-system", "node-local-dns-7xk2p", "fd00:0:0:0::10", "n",
                 labels={"k8s-app": "node-local-dns"}, owner=("DaemonSet", "nld")),
             service("kube-system", "kube-dns", "fd00::a", selector={"k8s-app": "kube-dns"})]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"kind": "List", "items": items}))
    d = pods.load([str(path)])
    e = d.lookup("fd00::10")
    assert e is not None and e.roles == ("node-local-dns",)
    assert d.lookup("FD00:0::A") is not None and d.is_cluster_dns("fd00::a")


def test_a_pod_list_without_kinds_and_a_headless_service(tmp_path: Path) -> None:
    """The API's own PodList writes kind only on the list; a headless Service has no
    address to match."""
    item = pod("default", "a", "10.1.0.1", "n")
    del item["kind"]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"kind": "PodList", "items": [item]}))
    assert pods.load([str(path)]).lookup("10.1.0.1") is not None
    svc = service("default", "headless", "None")
    path.write_text(json.dumps({"kind": "List", "items": [svc]}))
    d = pods.load([str(path)])
    assert d.services == 1 and not d.entries


def test_hostile_names_are_made_printable(tmp_path: Path) -> None:
    name = "evil\x1b[31m<script>alert(1)</script>\u2028\ud800" + "x" * 400
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"kind": "List", "items": [
        pod("ns\x07", name, "10.1.0.1", "node\r\n")]}))
    e = pods.load([str(path)]).lookup("10.1.0.1")
    assert e is not None
    for text in (e.name, e.namespace, e.label, e.node or ""):
        assert text.isprintable(), repr(text)
        text.encode("utf-8")  # no lone surrogate left
    assert e.name.startswith("evil\\x1b[31m<script>") and "\\u2028" in e.name
    assert len(e.name) < 300  # cut at 253 characters before escaping


@pytest.mark.parametrize(("content", "problem"), [
    ('{"kind": "List", "items": [{"kind": "Pod", "metadata": {"name": "a"', "not valid JSON"),
    ("", "empty"),
    ('{"kind": "ConfigMap"}', "not a kubectl listing"),
    ("hello world\nthis is not a table\n", "not kubectl get pods or get svc output"),
    ('{"kind": "List", "items": [7]}', "not an object"),
    ("[" * 100_000, "not valid JSON"),
])
def test_unusable_files_are_one_line_naming_the_file(tmp_path: Path, content: str,
                                                       problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError) as e:
        pods.load([str(path)])
    message = str(e.value)
    assert message.startswith(f"{path}: ") and problem in message, message
    assert "\n" not in message


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        pods.load([str(tmp_path / "nope.json")])
    path = tmp_path / "bin"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not UTF-8"):
        pods.load([str(path)])


def test_the_cap_on_addresses_is_counted_and_warned(tmp_path: Path) -> None:
    items = [pod("default", f"p{i}", f"10.2.0.{i}", "n", host_ip="") for i in range(1, 11)]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"kind": "List", "items": items}))
    d = pods.load([str(path)], max_entries=4)
    assert len(d.entries) == 4 and d.evicted == 6 and d.pods == 10
    assert any("6 were left out" in w for w in d.warnings), d.warnings
    assert d.lookup("10.2.0.9") is None


def test_the_directory_is_frozen(files: dict[str, str]) -> None:
    d = pods.load([files["pods.json"]])
    with pytest.raises(TypeError):
        d.entries["10.9.9.9"] = d.entries[CLIENT]  # type: ignore[index]
    with pytest.raises(AttributeError):
        d.pods = 0  # type: ignore[misc]


def test_every_pod_names_its_node_address(tmp_path: Path) -> None:
    # The overlay's outer addresses are nodes: each pod's hostIP names its node, without a
    # hostNetwork pod there, and never over a pod's or a Service's own address.
    items = [pod("default", "a", "10.3.0.1", "node-a", host_ip="192.168.0.1"),
             pod("default", "b", "10.3.0.2", "node-a", host_ip="192.168.0.1"),
             pod("default", "c", "10.3.1.1", "node-b", host_ip="192.168.0.2"),
             pod("kube-system", "proxy-b", "192.168.0.2", "node-b", host_network=True,
                 host_ip="192.168.0.2")]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"kind": "List", "items": items}))
    d = pods.load([str(path)])
    assert d.label("192.168.0.1") == "node node-a"
    assert d.label("192.168.0.2") == "node node-b (host network)"
    assert d.label("10.3.0.1") == "default/a" and d.pods == 4
    assert d.lookup("192.168.0.1").kind == "node"
    # At the cap, an address left out counts once, however many pods say it.
    capped = pods.load([str(path)], max_entries=1)
    assert list(capped.entries) == ["10.3.0.1"] and capped.evicted == 4, (
        dict(capped.entries), capped.evicted)
