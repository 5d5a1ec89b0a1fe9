"""The detectors find the same when they are given only the lookups that matter to them and
``pcapdns._core.Facts`` is told every lookup (the compiled core's path), as when they are given
every lookup: same findings in the same order, same examples, same counters."""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pytest

from pcapdns import _core
from pcapdns.analysis import analyze
from pcapdns.config import AnalysisConfig
from pcapdns.detect import DETECTORS, FindingCollector, stale_port
from pcapdns.detect.stale_port import StalePort
from pcapdns.dns.message import Message
from pcapdns.match.records import Lookup, Transaction
from tests.conftest import SAMPLES
from tests.detect.filtered import (
    FilteredCollector,
    differences,
    twins,
)

CAPTURES = sorted(p for p in SAMPLES.glob("*.pcap*") if not p.name.endswith(".json"))


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_every_sample_gives_the_same_document_when_filtered(capture: Path) -> None:
    # The core hands the detectors only some lookups; the twin is told every lookup too
    # and checks, when the findings are asked for, that both found the same (the
    # findings, their order, the examples with their subjects, the counters).
    with twins() as made:
        part = analyze([str(capture)], keep_lookups=True)
    (t,) = made
    t.findings()
    assert t.handover.lookups == part.match.lookups


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_a_lookup_that_may_not_be_flagged_gets_no_finding(capture: Path) -> None:
    a = analyze([str(capture)], keep_lookups=True)
    for lk in a.lookups or []:
        if _core.may_be_flagged(lk, a.config):
            continue
        for name, detect in DETECTORS:
            assert detect(lk, a.config) == [], f"{name} flags lookup {lk.id}"


def test_a_clean_capture_hands_over_no_lookup() -> None:
    with twins() as made:
        analyze([str(SAMPLES / "clean-glibc-getent.pcap")])
    (t,) = made
    h = t.handover
    assert h.lookups > 0 and h.handed == 0 and h.ticks == 0, h


# -- long crafted streams: runs, confirmations, sweeps, caps, chains -----------------------

_SUFFIXES = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")
_WORDS = ("api", "db", "web", "example", "kube-dns", "kube-system", "cache", "internal")


