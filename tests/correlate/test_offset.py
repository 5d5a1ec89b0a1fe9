"""The clock offset between two capture points, from the queries both saw."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapdns.correlate import correlate
from pcapdns.correlate.offset import candidate_pairs, estimate
from pcapdns.correlate.records import OffsetPair, Packet, Query
from tests.correlate.scenario import TRIP, write_sides


def _q(id: int, t: float, answer: float | None, name: str = "a.test") -> Query:
    p = Packet(1, t, "10.0.0.1", 40000, "10.0.0.2", 53)
    r = Packet(2, answer, "10.0.0.2", 53, "10.0.0.1", 40000) if answer is not None else None
    return Query(packet=p, response=r, rcode=0 if r else None, id=id, qname=name, qtype=1,
                 key=(id, name.lower(), 1),
                 lookup=1, attempt=1)


def test_a_symmetric_path_gives_the_offset_exactly() -> None:
    # Out 2 ms, 1 ms at the server, back 2 ms; the server's clock 30 s ahead.
    c = [_q(1, 100.0, 100.005)]
    s = [_q(1, 130.002, 130.003)]
    pairs, rejected = candidate_pairs(c, s)
    assert rejected == 0 and len(pairs) == 1
    assert (pairs[0].low, pairs[0].high) == pytest.approx((30.0 - 0.002, 30.002))
    k = estimate(pairs)
    assert k.offset == pytest.approx(30.0) and k.error_bound == pytest.approx(0.002)


def test_the_error_bound_holds_the_truth_on_an_asymmetric_path() -> None:
    # Out 9 ms, back 1 ms: the midpoint is 4 ms off, and the bound says so.
    pairs, _ = candidate_pairs([_q(1, 100.0, 100.011)], [_q(1, 95.009, 95.010)])
    k = estimate(pairs)
    assert k.offset is not None and k.error_bound is not None
    assert abs(k.offset - (-5.0)) <= k.error_bound + 1e-9, k


def test_the_median_resists_an_odd_pair_and_the_interval_narrows() -> None:
    pairs = [OffsetPair(9.99, 10.01), OffsetPair(9.995, 10.02), OffsetPair(9.98, 10.004)]
    k = estimate(pairs)
    assert k.offset == pytest.approx(10.0) and k.interval == pytest.approx((9.995, 10.004))
    assert k.error_bound == pytest.approx(0.005)
    assert k.spread == pytest.approx(10.0075 - 9.992)


def test_pairs_that_disagree_have_no_interval() -> None:
    # A clock stepped by 1 s between the two lookups.
    k = estimate([OffsetPair(4.99, 5.01), OffsetPair(5.99, 6.01)])
    assert k.interval is None and k.error_bound is not None and k.error_bound >= 0.5


def test_ambiguous_keys_are_left_out() -> None:
    # The same ID and question twice on the client side (a retransmission, or an ID
    # reused): which server query goes with which is unknown before the offset is.
    c = [_q(7, 100.0, 100.004), _q(7, 200.0, 200.004), _q(8, 300.0, 300.004)]
    s = [_q(7, 150.002, 150.003), _q(8, 350.002, 350.003)]
    pairs, _ = candidate_pairs(c, s)
    assert len(pairs) == 1 and pairs[0].midpoint == pytest.approx(50.0005)


def test_an_answer_before_its_query_arrived_is_rejected() -> None:
    pairs, rejected = candidate_pairs([_q(1, 100.0, 100.001)], [_q(1, 100.5, 100.9)])
    assert pairs == [] and rejected == 1


def test_no_pair_no_offset() -> None:
    k = estimate([], rejected=2)
    assert k.offset is None and k.pairs == 0 and k.rejected == 2 and k.error_bound is None


@pytest.mark.parametrize("offset", [-3600.25, -0.7, 0.0, 42.5])
def test_offset_from_captures(tmp_path: Path, offset: float) -> None:
    client, server = write_sides(tmp_path, [
        ("a.test", 1, 100.0, "answered"), ("b.test", 2, 100.5, "answered"),
        ("c.test", 3, 101.0, "answered")], offset)
    c = correlate([str(client)], [str(server)])
    assert c.clock.pairs == 3 and c.clock.offset == pytest.approx(offset, abs=1e-6)
    assert c.clock.error_bound == pytest.approx(TRIP, abs=1e-6)
