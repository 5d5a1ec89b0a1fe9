"""``--pods`` on ``analyze``, ``report`` and ``correlate`` through click's CliRunner, on
the committed samples with the hand-written listing of their addresses
(tests/pods/listing.py), and the listing saved with a capture (capture.json
``pods_files``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pcapdns.cli import main
from tests.conftest import SAMPLES
from tests.pods import listing
from tests.pods.listing import CLIENT, COREDNS, SERVICE
from tests.read.test_capture_meta import META

LEGS = str(SAMPLES / "node-legs-faults.pcap")
REPLICAS = str(SAMPLES / "replicas-one-slow.pcap")
DNAT = str(SAMPLES / "dnat-service-any.pcap")
TWO_CLIENT = str(SAMPLES / "two-points-lost.pcap")
TWO_SERVER = str(SAMPLES / "two-points-lost.server.pcap")
WEB = "default/web-7d4b9c8f6-x2x9q"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    return listing.write(tmp_path)


def test_analyze_json_names_every_address(files: dict[str, str]) -> None:
    code, out, err = run("analyze", "--format", "json", "--transactions",
                         "--pods", files["pods.json"], "--pods", files["svc.json"], LEGS)
    assert code == 0, err
    doc = json.loads(out)
    pods = doc["pods"]
    assert pods["source"] == "--pods"
    assert pods["files"] == [files["pods.json"], files["svc.json"]]
    assert (pods["pods"], pods["services"], pods["host_network_pods"]) == (4, 2, 1)
    assert sorted(pods["addresses"]) == [CLIENT, COREDNS[0], SERVICE]
    assert pods["addresses"][SERVICE]["roles"] == ["kube-dns-service"]
    assert pods["addresses"][CLIENT]["workload"] == "default/Deployment/web"
    assert pods["workloads"] == [{
        "workload": "default/Deployment/web",
        "clients": [{"client": CLIENT, "client_pod": WEB}], "clients_total": 1,
        "lookups": 7, "failed": 3, "race_lost": 0, "retransmissions": 0}]
    (server,) = doc["summary"]["servers"]
    assert server["server_pod"] == "kube-system/kube-dns"
    (client,) = doc["summary"]["clients"]
    assert (client["client_pod"], client["client_workload"]) == (
        WEB, "default/Deployment/web")
    kinds = {f["kind"]: (f["client_pod"], f["server_pod"]) for f in doc["findings"]}
    assert kinds == {k: (WEB, "kube-system/kube-dns") for k in (
        "lost_in_node", "reply_not_delivered", "unexpected_source")}
    assert all(t["client_pod"] == WEB for t in doc["transactions"])


def test_without_pods_the_fields_are_null(files: dict[str, str]) -> None:
    code, out, err = run("analyze", "--format", "json", LEGS)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["pods"] is None
    assert doc["summary"]["servers"][0]["server_pod"] is None
    assert all(f["client_pod"] is None and f["server_pod"] is None for f in doc["findings"])


def test_analyze_text_shows_pods_and_groups_clients_by_workload(
        files: dict[str, str]) -> None:
    code, out, err = run("analyze", "--pods", files["pods.json"], "--pods", files["svc.json"],
                         LEGS)
    assert code == 0, err
    assert "pods listing: 4 pods, 2 services, 6 addresses\n" in out
    assert f"servers: {SERVICE} (kube-system/kube-dns) 7 lookups" in out
    assert (f"clients with failures, by workload: default/Deployment/web 3 of 7 lookups "
            f"failed [{CLIENT} {WEB}]\n") in out
    assert f"lost_in_node  {CLIENT} ({WEB}) -> {SERVICE} (kube-system/kube-dns)" in out


def test_wide_text_names_the_replicas(files: dict[str, str]) -> None:
    code, out, err = run("analyze", "--pods", files["pods-wide.txt"],
                         "--pods", files["svc-wide.txt"], REPLICAS)
    assert code == 0, err
    assert (f"{SERVICE} (kube-system/kube-dns) -> {COREDNS[1]} "
            "(kube-system/coredns-5d78c9869d-zx6nb) 24 queries") in out


def test_the_listing_makes_the_service_the_cluster_dns(files: dict[str, str]) -> None:
    from pcapdns import pods
    from pcapdns.analysis import analyze
    from pcapdns.detect import stale_port

    directory = pods.load([files["svc.json"]])
    found = stale_port.cluster_dns_servers(None, set(), directory)
    assert found == {SERVICE: "kube-system/kube-dns is the kube-dns Service in the pods "
                              "listing"}
    assert analyze([DNAT], pods=directory).pods is directory


def test_report_shows_pods_and_json(files: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    doc = tmp_path / "r.json"
    code, _, err = run("report", "--pods", files["pods.json"], "--pods", files["svc.json"],
                       "-o", str(out), "--json", str(doc), LEGS)
    assert code == 0, err
    page = out.read_text()
    assert f'<span class="pod">{WEB}</span>' in page
    assert "Clients by workload" in page and "default/Deployment/web" in page
    assert 'id="pods-line"' in page
    assert json.loads(doc.read_text())["pods"]["source"] == "--pods"


def test_correlate_names_the_lookups(files: dict[str, str]) -> None:
    code, out, err = run("correlate", "--client", TWO_CLIENT, "--server", TWO_SERVER,
                         "--pods", files["pods.json"], "--pods", files["svc.json"],
                         "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["pods"]["pods"] == 4 and CLIENT in doc["pods"]["addresses"]
    assert {lk["client_pod"] for lk in doc["lookups"]} == {WEB}
    assert {lk["server_pod"] for lk in doc["lookups"]} == {"kube-system/kube-dns"}
    code, out, err = run("correlate", "--client", TWO_CLIENT, "--server", TWO_SERVER,
                         "--pods", files["pods.json"], "--pods", files["svc.json"])
    assert code == 0, err
    assert f"from {CLIENT} ({WEB}) to {SERVICE} (kube-system/kube-dns)" in out
    code, out, _ = run("correlate", "--client", TWO_CLIENT, "--server", TWO_SERVER,
                       "--format", "json")
    assert code == 0 and json.loads(out)["pods"] is None


def test_correlate_page_names_the_lookups_and_escapes(tmp_path: Path) -> None:
    from tests.report.hostile import POD_PAYLOADS

    page = tmp_path / "c.html"
    files = listing.write(tmp_path)
    code, _, err = run("correlate", "--client", TWO_CLIENT, "--server", TWO_SERVER,
                       "--pods", files["pods.json"], "--pods", files["svc.json"],
                       "--html", str(page), "-o", str(tmp_path / "c.txt"))
    assert code == 0, err
    text = page.read_text()
    assert f'<span class="pod">{WEB}</span>' in text
    assert '<span class="pod">kube-system/kube-dns</span>' in text
    hostile = listing.pods_json()
    hostile["items"][0]["metadata"]["name"] = POD_PAYLOADS[0]
    Path(files["pods.json"]).write_text(json.dumps(hostile))
    code, _, err = run("correlate", "--client", TWO_CLIENT, "--server", TWO_SERVER,
                       "--pods", files["pods.json"], "--html", str(page),
                       "-o", str(tmp_path / "c.txt"))
    assert code == 0, err
    text = page.read_text()
    assert POD_PAYLOADS[0] not in text
    assert "&lt;script&gt;window.__pwned=6&lt;/script&gt;" in text


@pytest.mark.parametrize("command", ["analyze", "report", "correlate"])
def test_an_unusable_listing_is_one_line_and_status_2(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "pods.json"
    bad.write_text('{"kind": "List", "items": [')
    args = {"analyze": ["analyze", LEGS], "report": ["report", LEGS, "-o",
                                                     str(tmp_path / "r.html")],
            "correlate": ["correlate", "--client", TWO_CLIENT, "--server", TWO_SERVER]}
    code, out, err = run(*args[command], "--pods", str(bad))
    assert code == 2, (out, err)
    assert err.startswith(f"pcapdns: {bad}: not valid JSON") and err.count("\n") == 1, err
    assert not (tmp_path / "r.html").exists()
    code, _, err = run(*args[command], "--pods", str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json: cannot read" in err, err


@pytest.mark.parametrize("command", ["analyze", "report", "correlate"])
def test_an_output_is_never_the_listing(files: dict[str, str], command: str) -> None:
    listing_file = files["pods.json"]
    before = Path(listing_file).read_text()
    args = {"analyze": ["analyze", LEGS, "-o", listing_file],
            "report": ["report", LEGS, "-o", listing_file],
            "correlate": ["correlate", "--client", TWO_CLIENT, "--server", TWO_SERVER,
                          "-o", listing_file]}
    code, _, err = run(*args[command], "--pods", listing_file)
    assert code == 2 and "is one of the inputs; refusing to overwrite" in err, err
    assert Path(listing_file).read_text() == before


def saved_capture(tmp_path: Path, names: list[str]) -> Path:
    """A copy of the legs sample in a capture directory whose capture.json names the
    listings saved beside it, as ``pcapdns capture --save-pods`` leaves it."""
    cap = tmp_path / "cap"
    cap.mkdir()
    shutil.copy(LEGS, cap / "dns.pcap0")
    listing.write(cap)
    meta = dict(META, pods_files=names, pods_errors=[], resolv_conf=None, conntrack=None)
    (cap / "capture.json").write_text(json.dumps(meta))
    return cap


def test_analyze_uses_the_listing_saved_with_the_capture(tmp_path: Path) -> None:
    cap = saved_capture(tmp_path, ["pods.json", "svc.json"])
    code, out, err = run("analyze", "--format", "json", str(cap))
    assert code == 0, err
    assert "pod names from the listing saved with the capture" in err
    doc = json.loads(out)
    assert doc["pods"]["source"] == str(cap / "capture.json")
    assert doc["pods"]["files"] == [str(cap / "pods.json"), str(cap / "svc.json")]
    assert doc["summary"]["clients"][0]["client_pod"] == WEB
    code, out, err = run("analyze", str(cap))
    assert code == 0 and "(saved with the capture, named in" in out, out


def test_pods_given_win_over_the_saved_listing(tmp_path: Path) -> None:
    cap = saved_capture(tmp_path, ["pods.json"])
    other = listing.write(tmp_path)
    code, out, err = run("analyze", "--format", "json", "--pods", other["svc.json"], str(cap))
    assert code == 0, err
    assert "saved with the capture" not in err
    doc = json.loads(out)
    assert doc["pods"]["source"] == "--pods" and doc["pods"]["pods"] == 0


def test_a_damaged_saved_listing_is_a_warning(tmp_path: Path) -> None:
    cap = saved_capture(tmp_path, ["pods.json"])
    (cap / "pods.json").write_text("{")
    code, out, err = run("analyze", "--format", "json", str(cap))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["pods"] is None
    assert any("pods listing named in" in w and "not valid JSON" in w
               for w in doc["warnings"]), doc["warnings"]


def test_capture_json_names_only_files_beside_it(tmp_path: Path) -> None:
    cap = saved_capture(tmp_path, ["../../etc/passwd"])
    code, out, err = run("analyze", "--format", "json", str(cap))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["capture"] is None and doc["pods"] is None
    assert any("is not a file name" in w for w in doc["warnings"]), doc["warnings"]


def test_a_tunnels_outer_addresses_are_named_as_nodes(tmp_path: Path) -> None:
    # Each pod's hostIP names its node: the overlay's outer addresses become the nodes.
    path = tmp_path / "pods.json"
    path.write_text(json.dumps({"kind": "List", "items": [
        listing.pod("default", "web", "10.250.60.1", "node-a", host_ip="10.250.50.1"),
        listing.pod("default", "dns", "10.250.60.2", "node-b", host_ip="10.250.50.2")]}))
    code, out, err = run("analyze", "--format", "json", "--transactions", "--pods", str(path),
                         str(SAMPLES / "overlay-vxlan-underlay.pcap"))
    assert code == 0, err
    tunnels = {(t["tunnel"]["outer_src_pod"], t["tunnel"]["outer_dst_pod"])
               for t in json.loads(out)["transactions"]}
    assert tunnels == {("node node-a", "node node-b")}, tunnels
