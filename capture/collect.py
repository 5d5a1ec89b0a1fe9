#!/usr/bin/env python3
"""Collect every node's analysis document from the capture agent's DaemonSet, for
``pcapdns merge``.

    python3 capture/collect.py incident-1 --out ./incident-1
    pcapdns merge ./incident-1/*/analysis.json --html incident-1.html

It uses kubectl alone: ``kubectl get pods`` lists the DaemonSet's pods (by its label) and
the node each runs on, then ``kubectl cp`` copies ``/captures/CAPTURE/analysis.json`` (written
by ``pcapdns capture --analyze``) from each into ``OUT/NODE/analysis.json``, with the node's
report.html when there is one. Every kubectl call has a timeout and a bounded number of
tries. Names are checked before they become paths, and kubectl is run with an argument
list, never through a shell. Standard library only, so it runs wherever kubectl does.

Exit status: 0 every node's document collected; 1 some nodes' documents missing (the
others are collected; each missing one is a line on stderr); 2 bad usage, or the pods
could not be listed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

#: Where the DaemonSet mounts the node's /var/lib/pcapdns (capture/daemonset.yaml).
CAPTURES = "/captures"
DOCUMENT = "analysis.json"
REPORT = "report.html"
#: A Kubernetes object name (RFC 1123 subdomain): safe as one path component, and never
#: "." or "..", an option or a kubectl cp remote spec (no ":" or "/").
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
#: The capture directory's name, as given to ``pcapdns capture --dir /captures/NAME``.
_CAPTURE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")


class CollectError(Exception):
    """The pods could not be listed (exit status 2)."""


@dataclass(frozen=True, slots=True)
class Options:
    capture: str
    out: str
    namespace: str
    selector: str
    container: str
    kubectl: str
    tries: int
    timeout: float
    backoff: float


@dataclass(frozen=True, slots=True)
class AgentPod:
    name: str
    node: str


def _safe_name(value: object) -> bool:
    return (isinstance(value, str) and bool(_K8S_NAME.fullmatch(value))
            and ".." not in value)


def kubectl(o: Options, args: Sequence[str], cwd: str | None = None) -> str:
    """Run kubectl with ``args`` (an argument list, no shell), up to ``o.tries`` times,
    each bounded by ``o.timeout`` seconds; returns its stdout.

    Raises:
        RuntimeError: every try failed; the message is the last failure's.
    """
    argv = [o.kubectl, f"--request-timeout={max(1, int(o.timeout))}s", *args]
    last = "not run"
    for attempt in range(o.tries):
        if attempt:
            time.sleep(o.backoff * attempt)
        try:
            cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=o.timeout, cwd=cwd)
        except subprocess.TimeoutExpired:
            last = f"timed out after {o.timeout:g} s"
            continue
        except OSError as e:
            raise RuntimeError(f"cannot run {o.kubectl}: {e.strerror or e}") from None
        if cp.returncode == 0:
            return cp.stdout
        lines = cp.stderr.strip().splitlines()
        last = f"exit {cp.returncode}: {lines[-1] if lines else 'no message'}"
    raise RuntimeError(f"kubectl {args[0]} failed {o.tries} times; last: {last}")


def agent_pods(o: Options) -> list[AgentPod]:
    """The DaemonSet's running pods, one per node, sorted by node.

    Raises:
        CollectError: kubectl failed, or its answer is not a pod list.
    """
    try:
        out = kubectl(o, ["get", "pods", "-n", o.namespace, "-l", o.selector, "-o", "json"])
        items = json.loads(out)["items"]
    except RuntimeError as e:
        raise CollectError(f"listing the agent pods: {e}") from None
    except (ValueError, KeyError, TypeError):
        raise CollectError("listing the agent pods: kubectl's answer is not a pod list") from None
    pods = []
    for item in items if isinstance(items, list) else []:
        try:
            name, node = item["metadata"]["name"], item["spec"]["nodeName"]
            phase = item.get("status", {}).get("phase")
        except (KeyError, TypeError, AttributeError):
            continue
        if phase != "Running":
            print(f"collect: {name}: {phase}, skipped", file=sys.stderr)
            continue
        if not (_safe_name(name) and _safe_name(node)):
            print(f"collect: a pod or node name that is not a Kubernetes name: {name!r} on "
                  f"{node!r}; skipped", file=sys.stderr)
            continue
        pods.append(AgentPod(name, node))
    return sorted(pods, key=lambda p: p.node)


def collect_one(o: Options, pod: AgentPod) -> str | None:
    """Copy one node's document into OUT/NODE/; returns the problem, or None."""
    folder = os.path.join(o.out, pod.node)
    os.makedirs(folder, exist_ok=True)
    for name, required in ((DOCUMENT, True), (REPORT, False)):
        remote = f"{o.namespace}/{pod.name}:{CAPTURES}/{o.capture}/{name}"
        path = os.path.join(folder, name)
        # A file left by an earlier collection must not pass for this one: some kubectl
        # versions exit 0 from cp when the remote file is missing.
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        try:
            # Run in the node's folder with a bare file name: a ":" in OUT would make
            # kubectl cp read the destination as a pod.
            kubectl(o, ["cp", "-c", o.container, remote, name], cwd=folder)
        except RuntimeError as e:
            if required:
                return f"{pod.node} ({pod.name}): {name}: {e}"
            continue
        if required and not (os.path.isfile(path) and os.path.getsize(path) > 0):
            return f"{pod.node} ({pod.name}): {name}: kubectl cp wrote nothing"
    return None


