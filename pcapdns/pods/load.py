"""Read kubectl's listings of pods and Services into a ``PodDirectory``.

Forms read (each file is one of them, told apart by its first bytes and header):

* JSON: ``kubectl get pods -A -o json``, ``kubectl get svc -A -o json``, a ``List`` of
  both, or one Pod or Service object;
* ``-o wide`` text: ``kubectl get pods -A -o wide`` (columns NAMESPACE, NAME, STATUS, IP,
  NODE; a LABELS column with ``--show-labels``) and ``kubectl get svc -A -o wide``
  (NAMESPACE, NAME, CLUSTER-IP, SELECTOR; LABELS with ``--show-labels``).

Text from the file is untrusted: names are cut to 253 characters and every character
that is not printable is written as an escape, so that no terminal, JSON or HTML output
carries control characters from it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Mapping, Sequence

from pcapdns.errors import InputError
from pcapdns.pods.directory import (
    MAX_ENTRIES,
    Candidate,
    Endpoint,
    PodDirectory,
    Role,
    address_key,
    build,
)

#: Largest file read: a ``-o json`` listing is about 15 KB a pod, so 1 GiB is some
#: 70,000 pods. JSON is parsed whole, so this bounds the memory of a load.
MAX_FILE_BYTES = 1 << 30
#: Longest name kept (a DNS subdomain name, which pod and namespace names are).
MAX_NAME = 253

#: Phases of a pod that no longer holds its IP (the IP may have gone to a new pod).
_FINISHED = frozenset({"Succeeded", "Failed", "Completed", "Error", "OOMKilled",
                       "ContainerStatusUnknown", "Evicted"})
#: The alphabet Kubernetes' rand.SafeEncodeString draws name suffixes from (no vowels,
#: no 0, 1 or 3, so that no word is spelt): a ReplicaSet's pod-template-hash.
_HASH = re.compile(r"^(?P<base>.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}$")
#: A pod name made by a controller: ``<prefix>-<5 characters of that alphabet>``.
_POD_SUFFIX = re.compile(r"^.+-[bcdfghjklmnpqrstvwxz2456789]{5}$")
#: A CronJob's Job: ``<cronjob>-<scheduled time in minutes since the epoch>``.
_CRON_JOB = re.compile(r"^(?P<base>.+)-\d{8,10}$")


def load(paths: Sequence[str], max_entries: int = MAX_ENTRIES) -> PodDirectory:
    """Read every file of ``paths`` into one directory (later files add to earlier ones).

    Raises:
        InputError: a file cannot be read, or is none of the forms above.
    """
    candidates: list[Candidate] = []
    pods = services = 0
    for path in paths:
        text = _read(path)
        try:
            found = list(_parse(text, path))
        except RecursionError:
            raise InputError(path, "not valid JSON (nested too deeply)") from None
        candidates.extend(c for c, _ in found)
        pods += sum(1 for _, kind in found if kind == "pod")
        services += sum(1 for _, kind in found if kind == "service")
    return build(paths, candidates, pods, services, max_entries)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(path, f"larger than {MAX_FILE_BYTES:,} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, f"not UTF-8 text (byte {e.start})") from None


def _parse(text: str, path: str) -> Iterator[tuple[Candidate, str]]:
    """(candidate, "pod" or "service") for each address claimed, and one with an empty
    address for a pod or Service that has none (``_counted_only``)."""
    body = text.lstrip("\ufeff \t\r\n")
    if not body:
        raise InputError(path, "empty: expected kubectl get pods or get svc output")
    if body[0] in "{[":
        try:
            data = json.loads(body)
        except ValueError as e:
            raise InputError(path, f"not valid JSON ({e})") from None
        yield from _json_items(data, path)
        return
    yield from _wide(body, path)


# JSON -----------------------------------------------------------------------------------


def _json_items(data: object, path: str) -> Iterator[tuple[Candidate, str]]:
    if isinstance(data, list):
        items = data
    elif isinstance(data, dict) and isinstance(data.get("items"), list):
        items = data["items"]
    elif isinstance(data, dict) and data.get("kind") in ("Pod", "Service"):
        items = [data]
    else:
        raise InputError(path, "not a kubectl listing: no items of kind Pod or Service")
    default = _kind_of_list(data)
    for item in items:
        if not isinstance(item, dict):
            raise InputError(path, "an item of the listing is not an object")
        kind = item.get("kind", default)
        if kind == "Pod":
            yield from _pod(item, path)
        elif kind == "Service":
            yield from _service(item, path)


def _kind_of_list(data: object) -> str | None:
    """``kubectl get -o json`` writes kind on every item; an API ``PodList`` only on the
    list."""
    if isinstance(data, dict) and isinstance(data.get("kind"), str):
        return {"PodList": "Pod", "ServiceList": "Service"}.get(data["kind"])
    return None


def _pod(item: Mapping[str, object], path: str) -> Iterator[tuple[Candidate, str]]:
    meta = _obj(item.get("metadata"), path, "metadata")
    spec = _obj(item.get("spec", {}), path, "spec")
    status = _obj(item.get("status", {}), path, "status")
    namespace = _name(meta.get("namespace", ""))
    name = _name(meta.get("name", ""))
    labels = _labels(meta.get("labels"))
    node = _name(spec.get("nodeName")) or None
    host_network = spec.get("hostNetwork") is True
    kind, workload = _workload(meta, labels, name)
    phase = status.get("phase")
    active = phase not in _FINISHED
    addresses = [status.get("podIP")]
    ips = status.get("podIPs")
    if isinstance(ips, list):
        addresses += [x.get("ip") for x in ips if isinstance(x, dict)]
    if host_network:
        addresses.append(status.get("hostIP"))
    seen = False
    for address in dict.fromkeys(_address(a) for a in addresses):
        if address is None:
            continue
        seen = True
        yield Candidate(Endpoint(address, "pod", namespace, name, kind, workload, node,
                                 _pod_roles(labels)),
                        active=active, host_network=host_network), "pod"
    if not seen:
        yield from _counted_only("pod")
    host_ip = _address(status.get("hostIP"))
    if node and host_ip and not host_network:
        # Every pod says its node's address: the outer address of an overlay tunnel, or a
        # node's own traffic (kubelet, NodeLocal DNSCache asking upstream), gets its name.
        yield Candidate(Endpoint(host_ip, "node", "", node, "Node", node, node),
                        node_address=True), "node"


def _service(item: Mapping[str, object], path: str) -> Iterator[tuple[Candidate, str]]:
    meta = _obj(item.get("metadata"), path, "metadata")
    spec = _obj(item.get("spec", {}), path, "spec")
    namespace = _name(meta.get("namespace", ""))
    name = _name(meta.get("name", ""))
    labels = dict(_labels(meta.get("labels")))
    selector = _labels(spec.get("selector"))
    roles = _service_roles(labels, selector)
    addresses = [spec.get("clusterIP")]
    ips = spec.get("clusterIPs")
    if isinstance(ips, list):
        addresses += ips
    seen = False
    for address in dict.fromkeys(_address(a) for a in addresses):
        if address is None:
            continue  # "None": a headless Service, whose names point at the pods
        seen = True
        yield Candidate(Endpoint(address, "service", namespace, name, "Service", name,
                                 None, roles)), "service"
    if not seen:
        yield from _counted_only("service")


def _counted_only(kind: str) -> Iterator[tuple[Candidate, str]]:
    """A pod or Service without an address (not scheduled yet, headless): the counts come
    from the yielded pairs, so it is counted through one with an empty address, which the
    directory skips."""
    yield Candidate(Endpoint("", "pod", "", "", "Pod", "", None)), kind


def _workload(meta: Mapping[str, object], labels: Mapping[str, str],
              name: str) -> tuple[str, str]:
    """(kind, name) of the pod's workload from its controller's owner reference: a
    ReplicaSet is its Deployment's when its name is the Deployment's with the
    pod-template-hash after it; a Job is its CronJob's when its name ends with the
    scheduled minute."""
    owners = meta.get("ownerReferences")
    refs = [o for o in owners if isinstance(o, dict)] if isinstance(owners, list) else []
    ref = next((o for o in refs if o.get("controller") is True), refs[0] if refs else None)
    if ref is None:
        return "Pod", name
    kind, owner = _name(ref.get("kind")), _name(ref.get("name"))
    if not kind or not owner:
        return "Pod", name
    if kind == "Node":
        return "Pod", name  # a static pod's mirror: the kubelet runs it from a file
    if kind == "ReplicaSet":
        template_hash = labels.get("pod-template-hash")
        if template_hash and owner.endswith("-" + template_hash):
            return "Deployment", owner[: -len(template_hash) - 1]
        m = _HASH.match(owner)
        if m is not None:
            return "Deployment", m["base"]
    if kind == "Job":
        m = _CRON_JOB.match(owner)
        if m is not None:
            return "CronJob", m["base"]
    return kind, owner


def _pod_roles(labels: Mapping[str, str]) -> tuple[Role, ...]:
    app = labels.get("k8s-app")
    if app == "kube-dns":
        return ("coredns",)
    if app == "node-local-dns":
        return ("node-local-dns",)
    return ()


def _service_roles(labels: Mapping[str, str],
                   selector: Mapping[str, str]) -> tuple[Role, ...]:
    """The kube-dns Service carries the label, and selects the CoreDNS pods by it."""
    apps = {labels.get("k8s-app"), selector.get("k8s-app")}
    if "kube-dns" in apps:
        return ("kube-dns-service",)
    if "node-local-dns" in apps:
        return ("node-local-dns",)
    return ()


# -o wide text -----------------------------------------------------------------------------


def _wide(text: str, path: str) -> Iterator[tuple[Candidate, str]]:
    """kubectl's table: columns at least three spaces apart (tabwriter's padding), and a
    header whose words may hold one space ("NOMINATED NODE"). Values are cut at the
    header's column starts, so that RESTARTS' "3 (2m ago)" stays one value."""
    lines = text.splitlines()
    header = lines[0]
    columns = [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = [c for _, c in columns]
    if "CLUSTER-IP" in names and "NAME" in names:
        kind = "service"
    elif "IP" in names and "NAME" in names:
        kind = "pod"
    else:
        raise InputError(path, "not kubectl get pods or get svc output (JSON, or -o wide "
                               "text with a header naming NAME and IP or CLUSTER-IP)")
    starts = [s for s, _ in columns]
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = {}
        for i, (start, col) in enumerate(columns):
            end = starts[i + 1] if i + 1 < len(starts) else len(line)
            cells[col] = line[start:end].strip() if i + 1 < len(starts) else line[start:].strip()
        if not cells.get("NAME"):
            raise InputError(path, f"line {n}: no NAME where the header has it")
        yield from _wide_row(kind, cells)


def _wide_row(kind: str, cells: Mapping[str, str]) -> Iterator[tuple[Candidate, str]]:
    namespace = _name(cells.get("NAMESPACE", ""))
    name = _name(cells["NAME"])
    labels = _label_text(cells.get("LABELS", ""))
    if kind == "service":
        selector = _label_text(cells.get("SELECTOR", ""))
        roles = _service_roles(labels, selector)
        addresses = cells.get("CLUSTER-IP", "").split(",")
        found = [a for a in (_address(x) for x in addresses) if a is not None]
        for service_ip in found:
            yield Candidate(Endpoint(service_ip, "service", namespace, name, "Service",
                                     name, None, roles)), "service"
        if not found:
            yield from _counted_only("service")
        return
    address = _address(cells.get("IP", ""))
    node = _name(cells.get("NODE", "")) or None
    if node == "<none>":
        node = None
    if address is None:  # <none>: not scheduled yet, or a pod without an IP
        yield from _counted_only("pod")
        return
    # The text has no owner references: the workload is the bare pod, unless the labels
    # (--show-labels) name its Deployment's template hash.
    workload = ("Pod", name)
    template_hash = labels.get("pod-template-hash")
    guess = _HASH.match(name.rsplit("-", 1)[0]) if _POD_SUFFIX.match(name) else None
    if template_hash and f"-{template_hash}-" in name:
        workload = ("Deployment", name[: name.rindex(f"-{template_hash}-")])
    elif guess is not None:
        # <deployment>-<pod-template-hash>-<5 characters>: how a Deployment's pods are named.
        workload = ("Deployment", guess["base"])
    status = cells.get("STATUS", "")
    yield Candidate(Endpoint(address, "pod", namespace, name, workload[0], workload[1],
                             node, _pod_roles(labels)),
                    active=status not in _FINISHED), "pod"


def _label_text(text: str) -> dict[str, str]:
    """``k8s-app=kube-dns,pod-template-hash=5d78c9869d`` -> a dict; ``<none>`` -> {}."""
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


# fields -----------------------------------------------------------------------------------


def _obj(value: object, path: str, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise InputError(path, f"an item's {where} is not an object")
    return value


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _name(value: object) -> str:
    """A name from the file, safe to print: at most ``MAX_NAME`` characters, each
    character that is not printable (control characters, lone surrogates, line and
    paragraph separators) written as ``\\xHH`` or ``\\uHHHH``."""
    if not isinstance(value, str):
        return ""
    text = value[:MAX_NAME]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else
                   (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
                   for c in text)


def _address(value: object) -> str | None:
    """An IP address in the analysis's spelling, or None (no address, "None", garbage)."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    return address_key(value.strip())
