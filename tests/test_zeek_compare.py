"""Our transactions agree with Zeek's dns.log baselines of the public corpus.

For every ``zeek__*.expected.dns*`` baseline in ../shared/corpus (skipped when the corpus is
absent), each dns.log row is matched to one of our transactions by client, server, ports,
DNS ID and question, and compared on:

* pairing: Zeek paired the query with a response exactly when we did;
* the question type's name, and the rcode;
* latency: Zeek's ``rtt`` equals our ``latency_ms`` within 2 microseconds;
* answers and TTLs: our ``answer_records``, written the way Zeek writes them (tests/zeek.py).

Zeek and pcapdns differ on purpose in a few places; each rule below says where and why, and
a row is excused only by one of them. Everything else must agree.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pcapdns import _core
from pcapdns.analysis import analyze
from pcapdns.config import AnalysisConfig
from pcapdns.dns import names
from pcapdns.dns.message import Message
from pcapdns.output.document import build
from tests.conftest import CORPUS
from tests.zeek import UNSEEN, ZeekLine, capture_of, messages, read_log, zeek_answer

#: DNS, mDNS and LLMNR, the ports Zeek's DNS analyzer reads in these captures.
PORTS = frozenset({53, 5353, 5355})
#: Zeek prints rtt to the microsecond, we print latency_ms to the microsecond.
RTT_TOLERANCE_MS = 0.002

#: Captures whose DNS Zeek reads and pcapdns does not.
NOT_COMPARED: dict[str, str] = {}
#: Queries whose IPv4 and UDP checksums are wrong (tshark -o ip.check_checksum:TRUE).
#: Zeek drops such packets unless run with -C, so its row for the response has no query
#: fields and no rtt; we do not check checksums (offloading leaves them wrong in captures
#: taken on the sending host) and pair the two.
BAD_CHECKSUM_QUERIES = {("zeek__dns-spf.pcap", 1), ("zeek__dns-txt-multiple.pcap", 1)}
#: The btest behind these baselines appends DNS::algorithms[algorithm] to answers after
#: each DNSKEY and RRSIG (testing/btest/scripts/base/protocols/dns/dnssec-ed25519-ed448).
ALGORITHM_NAMES_APPENDED = {"zeek__dnssec__ed25519.no.pcap", "zeek__dnssec__ed448.no.pcap"}
ALGORITHMS = {15: "Ed25519", 16: "Ed448"}
#: Port 137 is NetBIOS name service, which Zeek's DNS analyzer also reads; it is not DNS.
NETBIOS_PORT = "137"
#: RFC 2136 UPDATE: Zeek writes the prerequisite and update sections in its own words
#: ("pre: NoRRSet CNAME ...", "add: A ..."), not as answers.
OPCODE_UPDATE = "5"


def _baselines() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(CORPUS.glob("zeek__*.expected.dns*"))


@dataclass
class Entry:
    """One of our queries, paired the way Zeek pairs."""

    row: dict[str, Any]
    #: Our transaction holding the response Zeek gives this query, or None.
    answered_by: dict[str, Any] | None
    #: Our latency_ms, or for a query Zeek pairs differently, from its time to the time of
    #: the response Zeek gives it.
    rtt_ms: float | None
    #: Zeek pairs it differently from us (see _zeek_pairing).
    fifo: bool = False


@dataclass
class Tally:
    rows: int = 0
    pairing: Counter[str] = field(default_factory=Counter)
    qtype: Counter[str] = field(default_factory=Counter)
    rcode: Counter[str] = field(default_factory=Counter)
    rtt: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    excused: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def check(self, what: Counter[str], ok: bool, line: ZeekLine, message: str) -> None:
        what["agree" if ok else "differ"] += 1
        if not ok:
            self.problems.append(f"line {line.line}: {message}")


def _time(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["transport"], row["client"], row["client_port"], row["server"],
            row["server_port"], row["id"])


def _zeek_pairing(rows: list[dict[str, Any]]) -> list[Entry]:
    """Our queries, each with the response Zeek would give it.

    Zeek keeps a queue of pending queries per connection and DNS ID and gives a response to
    the oldest (base/protocols/dns/main.zeek, set_session). We give it to the latest attempt
    of the lookup, so when a query is re-sent with the same ID and port and then answered
    once, Zeek pairs the answer with the first copy and logs the re-send as unanswered.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[_key(row)].append(row)
    out = []
    for group in groups.values():
        queries = sorted(group, key=lambda r: r["query_frame"])
        answered = sorted((r for r in group if r["response_frame"] is not None),
                          key=lambda r: r["response_frame"])
        for i, row in enumerate(queries):
            by = answered[i] if i < len(answered) else None
            rtt = None
            if by is row:
                rtt = row["latency_ms"]
            elif by is not None:
                rtt = (_time(by["response_time"]) - _time(row["query_time"])).total_seconds()
                rtt = round(rtt * 1000, 3)
            ours = row if row["response_frame"] is not None else None
            out.append(Entry(row, by, rtt, fifo=by is not ours))
    return sorted(out, key=lambda e: e.row["query_frame"])


