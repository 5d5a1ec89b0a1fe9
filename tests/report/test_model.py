"""What the report says: verdict, finding groups and evidence, ticket summary, overview."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pcapdns.analysis import analyze
from pcapdns.report.knowledge import ADVICE
from pcapdns.report.model import CaptureContext, build
from tests.conftest import SAMPLES
from tests.craft import query, response, write_eth


def _report(path: Path, **kw: object):
    return build(analyze([str(path)]), command="pcapdns report x", **kw)  # type: ignore[arg-type]


def test_every_finding_kind_has_advice() -> None:
    from pcapdns.detect.base import FindingKind

    kinds = set(FindingKind.__args__)  # type: ignore[attr-defined]
    assert kinds == set(ADVICE)
    for advice in ADVICE.values():
        assert advice.title and advice.meaning and advice.causes and advice.fixes


def test_race_verdict_names_the_query_the_client_and_the_wait() -> None:
    r = _report(SAMPLES / "aaaa-same-port-race.pcap")
    assert not r.clean
    assert r.verdict[0] == "None of the 7 lookups failed, but 1 problem was found."
    assert r.verdict[1] == (
        "The main one: 1 lookup hit the same-port A/AAAA race. For example, the AAAA query "
        "for api.example.test from 10.250.0.10:43318 to 10.250.0.53 was never answered and "
        "the client waited 5.008 s before retrying.")
    # One problem per cause: the retransmission and the slow answer are the race's evidence.
    kinds = [g.kind for g in r.groups]
    assert kinds == ["aaaa_race_lost"]
    assert r.groups[0].explains == ("retransmitted queries", "slow answers")
    race = r.groups[0]
    # Both queries of the socket: the A (5) answered (7), the AAAA (6) lost, its retry
    # (10) answered (11); the frames of the finding, each once.
    assert [e.frame for e in race.rows] == [5, 6, 7, 10, 11]
    assert [e.role for e in race.rows] == ["query", "query", "response", "retry", "response"]
    assert [e.qtype for e in race.rows] == ["A", "AAAA", "A", "AAAA", "AAAA"]
    assert race.rows[0].note == "the A query sent with frame 6 from the same socket"
    lost = race.rows[1]
    assert lost.rcode == "no answer"
    assert lost.client == "10.250.0.10:43318"
    assert lost.id == "0xd073"
    assert "sent with frame 5 from the same socket (answered in frame 7)" in lost.note
    assert race.rows[4].latency == "5.012 s"
    assert race.occurrences_not_shown == 0
    assert race.dates == "2026-11-25"


def test_clean_capture_says_so() -> None:
    r = _report(SAMPLES / "clean-glibc-getent.pcap")
    assert r.clean
    assert r.verdict[0].startswith("No DNS failures: all ")
    assert "were answered (99% within" in r.verdict[0]


def test_timeouts_lead_and_the_ticket_lists_external_failures(tmp_path: Path) -> None:
    cap = write_eth(tmp_path / "t.pcap", [
        (100.0, query("api.partner.example", id=1)),
        (105.0, query("api.partner.example", id=1)),
        (106.0, query("db.prod.svc.cluster.local", id=2, sport=40002)),
        (106.001, response("db.prod.svc.cluster.local", id=2, dport=40002, rcode=2)),
        (107.0, query("pay.example.org", id=3, sport=40003)),
        (107.002, response("pay.example.org", id=3, dport=40003, rcode=5)),
        (130.0, query("end.example", id=4, sport=40004)),
    ])
    r = _report(cap, context=CaptureContext(node="node-a", search=("prod.svc.cluster.local",)))
    assert r.verdict[0] == ("1 of 4 lookups failed. 1 more was still unanswered when the "
                            "capture ended (undecided).")
    assert r.verdict[1] == ("3 problems found; the main one: 1 lookup got no answer at all, "
                            "e.g. api.partner.example A from 10.0.3.7 to 10.96.0.10, 2 tries "
                            "over 5.000 s.")
    assert r.groups[0].kind == "timeout"
    lines = r.ticket.splitlines()
    assert "on node node-a" in lines[1]
    table = lines[4:]
    assert table[0].split() == ["name", "type", "result", "first", "seen", "(UTC)", "times",
                                "server"]
    assert table[1].split() == ["api.partner.example", "A", "no", "answer",
                                "1970-01-01T00:01:40Z", "1", "10.96.0.10"]
    assert table[2].split() == ["pay.example.org", "A", "REFUSED", "1970-01-01T00:01:47Z",
                                "1", "10.96.0.10"]
    # In-cluster names are not the upstream provider's business.
    assert "db.prod.svc.cluster.local" not in r.ticket
    assert r.ticket_lines == 2


def test_evidence_is_capped_with_a_count_of_the_rest(tmp_path: Path) -> None:
    packets = []
    for i in range(30):
        packets.append((100.0 + i, query(f"n{i}.example", id=i, sport=41000 + i)))
        packets.append((100.001 + i, response(f"n{i}.example", id=i, dport=41000 + i,
                                             rcode=2)))
    cap = write_eth(tmp_path / "s.pcap", packets)
    g = _report(cap).groups[0]
    assert g.kind == "servfail" and g.occurrences == 30
    assert len(g.rows) == 16  # 8 occurrences of a query and a response
    assert g.occurrences_not_shown == 22
    assert g.names_total == 30 and len(g.names) == 5


def test_overview_has_file_hash_and_counts() -> None:
    import hashlib

    path = SAMPLES / "timeout-dropped.pcap"
    r = _report(path)
    (f,) = r.inputs
    assert f.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert f.size == path.stat().st_size
    assert not f.truncated
    labels = dict(r.overview)
    assert labels["failed lookups"] == "2"  # A and AAAA of gone.example.test
    assert labels["still unanswered at the capture's end (undecided)"] == "0"
    assert r.version and r.command == "pcapdns report x"


@pytest.mark.parametrize(("typed", "shown"), [
    ("pcapdns report /home/alice/cap.pcap -o /home/alice/out/race.html",
     "pcapdns report /home/alice/cap.pcap -o race.html"),
    ("pcapdns report cap.pcap --output=/home/alice/r.html --json /home/alice/r.json",
     "pcapdns report cap.pcap --output=r.html --json /home/alice/r.json"),
    ("pcapdns analyze cap.pcap -o/home/alice/a.json --html '/home/alice/my dir/r.html'",
     "pcapdns analyze cap.pcap -oa.json --html r.html"),
    ("pcapdns report -o r.html -- -o", "pcapdns report -o r.html -- -o"),
    ("pcapdns report 'unbalanced -o /home/alice/x", "pcapdns"),
])
def test_command_line_shows_output_files_without_their_directory(typed: str,
                                                                  shown: str) -> None:
    r = build(analyze([str(SAMPLES / "clean-glibc-getent.pcap")]), command=typed)
    assert r.command == shown


def test_no_dns_on_the_ports_is_neutral_and_points_to_port(tmp_path: Path) -> None:
    cap = write_eth(tmp_path / "mdns.pcap", [(100.0, query("printer.local", dport=5353))])
    r = _report(cap)
    assert r.neutral and r.verdict == ("No DNS found on port 53 (1 packet read).",
                                       "If DNS runs on another port, use --port N.")
    assert not _report(SAMPLES / "clean-glibc-getent.pcap").neutral


def test_capture_json_names_interfaces_node_and_caveats(tmp_path: Path) -> None:
    import copy
    import json

    from tests.craft import write_sll2
    from tests.read.test_capture_meta import META

    ring = tmp_path / "pcapdns-capture-x"
    ring.mkdir()
    write_sll2(ring / "dns.pcap0", [
        (100.0, 3, query("api.partner.example", id=7)),
        (105.0, 3, query("api.partner.example", id=7)),
        (120.0, 3, query("end.example", id=8, sport=40001)),
    ])
    meta = copy.deepcopy(META)
    meta["interfaces"] = {"1": "lo", "3": "eth0"}
    (ring / "capture.json").write_text(json.dumps(meta))
    a = analyze([str(ring)])
    r = build(a, command="c")
    assert r.title == "DNS report: pcapdns-capture-x"
    assert r.context.node == "node-a"
    assert r.context.target == "network namespace of pid 4242"
    assert r.context.search == ("default.svc.cluster.local", "svc.cluster.local")
    timeout = next(g for g in r.groups if g.kind == "timeout")
    assert {e.interface for e in timeout.rows} == {"eth0"}
    assert "on node node-a" in r.ticket
    notes = " ".join(r.context.notes)
    assert "7 packets dropped by the kernel of 1,540 received" in notes
    assert "may be inflated" in notes
    assert "conntrack insert_failed rose by 5 on node node-a" in notes
    # The JSON document carries the same facts.
    from pcapdns.output.document import build as document

    cap = document(a)["capture"]
    assert cap["node"] == "node-a" and cap["kernel_dropped"] == 7
    assert cap["conntrack_insert_failed_rise"] == 5 and cap["conntrack_drop_rise"] == 7
    assert cap["interface_names"] == {"1": "lo", "3": "eth0"}
    assert cap["resolv_conf"]["ndots"] == 5


def test_node_legs_evidence_shows_every_copy_of_the_packet() -> None:
    r = _report(SAMPLES / "node-legs-faults.pcap")
    groups = {g.kind: g for g in r.groups}
    assert set(groups) == {"lost_in_node", "reply_not_delivered", "unexpected_source"}
    # The lost query: its one copy, no answer.
    assert [(e.frame, e.role, e.rcode) for e in groups["lost_in_node"].rows] == [
        (9, "query", "no answer")]
    # The query on both sides of the DNAT, and the answer that never came back un-NAT'd.
    rows = groups["reply_not_delivered"].rows
    assert [(e.frame, e.role) for e in rows] == [
        (10, "query"), (11, "query copy"), (12, "response")]
    assert rows[1].server == "10.250.2.53:53" and "after the DNAT" in rows[1].note
    assert "never reached the pod's side" in rows[2].note
    # The answer from the server's other address, on both sides of the node.
    rows = groups["unexpected_source"].rows
    assert [(e.frame, e.role) for e in rows] == [
        (13, "query"), (14, "query copy"), (15, "response"), (16, "response copy")]
    assert "not the address asked (10.250.96.10)" in rows[2].note
    assert rows[3].server == "10.250.3.53:53"


def test_upstream_section_and_ticket_for_the_upstream_provider() -> None:
    r = _report(SAMPLES / "forwarder-upstream-leg.pcap")
    (row,) = r.upstream
    assert (row.address, row.queries, row.timeouts) == ("10.250.1.1", 9, 1)
    assert row.errors == "REFUSED 1, SERVFAIL 1"
    by_name = {c.qname: c for c in r.causes}
    assert by_name["lost.example.test"].cause == "upstream_timeout"
    assert by_name["lost.example.test"].outcome == "no answer"
    assert by_name["www.blocked.test"].cause == "upstream_error"
    assert "REFUSED" in by_name["www.blocked.test"].cause_text
    assert by_name["slow.example.test"].cause == "upstream_slow"
    assert by_name["stuck.example.test"].cause == "local"
    assert r.causes_total == 5
    # The ticket for the upstream provider: name, code, time to the second, the DNS
    # server's node (its address: no capture.json here).
    lines = r.ticket.splitlines()
    i = lines.index("Failed upstream queries of the forwarder (DNS server) on the node:")
    assert lines[i + 1].split() == ["name", "type", "result", "first", "seen", "(UTC)",
                                    "times", "upstream", "DNS", "server", "node"]
    rows = {line.split()[0]: line.split() for line in lines[i + 2:]}
    assert rows["lost.example.test"][2:4] == ["no", "answer"]
    assert rows["www.blocked.test"][2] == "REFUSED"
    assert rows["db.broken.example.test"][2] == "SERVFAIL"
    assert rows["www.blocked.test"][-2:] == ["10.250.1.1", "10.250.0.53"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows["www.blocked.test"][3])


def test_no_upstream_section_without_a_forwarder() -> None:
    r = _report(SAMPLES / "timeout-dropped.pcap")
    assert r.upstream == () and r.causes == () and r.causes_total == 0
    assert "Failed upstream queries" not in r.ticket
