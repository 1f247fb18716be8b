"""The machine under Alpaca's real rules (issue 15): a filled bracket's held stop protects the position, a
close that does not go through is retried (and a refused one re-protected), short signals are skipped on
a hard-to-borrow day, a refused entry searches again."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from breakout_bot.core.day import MAX_CLOSE_RETRY_S
from breakout_bot.core.events import (
    BarClosed,
    CloseAll,
    CloseFailed,
    OrderUpdate,
    ProtectPosition,
    SubmitBracket,
    SubmitFailed,
    Tick,
    WakeAt,
)
from breakout_bot.core.machine import step
from breakout_bot.core.model import OrderEvent, OrderSnapshot, OrderStatus, OrderType
from breakout_bot.core.reconcile import with_held_legs
from breakout_bot.core.state import Phase, State, initial_state

from .test_machine import (
    CID1,
    STOP,
    SYM,
    active,
    at,
    down,
    entry_order,
    kinds,
    leg,
    of,
    recon,
    run,
    searching,
    upd,
    warnings,
)

FILLED_PARENT = entry_order(status="filled", filled=100, legs="held")  # as status=all&nested=true shows it


def _filled_bracket(tp_status: str = "new", sl_status: str = "held") -> OrderSnapshot:
    tp, sl = FILLED_PARENT.legs
    return replace(
        FILLED_PARENT,
        legs=(replace(tp, status=OrderStatus(tp_status)), replace(sl, status=OrderStatus(sl_status))),
    )


# ---------------------------------------------------------------- the held stop leg


def test_with_held_legs_adds_the_held_stop_of_a_filled_parent() -> None:
    parent = _filled_bracket()
    tp = parent.legs[0]
    merged = with_held_legs((tp,), (parent,))
    assert [o.id for o in merged] == ["leg-limit", "leg-stop"]
    assert merged[1].status is OrderStatus.HELD
    # Not twice, not for a parent that has not filled (its legs are nested under it in the open list).
    assert with_held_legs(merged, (parent,)) == merged
    unfilled = entry_order()
    assert with_held_legs((unfilled,), (unfilled,)) == (unfilled,)


def test_a_reconcile_mid_trade_with_a_held_stop_never_flattens() -> None:
    """What Alpaca's status=open shows after the fill (the take-profit alone) plus the held stop found
    among today's orders: protected. Without the held stop, the same reconcile flattens."""
    state = active()
    parent = _filled_bracket()
    open_orders = with_held_legs((parent.legs[0],), (parent,))
    for minutes in (15, 30, 45):
        state, actions = step(
            state, recon(at(9, 41) + timedelta(minutes=minutes), position=100, open_orders=open_orders)
        )
        assert state.phase is Phase.ACTIVE_TRADE and not state.unprotected and not state.closing
        assert kinds(actions) == [] and not warnings(actions)
    _, actions = step(active(), recon(at(10, 0), position=100, open_orders=(parent.legs[0],)))
    assert kinds(actions) == ["CloseAll"]  # the stop really missing: flatten


# ---------------------------------------------------------------- closing


def _closing() -> State:
    state, actions = step(active(), Tick(at(15, 55)))
    (close,) = of(actions, CloseAll)
    assert close.stop_price == STOP  # the executor keeps the marketable exit a cent beyond it
    assert state.flattened and state.position_qty == 100
    return state


def test_a_close_blocked_by_held_shares_is_retried_within_a_second() -> None:
    state = _closing()
    state, actions = step(state, CloseFailed(SYM, "insufficient qty available", 1.0, unprotected=True))
    (wake,) = of(actions, WakeAt)
    assert wake.when == state.now + timedelta(seconds=1) and warnings(actions)
    assert of(actions, ProtectPosition) == []  # waiting for cancels, not refused: no stop of our own
    _, actions = step(state, Tick(wake.when - timedelta(milliseconds=1)))
    assert of(actions, CloseAll) == []
    state, actions = step(state, Tick(wake.when))
    assert kinds(actions) == ["CloseAll"] and state.close_retry_at is None


def test_the_legs_canceled_event_sends_the_waiting_close_at_once() -> None:
    state = _closing()
    state, _ = step(state, CloseFailed(SYM, "insufficient qty available", 1.0, unprotected=True))
    state, actions = step(state, upd("canceled", leg("limit", status="canceled"), at(15, 55, 1)))
    assert kinds(actions) == ["CloseAll"] and state.close_retry_at is None
    # ... and the other leg's cancel does not send a second one.
    state, actions = step(state, upd("canceled", leg("stop", status="canceled"), at(15, 55, 1)))
    assert kinds(actions) == []


def test_a_close_order_that_dies_is_sent_again_at_once() -> None:
    state = _closing()
    close = OrderSnapshot("c1", "uuid", SYM, "sell", OrderType.MARKET, OrderStatus.REJECTED, Decimal(100))
    _, actions = step(state, upd("rejected", close, at(15, 55, 3)))
    assert kinds(actions) == ["CloseAll"]


