"""What the end of a capture leaves open, decided.

The core states the facts of a lookup that was still in flight when the capture ended:
``Lookup.end`` (the capture's end), its attempts with their times, and, for an A/AAAA race
lost on one of them, ``Transaction.pair_lost_retried``. What those facts mean depends on how
long a client waits, ``AnalysisConfig.timeout`` (``--timeout``), and is decided here and
nowhere else:

* an unanswered lookup is **still open** (``Lookup.open_at_end``), not a timeout, when the
  client may still have been waiting: less than ``timeout`` had passed since its last
  attempt, and less than the wait the client showed itself between its last two attempts
  (SREs stop a capture right after the failure they reproduced, and a client with
  ``options timeout:1`` gives up long before the default 5 s);
* a race whose lost query was sent less than ``timeout`` before the end, and not sent again,
  is **undecided**: its answer may have come after the capture stopped.

The core counts and tallies such a lookup only once it has these decisions
(``_core.Engine`` calls ``settle`` for each), so the summary, the tables and the detectors
all read the same outcome.
"""

from __future__ import annotations

from pcapdns.config import AnalysisConfig
from pcapdns.match.records import Lookup, Transaction


def settle(lookup: Lookup, config: AnalysisConfig) -> Lookup:
    """``lookup`` with the end-of-capture decisions made (itself when there are none)."""
    end = lookup.end
    if end is None:
        return lookup
    attempts = lookup.attempts
    still_open = lookup.answer is None and may_still_wait(end, config.timeout, attempts)
    undone = [i for i, t in enumerate(attempts) if race_undecided(t, end, config.timeout)]
    if not still_open and not undone:
        return lookup
    answer = lookup.answer
    if undone:
        settled = list(attempts)
        for i in undone:
            settled[i] = settled[i]._replace(pair_race_lost=False)
        if answer is not None:
            answer = next(s for s, t in zip(settled, attempts, strict=True) if t is answer)
        attempts = tuple(settled)
    return lookup._replace(attempts=attempts, answer=answer, open_at_end=still_open)


def may_still_wait(end: float, timeout: float, attempts: tuple[Transaction, ...]) -> bool:
    """Whether the client may still have been waiting for an answer at ``end``."""
    if not attempts:
        return False
    since = end - attempts[-1].query.time
    if since >= timeout:
        return False
    retried = next((t for t in reversed(attempts) if t.retransmission is not None), None)
    if retried is not None:
        lt = retried.query.time
        before = next((t for t in reversed(attempts)
                       if t.query.time <= lt and t is not retried), None)
        if before is not None and since >= lt - before.query.time:
            return False
    return True


def race_undecided(t: Transaction, end: float, timeout: float) -> bool:
    """Whether the race lost on ``t`` (decided on it) is left open by the capture's end:
    the lost query was not sent again and was sent less than ``timeout`` before ``end``."""
    if not t.pair_race_lost or t.pair_lost_retried:
        return False
    if t.response is None:
        lost = t.query
    elif t.pair_transaction is not None:
        lost = t.pair_transaction.query
    else:
        return False
    return end - lost.time < timeout
