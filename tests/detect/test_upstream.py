"""A forwarder's upstream leg (pcapdns/upstream.py, detect/upstream_timeout.py and
detect/upstream_error.py): which downstream lookup an upstream query was sent for, the
cause of each failed or slow downstream lookup, and the findings that name the upstream."""

from __future__ import annotations

from pcapdns.output.document import build
from pcapdns.output.summary import Summary
from tests.craft import analyze_packets, findings_of, query, response

CLIENT, FWD, UP, OTHER = "10.0.3.7", "10.244.0.5", "10.0.0.2", "10.0.3.8"


def down(t: float, name: str = "ext.example", id: int = 1, sport: int = 40000,
         src: str = CLIENT):
    return (t, query(name, id=id, src=src, dst=FWD, sport=sport))


def down_answer(t: float, name: str = "ext.example", id: int = 1, sport: int = 40000,
                rcode: int = 0, dst: str = CLIENT):
    return (t, response(name, id=id, src=FWD, dst=dst, dport=sport, rcode=rcode))


def up(t: float, name: str = "ext.example", id: int = 900, sport: int = 50000):
    return (t, query(name, id=id, src=FWD, dst=UP, sport=sport))


def up_answer(t: float, name: str = "ext.example", id: int = 900, sport: int = 50000,
              rcode: int = 0):
    return (t, response(name, id=id, src=UP, dst=FWD, dport=sport, rcode=rcode))


def end(t: float):
    """An answered lookup of another client that ends the capture."""
    return [(t, query("end.example", id=77, src=OTHER, dst=FWD, sport=41000)),
            (t + 0.001, response("end.example", id=77, src=FWD, dst=OTHER, dport=41000))]


def causes(a) -> dict[str, object]:
    """The cause of each transaction of the JSON document, by query frame."""
    return {t["query_frame"]: (t["cause"], t["cause_upstream"], t["cause_rcode"])
            for t in build(a)["transactions"]}


def test_the_upstream_query_is_linked_to_the_downstream_query(tmp_path):
    a = analyze_packets(tmp_path / "ok.pcap", [
        down(1.0), up(1.0002, name="EXT.example"), up_answer(1.010), down_answer(1.0101),
    ])
    rows = {t["query_frame"]: t for t in build(a)["transactions"]}
    assert rows[2]["upstream_of"] == 1 and rows[1]["forwarded_as"] == 2
    assert rows[1]["upstream_of"] is None and rows[2]["forwarded_as"] is None
    assert a.findings == [] and a.causes == {}
    (row,) = Summary.of(a).upstream
    assert (row.server, row.queries, row.answered, row.timeouts) == (UP, 1, 1, 0)
    assert dict(row.rcodes) == {"NOERROR": 1} and row.latency_ms.p50 == 9.8


def test_a_silent_upstream_is_one_upstream_timeout_with_the_clients_timeout_as_evidence(
        tmp_path):
    a = analyze_packets(tmp_path / "lost.pcap", [
        down(1.0), up(1.0002), down(2.0, sport=40000), up(2.0002),
        *end(40.0),
    ])
    (f,) = findings_of(a, "upstream_timeout")
    assert (f.first.client, f.first.server, f.first.qname) == (FWD, UP, "ext.example")
    assert set(f.frames) >= {1, 2, 3, 4}
    assert "timeout" in f.explains and f.count == 1
    # Not also a plain timeout, of the forwarder's query or of the client's.
    assert findings_of(a, "timeout") == []
    assert causes(a)[1] == ("upstream_timeout", UP, None)
    assert Summary.of(a).causes == {"upstream_timeout": 1}
    (row,) = Summary.of(a).upstream
    assert (row.queries, row.retransmissions, row.timeouts) == (1, 1, 1)


def test_an_upstream_error_is_passed_on_and_named(tmp_path):
    a = analyze_packets(tmp_path / "refused.pcap", [
        down(1.0), up(1.0002), up_answer(1.003, rcode=5), down_answer(1.0031, rcode=5),
        *end(3.0),
    ])
    (f,) = findings_of(a, "upstream_error")
    assert (f.first.client, f.first.server) == (FWD, UP)
    assert "answered REFUSED" in f.first.detail
    assert "refused" in f.explains
    assert findings_of(a, "refused") == []
    assert causes(a)[1] == ("upstream_error", UP, "REFUSED")


