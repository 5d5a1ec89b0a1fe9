"""capture/collect.py against a fake kubectl on PATH: a script in the test's directory
that answers ``get pods ... -o json`` from a file and ``cp POD:PATH DEST`` from a folder
per pod, and records every argument list it was given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

COLLECT = ROOT / "capture" / "collect.py"

FAKE = r'''#!/usr/bin/env python3
import json, os, shutil, sys
state = os.environ["FAKE_KUBECTL"]
args = [a for a in sys.argv[1:] if not a.startswith("--request-timeout=")]
with open(os.path.join(state, "calls.jsonl"), "a") as fh:
    fh.write(json.dumps({"argv": args, "cwd": os.getcwd()}) + "\n")
fail = os.path.join(state, "fail-" + args[0])
if os.path.exists(fail):
    left = int(open(fail).read())
    if left > 0:
        open(fail, "w").write(str(left - 1))
        sys.exit("error: the server is currently unable to handle the request")
if args[:2] == ["get", "pods"]:
    assert args[-2:] == ["-o", "json"], args
    sys.stdout.write(open(os.path.join(state, "pods.json")).read())
elif args[0] == "cp":
    remote, dest = args[-2], args[-1]
    pod, path = remote.split("/", 1)[1].split(":", 1)
    src = os.path.join(state, "pods", pod) + path
    if not os.path.isfile(src):
        if os.path.exists(os.path.join(state, "cp-silent")):
            sys.exit(0)  # as some kubectl versions do: tar's complaint, and status 0
        sys.exit(f"error: {path}: No such file or directory")
    shutil.copyfile(src, dest)
else:
    sys.exit(f"unexpected: {args}")
'''


def _pod(name: str, node: str, phase: str = "Running") -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"nodeName": node}, "status": {"phase": phase}}


def _cluster(tmp: Path, pods: list[dict[str, object]], files: dict[str, str]) -> dict[str, str]:
    """The fake kubectl's state, and the environment that puts it first on PATH."""
    state = tmp / "state"
    (state / "pods").mkdir(parents=True)
    (state / "pods.json").write_text(json.dumps({"kind": "PodList", "items": pods}))
    for where, text in files.items():
        path = state / "pods" / where
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE)
    (bin_dir / "kubectl").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_KUBECTL": str(state)}


def _run(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(COLLECT), "--backoff", "0", "--timeout", "30",
                           *args], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=120)


def _calls(env: dict[str, str]) -> list[dict[str, object]]:
    path = Path(env["FAKE_KUBECTL"]) / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_collects_each_nodes_document_into_a_folder_named_by_node(tmp_path: Path) -> None:
    env = _cluster(tmp_path, [_pod("pcapdns-agent-x1", "node-a"),
                              _pod("pcapdns-agent-y2", "node-b")], {
        "pcapdns-agent-x1/captures/incident-1/analysis.json": '{"node": "a"}',
        "pcapdns-agent-x1/captures/incident-1/report.html": "<html>a</html>",
        "pcapdns-agent-y2/captures/incident-1/analysis.json": '{"node": "b"}',
    })
    cp = _run(tmp_path, env, "incident-1", "--out", "out")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == ["out/node-a/analysis.json", "out/node-b/analysis.json"]
    assert (tmp_path / "out/node-a/analysis.json").read_text() == '{"node": "a"}'
    assert (tmp_path / "out/node-a/report.html").exists()
    assert (tmp_path / "out/node-b/analysis.json").read_text() == '{"node": "b"}'
    assert "2 of 2 nodes collected; next: pcapdns merge out/*/analysis.json" in cp.stderr
    calls = _calls(env)
    assert calls[0]["argv"] == ["get", "pods", "-n", "pcapdns", "-l",
                                "app.kubernetes.io/name=pcapdns-agent", "-o", "json"]
    assert {"argv": ["cp", "-c", "agent",
                     "pcapdns/pcapdns-agent-x1:/captures/incident-1/analysis.json",
                     "analysis.json"],
            "cwd": str(tmp_path / "out" / "node-a")} in calls


def test_a_failing_call_is_tried_again_a_bounded_number_of_times(tmp_path: Path) -> None:
    env = _cluster(tmp_path, [_pod("agent-1", "node-a")],
                   {"agent-1/captures/c/analysis.json": "{}"})
    state = Path(env["FAKE_KUBECTL"])
    (state / "fail-get").write_text("2")
    cp = _run(tmp_path, env, "c", "--tries", "3")
    assert cp.returncode == 0, cp.stderr
    assert [c["argv"][0] for c in _calls(env)].count("get") == 3

    (state / "fail-get").write_text("5")
    cp = _run(tmp_path, env, "c", "--tries", "2")
    assert cp.returncode == 2, cp.stderr
    assert cp.stderr.strip() == ("collect: listing the agent pods: kubectl get failed 2 "
                                 "times; last: exit 1: error: the server is currently "
                                 "unable to handle the request")


def test_a_node_without_a_document_is_said_and_the_others_collected(tmp_path: Path) -> None:
    env = _cluster(tmp_path, [_pod("agent-1", "node-a"), _pod("agent-2", "node-b"),
                              _pod("agent-3", "node-c", "Pending")],
                   {"agent-2/captures/c/analysis.json": "{}"})
    cp = _run(tmp_path, env, "c", "--tries", "1")
    assert cp.returncode == 1
    assert cp.stdout.splitlines() == ["c/node-b/analysis.json"]
    assert "collect: node-a (agent-1): analysis.json: kubectl cp failed 1 times" in cp.stderr
    assert "collect: agent-3: Pending, skipped" in cp.stderr


def test_names_that_are_not_kubernetes_names_never_become_paths(tmp_path: Path) -> None:
    env = _cluster(tmp_path, [_pod("agent-1", "../../etc"), _pod("agent-2;rm -rf", "node-b"),
                              _pod("agent-3", "node-c")],
                   {"agent-3/captures/c/analysis.json": "{}"})
    cp = _run(tmp_path, env, "c")
    assert cp.returncode == 0, cp.stderr
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["node-c"]
    assert cp.stderr.count("not a Kubernetes name") == 2
    assert not any("etc" in str(c["argv"]) or "rm -rf" in str(c["argv"])
                   for c in _calls(env)[1:])


def test_a_capture_name_that_is_a_path_is_refused(tmp_path: Path) -> None:
    env = _cluster(tmp_path, [], {})
    for bad in ("../x", "a/b", "-rf", ".."):
        cp = _run(tmp_path, env, "--", bad)
        assert cp.returncode == 2 and "not a capture directory name" in cp.stderr, cp.stderr
    assert not (Path(env["FAKE_KUBECTL"]) / "calls.jsonl").exists()


def test_no_agent_pod_is_an_error(tmp_path: Path) -> None:
    env = _cluster(tmp_path, [], {})
    cp = _run(tmp_path, env, "c")
    assert cp.returncode == 2
    assert "no running agent pod in namespace pcapdns" in cp.stderr


def test_a_document_left_by_an_earlier_collection_does_not_count(tmp_path: Path) -> None:
    env = _cluster(tmp_path, [_pod("agent-1", "node-a")], {})
    (Path(env["FAKE_KUBECTL"]) / "cp-silent").write_text("")
    stale = tmp_path / "c" / "node-a" / "analysis.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"from": "yesterday"}')
    cp = _run(tmp_path, env, "c")
    assert cp.returncode == 1
    assert "collect: node-a (agent-1): analysis.json: kubectl cp wrote nothing" in cp.stderr
    assert not stale.exists()
