"""Joining CoreDNS log lines to lookups, with and without times, on hand-built lookups.

The log lines are written here in the ``log`` plugin's default format (CoreDNS cannot run
on the machine the suite runs on); the lookups are the records the analysis hands over.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapdns.coredns_log import index
from pcapdns.coredns_log.join import LogJoin
from pcapdns.dns.message import Message
from pcapdns.match.records import Lookup, Transaction

T0 = 1796173800.0
CLIENT, SERVER = "10.244.1.7", "10.96.0.10"


def message(frame: int, time: float, qid: int, port: int, name: str, qtype: int = 1,
            response: bool = False, rcode: int = 0) -> Message:
    src, sport, dst, dport = CLIENT, port, SERVER, 53
    if response:
        src, sport, dst, dport = dst, dport, src, sport
    flags = (0x8180 | rcode) if response else 0x0100
    return Message(frame, time, 0, "udp", src, sport, dst, dport, qid, flags, 1,
                   int(response), name, qtype, 1, b"")


def lookup(lid: int, attempts: list[tuple[int, float, int, int]], name: str,
           answer: tuple[int, float, int] | None = None, qtype: int = 1) -> Lookup:
    """attempts: (frame, time, id, port); answer: (frame, time, rcode) to the last."""
    ts = []
    for n, (frame, time, qid, port) in enumerate(attempts, 1):
        resp = None
        if answer is not None and n == len(attempts):
            resp = message(answer[0], answer[1], qid, port, name, qtype, True, answer[2])
        ts.append(Transaction(message(frame, time, qid, port, name, qtype), resp, lid, n,
                              None if n == 1 else "same_id_same_port", None, None, None,
                              None, False, False, None, ()))
    return Lookup(lid, tuple(ts), ts[-1] if answer is not None else None, False)


def line(qid: int, port: int, name: str, rcode: str = "NOERROR", duration: str = "0.0002s",
         time: float | None = None, qtype: str = "A") -> str:
    text = (f'[INFO] {CLIENT}:{port} - {qid} "{qtype} IN {name}. udp 40 false 512" {rcode} '
            f"qr,aa,rd 80 {duration}")
    if time is None:
        return text
    from datetime import UTC, datetime
    stamp = datetime.fromtimestamp(time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{stamp}000Z {text}"


def join(tmp_path: Path, lines: list[str], lookups: list[Lookup], per_transaction: bool = True):  # type: ignore[no-untyped-def]
    p = tmp_path / "coredns.log"
    p.write_text("\n".join(lines) + "\n")
    j = LogJoin(index.load([str(p)]), per_transaction=per_transaction)
    for lk in lookups:
        j.every_lookup(lk)
    return j.finish()


def test_without_times_joins_on_address_port_id_name_type(tmp_path: Path) -> None:
    lookups = [
        lookup(1, [(1, T0, 100, 40000)], "Web.Example", (2, T0 + 0.001, 0)),
        lookup(2, [(3, T0 + 1, 101, 40001)], "gone.example"),            # failed, not logged
        lookup(3, [(5, T0 + 2, 102, 40002)], "lost.example"),            # failed, logged
        lookup(4, [(7, T0 + 3, 103, 40003)], "bad.example", (8, T0 + 3.1, 2)),
    ]
    r = join(tmp_path, [line(100, 40000, "web.example"), line(102, 40002, "lost.example"),
                        line(103, 40003, "bad.example", "SERVFAIL", "0.1s"),
                        line(555, 41000, "other.example"),
                        line(100, 40000, "web.example", qtype="AAAA")], lookups)
    assert not r.times_used and r.clock_offset_s is None
    assert (r.joined, r.ambiguous_queries, r.logged_not_captured) == (3, 0, 2)
    assert (r.captured_not_logged, r.captured_not_logged_answered) == (1, 0)
    assert r.servers == (f"{SERVER}:53",)
    assert {p.lookup: p.verdict for p in r.problems} == {
        2: "not_logged", 3: "lost_after_coredns", 4: "coredns_error"}
    assert r.verdicts == {"coredns_error": 1, "lost_after_coredns": 1, "not_logged": 1}
    assert any("cannot be placed in time" in w for w in r.warnings)
    assert r.by_frame is not None
    t = r.by_frame[5]
    assert (t.logged, t.rcode, t.duration_s) == (True, "NOERROR", pytest.approx(0.0002))
    assert r.by_frame[7].rcode == "SERVFAIL" and 3 not in r.by_frame


def test_without_times_a_reused_key_is_ambiguous_not_guessed(tmp_path: Path) -> None:
    # The client sent one query twice (same ID, same port): two lines, two queries.
    lk = lookup(1, [(1, T0, 7, 40000), (2, T0 + 5, 7, 40000)], "gone.example")
    r = join(tmp_path, [line(7, 40000, "gone.example", "SERVFAIL", "5.0s"),
                        line(7, 40000, "gone.example", "SERVFAIL", "5.0s")], [lk])
    assert (r.joined, r.ambiguous_queries, r.ambiguous_lines) == (0, 2, 2)
    assert r.problems[0].verdict == "ambiguous"
    assert [a.logged for a in r.problems[0].attempts] == [None, None]
    assert r.captured_not_logged == 0 and r.logged_not_captured == 0


def test_with_times_the_offset_is_estimated_and_reused_keys_placed(tmp_path: Path) -> None:
    skew = 42.25  # CoreDNS's clock is ahead
    lookups = [
        lookup(1, [(1, T0, 100, 40000)], "a.example", (2, T0 + 0.001, 0)),
        lookup(2, [(3, T0 + 1, 101, 40001)], "b.example", (4, T0 + 1.001, 0)),
        lookup(3, [(5, T0 + 2, 102, 40002)], "c.example", (6, T0 + 2.001, 0)),
        # Sent twice with one ID and port, 5 s apart: the log places each by time.
        lookup(4, [(7, T0 + 3, 7, 40003), (8, T0 + 8, 7, 40003)], "slow.example"),
    ]
    lines = [line(100, 40000, "a.example", time=T0 + skew + 0.0005),
             line(101, 40001, "b.example", time=T0 + 1 + skew + 0.0004),
             line(102, 40002, "c.example", time=T0 + 2 + skew + 0.0006),
             line(7, 40003, "slow.example", "SERVFAIL", "2.0s", T0 + 3 + skew + 2.0),
             line(7, 40003, "slow.example", "SERVFAIL", "2.0s", T0 + 8 + skew + 2.0),
             line(9, 40009, "z.example", time=T0 + skew + 3600)]   # long after the capture
    r = join(tmp_path, lines, lookups)
    assert r.times_used and r.offset_samples == 3
    assert r.clock_offset_s == pytest.approx(skew, abs=0.001)
    assert r.joined == 5 and r.ambiguous_queries == 0
    assert (r.logged_outside_capture, r.logged_not_captured) == (1, 0)
    (p,) = r.problems
    assert p.verdict == "coredns_slow"
    assert [a.line for a in p.attempts] == [f"{tmp_path}/coredns.log:4",
                                           f"{tmp_path}/coredns.log:5"]
    assert not any("cannot be placed" in w for w in r.warnings)


def test_with_times_a_line_too_far_from_its_query_does_not_join(tmp_path: Path) -> None:
    lookups = [lookup(1, [(1, T0, 100, 40000)], "a.example", (2, T0 + 0.001, 0)),
               lookup(2, [(3, T0 + 1, 101, 40001)], "b.example", (4, T0 + 1.001, 0)),
               lookup(3, [(5, T0 + 2, 102, 40002)], "c.example")]
    lines = [line(100, 40000, "a.example", time=T0),
             line(101, 40001, "b.example", time=T0 + 1),
             line(102, 40002, "c.example", time=T0 + 2 + 30)]  # ID and port reused later
    r = join(tmp_path, lines, lookups)
    assert r.joined == 2 and r.problems[0].verdict == "not_logged"
    assert r.captured_not_logged == 1


def test_nothing_joins_says_why(tmp_path: Path) -> None:
    # Masquerade: CoreDNS saw the node's address, not the pod's.
    lk = lookup(1, [(1, T0, 100, 40000)], "a.example", (2, T0 + 0.001, 0))
    r = join(tmp_path, [line(100, 40000, "a.example").replace(CLIENT, "10.0.0.1")], [lk])
    assert r.joined == 0 and r.logged_other_clients == 1
    assert any("masquerade" in w for w in r.warnings)


def test_error_rcodes_and_coverage(tmp_path: Path) -> None:
    lookups = [
        lookup(1, [(1, T0, 100, 40000)], "a.example", (2, T0 + 0.001, 0)),
        lookup(2, [(3, T0 + 1, 101, 40001)], "sf.example", (4, T0 + 1.2, 2)),   # SERVFAIL
        lookup(3, [(5, T0 + 2, 102, 40002)], "nl.example", (6, T0 + 2.1, 5)),   # REFUSED
        lookup(4, [(7, T0 + 3, 103, 40003)], "slow.example"),
    ]
    # Another server: its lookups are not covered by this log.
    other = lookup(5, [(9, T0 + 4, 104, 40004)], "x.example")
    q = other.attempts[0].query._replace(dst="10.96.0.11")
    other = other._replace(attempts=(other.attempts[0]._replace(query=q),))
    r = join(tmp_path, [line(100, 40000, "a.example"),
                        line(101, 40001, "sf.example", "NOERROR"),  # something rewrote it
                        line(103, 40003, "slow.example", "SERVFAIL", "5.002s")],
             [*lookups, other])
    assert {p.lookup: p.verdict for p in r.problems} == {
        2: "logged", 3: "not_logged", 4: "coredns_slow", 5: "not_covered"}
    assert r.servers == (f"{SERVER}:53",)
    # Lookup 3's query went to the logged server and is not in the log; 5's did not.
    assert r.captured_not_logged == 1 and r.captured_not_logged_answered == 1


def test_ipv6_clients_join(tmp_path: Path) -> None:
    lk = lookup(1, [(1, T0, 100, 40000)], "a.example", (2, T0 + 0.001, 0))
    q = lk.attempts[0].query._replace(src="fd00:0:0::7")
    lk = lk._replace(attempts=(lk.attempts[0]._replace(query=q),))
    text = line(100, 40000, "A.EXAMPLE").replace(CLIENT, "[fd00::7]")
    r = join(tmp_path, [text], [lk])
    assert r.joined == 1


def test_the_library_join_equals_the_streamed_one(tmp_path: Path) -> None:
    from pcapdns.coredns_log.join import join as join_lookups

    lookups = [lookup(1, [(1, T0, 100, 40000)], "a.example", (2, T0 + 0.001, 0)),
               lookup(2, [(3, T0 + 1, 101, 40001)], "b.example")]
    streamed = join(tmp_path, [line(100, 40000, "a.example")], lookups)
    after = join_lookups(streamed.index, lookups, per_transaction=True)
    assert after == streamed


def test_lines_past_the_cap_are_counted_and_warned(tmp_path: Path) -> None:
    p = tmp_path / "coredns.log"
    p.write_text("\n".join(line(i, 40000, "a.example") for i in range(5)) + "\n")
    j = LogJoin(index.load([str(p)], max_queries=2))
    j.every_lookup(lookup(1, [(1, T0, 0, 40000)], "a.example", (2, T0 + 0.001, 0)))
    r = j.finish()
    assert r.index.evicted == 3 and r.joined == 1
    assert any("the 3 after them were not joined" in w for w in r.warnings)


def test_every_failed_lookup_is_judged_the_first_ones_listed(tmp_path: Path) -> None:
    from pcapdns.coredns_log.join import MAX_PROBLEM_LOOKUPS

    n = MAX_PROBLEM_LOOKUPS + 50
    lookups = [lookup(i + 1, [(i + 1, T0 + i * 0.01, i, 40000)], "gone.example")
               for i in range(n)]
    # One answered lookup to the same server joins, so the server is one of the log's.
    lookups.append(lookup(n + 1, [(n + 1, T0, 9999, 41000)], "a.example",
                          (n + 2, T0 + 0.001, 0)))
    r = join(tmp_path, [line(9999, 41000, "a.example")], lookups)
    assert r.verdicts == {"not_logged": n}
    assert len(r.problems) == MAX_PROBLEM_LOOKUPS and r.problems_omitted == 50
    assert r.not_judged == 0