def test_a_refused_close_with_nothing_protecting_sends_a_stop_and_retries() -> None:
    state = _closing()
    reason = "trade denied due to pattern day trading protection (HTTP 403, code 40310100)"
    state, actions = step(state, CloseFailed(SYM, reason, 30.0, unprotected=True, refused=True))
    (protect,) = of(actions, ProtectPosition)
    assert (protect.side, protect.qty, protect.stop_price) == ("sell", Decimal(100), STOP)
    assert len(warnings(actions)) == 1 and "pattern day trading" in warnings(actions)[0]
    assert of(actions, WakeAt)[0].when == state.now + timedelta(seconds=30)


@given(st.lists(st.sampled_from([1.0, 2.0, 30.0]), min_size=1, max_size=12))
def test_close_retries_back_off_but_never_stop(retry_afters: list[float]) -> None:
    """However often the close fails, a retry is always scheduled, never more than 30 s away."""
    state = _closing()
    for retry in retry_afters:
        state, actions = step(state, CloseFailed(SYM, "x", retry, unprotected=True))
        (wake,) = of(actions, WakeAt)
        assert state.now is not None
        assert timedelta(0) < wake.when - state.now <= timedelta(seconds=MAX_CLOSE_RETRY_S)
        state, actions = step(state, Tick(wake.when))
        assert kinds(actions) == ["CloseAll"]


def test_flat_forgets_the_retry() -> None:
    state = _closing()
    state, _ = step(state, CloseFailed(SYM, "x", 1.0))
    flat = replace(
        leg("limit", status="filled"), filled_qty=Decimal(100), client_order_id="bb-AAPL-20240305-flat-155501"
    )
    state, actions = step(state, upd("fill", flat, at(15, 55, 1), "xf", 100, "100.70"))
    assert state.position_qty == 0 and state.close_retry_at is None and state.close_failures == 0
    assert of(actions, CloseAll) == []
    state, actions = step(state, Tick(at(15, 56)))
    assert of(actions, CloseAll) == []


# ---------------------------------------------------------------- shorting, refused entries


def test_short_signals_are_skipped_on_a_hard_to_borrow_day() -> None:
    state, actions = step(initial_state(SYM), recon(at(9, 0), shortable=False))
    assert not state.can_short
    assert any("not easy to borrow" in w for w in warnings(actions))  # one line, at the session's start
    state, actions = step(state, recon(at(9, 15), shortable=False))
    assert not warnings(actions)  # said once
    state, actions = run(state, [BarClosed(b) for b in searching().bars])
    state, actions = step(state, BarClosed(down(at(9, 40))))
    assert of(actions, SubmitBracket) == [] and state.phase is Phase.SEARCHING
    # The next session is easy to borrow again: shorts trade.
    state, _ = step(searching(), recon(at(9, 40, 30), shortable=True))
    state, actions = step(state, BarClosed(down(at(9, 40))))
    assert [o.side for o in of(actions, SubmitBracket)] == ["sell"]


def test_a_base_price_refusal_searches_again_and_says_why() -> None:
    state, actions = step(searching(), BarClosed(down(at(9, 40))))
    assert state.phase is Phase.ORDER_SENT
    reason = "stop_loss.stop_price must be >= base_price + 0.01 (base_price 100.61) (HTTP 422, code 42210000)"
    state, actions = step(state, SubmitFailed(CID1, reason))
    assert state.phase is Phase.SEARCHING
    assert any("base_price 100.61" in w and "searching again" in w for w in warnings(actions))


def test_a_take_profit_replaced_when_the_stop_fills_is_not_an_end() -> None:
    """Alpaca may report the take-profit `replaced` (alpaca-py #198) when the stop triggers: the
    machine sees the stop's fill and nothing else."""
    state = active()
    replaced = OrderUpdate(OrderEvent.ACCEPTED, leg("limit", status="replaced"), at(9, 50))
    state, actions = step(state, replaced)
    assert state.phase is Phase.ACTIVE_TRADE and kinds(actions) == []


@given(st.sets(st.integers(0, 29), max_size=12))
def test_on_gappy_bars_the_box_is_the_last_ten_bars_that_exist(missing: set[int]) -> None:
    """The free IEX feed has no bar for a minute without an IEX print: the guide's box is the last ten
    bars that exist, however far back they reach."""
    from breakout_bot.core.strategy import compute_box

    from .test_machine import mkbar

    bars = [
        mkbar(at(9, 30) + timedelta(minutes=i), 100.0, 100.2 + i / 100, 99.8 - i / 100, 100.0)
        for i in range(30)
        if i not in missing
    ]
    state, _ = step(initial_state(SYM), recon(at(9, 0)))
    state, _ = run(state, [BarClosed(b) for b in bars])
    if len(bars) < 10:
        assert state.box is None
        return
    assert state.box is not None
    expected = compute_box(bars[:10], 0.3)  # the ten bars that exist when it forms (frozen after)
    assert expected.end - expected.start == bars[9].end - bars[0].t  # more than 10 minutes with gaps
    assert (state.box.start, state.box.end, state.box.high, state.box.low) == (
        expected.start,
        expected.end,
        expected.high,
        expected.low,
    )