class _Stream:
    """Lookups of a few clients, closed out of order as the matcher closes them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.frame = 0
        self.n = 0
        self.closed: list[tuple[float, int, Lookup]] = []

    def _msg(self, t: float, client: str, port: int, server: str, name: str, qtype: int,
             transport: str = "udp", rcode: int | None = None) -> Message:
        self.frame += 1
        if rcode is None:
            return Message(self.frame, t, 0, transport, client, port, server, 53,  # type: ignore[arg-type]
                           self.n & 0xFFFF, 0x0100, 1, 0, name, qtype, 1, b"")
        return Message(self.frame, t, 0, transport, server, 53, client, port,  # type: ignore[arg-type]
                       self.n & 0xFFFF, 0x8180 | rcode, 1, int(rcode == 0), name, qtype, 1,
                       b"")

    def lookup(self, t: float, client: str, ports: list[int], server: str, name: str,
               qtype: int = 1, answer: tuple[int, float, int] | None = None,
               transport: str = "udp", open_at_end: bool = False) -> None:
        """Attempts from ``ports`` 5 s apart; ``answer`` = (attempt, latency, rcode)."""
        self.n += 1
        attempts = []
        for i, port in enumerate(ports):
            at = t + 5.0 * i
            q = self._msg(at, client, port, server, name, qtype, transport)
            r = None
            if answer is not None and answer[0] == i:
                r = self._msg(at + answer[1], client, port, server, name, qtype, transport,
                              answer[2])
            kind = None if i == 0 else (
                "same_id_same_port" if port == ports[i - 1] else "same_id_new_port")
            attempts.append(Transaction(q, r, self.n, i + 1, kind, None, None, None, None,
                                        False, False, None, ()))
        won = attempts[answer[0]] if answer is not None else None
        last = attempts[-1].query.time
        if won is None:
            close = last + 30.0
        else:
            assert won.response is not None
            close = max(won.response.time + 1.0, t + 30.0 if answer and answer[0] else 0.0)
        close += self.rng.uniform(0.0, 1.0)  # the matcher closes once a second
        self.closed.append((close, self.n, Lookup(self.n, tuple(attempts), won, open_at_end)))

    def lookups(self) -> list[Lookup]:
        return [lk for _, _, lk in sorted(self.closed, key=lambda c: (c[0], c[1]))]


def _stream(seed: int, count: int = 4000) -> list[Lookup]:
    s = _Stream(seed)
    rng = s.rng
    clients = [f"10.0.{i}.7" for i in range(rng.randint(2, 7))]
    servers = ["10.96.0.10", "10.244.2.5"]
    # Long-lived ports (a caching daemon's, a runtime's) get stuck; others are fresh.
    fixed = {c: [rng.randint(30000, 30999) for _ in range(2)] for c in clients}
    stuck: dict[tuple[str, int, str], float] = {}
    down: dict[str, float] = {}
    t = 1_700_000_000.0
    end = t + count / 10.0
    while s.n < count:
        t += rng.expovariate(10.0)
        client, server = rng.choice(clients), rng.choice(servers)
        fresh = rng.randint(32768, 60999)
        port = rng.choice(fixed[client]) if rng.random() < 0.4 else fresh
        key = (client, port, server)
        if rng.random() < 0.004:
            stuck[key] = t + rng.uniform(20.0, 200.0)
        if rng.random() < 0.002:  # a client stops getting any answers for a while
            down[client] = t + rng.uniform(5.0, 40.0)
        name = ".".join(rng.sample(_WORDS, rng.randint(1, 3)))
        qtype = rng.choice((1, 1, 28))
        roll = rng.random()
        if stuck.get(key, 0.0) > t or down.get(client, 0.0) > t:
            retries = [port] * rng.choice((1, 1, 2, 3))
            if rng.random() < 0.1:
                retries[-1] = fresh  # a resolver that changes ports
            s.lookup(t, client, retries, server, name, qtype,
                     open_at_end=t > end - 5.0 and rng.random() < 0.5)
        elif roll < 0.08:  # search-list expansion before the name as written
            for i, suffix in enumerate(_SUFFIXES[: rng.randint(1, 3)]):
                s.lookup(t + 0.001 * i, client, [rng.randint(32768, 60999)], server,
                         f"{name}.{suffix}", qtype, (0, 0.0004, 3))
            s.lookup(t + 0.004, client, [port], server, name, qtype,
                     (0, 0.0005, rng.choice((0, 0, 0, 3, 2))))
        elif roll < 0.10:
            s.lookup(t, client, [port], server, name, qtype)  # a loss
        elif roll < 0.12:
            s.lookup(t, client, [port, rng.choice((port, fresh))], server, name, qtype,
                     (1, 0.002, 0))  # answered on the retry
        elif roll < 0.14:
            s.lookup(t, client, [port], server, name, qtype, (0, 0.002, 0), "tcp")
        elif roll < 0.15:
            s.lookup(t, client, [port], server, name, qtype, (0, rng.uniform(1.0, 3.0), 0))
        else:
            s.lookup(t, client, [port], server, name, qtype,
                     (0, rng.uniform(0.0002, 0.02), 0))
    return s.lookups()


def _run(lookups: list[Lookup], config: AnalysisConfig) -> tuple[FindingCollector,
                                                                  FilteredCollector]:
    whole, part = FindingCollector(config), FilteredCollector(config)
    for lk in lookups:
        whole.lookup(lk)
        part.lookup(lk)
    whole.finish()
    part.finish()
    return whole, part


def _same_on_streams(config: AnalysisConfig) -> dict[str, int]:
    """Check each seed's stream; what the streams reached, summed."""
    seen: dict[str, int] = {}
    for seed in range(12):
        whole, part = _run(_stream(seed, 3000), config)
        assert differences(whole, part) == [], f"seed {seed}"
        kinds = [g.first.kind for g in whole.findings()]
        (_, search), (_, stale) = part._windows
        for what, n in (
            ("stale_port findings", kinds.count("stale_port")),
            ("search_expansion findings", kinds.count("search_expansion")),
            ("ticks", part.handover.ticks),
            ("lookups handed over only because the facts watch them",
             part.handover.watched_only),
            ("lookups kept from the detectors",
             part.handover.lookups - part.handover.handed),
            ("answers evicted", stale.evicted),
            ("failures skipped", stale.skipped),
            ("tries evicted", search.evicted),  # type: ignore[attr-defined]
            ("sweeps", part.facts.sweeps),
        ):
            seen[what] = seen.get(what, 0) + n
    return seen