def _matches(line: ZeekLine, row: dict[str, Any]) -> bool:
    wanted = {
        "proto": row["transport"], "id.orig_h": row["client"],
        "id.orig_p": str(row["client_port"]), "id.resp_h": row["server"],
        "id.resp_p": str(row["server_port"]), "trans_id": str(row["id"]),
        "query": (row["qname"] or "").lower(),
    }
    if line.get("opcode") == OPCODE_UPDATE:
        # Zeek's query of an UPDATE is the owner of its first prerequisite or update
        # record; ours is the zone, which is what the question section holds (RFC 2136 2.3).
        del wanted["query"]
    return all(line.get(k) is None or line.get(k) == v for k, v in wanted.items())


def _qtype_agrees(zeek: str, ours: str) -> bool:
    # Zeek calls 255 "*" and a type missing from its table "query-N".
    if zeek == "*":
        return ours == "ANY"
    if zeek.startswith("query-"):
        return ours == names.qtype_name(int(zeek.removeprefix("query-")))
    return zeek == ours


_HEX_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")


def _zeek_vector(line: ZeekLine, name: str) -> list[str]:
    # Zeek's ASCII writer escapes the set separator (",") inside an element as \x2c.
    return [_HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), v) for v in line.vector(name)]


def _expected_answers(capture: str, records: list[str]) -> tuple[list[str], list[str]]:
    answers, ttls = [], []
    for record in records:
        rtype, text = zeek_answer(record)
        if text is None:
            continue
        answers.append(text)
        ttls.append(f"{record.split(' ')[1]}.000000")
        if capture in ALGORITHM_NAMES_APPENDED and rtype in ("DNSKEY", "RRSIG"):
            answers.append(ALGORITHMS[int(record.split(" ")[5 if rtype == "DNSKEY" else 4])])
    return answers, ttls


def _compare_answers(tally: Tally, line: ZeekLine, capture: str, records: list[str]) -> None:
    if "answers" not in line.fields:
        return
    if line.get("opcode") == OPCODE_UPDATE:
        tally.excused["UPDATE sections are not answers in Zeek"] += 1
        return
    answers, ttls = _expected_answers(capture, records)
    theirs = _zeek_vector(line, "answers")
    ok = theirs == answers
    if "TTLs" in line.fields:
        ok = ok and line.vector("TTLs") == ttls
    tally.check(tally.answers, ok, line, f"answers {theirs} {line.vector('TTLs')}, "
                                         f"ours {answers} {ttls}")


def _compare_query(tally: Tally, line: ZeekLine, entry: Entry, capture: str) -> None:
    row, by = entry.row, entry.answered_by
    if entry.fifo:
        tally.excused["Zeek pairs a re-sent query's answer with the first copy"] += 1
    zeek_answered = line.get("rcode") is not None if "rcode" in line.fields else by is not None
    tally.check(tally.pairing, zeek_answered == (by is not None), line,
                f"Zeek {'pairs' if zeek_answered else 'does not pair'} frame "
                f"{row['query_frame']}, we {'do' if by else 'do not'}")
    if line.get("qtype_name") is not None:
        tally.check(tally.qtype, _qtype_agrees(line.fields["qtype_name"], row["qtype"]), line,
                    f"qtype {line.fields['qtype_name']}, ours {row['qtype']}")
    if by is None or not zeek_answered:
        return
    if line.get("rcode_name") is not None:
        tally.check(tally.rcode, line.fields["rcode_name"] == by["rcode"], line,
                    f"rcode {line.fields['rcode_name']}, ours {by['rcode']}")
    if "rtt" in line.fields:
        rtt = line.get("rtt")
        if rtt is not None:
            ok = entry.rtt_ms is not None and abs(float(rtt) * 1000 - entry.rtt_ms) <= (
                RTT_TOLERANCE_MS)
            tally.check(tally.rtt, ok, line, f"rtt {rtt} s, ours {entry.rtt_ms} ms")
        elif not any(r.split(" ")[2] not in UNSEEN for r in by["answer_records"]):
            # Zeek sets rtt in DNS::do_reply, which runs once per answer record of a type
            # it writes: a response without such a record has no rtt.
            tally.excused["no rtt for a response without answers Zeek writes"] += 1
        elif entry.rtt_ms == 0:
            tally.excused["Zeek deletes an rtt of 0"] += 1
        else:
            tally.check(tally.rtt, False, line, f"no rtt in Zeek, ours {entry.rtt_ms} ms")
    _compare_answers(tally, line, capture, by["answer_records"])


