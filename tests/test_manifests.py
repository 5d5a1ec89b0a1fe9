"""capture/: the DaemonSet is valid for a current Kubernetes, asks for what the agent
needs and no more, and the image recipe installs what the agent runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

CAPTURE = ROOT / "capture"
AGENT = ROOT / "pcapdns" / "agent.py"


def documents() -> list[dict]:
    return [d for d in yaml.safe_load_all((CAPTURE / "daemonset.yaml").read_text()) if d]


def daemonset() -> dict:
    (ds,) = [d for d in documents() if d["kind"] == "DaemonSet"]
    return ds


def agent_container() -> dict:
    (c,) = daemonset()["spec"]["template"]["spec"]["containers"]
    return c


def test_validates_against_the_newest_kubernetes_schema() -> None:
    version = kubernetes_validate.latest_version()
    assert tuple(int(x) for x in version.split(".")[:2]) >= (1, 37)
    kinds = []
    for doc in documents():
        # strict: unknown fields are errors too (a misspelt key would be ignored by the API).
        kubernetes_validate.validate(doc, version, strict=True)
        kinds.append(doc["kind"])
    assert kinds == ["Namespace", "DaemonSet"]


def test_a_misspelt_field_is_caught() -> None:
    """The validation above is not vacuous."""
    ds = daemonset()
    ds["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, kubernetes_validate.latest_version(), strict=True)


def test_runs_on_every_node_in_the_node_namespaces() -> None:
    spec = daemonset()["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True and spec["hostPID"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["automountServiceAccountToken"] is False


def test_asks_for_only_the_capabilities_it_needs() -> None:
    sc = agent_container()["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sorted(sc["capabilities"]["add"]) == ["NET_RAW", "SETGID", "SETUID", "SYS_ADMIN",
                                                 "SYS_PTRACE"]
    assert sc["readOnlyRootFilesystem"] is True


def test_bounded_resources_and_ring_on_a_hostpath() -> None:
    c = agent_container()
    limits = c["resources"]["limits"]
    assert {"cpu", "memory", "ephemeral-storage"} <= set(limits)
    assert set(c["resources"]["requests"]) == {"cpu", "memory", "ephemeral-storage"}
    volumes = {v["name"]: v for v in daemonset()["spec"]["template"]["spec"]["volumes"]}
    assert volumes["captures"]["hostPath"] == {"path": "/var/lib/pcapdns",
                                               "type": "DirectoryOrCreate"}
    assert "sizeLimit" in volumes["tmp"]["emptyDir"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"captures": "/captures", "tmp": "/tmp"} and c["workingDir"] == "/captures"
    # A hostPath has no size of its own: the manifest says what bounds the ring.
    text = (CAPTURE / "daemonset.yaml").read_text()
    assert "--size-mb x --files" in text and "--keep-free" in text


def test_containerfile_installs_what_the_agent_runs() -> None:
    text = (CAPTURE / "Containerfile").read_text()
    assert re.search(r"^FROM \S+python:3\.\d+-slim", text, re.M)
    assert "apt-get install -y --no-install-recommends tcpdump" in text
    assert "pip install --no-cache-dir /src" in text
    for src in re.findall(r"^COPY (.+) /src/", text, re.M):
        for name in src.split():
            assert (ROOT / name).exists(), name
    assert 'CMD ["sleep", "infinity"]' in text
    assert agent_container()["command"] == ["sleep", "infinity"]


def test_readme_walks_through_every_step() -> None:
    text = (CAPTURE / "README.md").read_text()
    for step in ("kubectl apply -f capture/daemonset.yaml", "kubectl get pods -n pcapdns",
                 "kubectl exec", "kubectl cp", "pcapdns analyze", "pcapdns report",
                 "kubectl delete -f capture/daemonset.yaml"):
        assert step in text, step


# The DaemonSet's capabilities are enough, and each one is needed. -------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in ("setpriv", "ip", "tcpdump")),
    reason="needs root, setpriv, ip and tcpdump to run the agent with a container's "
           "capabilities")


@pytest.fixture(scope="module")
def pod() -> Iterator[int]:
    """A process in a network namespace of its own: a pod's container, for --pid."""
    ns = f"pcapdns-m-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=15)
    proc = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=15)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"],
                                stdin=subprocess.DEVNULL)
        inode = os.stat(f"/run/netns/{ns}").st_ino
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{proc.pid}/ns/net").st_ino != inode:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        yield proc.pid
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=15)