def test_a_slow_upstream_makes_a_slow_lookup_upstream_slow(tmp_path):
    a = analyze_packets(tmp_path / "slow.pcap", [
        down(1.0), up(1.0002), up_answer(2.5), down_answer(2.5001), *end(4.0),
    ])
    assert causes(a)[1] == ("upstream_slow", UP, None)


def test_slow_at_the_forwarder_with_a_quick_upstream_is_local(tmp_path):
    # The upstream answered in 0.6 s of a 2 s lookup: less than half, and not handed to
    # the detectors (healthy); the time was spent at the forwarder.
    a = analyze_packets(tmp_path / "local-slow.pcap", [
        down(1.0), up(1.0002), up_answer(1.4), down_answer(3.0), *end(4.0),
    ])
    assert causes(a)[1] == ("local", None, None)


def test_a_failure_without_an_upstream_leg_is_local_when_the_server_forwards(tmp_path):
    a = analyze_packets(tmp_path / "stuck.pcap", [
        down(1.0), up(1.0002), up_answer(1.003), down_answer(1.0031),
        down(2.0, name="stuck.example", id=2, sport=40001),
        *end(40.0),
    ])
    assert causes(a)[5] == ("local", None, None)
    assert Summary.of(a).causes == {"local": 1}
    (t,) = findings_of(a, "timeout")
    assert t.first.qname == "stuck.example"


def test_no_cause_without_a_forwarder(tmp_path):
    # A client-side capture: the server's upstream leg is not in it.
    a = analyze_packets(tmp_path / "client.pcap", [down(1.0), *end(40.0)])
    assert causes(a)[1] == (None, None, None)
    assert Summary.of(a).upstream == () and Summary.of(a).causes == {}
    assert len(findings_of(a, "timeout")) == 1


def test_a_query_from_another_address_is_not_linked(tmp_path):
    # Another pod asking another server the same name at the same moment.
    a = analyze_packets(tmp_path / "two-pods.pcap", [
        down(1.0),
        (1.0002, query("ext.example", id=5, src=OTHER, dst=UP, sport=42000)),
        (1.002, response("ext.example", id=5, src=UP, dst=OTHER, dport=42000)),
        down_answer(1.003),
    ])
    assert Summary.of(a).upstream == ()
    assert all(t["upstream_of"] is None for t in build(a)["transactions"])


def test_the_cause_waits_for_an_upstream_lookup_that_closes_later(tmp_path):
    # The forwarder gave up after 2 s and answered SERVFAIL (as CoreDNS does); its
    # upstream query stays unanswered and closes --max-wait later, after the client's
    # lookup: the cause is decided when both are known.
    a = analyze_packets(tmp_path / "servfail-after-upstream-timeout.pcap", [
        down(1.0), up(1.0002), down_answer(3.0, rcode=2), *end(40.0),
    ])
    assert causes(a)[1] == ("upstream_timeout", UP, None)
    (f,) = findings_of(a, "upstream_timeout")
    assert "servfail" in f.explains and findings_of(a, "servfail") == []


def test_waiting_lookups_are_capped_and_the_cap_is_a_warning(tmp_path, monkeypatch):
    import pcapdns.upstream

    monkeypatch.setattr(pcapdns.upstream, "MAX_WAITING", 1)
    a = analyze_packets(tmp_path / "two-waiting.pcap", [
        down(1.0), up(1.0002),
        down(1.5, name="two.example", id=2, sport=40002),
        up(1.5002, name="two.example", id=901, sport=50001),
        down_answer(3.0, rcode=2),
        down_answer(3.5, name="two.example", id=2, sport=40002, rcode=2),
        *end(40.0),
    ])
    # The first waiting lookup was decided early, from what was known then.
    assert causes(a)[1] == ("local", None, None)
    assert causes(a)[3] == ("upstream_timeout", UP, None)
    assert a.late_records == 0
    assert any("forgotten at their caps" in w for w in a.warnings), a.warnings


def test_the_terminal_names_the_upstream_and_the_causes(tmp_path):
    from pcapdns.output import text

    a = analyze_packets(tmp_path / "lost.pcap", [down(1.0), up(1.0002), *end(40.0)])
    out = text.render(a)
    assert f"upstream (the forwarder's queries): {UP} 1 lookups, 1 unanswered" in out
    assert "causes of the forwarder's failed or slow lookups: upstream_timeout 1" in out