def _count_calls(monkeypatch: pytest.MonkeyPatch, seen: dict[str, int]) -> None:
    """Count, in ``seen``, the calls of the stale-port steps that only some lookups reach."""
    def counting(orig, name):  # type: ignore[no-untyped-def]
        def counted(self, *args):  # type: ignore[no-untyped-def]
            seen[name] = seen.get(name, 0) + 1
            return orig(self, *args)
        return counted

    for cls, name in ((StalePort, "_confirm"), (StalePort, "_answer_on_run"),
                      (StalePort, "_judge_due")):
        monkeypatch.setattr(cls, name, counting(getattr(cls, name), name))


_REACHED = ("stale_port findings", "search_expansion findings", "ticks",
            "lookups handed over only because the facts watch them",
            "lookups kept from the detectors", "_confirm", "_answer_on_run", "_judge_due")


def test_long_streams_give_the_same_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {}
    _count_calls(monkeypatch, calls)
    seen = {**_same_on_streams(AnalysisConfig()), **calls}
    # Worth something only if the streams make stale ports and chains, confirm and cut
    # runs, and wake the stale-port detector on lookups that are not handed over.
    for what in _REACHED:
        assert seen.get(what, 0) > 0, f"no {what}: {seen}"


def test_long_streams_at_small_caps_give_the_same_findings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Caps small enough for a few thousand lookups to reach every one of them.
    monkeypatch.setattr("pcapdns.detect._core.Facts",
                        partial(_core.Facts, sweep_min=16, max_answered=400, max_clients=4))
    monkeypatch.setattr(stale_port, "MAX_RUNS", 6)
    calls: dict[str, int] = {}
    _count_calls(monkeypatch, calls)
    seen = {**_same_on_streams(AnalysisConfig(max_search_tries=12)), **calls}
    for what in (*_REACHED, "sweeps", "answers evicted", "failures skipped", "tries evicted"):
        assert seen.get(what, 0) > 0, f"no {what}: {seen}"


def test_what_the_facts_ask_for() -> None:
    f = _core.Facts(AnalysisConfig())
    args = dict(client="10.0.3.7", server="10.96.0.10", first_time=10.0, last_time=10.0,
                qname="API.example.com", qtype=1, qclass=1, failed_udp=False, answered=True,
                answer_udp=True, answer_port=40000, answer_time=10.001, rcode=0)
    assert f.lookup_closed(**args) == _core.QUIET
    assert f.answered_at("10.0.3.7", 40000, "10.96.0.10") == 10.001
    assert f.lookup_closed(**{**args, "rcode": 3}) == _core.WATCHED  # a search-suffix try
    assert f.lookup_closed(**{**args, "answered": False, "failed_udp": True}) == _core.WATCHED
    f.watch_port("10.0.3.7", 40000, "10.96.0.10")
    assert f.lookup_closed(**args) == _core.WATCHED
    f.unwatch_port("10.0.3.7", 40000, "10.96.0.10")
    f.watch_client("10.0.3.7")
    assert f.lookup_closed(**{**args, "answer_port": 40001}) == _core.WATCHED
    assert f.other_answer("10.0.3.7", 40000) == 10.001
    f.unwatch_client("10.0.3.7")
    f.watch_name("10.0.3.7", 1, 1, "api")
    assert f.lookup_closed(**args) == _core.WATCHED
    assert f.lookup_closed(**{**args, "qname": "www.example.com"}) == _core.QUIET
    assert f.lookup_closed(**{**args, "qtype": 28}) == _core.QUIET
    f.wake_at(20.0)
    assert f.lookup_closed(**{**args, "qtype": 28, "last_time": 19.9}) == _core.QUIET
    assert f.lookup_closed(**{**args, "qtype": 28, "last_time": 20.0}) == _core.TICK
    assert (f.latest_query, f.latest_answered_query) == (20.0, 10.0)


