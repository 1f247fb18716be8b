"""Issue 16 end to end: the real bot and SDK against the simulator, an entry whose POST is lost.

The simulator answers 429 (its quota's refusal: the request was not processed) or a 503 before the
order is created, on the POST and on the lookups that follow it: the bot cannot tell whether its entry
arrived. It must neither hang in order_sent for the rest of the day nor ever hold two entries.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from breakout_bot.core.state import Phase
from breakout_bot.live.runner import RunnerStatus

from .harness import NEW_YORK, SYMBOL, ny, session

ENTRY_1 = f"bb-{SYMBOL}-20240304-1"
BREAKOUT = (100.0, 100.7, 99.9, 100.6)  # closes above the 09:30-09:39 box (99.50-100.50)
HIGHER = (100.0, 101.0, 99.9, 100.9)  # above the next box too, which holds the 10:00 bar
LOST_AT = dt.datetime(2024, 3, 4, 10, 1, tzinfo=NEW_YORK)  # the 10:00 breakout's entry goes out 10:01:02


@pytest.mark.parametrize("status", [429, 503])
def test_a_lost_entry_is_given_up_in_minutes_and_its_id_used_again(tmp_path, status: int) -> None:
    bars = {"10:00": BREAKOUT, "10:30": HIGHER}
    with session(tmp_path, bars) as s:
        injected: list[bool] = []
        phases: list[tuple[dt.datetime, Phase]] = []

        def watch(status_: RunnerStatus) -> None:
            if not injected and status_.now >= LOST_AT:
                # The POST, the adapter's lookup and the reconcile's reads after it: all refused.
                s.server.control.inject_http_fault(status, count=12)
                injected.append(True)
            phase = status_.states[0].phase
            if not phases or phases[-1][1] is not phase:
                phases.append((status_.now, phase))

        runner = s.runner()
        runner.observe(watch)
        assert runner.run() == 0
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]  # one order: the 10:30 breakout's
        assert ny(entries[0].created_at) >= dt.datetime(2024, 3, 4, 10, 31, tzinfo=NEW_YORK)
        assert entries[0].status == "filled"
        sent = [(t, b - t) for (t, p), (b, _) in itertools.pairwise(phases) if p is Phase.ORDER_SENT]
        assert sent and max(span for _, span in sent) <= dt.timedelta(minutes=3), sent
        s.check_invariants()


def test_an_entry_that_arrived_unanswered_is_adopted_not_doubled(tmp_path) -> None:
    """The POST reached the broker, its answer and the lookups failed: the bot finds it, one entry."""
    with session(tmp_path, {"10:00": BREAKOUT, "10:01": (100.6, 101.6, 100.5, 101.0)}) as s:
        injected: list[bool] = []

        def lose_the_answer(_: object) -> bool:
            if not injected and s.clock.now() >= LOST_AT:
                s.server.control.inject_http_fault(504, count=1, paths="/v2/orders", after=True)
                s.server.control.inject_http_fault(503, count=8, paths="/v2/orders:by_client_order_id")
                injected.append(True)
            return False

        s.run(stop_when=lose_the_answer)
        assert injected
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]
        assert entries[0].status == "filled"
        assert [r["leg"] for r in s.journal()] == ["entry", "take_profit"]
        s.check_invariants()