def _compare_reply_only(tally: Tally, line: ZeekLine, capture: Path, doc: dict[str, Any],
                        used_frames: set[int]) -> int | None:
    """A row Zeek wrote for a response it matched to no query; returns our frame of it."""
    msgs = _messages(capture)
    ends = {line.get("id.orig_h"), line.get("id.resp_h")}
    frame, m = next(
        ((f, m) for f, ms in sorted(msgs.items()) for m in ms
         if f not in used_frames and m.is_response and str(m.id) == line.get("trans_id")
         and {m.src, m.dst} == ends),
        (None, None),
    )
    if m is None or frame is None:
        tally.problems.append(f"line {line.line}: a response we do not have")
        return None
    used_frames.add(frame)
    ours = next((r for r in doc["transactions"] if r["response_frame"] == frame), None)
    duplicate = str(frame) in doc["duplicate_frames"]
    if ours is not None and (capture.name, ours["query_frame"]) in BAD_CHECKSUM_QUERIES:
        tally.excused["Zeek drops a query with a bad checksum"] += 1
    elif duplicate:
        tally.excused["a second copy of a response: we drop it, Zeek logs it alone"] += 1
    else:
        tally.check(tally.pairing, ours is None, line,
                    f"Zeek pairs no query with frame {frame}; we pair frame "
                    f"{ours and ours['query_frame']}")
    if line.get("rcode_name") is not None:
        rcode = names.rcode_name(m.rcode)
        tally.check(tally.rcode, line.fields["rcode_name"] == rcode, line,
                    f"rcode {line.fields['rcode_name']}, ours {rcode}")
    _compare_answers(tally, line, capture.name, list(_core.answer_section(m.data).records))
    return frame


@functools.cache
def _messages(capture: Path) -> dict[int, list[Message]]:
    return messages(capture, PORTS)


def _reply_only(line: ZeekLine) -> bool:
    """Zeek logged a response it matched to no query: no query fields and no rtt. (An
    UPDATE row has no qtype either, as Zeek reads no question from it, but has an rtt.)"""
    return "qtype_name" in line.fields and line.get("qtype_name") is None and (
        line.get("rtt") is None)


def compare(baseline: Path) -> Tally:
    """Compare one baseline with our analysis of its capture."""
    capture = capture_of(baseline)
    doc = build(analyze([str(capture)], AnalysisConfig(ports=PORTS), keep_lookups=True))
    entries = _zeek_pairing(doc["transactions"])
    used: set[int] = set()
    tally = Tally()
    lines = []
    for line in read_log(baseline):
        if NETBIOS_PORT in (line.get("id.orig_p"), line.get("id.resp_p")):
            tally.excused["NetBIOS name service, not DNS"] += 1
        else:
            tally.rows += 1
            lines.append(line)
    for line in lines:
        if _reply_only(line):
            continue
        candidates = [i for i, e in enumerate(entries) if i not in used and _matches(line, e.row)]
        if "rcode" in line.fields:
            zeek_answered = line.get("rcode") is not None
            preferred = [i for i in candidates
                         if (entries[i].answered_by is not None) == zeek_answered]
            candidates = preferred or candidates
        if not candidates:
            tally.problems.append(f"line {line.line}: a query we do not have: {line.fields}")
            continue
        used.add(candidates[0])
        _compare_query(tally, line, entries[candidates[0]], capture.name)
    # Responses the rows above were paired with are taken; the reply-only rows get the rest.
    used_frames = {e.answered_by["response_frame"] for i, e in enumerate(entries)
                   if i in used and e.answered_by is not None}
    for line in filter(_reply_only, lines):
        frame = _compare_reply_only(tally, line, capture, doc, used_frames)
        used.update(i for i, e in enumerate(entries)
                    if frame is not None and e.row["response_frame"] == frame)
    for i, e in enumerate(entries):
        if i not in used:
            tally.problems.append(f"frame {e.row['query_frame']}: a query Zeek does not log")
    return tally


@pytest.mark.parametrize("baseline", _baselines(), ids=lambda p: p.name)
def test_transactions_agree_with_zeek(baseline: Path) -> None:
    capture = capture_of(baseline)
    if capture.name in NOT_COMPARED:
        pytest.skip(NOT_COMPARED[capture.name])
    tally = compare(baseline)
    assert not tally.problems, "\n".join(tally.problems)


def test_corpus_baselines_are_found(corpus: Path) -> None:
    # Guards the glob above: a renamed corpus must not turn the comparison into no test.
    assert len(_baselines()) >= 30