def test_the_detector_tests_check_the_filtered_path_too(tmp_path: Path,
                                                        same_when_filtered: list) -> None:
    from tests.craft import analyze_packets, query, response

    analyze_packets(tmp_path / "one.pcap", [(1.0, query()), (1.001, response())])
    assert len(same_when_filtered) == 1  # tests/detect/conftest.py


def _scenario(failures: Sequence[float], others: Sequence[float],
              own: Sequence[float] = (), names: bool = False) -> list[Lookup]:
    """Failed lookups from 10.0.3.7:30000 at ``failures``, answers to that client from
    other ports at ``others`` and from port 30000 at ``own``; another client's answers
    every second make time pass; with ``names``, a search-suffix try and its name."""
    s = _Stream(0)
    client, server = "10.0.3.7", "10.96.0.10"
    for t in failures:
        s.lookup(t, client, [30000], server, f"f{t:g}.example")
    for t in others:
        s.lookup(t, client, [41000 + int(t)], server, f"o{t:g}.example", 1, (0, 0.002, 0))
    for t in own:
        s.lookup(t, client, [30000], server, f"p{t:g}.example", 1, (0, 0.002, 0))
    for i in range(240):
        s.lookup(float(i), "10.0.9.9", [50000 + i], server, f"clock{i}.example", 1,
                 (0, 0.002, 0))
    if names:
        s.lookup(5.0, client, [42000], server, "api.example.com.svc.cluster.local", 1,
                 (0, 0.002, 3))
        s.lookup(5.01, client, [42001], server, "api.example.com", 1, (0, 0.002, 0))
    return s.lookups()


# Each needs what the facts were asked for: the end of a search chain is a healthy lookup;
# an answer from another port confirms a run that waits; an answer on the run's own port
# inside its window ends it; a run of two failures is judged (and dropped) on a healthy
# lookup before a third failure could join it.
SCENARIOS = {
    "watch_name": (_scenario([], [], names=True), "search_expansion", 1),
    "watch_client": (_scenario([10.0, 11.0, 12.0], [45.0]), "stale_port", 1),
    "watch_port": (_scenario([10.0, 11.0, 12.0], [20.0], own=[50.0]), "stale_port", 0),
    "wake_at": (_scenario([10.0, 12.0, 100.0], [11.0, 101.0]), "stale_port", 0),
}


@pytest.mark.parametrize("ignored", list(SCENARIOS))
def test_what_the_facts_watch_is_needed(ignored: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lookups, kind, count = SCENARIOS[ignored]
    whole, part = _run(lookups, AnalysisConfig())
    assert [g.first.kind for g in whole.findings()].count(kind) == count
    assert differences(whole, part) == []
    assert part.handover.handed < part.handover.lookups / 2, part.handover
    # The check notices when the watch is not kept.
    monkeypatch.setattr("pcapdns.detect._core.Facts",
                        type("Ignoring", (_core.Facts,), {ignored: lambda self, *args: None}))
    whole, part = _run(lookups, AnalysisConfig())
    assert differences(whole, part) != []
