"""The end-of-capture policy (pcapdns.policy): the core states the facts of a lookup still
in flight when the capture ended, Python decides what they mean, and every count, table
and finding follows that one decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapdns import policy
from pcapdns.analysis import analyze
from pcapdns.config import AnalysisConfig
from tests.craft import CLIENT, analyze_packets, findings_of, query, response, write_eth

#: A and AAAA from one socket; the A is answered, the AAAA never; the last packet, 2 s
#: after them, ends the capture.
RACE_AT_END = [
    (1.0, query("api.example", "A", id=1)),
    (1.00002, query("api.example", "AAAA", id=2)),
    (1.001, response("api.example", "A", id=1)),
    (3.0, query("other.example", id=3, sport=41000)),
    (3.0005, response("other.example", id=3, dport=41000)),
]


def test_the_timeout_decides_a_race_cut_by_the_end_of_the_capture(tmp_path: Path) -> None:
    # 2 s before the end: undecided under the default 5 s wait, lost under a 1 s one.
    waited = analyze_packets(tmp_path / "a.pcap", RACE_AT_END)
    assert (waited.match.a_aaaa_same_port_concurrent, waited.match.a_aaaa_race_lost) == (1, 0)
    assert waited.match.lookups_open_at_end == 1 and waited.match.lookups_failed == 0
    assert findings_of(waited, "aaaa_race_lost") == [] and findings_of(waited, "timeout") == []
    assert waited.breakdown.clients[CLIENT].race_lost == 0, waited.breakdown.clients

    short = analyze_packets(tmp_path / "b.pcap", RACE_AT_END, timeout=1.0)
    assert (short.match.a_aaaa_same_port_concurrent, short.match.a_aaaa_race_lost) == (1, 1)
    assert short.match.lookups_open_at_end == 0 and short.match.lookups_failed == 1
    assert len(findings_of(short, "aaaa_race_lost")) == 1
    assert len(findings_of(short, "timeout")) == 1
    client = short.breakdown.clients[CLIENT]
    assert (client.race_lost, client.failed) == (1, 1), client
    # The records handed out carry the same decisions as the counts.
    races = [t for lk in short.lookups for t in lk.attempts if t.pair_race_lost]
    assert len(races) == 1 and not races[0].pair_lost_retried
    (aaaa,) = [lk for lk in short.lookups if lk.first.qtype == 28]
    assert aaaa.end == 3.0005 and not aaaa.open_at_end and aaaa.failed


def test_the_core_counts_what_the_python_policy_decides(tmp_path: Path, monkeypatch) -> None:
    # A policy that keeps every unanswered lookup at the end open and every race undecided:
    # the core's counters and tallies take its word, nothing of their own.
    def keep_open(lookup, config):
        attempts = tuple(t._replace(pair_race_lost=False) for t in lookup.attempts)
        pairs = zip(attempts, lookup.attempts, strict=True)
        answer = next((s for s, t in pairs if t is lookup.answer), None)
        return lookup._replace(attempts=attempts, answer=answer,
                               open_at_end=lookup.answer is None)

    monkeypatch.setattr(policy, "settle", keep_open)
    a = analyze_packets(tmp_path / "a.pcap", RACE_AT_END, timeout=0.001)
    assert (a.match.a_aaaa_race_lost, a.match.lookups_open_at_end, a.match.lookups_failed) \
        == (0, 1, 0)
    assert a.breakdown.clients[CLIENT].race_lost == 0
    assert findings_of(a, "timeout") == [] and findings_of(a, "aaaa_race_lost") == []


def test_only_lookups_in_flight_at_the_end_go_to_the_policy(tmp_path: Path,
                                                             monkeypatch) -> None:
    seen = []
    settle = policy.settle

    def record(lookup, config):
        seen.append((lookup.first.qname, lookup.end))
        return settle(lookup, config)

    monkeypatch.setattr(policy, "settle", record)
    # One lookup failed 40 s before the end (closed by max_wait, decided by the facts
    # alone), one answered, one unanswered 1 s before the end.
    path = write_eth(tmp_path / "c.pcap", [
        (0.0, query("early.example", id=1)),
        (10.0, query("fine.example", id=2, sport=40001)),
        (10.001, response("fine.example", id=2, dport=40001)),
        (40.0, query("late.example", id=3, sport=40002)),
        (41.0, query("last.example", id=4, sport=40003)),
        (41.001, response("last.example", id=4, dport=40003)),
    ])
    a = analyze([str(path)], AnalysisConfig())
    assert seen == [("late.example", 41.001)], seen
    assert (a.match.lookups_failed, a.match.lookups_open_at_end) == (1, 1)


@pytest.mark.parametrize(("times", "end", "timeout", "still"), [
    ((10.0,), 14.9, 5.0, True),          # 4.9 s of a 5 s wait
    ((10.0,), 15.0, 5.0, False),         # the wait is over at exactly the timeout
    ((10.0,), 11.5, 1.0, False),         # options timeout:1
    ((10.0, 11.0), 11.9, 5.0, True),     # retried after 1 s, ended 0.9 s after the retry
    ((10.0, 11.0), 12.0, 5.0, False),    # the client's own gap (1 s) has passed again
])
def test_may_still_wait(times, end, timeout, still) -> None:
    from pcapdns.match.records import Transaction
    from tests.craft import query as q

    def tx(t: float, n: int) -> Transaction:
        from pcapdns.dns.message import Message
        msg = Message(frame=n, time=t, iface=0, transport="udp", src="192.0.2.10",
                      sport=40000, dst="192.0.2.53", dport=53, id=1, flags=0x0100,
                      qdcount=1, ancount=0, qname="a.example", qtype=1, qclass=1,
                      data=bytes(q("a.example"))[28:])
        return Transaction(msg, None, 1, n, None if n == 1 else "same_id_same_port", None,
                           None, None, None, False, False, None, ())

    attempts = tuple(tx(t, i + 1) for i, t in enumerate(times))
    assert policy.may_still_wait(end, timeout, attempts) is still