def parse(argv: Sequence[str]) -> Options:
    p = argparse.ArgumentParser(
        prog="collect.py",
        description="Copy each node's analysis.json (pcapdns capture --analyze) from the "
                    "agent DaemonSet into OUT/NODE/, for pcapdns merge.")
    p.add_argument("capture", help="the capture directory's name under /captures "
                                   "(pcapdns capture --dir /captures/NAME)")
    p.add_argument("--out", default=None, help="where to put OUT/NODE/analysis.json "
                                               "(default: ./CAPTURE)")
    p.add_argument("--namespace", "-n", default="pcapdns", help="default: pcapdns")
    p.add_argument("--selector", "-l", default="app.kubernetes.io/name=pcapdns-agent",
                   help="the agent pods' label (default: app.kubernetes.io/name=pcapdns-agent)")
    p.add_argument("--container", "-c", default="agent", help="default: agent")
    p.add_argument("--kubectl", default="kubectl", help="the kubectl to run (default: kubectl "
                                                        "on PATH)")
    p.add_argument("--tries", type=int, default=3, help="tries per kubectl call (default: 3)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds per kubectl call (default: 60)")
    p.add_argument("--backoff", type=float, default=2.0,
                   help="seconds before the second try, doubling after (default: 2)")
    a = p.parse_args(argv)
    if not _CAPTURE.fullmatch(a.capture) or ".." in a.capture:
        p.error(f"{a.capture!r}: not a capture directory name (letters, digits, . _ -)")
    if not _safe_name(a.namespace):
        p.error(f"{a.namespace!r}: not a namespace name")
    if not 1 <= a.tries <= 10 or not 0 < a.timeout <= 3600 or not 0 <= a.backoff <= 60:
        p.error("--tries 1..10, --timeout up to 3600 s, --backoff 0..60 s")
    return Options(capture=a.capture, out=a.out or a.capture, namespace=a.namespace,
                   selector=a.selector, container=a.container, kubectl=a.kubectl,
                   tries=a.tries, timeout=a.timeout, backoff=a.backoff)


def main(argv: Sequence[str] | None = None) -> int:
    o = parse(sys.argv[1:] if argv is None else argv)
    try:
        pods = agent_pods(o)
    except CollectError as e:
        print(f"collect: {e}", file=sys.stderr)
        return 2
    if not pods:
        print(f"collect: no running agent pod in namespace {o.namespace} with label "
              f"{o.selector}", file=sys.stderr)
        return 2
    missing = 0
    for pod in pods:
        problem = collect_one(o, pod)
        if problem is None:
            print(os.path.join(o.out, pod.node, DOCUMENT))
        else:
            missing += 1
            print(f"collect: {problem}", file=sys.stderr)
    print(f"collect: {len(pods) - missing} of {len(pods)} nodes collected; next: "
          f"pcapdns merge {os.path.join(o.out, '*', DOCUMENT)} --html cluster.html",
          file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