def run_agent_with(caps: list[str], pid: int, out: Path) -> subprocess.CompletedProcess[str]:
    """The agent as the container runs it: root, only ``caps``, no new privileges."""
    bounding = ",".join(["-all"] + [f"+{c.lower()}" for c in caps])
    return subprocess.run(
        ["setpriv", "--nnp", "--bounding-set", bounding, "--inh-caps", "-all", "--",
         sys.executable, "-I", "-S", str(AGENT), "--pid", str(pid), "--duration", "1",
         "--size-mb", "1", "--files", "2", "--dir", str(out)],
        capture_output=True, text=True, timeout=60)


@needs_root
def test_the_manifest_capabilities_are_enough(pod: int, tmp_path: Path) -> None:
    caps = agent_container()["securityContext"]["capabilities"]["add"]
    cp = run_agent_with(caps, pod, tmp_path / "cap")
    assert cp.returncode == 0, cp.stderr
    assert (tmp_path / "cap" / "dns.pcap0").exists()
    assert "stopped (duration)" in cp.stderr
    meta = json.loads((tmp_path / "cap" / "capture.json").read_text())
    assert meta["target"]["pid"] == pod and meta["tcpdump"]["exit_status"] == 0
    # /proc/PID/root of a process with more capabilities than the agent's: SYS_PTRACE.
    assert meta["resolv_conf"]["path"] == f"/proc/{pod}/root/etc/resolv.conf"
    assert set(meta["interfaces"].values()) == {"lo"}


@needs_root
@pytest.mark.parametrize("dropped", ["NET_RAW", "SETUID", "SETGID", "SYS_ADMIN", "SYS_PTRACE"])
def test_each_capability_is_needed(pod: int, tmp_path: Path, dropped: str) -> None:
    caps = [c for c in agent_container()["securityContext"]["capabilities"]["add"]
            if c != dropped]
    cp = run_agent_with(caps, pod, tmp_path / "cap")
    assert cp.returncode == 2, cp.stderr
    assert cp.stderr.startswith("pcapdns capture: error: ") and cp.stderr.count("\n") == 1
    hint = {"NET_RAW": "CAP_NET_RAW", "SETUID": "CAP_SETUID", "SETGID": "CAP_SETGID",
            "SYS_ADMIN": "CAP_SYS_ADMIN", "SYS_PTRACE": "CAP_SYS_PTRACE"}[dropped]
    assert hint in cp.stderr
    assert not (tmp_path / "cap").exists()


def rbac_documents() -> list[dict]:
    return [d for d in yaml.safe_load_all((CAPTURE / "pods-rbac.yaml").read_text()) if d]


def test_pods_rbac_is_valid_and_read_only() -> None:
    """--save-pods' grant: the ServiceAccount of the agent's namespace may get and list
    pods and services, nothing else."""
    version = kubernetes_validate.latest_version()
    docs = {d["kind"]: d for d in rbac_documents()}
    assert sorted(docs) == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount"]
    for doc in docs.values():
        kubernetes_validate.validate(doc, version, strict=True)
    assert docs["ClusterRole"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list"]}]
    sa = docs["ServiceAccount"]["metadata"]
    assert sa["namespace"] == daemonset()["metadata"]["namespace"]
    binding = docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"],
                                    "namespace": sa["namespace"]}]


def test_pods_rbac_patch_gives_the_daemonset_that_account() -> None:
    """The patch the README applies, applied here: the DaemonSet stays valid and runs as
    the bound ServiceAccount with its token; without the patch it has no token at all."""
    ds = daemonset()
    assert "serviceAccountName" not in ds["spec"]["template"]["spec"]
    patch = yaml.safe_load((CAPTURE / "pods-rbac-patch.yaml").read_text())
    ds["spec"]["template"]["spec"].update(patch["spec"]["template"]["spec"])
    kubernetes_validate.validate(ds, kubernetes_validate.latest_version(), strict=True)
    sa = next(d for d in rbac_documents() if d["kind"] == "ServiceAccount")
    assert ds["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert ds["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    readme = (CAPTURE / "README.md").read_text()
    for step in ("kubectl apply -f capture/daemonset.yaml -f capture/pods-rbac.yaml",
                 "--patch-file capture/pods-rbac-patch.yaml", "--build-arg KUBECTL_VERSION",
                 "--save-pods"):
        assert step in readme, step
    assert "KUBECTL_VERSION" in (CAPTURE / "Containerfile").read_text()
