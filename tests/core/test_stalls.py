"""Issue 16 in the pure core: stale bars never trade, a lost entry never hangs the day, and a fill the
broker's position read already holds moves the position once."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from breakout_bot.core.events import (
    BarClosed,
    EntryNotFound,
    Event,
    LookupEntry,
    PositionChanged,
    RecordFill,
    SubmitBracket,
    Tick,
)
from breakout_bot.core.machine import step
from breakout_bot.core.model import Bar
from breakout_bot.core.params import Params
from breakout_bot.core.pending import ABSENT_AFTER, GIVE_UP_AFTER, LOOKUP_AFTER
from breakout_bot.core.search import MAX_SIGNAL_AGE
from breakout_bot.core.state import Phase, State

from .test_machine import (
    CID1,
    SESSION,
    at,
    box_bars,
    entry_fill,
    entry_order,
    kinds,
    leg,
    of,
    order_sent,
    order_submitted,
    quiet,
    recon,
    run,
    searching,
    up,
    upd,
    waiting,
    warnings,
)

# ---------------------------------------------------------------- stale bars


def _backlog(start: datetime, minutes: int, breakout_at: datetime | None = None) -> list[Bar]:
    """`minutes` quiet bars from `start` (the standard box's), one of them a long breakout."""
    bars = [quiet(start + timedelta(minutes=i)) for i in range(minutes)]
    return [up(b.t) if b.t == breakout_at else b for b in bars]


def test_a_backlog_replayed_after_a_stall_into_the_no_entry_window_never_trades() -> None:
    """The issue's run: suspended at 15:34:54, resumed 15:46:17; the 15:37 bar broke out (and filled)."""
    state = _after(searching(), 355)
    assert state.phase is Phase.SEARCHING and state.now == at(15, 35)
    state, actions = run(state, [Tick(at(15, 46, 17)), *map(BarClosed, _backlog(at(15, 35), 11, at(15, 37)))])
    assert of(actions, SubmitBracket) == []
    assert state.phase is Phase.DONE_FOR_THE_DAY
    # Without the tick (the machine taking the bars' ends as now) the 15:37 bar would have traded.
    _, blind = run(_after(searching(), 355), list(map(BarClosed, _backlog(at(15, 35), 11, at(15, 37)))))
    assert len(of(blind, SubmitBracket)) == 1


def _after(state: State, minutes: int) -> State:
    state, _ = run(state, [BarClosed(quiet(at(9, 40) + timedelta(minutes=i))) for i in range(minutes)])
    return state


def test_a_stale_breakout_mid_day_is_logged_and_the_next_fresh_bar_trades() -> None:
    state = _after(searching(), 70)  # 10:50
    state, actions = run(state, [Tick(at(11, 2, 5)), *map(BarClosed, _backlog(at(10, 50), 12, at(10, 55)))])
    assert of(actions, SubmitBracket) == [] and state.phase is Phase.SEARCHING
    assert warnings(actions) == ["AAPL: stale signal: 10:55 bar is 7 min old; not trading it"]
    state, actions = run(state, [Tick(at(11, 3, 2)), BarClosed(up(at(11, 2)))])
    assert [o.signal_end for o in of(actions, SubmitBracket)] == [at(11, 3)]


def test_a_backlog_may_form_the_box_but_not_trade_on_it() -> None:
    state = waiting()
    state, _ = step(state, Tick(at(9, 52, 2)))  # resumed after a stall: the session's bars all late
    bars = [*box_bars(), up(at(9, 40)), up(at(9, 41))]
    state, actions = run(state, [BarClosed(b) for b in bars])
    assert state.box is not None and state.box.end == at(9, 40)
    assert of(actions, SubmitBracket) == [] and len(warnings(actions)) == 2


def test_the_age_limit_is_the_minutes_end_plus_seventy_seconds() -> None:
    for late, trades in ((MAX_SIGNAL_AGE, True), (MAX_SIGNAL_AGE + timedelta(seconds=1), False)):
        _, actions = run(searching(), [Tick(at(9, 41) + late), BarClosed(up(at(9, 40)))])
        assert bool(of(actions, SubmitBracket)) is trades, late


_minutes = st.integers(min_value=0, max_value=389)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["bar", "breakout", "tick", "stall"]),
            st.integers(min_value=0, max_value=900),  # a tick's distance from the last bar's end, in s
        ),
        min_size=1,
        max_size=120,
    ),
    st.sampled_from([Params(), Params(no_entry_minutes=7), Params(no_entry_minutes=45)]),
)
def test_no_entry_on_a_stale_bar_or_inside_the_no_entry_window(
    script: list[tuple[str, int]], params: Params
) -> None:
    """Whatever the order of ticks and bars: an entry's bar is at most 70 s old at the latest time the
    machine has heard, and that time is before the no-entry window."""
    state, _ = run(waiting(params), [BarClosed(b) for b in box_bars()])
    t = at(9, 40)
    heard = state.now
    assert heard is not None
    cutoff = SESSION.close - timedelta(minutes=params.no_entry_minutes)
    for kind, seconds in script:
        events: list[Event] = []
        if kind in ("bar", "breakout"):
            events.append(BarClosed(up(t) if kind == "breakout" else quiet(t)))
            t += timedelta(minutes=1)
        elif kind == "tick":
            events.append(Tick(t + timedelta(seconds=seconds)))
        else:  # a stall: the time first, then the missed bars
            backlog = [
                up(t + timedelta(minutes=i)) if i % 3 == 2 else quiet(t + timedelta(minutes=i))
                for i in range(seconds // 60 + 1)
            ]
            t += timedelta(minutes=len(backlog))
            events += [Tick(t + timedelta(seconds=seconds % 60)), *map(BarClosed, backlog)]
        for event in events:
            state, actions = step(state, event)
            heard = max(heard, event.now if isinstance(event, Tick) else event.bar.end)  # type: ignore[union-attr]
            for order in of(actions, SubmitBracket):
                assert heard - order.signal_end <= MAX_SIGNAL_AGE
                assert heard < cutoff
            if state.phase is not Phase.SEARCHING:
                return
        if t >= SESSION.close:
            return


# ---------------------------------------------------------------- a lost entry


def test_an_unanswered_entry_is_looked_up_then_given_up_with_its_number_reused() -> None:
    state = order_sent()  # CID1, sent at 09:41
    sent = state.entry_sent_at
    assert sent == at(9, 41)
    state, actions = step(state, Tick(sent + LOOKUP_AFTER - timedelta(seconds=1)))
    assert kinds(actions) == []
    state, actions = step(state, Tick(sent + LOOKUP_AFTER))
    assert of(actions, LookupEntry) == [LookupEntry("AAPL", CID1)]
    state, actions = step(state, Tick(sent + LOOKUP_AFTER + timedelta(seconds=20)))
    assert kinds(actions) == []  # asked 20 s ago
    # Absent, but too soon after the POST to be sure: keep waiting.
    state, actions = step(state, EntryNotFound(CID1, sent + ABSENT_AFTER - timedelta(seconds=1)))
    assert state.phase is Phase.ORDER_SENT and kinds(actions) == []
    state, actions = step(state, EntryNotFound(CID1, sent + ABSENT_AFTER))
    assert state.phase is Phase.SEARCHING and state.entries_sent_today == 0
    assert "treating it as not sent" in warnings(actions)[0]
    # The next breakout sends number 1 again: if the lost POST ever lands, the broker refuses one of them.
    state, actions = run(state, [BarClosed(quiet(at(9, 42))), BarClosed(up(at(9, 43), 101.0))])
    assert [o.client_order_id for o in of(actions, SubmitBracket)] == [CID1]


def test_with_no_answer_at_all_order_sent_ends_after_three_minutes() -> None:
    state = order_sent()
    ticks = [Tick(at(9, 41) + timedelta(seconds=s)) for s in range(30, 181, 30)]
    state, actions = run(state, ticks)
    assert len(of(actions, LookupEntry)) == 5  # 30 s, 60 s ... 150 s: the broker never answered
    assert state.phase is Phase.SEARCHING and state.entries_sent_today == 0
    assert state.now is not None and state.now - at(9, 41) == GIVE_UP_AFTER


def test_found_at_the_broker_it_is_adopted() -> None:
    state, _ = run(order_sent(), [Tick(at(9, 42)), upd("accepted", entry_order(), at(9, 42, 1))])
    assert state.phase is Phase.ORDER_SUBMITTED
    state, _ = step(state, Tick(at(9, 50)))
    assert state.phase is Phase.ORDER_SUBMITTED  # the timer is order_sent's alone


def test_a_reconcile_without_the_entry_a_minute_after_it_was_sent_ends_it() -> None:
    state, _ = step(order_sent(), recon(at(9, 41, 30), entries_sent_today=0))
    assert state.phase is Phase.ORDER_SENT  # in flight: waiting
    state, actions = step(state, recon(at(9, 42, 1), entries_sent_today=0))
    assert state.phase is Phase.SEARCHING and state.entries_sent_today == 0
    assert "treating it as not sent" in warnings(actions)[0]


def test_a_late_answer_for_a_forgotten_entry_is_ignored_once_it_is_over() -> None:
    state, _ = step(order_sent(), Tick(at(9, 44)))
    assert state.phase is Phase.SEARCHING
    state, actions = step(state, EntryNotFound(CID1, at(9, 44, 5)))
    assert state.phase is Phase.SEARCHING and actions == []


# ---------------------------------------------------------------- a fill the position read holds


ENTRY_ID = f"id-{CID1}"


def test_the_reconcile_race_does_not_double_the_position() -> None:
    """Issue 16: the reconcile read the fills (none yet), the entry filled, the position read said 100,
    and the stream's fill, queued meanwhile, made the bot believe 200."""
    state = order_submitted()
    legs = (leg("limit", status="new"), leg("stop", status="new"))
    reconciled = recon(
        at(9, 45), position=100, open_orders=legs, entries_sent_today=1, trades_today=1,
        reflected=((ENTRY_ID, Decimal(100)),),
    )  # fmt: skip
    state, _ = step(state, reconciled)
    assert state.phase is Phase.ACTIVE_TRADE and state.position_qty == 100
    state, actions = step(state, entry_fill(at(9, 44, 50)))  # the stream's copy, queued
    assert state.position_qty == 100
    assert [a.fill.execution_id for a in of(actions, RecordFill)] == ["x-entry"]  # journaled once
    assert state.avg_entry_price == Decimal("100.80") and state.trades_today == 1


def test_a_position_read_counts_only_what_it_saw() -> None:
    """Partial fills: the read held the first 40; the 60 after it are still news."""
    state, _ = step(order_submitted(), PositionChanged(at(9, 42), Decimal(40), ((ENTRY_ID, Decimal(40)),)))
    assert state.position_qty == 40
    state, actions = run(
        state, [entry_fill(at(9, 41, 50), 40, 40, "x1"), entry_fill(at(9, 42, 10), 60, 100, "x2")]
    )
    assert state.position_qty == 100 and len(of(actions, RecordFill)) == 2


def test_without_the_reads_proof_a_late_fill_still_moves_the_position() -> None:
    """The same interleaving when the read could not say which fills it held: the old arithmetic."""
    state, _ = step(order_submitted(), PositionChanged(at(9, 42), Decimal(100)))
    state, _ = step(state, entry_fill(at(9, 41, 50)))
    assert state.position_qty == 200


def test_later_reads_keep_what_earlier_ones_held() -> None:
    state, _ = step(order_submitted(), PositionChanged(at(9, 42), Decimal(40), ((ENTRY_ID, Decimal(40)),)))
    state, _ = step(state, PositionChanged(at(9, 43), Decimal(40), (("other", Decimal(5)),)))
    assert dict(state.reflected) == {ENTRY_ID: Decimal(40), "other": Decimal(5)}
    state, _ = step(
        state, recon(at(9, 44), position=40, open_orders=(entry_order(filled=40),), entries_sent_today=1)
    )
    assert dict(state.reflected)[ENTRY_ID] == Decimal(40)
    next_day = recon(at(9, 0) + timedelta(days=1), session=None)
    state, _ = step(state, next_day)
    assert state.reflected == ()
