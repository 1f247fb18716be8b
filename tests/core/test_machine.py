"""The trading state machine: every (phase, event) cell, session scenarios, and random interleavings."""

from __future__ import annotations

import ast
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import breakout_bot.core
from breakout_bot.core.events import (
    Action,
    BarClosed,
    CancelAll,
    CancelOrder,
    CloseAll,
    CloseFailed,
    EntryNotFound,
    Event,
    Log,
    LookupEntry,
    OrderUpdate,
    PositionChanged,
    Reconciled,
    RecordFill,
    SleepUntil,
    SubmitBracket,
    SubmitFailed,
    Tick,
)
from breakout_bot.core.ids import client_order_id, entries_today, order_leg, parse_client_order_id
from breakout_bot.core.machine import step
from breakout_bot.core.model import Bar, OrderEvent, OrderSnapshot, OrderStatus, OrderType, Session, Side
from breakout_bot.core.params import Params
from breakout_bot.core.pending import GIVE_UP_AFTER
from breakout_bot.core.search import MAX_SIGNAL_AGE
from breakout_bot.core.state import Phase, State, evolve, initial_state
from breakout_bot.live.status import status_fields

NY = ZoneInfo("America/New_York")
DAY = date(2024, 3, 5)  # a Tuesday
SYM = "AAPL"
CID1 = "bb-AAPL-20240305-1"
CID2 = "bb-AAPL-20240305-2"


def at(h: int, m: int, s: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, h, m, s, tzinfo=NY)


SESSION = Session(DAY, at(9, 30), at(16, 0))
EARLY = Session(DAY, at(9, 30), at(13, 0))
NEXT_OPEN = at(9, 30, day=date(2024, 3, 6))
STOP, TP = Decimal("99.50"), Decimal("101.50")  # of the standard box (99.50-100.50) long
S_STOP, S_TP = Decimal("100.50"), Decimal("98.50")  # of its short


def mkbar(t: datetime, o: float = 100.0, h: float = 100.5, low: float = 99.5, c: float = 100.0) -> Bar:
    return Bar(t=t, open=o, high=max(h, o, c), low=min(low, o, c), close=c)


def quiet(t: datetime) -> Bar:
    """Inside the standard box: high 100.20, low 99.80."""
    return mkbar(t, 100.0, 100.2, 99.8, 100.0)


def box_bars(start: datetime | None = None) -> list[Bar]:
    """Ten bars whose box is exactly 99.50-100.50 (range 1.00, above the 0.3 % floor)."""
    start = start or at(9, 30)
    bars = [quiet(start + timedelta(minutes=i)) for i in range(10)]
    bars[3] = mkbar(bars[3].t, 100.0, 100.5, 99.9, 100.1)
    bars[6] = mkbar(bars[6].t, 100.0, 100.1, 99.5, 99.9)
    return bars


def up(t: datetime, c: float = 100.8) -> Bar:
    return mkbar(t, 100.3, c + 0.05, 100.2, c)


def down(t: datetime, c: float = 99.2) -> Bar:
    return mkbar(t, 99.7, 99.8, c - 0.05, c)


def recon(
    now: datetime, session: Session | None = SESSION, position: int | Decimal = 0, **kw: object
) -> Reconciled:
    return Reconciled(now=now, session=session, next_open=NEXT_OPEN, position_qty=Decimal(position), **kw)  # type: ignore[arg-type]


def leg(kind: str, side: str = "sell", status: str = "held", price: Decimal | None = None) -> OrderSnapshot:
    stop = kind == "stop"
    return OrderSnapshot(
        id=f"leg-{kind}",
        client_order_id=f"leg-{kind}-uuid",
        symbol=SYM,
        side=side,  # type: ignore[arg-type]
        type=OrderType.STOP if stop else OrderType.LIMIT,
        status=OrderStatus(status),
        qty=Decimal(100),
        stop_price=(price or STOP) if stop else None,
        limit_price=None if stop else (price or TP),
    )


def entry_order(
    cid: str = CID1, side: str = "buy", status: str = "new", filled: int = 0, legs: str = "held"
) -> OrderSnapshot:
    exit_side = "sell" if side == "buy" else "buy"
    stop_price, tp_price = (STOP, TP) if side == "buy" else (S_STOP, S_TP)
    return OrderSnapshot(
        id=f"id-{cid}",
        client_order_id=cid,
        symbol=SYM,
        side=side,  # type: ignore[arg-type]
        type=OrderType.MARKET,
        status=OrderStatus(status),
        qty=Decimal(100),
        filled_qty=Decimal(filled),
        filled_avg_price=Decimal("100.80") if filled else None,
        order_class="bracket",
        legs=(leg("limit", exit_side, legs, tp_price), leg("stop", exit_side, legs, stop_price)),
    )


def upd(
    event: str,
    order: OrderSnapshot,
    ts: datetime,
    exec_id: str | None = None,
    qty: int | None = None,
    price: str | None = None,
) -> OrderUpdate:
    return OrderUpdate(
        event=OrderEvent(event),
        order=order,
        timestamp=ts,
        execution_id=exec_id,
        qty=None if qty is None else Decimal(qty),
        price=None if price is None else Decimal(price),
    )


def entry_fill(
    ts: datetime, qty: int = 100, cum: int = 100, exec_id: str = "x-entry", cid: str = CID1
) -> OrderUpdate:
    event = "fill" if cum == 100 else "partial_fill"
    status = "filled" if cum == 100 else "partially_filled"
    return upd(event, entry_order(cid, status=status, filled=cum), ts, exec_id, qty, "100.80")


def leg_fill(
    kind: str, ts: datetime, side: str = "sell", price: str = "99.50", exec_id: str = "x-exit"
) -> OrderUpdate:
    order = replace(leg(kind, side, "filled"), filled_qty=Decimal(100))
    return upd("fill", order, ts, exec_id, 100, price)


def run(state: State, events: Iterable[Event]) -> tuple[State, list[Action]]:
    actions: list[Action] = []
    for event in events:
        state, more = step(state, event)
        actions += more
    return state, actions


def kinds(actions: Iterable[Action]) -> list[str]:
    return [type(a).__name__ for a in actions if not isinstance(a, Log)]


def of(actions: Iterable[Action], cls: type) -> list[Any]:
    return [a for a in actions if isinstance(a, cls)]


def warnings(actions: Iterable[Action]) -> list[str]:
    return [a.message for a in actions if isinstance(a, Log) and a.level == "warning"]


# ---------------------------------------------------------------- representative states


def waiting(params: Params | None = None, session: Session = SESSION) -> State:
    state, actions = step(initial_state(SYM, params), recon(at(9, 0), session))
    assert state.phase is Phase.WAITING_FOR_OPEN and kinds(actions) == ["SleepUntil"]
    return state


def searching(params: Params | None = None, session: Session = SESSION) -> State:
    state, _ = run(waiting(params, session), [BarClosed(b) for b in box_bars()])
    assert state.phase is Phase.SEARCHING and state.box is not None
    return state


def order_sent(params: Params | None = None) -> State:
    state, actions = step(searching(params), BarClosed(up(at(9, 40))))
    assert state.phase is Phase.ORDER_SENT and kinds(actions) == ["SubmitBracket"]
    return state


def order_submitted(params: Params | None = None) -> State:
    state, _ = step(order_sent(params), upd("accepted", entry_order(), at(9, 41, 1)))
    assert state.phase is Phase.ORDER_SUBMITTED
    return state


def active(params: Params | None = None) -> State:
    state, _ = step(order_submitted(params), entry_fill(at(9, 41, 2)))
    assert state.phase is Phase.ACTIVE_TRADE and state.position_qty == 100
    return state


def done_flattened() -> State:
    state, _ = step(active(), Tick(at(15, 55)))
    assert state.phase is Phase.DONE_FOR_THE_DAY and state.flattened
    return state


def done_quiet() -> State:
    state, _ = step(searching(), Tick(at(15, 41)))
    assert state.phase is Phase.DONE_FOR_THE_DAY and not state.flattened
    return state


# ---------------------------------------------------------------- (a) every (phase, event) cell

W, S, OS, SUB, A, D = (
    Phase.WAITING_FOR_OPEN,
    Phase.SEARCHING,
    Phase.ORDER_SENT,
    Phase.ORDER_SUBMITTED,
    Phase.ACTIVE_TRADE,
    Phase.DONE_FOR_THE_DAY,
)
ROWS = {
    "waiting": waiting,
    "searching": searching,
    "order_sent": order_sent,
    "order_submitted": order_submitted,
    "active": active,
    "done_flattened": done_flattened,
    "done_quiet": done_quiet,
}


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _payload(kind: str, state: State) -> Event:
    assert state.now is not None
    now = state.now
    soon = now + timedelta(seconds=1)
    if kind == "reconciled":  # the broker agrees with what the machine believes
        orders: tuple[OrderSnapshot, ...] = ()
        if state.phase in (OS, SUB):
            orders = (entry_order(),)
        elif state.position_qty:
            orders = (leg("limit", status="new"), leg("stop", status="new"))
        return recon(
            now + timedelta(seconds=30),
            position=state.position_qty,
            open_orders=orders,
            entries_sent_today=state.entries_sent_today,
            trades_today=state.trades_today,
        )
    if kind == "tick":
        return Tick(now + timedelta(minutes=1))
    if kind == "tick_flatten":
        return Tick(at(15, 55))
    if kind == "bar_breakout":
        return BarClosed(up(_minute(now)))
    if kind == "entry_fill":
        return entry_fill(soon)
    if kind == "entry_canceled":
        return upd("canceled", entry_order(status="canceled"), soon)
    if kind == "stop_fill":
        return leg_fill("stop", soon)
    if kind == "stop_canceled":
        return upd("canceled", leg("stop", status="canceled"), soon)
    if kind == "submit_failed":
        return SubmitFailed(CID1, "insufficient buying power")
    if kind == "position_flat":
        return PositionChanged(soon, Decimal(0))
    if kind == "position_long":
        return PositionChanged(soon, Decimal(100))
    if kind == "close_failed":
        return CloseFailed(SYM, "insufficient qty available (held_for_orders 100)", 1.0, unprotected=True)
    raise AssertionError(kind)


FL = ("CancelAll", "SleepUntil")  # the flatten, flat: cancel what may work
FL_ENTRY = ("CancelAll", "CloseAll", "SleepUntil")  # an entry working: cancel it, close what it filled
FL_HELD = ("CloseAll", "SleepUntil")  # the flatten holding a position: close it (the executor keeps its stop)
# (row, event kind) -> (phase after, non-Log action kinds). Written out cell by cell.
TABLE: dict[tuple[str, str], tuple[Phase, tuple[str, ...]]] = {
    # waiting_for_open (09:00)
    ("waiting", "reconciled"): (W, ("SleepUntil",)),
    ("waiting", "tick"): (W, ()),
    ("waiting", "tick_flatten"): (D, FL),
    ("waiting", "bar_breakout"): (W, ()),  # a 09:00 bar is pre-market
    ("waiting", "entry_fill"): (A, ("RecordFill",)),  # fixed: a position never waits to search
    ("waiting", "entry_canceled"): (W, ()),
    ("waiting", "stop_fill"): (A, ("RecordFill",)),
    ("waiting", "stop_canceled"): (W, ()),
    ("waiting", "submit_failed"): (W, ()),
    ("waiting", "position_flat"): (W, ()),
    ("waiting", "position_long"): (A, ()),  # fixed: was waiting (then searching while holding)
    ("waiting", "close_failed"): (W, ()),
    # searching (09:40, box 99.50-100.50)
    ("searching", "reconciled"): (S, ()),
    ("searching", "tick"): (S, ()),
    ("searching", "tick_flatten"): (D, FL),
    ("searching", "bar_breakout"): (OS, ("SubmitBracket",)),
    ("searching", "entry_fill"): (A, ("RecordFill",)),
    ("searching", "entry_canceled"): (S, ()),
    ("searching", "stop_fill"): (A, ("RecordFill",)),
    ("searching", "stop_canceled"): (S, ()),
    ("searching", "submit_failed"): (S, ()),
    ("searching", "position_flat"): (S, ()),
    ("searching", "position_long"): (A, ()),
    ("searching", "close_failed"): (S, ()),
    # order_sent (09:41, entry 1 sent)
    ("order_sent", "reconciled"): (SUB, ()),
    ("order_sent", "tick"): (OS, ("LookupEntry",)),  # a minute unanswered: ask the broker
    ("order_sent", "tick_flatten"): (D, FL_ENTRY),
    ("order_sent", "bar_breakout"): (OS, ()),
    ("order_sent", "entry_fill"): (A, ("RecordFill",)),
    ("order_sent", "entry_canceled"): (S, ()),
    ("order_sent", "stop_fill"): (A, ("RecordFill",)),
    ("order_sent", "stop_canceled"): (OS, ()),
    ("order_sent", "submit_failed"): (S, ()),
    ("order_sent", "position_flat"): (OS, ()),
    ("order_sent", "position_long"): (A, ()),
    ("order_sent", "close_failed"): (OS, ()),
    # order_submitted
    ("order_submitted", "reconciled"): (SUB, ()),
    ("order_submitted", "tick"): (SUB, ()),
    ("order_submitted", "tick_flatten"): (D, FL_ENTRY),
    ("order_submitted", "bar_breakout"): (SUB, ()),
    ("order_submitted", "entry_fill"): (A, ("RecordFill",)),
    ("order_submitted", "entry_canceled"): (S, ()),
    ("order_submitted", "stop_fill"): (A, ("RecordFill",)),
    ("order_submitted", "stop_canceled"): (SUB, ()),
    ("order_submitted", "submit_failed"): (S, ()),
    ("order_submitted", "position_flat"): (SUB, ()),
    ("order_submitted", "position_long"): (A, ()),
    ("order_submitted", "close_failed"): (SUB, ()),
    # active_trade (long 100)
    ("active", "reconciled"): (A, ()),
    ("active", "tick"): (A, ()),
    ("active", "tick_flatten"): (D, FL_HELD),
    ("active", "bar_breakout"): (A, ()),
    ("active", "entry_fill"): (A, ()),  # the same execution again: applied once
    ("active", "entry_canceled"): (A, ()),
    ("active", "stop_fill"): (S, ("RecordFill",)),
    ("active", "stop_canceled"): (A, ("CloseAll",)),  # unprotected: flatten
    ("active", "submit_failed"): (A, ()),  # late: ignored with a warning
    ("active", "position_flat"): (S, ()),
    ("active", "position_long"): (A, ()),
    ("active", "close_failed"): (A, ("WakeAt",)),  # retried at the WakeAt
    # done_for_the_day after the 15:55 flatten (CloseAll not filled yet: still long 100)
    ("done_flattened", "reconciled"): (D, ("CloseAll",)),  # still not flat: again
    ("done_flattened", "tick"): (D, ()),
    ("done_flattened", "tick_flatten"): (D, ()),
    ("done_flattened", "bar_breakout"): (D, ()),
    ("done_flattened", "entry_fill"): (D, ()),  # already seen
    ("done_flattened", "entry_canceled"): (D, ()),
    ("done_flattened", "stop_fill"): (D, ("RecordFill",)),
    ("done_flattened", "stop_canceled"): (D, ()),  # we cancelled it ourselves
    ("done_flattened", "submit_failed"): (D, ()),
    ("done_flattened", "position_flat"): (D, ()),
    ("done_flattened", "position_long"): (D, ("CloseAll",)),  # still holding: is a close working?
    ("done_flattened", "close_failed"): (D, ("WakeAt",)),  # retried at the WakeAt
    # done_for_the_day in the no-entry window (15:41, flat, not flattened yet)
    ("done_quiet", "reconciled"): (D, ()),
    ("done_quiet", "tick"): (D, ()),
    ("done_quiet", "tick_flatten"): (D, FL),
    ("done_quiet", "bar_breakout"): (D, ()),
    ("done_quiet", "entry_fill"): (D, ("RecordFill",)),
    ("done_quiet", "entry_canceled"): (D, ()),
    ("done_quiet", "stop_fill"): (D, ("RecordFill",)),
    ("done_quiet", "stop_canceled"): (D, ()),
    ("done_quiet", "submit_failed"): (D, ()),
    ("done_quiet", "position_flat"): (D, ()),
    ("done_quiet", "position_long"): (D, ()),
    ("done_quiet", "close_failed"): (D, ()),
}
EVENT_KINDS = sorted({k for _, k in TABLE})


def test_table_covers_every_phase_and_event_type() -> None:
    assert len(TABLE) == len(ROWS) * len(EVENT_KINDS)
    assert {ROWS[row]().phase for row in ROWS} == set(Phase)
    covered = {type(_payload(kind, ROWS[row]())) for row in ROWS for kind in EVENT_KINDS}
    assert covered == {Reconciled, Tick, BarClosed, OrderUpdate, SubmitFailed, PositionChanged, CloseFailed}


@pytest.mark.parametrize(("row", "kind"), sorted(TABLE))
def test_phase_event_table(row: str, kind: str) -> None:
    state = ROWS[row]()
    expected_phase, expected_kinds = TABLE[(row, kind)]
    new_state, actions = step(state, _payload(kind, state))
    assert (new_state.phase, tuple(kinds(actions))) == (expected_phase, expected_kinds)
    if "SleepUntil" in expected_kinds and row != "waiting":
        assert of(actions, SleepUntil)[0].when == NEXT_OPEN
    if new_state.phase is Phase.SEARCHING:
        assert new_state.entry is None and new_state.position_qty == 0
    if "SubmitBracket" in expected_kinds:
        assert new_state.entries_sent_today == state.entries_sent_today + 1


# ---------------------------------------------------------------- (b) session scenarios


def test_no_box_before_ten_closed_session_bars() -> None:
    state = waiting()
    pre = [mkbar(at(9, 20 + i), 100, 105, 95, 104) for i in range(10)]  # pre-market: ignored
    state, actions = run(state, [BarClosed(b) for b in pre])
    assert state.bars == () and actions == []
    bars = box_bars()
    bars[5] = mkbar(bars[5].t, 100.0, 100.5, 99.5, 100.45)
    state, actions = run(state, [BarClosed(b) for b in bars[:9]])
    assert state.phase is Phase.SEARCHING and state.box is None
    assert of(actions, SubmitBracket) == []
    state, actions = step(state, BarClosed(bars[9]))  # the 09:39 bar closes at 09:40
    assert state.box is not None
    assert (state.box.start, state.box.end) == (at(9, 30), at(9, 40))
    assert (state.box.high, state.box.low) == (100.5, 99.5)
    assert of(actions, SubmitBracket) == []
    state, actions = step(state, BarClosed(up(at(9, 40))))
    assert len(of(actions, SubmitBracket)) == 1


def test_long_breakout_submits_the_right_bracket() -> None:
    state, actions = step(searching(), BarClosed(up(at(9, 40), 100.8)))
    (order,) = of(actions, SubmitBracket)
    assert order == SubmitBracket(
        SYM,
        "buy",
        100,
        STOP,
        TP,
        CID1,
        box=state.box,
        reference_price=order.reference_price,
        signal_end=at(9, 41),
    )
    assert order.reference_price == Decimal("100.8")  # the signal bar's close: the risk gate values at it
    assert state.entries_sent_today == 1 and state.entry == order
    # A close exactly at the box high is not a breakout.
    _, actions = step(searching(), BarClosed(mkbar(at(9, 40), 100.2, 100.6, 100.1, 100.5)))
    assert of(actions, SubmitBracket) == []


def test_short_breakout_and_stop_fill() -> None:
    state, actions = step(searching(), BarClosed(down(at(9, 40), 99.2)))
    (order,) = of(actions, SubmitBracket)
    assert (order.side, order.stop_price, order.take_profit_price) == ("sell", S_STOP, S_TP)
    sell = entry_order(side="sell", status="filled", filled=100)
    state, actions = run(
        state,
        [
            upd("accepted", entry_order(side="sell"), at(9, 41, 1)),
            upd("fill", sell, at(9, 41, 2), "x1", 100, "99.20"),
        ],
    )
    assert state.phase is Phase.ACTIVE_TRADE and state.position_qty == -100
    state, actions = step(state, leg_fill("stop", at(9, 50, 30), side="buy", price="100.50"))
    assert state.phase is Phase.SEARCHING and state.position_qty == 0
    assert state.realized_pnl_today == pytest.approx(-130.0)
    (rec,) = of(actions, RecordFill)
    assert (rec.fill.leg, rec.fill.side, rec.fill.qty) == ("stop_loss", "buy", 100)


def test_ack_then_partial_then_rest() -> None:
    state = order_sent()
    state, actions = step(state, upd("accepted", entry_order(), at(9, 41, 1)))
    assert state.phase is Phase.ORDER_SUBMITTED and of(actions, SubmitBracket) == []
    state, actions = step(state, entry_fill(at(9, 41, 2), qty=40, cum=40, exec_id="p1"))
    assert state.phase is Phase.ACTIVE_TRADE and state.position_qty == 40 and state.trades_today == 1
    assert [a.fill.qty for a in of(actions, RecordFill)] == [40]
    state, actions = step(state, entry_fill(at(9, 41, 3), qty=60, cum=100, exec_id="p2"))
    assert state.position_qty == 100 and state.trades_today == 1
    (rec,) = of(actions, RecordFill)
    assert (rec.fill.qty, rec.fill.cum_qty, rec.fill.leg) == (60, 100, "entry")  # own size, not cumulative


def test_partial_without_its_own_size_is_not_counted_as_cumulative() -> None:
    state, actions = step(order_submitted(), upd("partial_fill", entry_order(filled=40), at(9, 41, 2), "p1"))
    assert of(actions, RecordFill) == [] and state.position_qty == 0


@pytest.mark.parametrize("event", ["canceled", "rejected", "expired"])
def test_dead_entry_with_nothing_filled_searches_again(event: str) -> None:
    for start in (order_sent, order_submitted):
        state, actions = step(start(), upd(event, entry_order(status=event), at(9, 41, 5)))
        assert state.phase is Phase.SEARCHING and state.entry is None and state.position_qty == 0
        assert kinds(actions) == [] and warnings(actions)
        # The entry number is used up: the next entry is number 2.
        state, actions = run(state, [BarClosed(quiet(at(9, 41))), BarClosed(up(at(9, 42), 101.0))])
        assert [o.client_order_id for o in of(actions, SubmitBracket)] == [CID2]


def test_partial_fill_then_cancel_trades_the_partial() -> None:
    state, _ = step(order_submitted(), entry_fill(at(9, 41, 2), qty=40, cum=40, exec_id="p1"))
    state, actions = step(state, upd("canceled", entry_order(status="canceled", filled=40), at(9, 41, 9)))
    assert state.phase is Phase.ACTIVE_TRADE and state.position_qty == 40 and kinds(actions) == []


def test_submit_failed_searches_again() -> None:
    state, actions = step(order_sent(), SubmitFailed(CID1, "422 insufficient qty"))
    assert state.phase is Phase.SEARCHING and state.entry is None and warnings(actions)
    # Someone else's cid is not ours.
    state2, actions2 = step(order_sent(), SubmitFailed(CID2, "x"))
    assert state2.phase is Phase.ORDER_SENT and actions2 == []


def _trade_until(exit_minute: int) -> State:
    """Long from 09:41; quiet bars 09:41 .. 09:(exit_minute-1), each with a distinct high."""
    state = active()
    bars = [mkbar(at(9, m), 100.9, 101.0 + m / 100, 100.7, 100.9) for m in range(41, exit_minute)]
    state, _ = run(state, [BarClosed(b) for b in bars])
    assert state.phase is Phase.ACTIVE_TRADE
    return state


def test_take_profit_then_box_of_the_ten_bars_ending_with_the_exit_bar() -> None:
    state = _trade_until(55)
    state, actions = step(state, leg_fill("limit", at(9, 55, 30), price="101.50"))
    assert state.phase is Phase.SEARCHING and state.position_qty == 0
    assert state.realized_pnl_today == pytest.approx(70.0)
    assert state.box is None  # not from the ten bars before the exit
    exit_bar = mkbar(at(9, 55), 101.2, 101.6, 101.1, 101.3)
    state, actions = step(state, BarClosed(exit_bar))
    assert state.box is not None
    assert (state.box.start, state.box.end) == (at(9, 46), at(9, 56))
    assert state.box.high == 101.6 and state.box.low == 100.7
    assert of(actions, SubmitBracket) == []
    state, actions = step(state, BarClosed(up(at(9, 56), 101.7)))
    assert [o.client_order_id for o in of(actions, SubmitBracket)] == [CID2]


def test_exit_reported_after_its_bar_closed_still_boxes_from_the_exit_bar() -> None:
    """The exit bar closes (10:56) before its fill event arrives: the box forms at once, from the ten bars
    ending with the exit bar (it used to wait for the next bar and end the box there)."""
    state = _trade_until(56)
    state, _ = step(state, leg_fill("limit", at(9, 55, 30), price="101.50"))
    assert state.phase is Phase.SEARCHING and state.box is not None
    assert (state.box.start, state.box.end) == (at(9, 46), at(9, 56))


def test_an_earlier_trades_stop_canceled_late_does_not_flatten_this_trade() -> None:
    """Issue 17: the stream delivered the previous trade's stop-leg cancel after the next entry had
    filled (the REST ledger had seen the take-profit first), and the bot flattened a protected trade."""
    earlier = leg("stop", status="canceled", price=Decimal("98.75"))  # not this trade's stop (99.50)
    state, actions = step(active(), upd("canceled", earlier, at(9, 45)))
    assert kinds(actions) == [] and state.phase is Phase.ACTIVE_TRADE and not state.closing


def test_stop_leg_canceled_with_position_open_flattens_once() -> None:
    state, actions = step(active(), upd("canceled", leg("stop", status="canceled"), at(9, 45)))
    assert kinds(actions) == ["CloseAll"] and warnings(actions)
    # Our own CancelAll now cancels the take-profit leg and (re-)reports the stop: no second CloseAll.
    state, actions = run(
        state,
        [
            upd("canceled", leg("limit", status="canceled"), at(9, 45, 1)),
            upd("canceled", leg("stop", status="canceled"), at(9, 45, 1)),
        ],
    )
    assert kinds(actions) == []
    flatten = OrderSnapshot(
        "f", "close-uuid", SYM, "sell", OrderType.MARKET, OrderStatus.FILLED, Decimal(100), Decimal(100)
    )
    state, actions = step(state, upd("fill", flatten, at(9, 45, 2), "xf", 100, "100.60"))
    assert state.phase is Phase.SEARCHING and state.position_qty == 0
    assert of(actions, RecordFill)[0].fill.leg == "flatten"


def _searching_at(t: datetime, session: Session = SESSION) -> State:
    """A restart at `t` with the last ten bars: the box forms from them at once."""
    bars = tuple(box_bars(t - timedelta(minutes=10)))
    state, actions = step(initial_state(SYM), recon(t, session, recent_bars=bars))
    assert state.phase is Phase.SEARCHING and state.box is not None, actions
    return state


def test_no_entry_when_twenty_minutes_or_less_remain() -> None:
    state = _searching_at(at(15, 30))
    quiet_bars = [BarClosed(quiet(at(15, m))) for m in range(30, 38)]
    state, _ = run(state, quiet_bars)
    trading, actions = step(state, BarClosed(up(at(15, 38))))  # closes 15:39: 21 minutes left
    assert len(of(actions, SubmitBracket)) == 1 and trading.phase is Phase.ORDER_SENT
    state, _ = step(state, BarClosed(quiet(at(15, 38))))
    state, actions = step(state, BarClosed(up(at(15, 39))))  # closes 15:40: 20 minutes left
    assert of(actions, SubmitBracket) == [] and state.phase is Phase.DONE_FOR_THE_DAY
    # And a tick at 15:40 alone ends the search.
    state, _ = step(_searching_at(at(15, 30)), Tick(at(15, 40)))
    assert state.phase is Phase.DONE_FOR_THE_DAY


def test_flatten_at_close_minus_five() -> None:
    state, actions = step(active(), Tick(at(15, 54, 59)))
    assert state.phase is Phase.ACTIVE_TRADE and actions == []
    state, actions = step(state, Tick(at(15, 55)))
    assert kinds(actions) == ["CloseAll", "SleepUntil"]
    assert of(actions, SleepUntil)[0].when == NEXT_OPEN
    assert state.phase is Phase.DONE_FOR_THE_DAY and state.flattened
    state, actions = step(state, Tick(at(15, 56)))
    assert actions == []


def test_early_close_flattens_at_1255() -> None:
    state = searching(session=EARLY)
    state, actions = run(state, [BarClosed(up(at(9, 40))), upd("accepted", entry_order(), at(9, 41, 1))])
    state, _ = step(state, entry_fill(at(9, 41, 2)))
    state, actions = step(state, Tick(at(12, 54)))
    assert state.phase is Phase.ACTIVE_TRADE and actions == []
    state, actions = step(state, Tick(at(12, 55)))
    assert kinds(actions) == ["CloseAll", "SleepUntil"] and state.phase is Phase.DONE_FOR_THE_DAY
    # No entry in the last 20 minutes of the short day either.
    state, _ = step(_searching_at(at(12, 30), EARLY), Tick(at(12, 40)))
    assert state.phase is Phase.DONE_FOR_THE_DAY


def test_skipped_flatten_window_still_flattens_at_the_close() -> None:
    """No tick between 15:55 and 16:00 (runner stalled): the first event after the close must still
    cancel and close (it used to just go to sleep holding the position)."""
    state, actions = step(active(), Tick(at(16, 0, 5)))
    assert kinds(actions) == ["CloseAll", "SleepUntil"]
    assert state.phase is Phase.DONE_FOR_THE_DAY and state.flattened


def _exit_with(params: Params, price: str) -> tuple[State, list[Action]]:
    state = active(params)
    return step(state, leg_fill("stop", at(9, 50, 30), price=price))


def test_max_trades_reached_is_done() -> None:
    state, actions = _exit_with(Params(max_trades=1), "101.50")
    assert state.phase is Phase.DONE_FOR_THE_DAY and of(actions, SleepUntil)
    state, _ = _exit_with(Params(max_trades=2), "101.50")
    assert state.phase is Phase.SEARCHING


def test_max_daily_loss_reached_is_done() -> None:
    state, _ = _exit_with(Params(max_daily_loss=100.0), "99.50")  # -130
    assert state.realized_pnl_today == pytest.approx(-130.0)
    assert state.phase is Phase.DONE_FOR_THE_DAY
    state, _ = _exit_with(Params(max_daily_loss=200.0), "99.50")
    assert state.phase is Phase.SEARCHING


def test_restart_keeps_the_days_realized_loss() -> None:
    """A restarted bot learns today's realized P&L from the broker's fills: the daily loss limit holds."""
    params = Params(max_daily_loss=100.0)
    state, _ = step(initial_state(SYM, params), recon(at(9, 50), realized_pnl_today=-130.0))
    assert state.realized_pnl_today == -130.0
    state, actions = run(state, [BarClosed(b) for b in box_bars()])
    state, actions = step(state, BarClosed(up(at(9, 55))))
    assert not of(actions, SubmitBracket) and state.phase is Phase.DONE_FOR_THE_DAY


def test_a_later_reconcile_keeps_the_larger_loss_of_ours_and_the_brokers() -> None:
    """Stream and ledger may each lag a fill: the lower realized P&L counts (None: the ledger unread)."""
    state, _ = _exit_with(Params(), "99.50")  # -130 seen on the stream
    for broker, expected in ((-200.0, -200.0), (0.0, -130.0), (None, -130.0)):
        after, _ = step(state, recon(at(9, 52), realized_pnl_today=broker))
        assert after.realized_pnl_today == pytest.approx(expected)
    restarted, _ = step(initial_state(SYM), recon(at(9, 52), realized_pnl_today=None))
    assert restarted.realized_pnl_today == 0.0  # a restart with the ledger unread knows nothing more


def test_restart_mid_trade_counts_the_exit_against_the_limit() -> None:
    """Restarted while holding: the entry price from today's fills makes the exit's P&L count."""
    params = Params(max_daily_loss=100.0)
    orders = (entry_order(status="filled", filled=100, legs="new"),)
    start = recon(at(9, 45), position=100, open_orders=orders, entries_sent_today=1, trades_today=1)
    for average, realized, phase in (
        (Decimal("100.80"), -130.0, Phase.DONE_FOR_THE_DAY),
        (None, 0.0, Phase.SEARCHING),  # unknown entry price: the exit's P&L cannot be counted
    ):
        state, _ = step(initial_state(SYM, params), replace(start, avg_entry_price=average))
        assert state.phase is Phase.ACTIVE_TRADE and state.avg_entry_price == average
        state, _ = step(state, leg_fill("stop", at(9, 50, 30), price="99.50"))
        assert state.realized_pnl_today == pytest.approx(realized) and state.phase is phase


def test_restart_with_protected_position() -> None:
    for now in (at(9, 0), at(10, 0)):
        for legs_status in ("held", "new"):
            orders = (entry_order(status="filled", filled=100, legs=legs_status),)
            state, actions = step(
                initial_state(SYM), recon(now, position=100, open_orders=orders, entries_sent_today=1)
            )
            assert state.phase is Phase.ACTIVE_TRADE and not state.unprotected
            assert kinds(actions) == []
            state, actions = run(state, [Tick(now + timedelta(minutes=m)) for m in range(1, 60)])
            assert kinds(actions) == []


def test_restart_with_unprotected_position() -> None:
    only_tp = (leg("limit", status="new"),)
    state, actions = step(initial_state(SYM), recon(at(10, 0), position=100, open_orders=only_tp))
    assert state.phase is Phase.ACTIVE_TRADE and kinds(actions) == ["CloseAll"]
    # Before the open: flatten when the market opens (not before: the close would queue).
    state, actions = step(initial_state(SYM), recon(at(9, 0), position=-100))
    assert kinds(actions) == [] and state.unprotected
    state, actions = step(state, Tick(at(9, 30)))
    assert kinds(actions) == ["CloseAll"]


def test_restart_with_working_entry_never_sends_a_second_one() -> None:
    state, actions = step(
        initial_state(SYM),
        recon(at(9, 45), open_orders=(entry_order(),), entries_sent_today=1, recent_bars=tuple(box_bars())),
    )
    assert state.phase is Phase.ORDER_SUBMITTED
    assert state.entry is not None and state.entry.client_order_id == CID1
    assert (state.entry.stop_price, state.entry.take_profit_price) == (STOP, TP)
    state, actions = run(state, [BarClosed(up(at(9, 45 + i))) for i in range(5)])
    assert of(actions, SubmitBracket) == []
    state, actions = run(
        state, [entry_fill(at(9, 50, 1)), BarClosed(up(at(9, 50))), leg_fill("stop", at(9, 52, 3))]
    )
    assert of(actions, SubmitBracket) == [] and state.phase is Phase.SEARCHING
    state, actions = run(
        state, [BarClosed(quiet(at(9, 51 + i))) for i in range(3)] + [BarClosed(up(at(9, 54), 101.0))]
    )
    assert [o.client_order_id for o in of(actions, SubmitBracket)] == [CID2]


def test_restart_in_the_middle_of_a_trade() -> None:
    orders = (leg("limit", status="new"), leg("stop", status="new"))
    state, actions = step(
        initial_state(SYM),
        recon(at(10, 0), position=100, open_orders=orders, entries_sent_today=3, trades_today=3),
    )
    assert state.phase is Phase.ACTIVE_TRADE and kinds(actions) == []
    bars = [up(at(10, m), 101.0 + m / 100) for m in range(0, 15)]
    state, actions = run(state, [BarClosed(b) for b in bars])
    assert of(actions, SubmitBracket) == []
    state, actions = step(state, leg_fill("limit", at(10, 14, 30), price="101.50"))
    assert state.phase is Phase.SEARCHING and state.box is not None  # the 10:14 exit bar has closed
    state, actions = step(state, BarClosed(up(at(10, 15), 102.0)))
    assert [o.client_order_id for o in of(actions, SubmitBracket)] == ["bb-AAPL-20240305-4"]


def test_reconcile_while_submission_in_flight_keeps_waiting() -> None:
    """ORDER_SENT and the broker has not seen our cid yet: 'no working entry' proves nothing."""
    state, actions = step(order_sent(), recon(at(9, 41, 1), entries_sent_today=0))
    assert state.phase is Phase.ORDER_SENT and kinds(actions) == []
    state, actions = step(state, BarClosed(up(at(9, 41))))
    assert of(actions, SubmitBracket) == []
    # Once the broker knows the cid and it is not working, it is over: search again.
    state, actions = step(state, recon(at(9, 42, 1), entries_sent_today=1))
    assert state.phase is Phase.SEARCHING


def test_duplicated_execution_applied_once() -> None:
    update = entry_fill(at(9, 41, 2))
    state, actions = run(order_submitted(), [update, update])
    assert len(of(actions, RecordFill)) == 1 and state.position_qty == 100 and state.trades_today == 1
    exit_fill = leg_fill("stop", at(9, 45))
    state, actions = run(state, [exit_fill, exit_fill])
    assert len(of(actions, RecordFill)) == 1 and state.position_qty == 0


def test_holiday_reconcile_sleeps_to_next_open() -> None:
    state, actions = step(initial_state(SYM), recon(at(10, 0), session=None))
    assert state.phase is Phase.DONE_FOR_THE_DAY
    assert [a.when for a in of(actions, SleepUntil)] == [NEXT_OPEN]
    state, actions = step(state, Tick(at(10, 1)))
    assert actions == []
    state, actions = step(state, BarClosed(up(at(10, 0))))
    assert kinds(actions) == [] and state.bars == ()


def test_new_day_reconcile_resets_daily_counters() -> None:
    state, _ = _exit_with(Params(), "99.50")
    state, _ = step(state, Tick(at(15, 55)))
    state = replace(state, entries_sent_today=3, trades_today=3, seen_executions=frozenset({"old"}))
    tomorrow = date(2024, 3, 6)
    nxt = Session(tomorrow, at(9, 30, day=tomorrow), at(16, 0, day=tomorrow))
    state, actions = step(state, recon(at(9, 0, day=tomorrow), session=nxt))
    assert state.phase is Phase.WAITING_FOR_OPEN
    assert (state.entries_sent_today, state.trades_today, state.realized_pnl_today) == (0, 0, 0.0)
    assert not state.flattened and state.seen_executions == frozenset() and state.bars == ()
    assert [a.when for a in of(actions, SleepUntil)] == [nxt.open]
    state, actions = run(state, [BarClosed(b) for b in box_bars(at(9, 30, day=tomorrow))])
    state, actions = step(state, BarClosed(up(at(9, 40, day=tomorrow))))
    assert [o.client_order_id for o in of(actions, SubmitBracket)] == ["bb-AAPL-20240306-1"]


@pytest.mark.parametrize(
    "bad",
    [
        Bar(at(9, 40), float("nan"), 101.0, 100.0, 100.5),
        Bar(at(9, 40), 100.5, 100.0, 101.0, 100.5),  # high < low
        Bar(at(9, 40), 100.5, 101.0, 100.0, 0.0),
    ],
)
def test_invalid_bar_ignored_with_warning(bad: Bar) -> None:
    state = searching()
    new_state, actions = step(state, BarClosed(bad))
    assert new_state == state and kinds(actions) == [] and warnings(actions)


def test_out_of_order_and_duplicate_bars_ignored() -> None:
    state = searching()
    for t in (at(9, 39), at(9, 35), at(9, 20)):
        new_state, actions = step(state, BarClosed(up(t, 150.0)))
        assert new_state == state and of(actions, SubmitBracket) == []


def test_position_after_flatten_is_flattened_again() -> None:
    """The entry's fill races the 15:55 CancelAll and wins: a position opens after the flatten."""
    state, _ = step(order_submitted(), Tick(at(15, 55)))
    assert state.flattened
    state, actions = step(state, entry_fill(at(15, 55, 1)))
    assert kinds(actions) == ["RecordFill", "CloseAll"]
    assert state.phase is Phase.DONE_FOR_THE_DAY


def test_the_flatten_cancels_an_entry_still_filling_before_it_closes() -> None:
    """30 of 100 filled at 15:55: the rest of the entry is canceled first, or its later fills would
    open the position again behind the close (the random interleavings found it)."""
    state, _ = step(order_submitted(), entry_fill(at(15, 50), qty=30, cum=30))
    assert state.phase is Phase.ACTIVE_TRADE and state.position_qty == 30
    state, actions = step(state, Tick(at(15, 55)))
    assert kinds(actions) == ["CancelAll", "CloseAll", "SleepUntil"]
    full, _ = step(order_submitted(), entry_fill(at(15, 50)))
    _, actions = step(full, Tick(at(15, 55)))
    assert kinds(actions) == ["CloseAll", "SleepUntil"]  # filled: the stop keeps working until the exit


def test_reconcile_after_flatten_with_entry_still_working_stays_done() -> None:
    """The 15:55 CancelAll has not gone through yet when a reconcile lists the entry as working: stay done
    and cancel again (it used to go back to order_submitted after the close - 5)."""
    state, _ = step(order_submitted(), Tick(at(15, 55)))
    state, actions = step(state, recon(at(15, 55, 10), open_orders=(entry_order(),), entries_sent_today=1))
    assert state.phase is Phase.DONE_FOR_THE_DAY and kinds(actions) == ["CancelAll"]
    state, actions = step(state, recon(at(15, 56), entries_sent_today=1))
    assert state.phase is Phase.DONE_FOR_THE_DAY and kinds(actions) == []


def test_late_ack_of_an_entry_believed_dead_is_adopted() -> None:
    state, _ = step(order_sent(), SubmitFailed(CID1, "timeout, resolved as absent"))
    state, actions = step(state, upd("accepted", entry_order(), at(9, 41, 3)))
    assert state.phase is Phase.ORDER_SUBMITTED and state.entry is not None
    state, actions = step(state, BarClosed(up(at(9, 41))))
    assert of(actions, SubmitBracket) == []


def test_helpers() -> None:
    assert client_order_id(SYM, DAY, 1) == CID1
    assert parse_client_order_id(CID1) == (SYM, DAY, 1)
    assert parse_client_order_id("bb-BRK-B-20240305-2") == ("BRK-B", DAY, 2)
    assert parse_client_order_id("bb-AAPL-2024-1") is None
    assert parse_client_order_id("xx-AAPL-20240305-1") is None
    assert order_leg(entry_order(), CID1) == "entry"
    assert order_leg(leg("stop"), CID1) == "stop_loss"
    assert order_leg(leg("limit"), CID1) == "take_profit"
    todays = [
        entry_order(CID1, status="filled", filled=100),
        entry_order(client_order_id(SYM, DAY, 3), status="canceled"),
        entry_order(client_order_id("MSFT", DAY, 7)),  # another symbol's
        entry_order(client_order_id(SYM, date(2024, 3, 4), 9)),  # another day's
        leg("stop"),  # not an entry
    ]
    assert entries_today(todays, SYM, DAY) == (3, 1)  # the next entry is the 4th; one of them traded
    assert entries_today([], SYM, DAY) == (0, 0)
    line = status_fields(active())
    assert line["phase"] == "in trade" and line["position"].startswith("long 100") and line["entries"] == "1"


# ---------------------------------------------------------------- purity


CORE_MODULES = sorted(p for p in Path(breakout_bot.core.__file__).parent.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("path", CORE_MODULES, ids=[p.stem for p in CORE_MODULES])
def test_pure_core_imports_no_io(path: Path) -> None:
    forbidden = {"alpaca_trade_api", "alpaca", "requests", "asyncio", "time", "socket", "threading"}
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    assert names, "no imports parsed"
    assert not names & forbidden, names & forbidden


# ---------------------------------------------------------------- (c) random interleavings


class Broker:
    """A tiny truthful broker: it executes the machine's actions and produces (delayed) trade updates."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.position = Decimal(0)
        self.entry: OrderSnapshot | None = None
        self.legs: list[OrderSnapshot] = []
        self.pending: deque[Event] = deque()
        self.cids: set[str] = set()  # client order ids that reached the broker
        self.lost: set[str] = set()  # submissions that never reached it (a reset before the POST)
        self.filled: dict[str, Decimal] = {}  # order id -> filled qty, as the broker's orders show it
        self.max_entry = 0
        self.trades = 0
        self.n = 0

    def exec_id(self) -> str:
        self.n += 1
        return f"x{self.n}"

    def apply(self, action: Action, now: datetime) -> None:
        if isinstance(action, SubmitBracket):
            cid = action.client_order_id
            if cid in self.cids:  # a duplicate is refused (422); the adapter looks the first one up
                live = self.entry is not None and self.entry.client_order_id == cid
                assert self.entry is None or live, "a second live entry"
                self.pending.append(
                    upd("accepted", self.entry, now)
                    if live and self.entry
                    else SubmitFailed(cid, "duplicate")
                )
                return
            if self.rng.random() < 0.08:
                self.lost.add(cid)  # no answer at all: the machine has to find out by itself
                return
            assert self.position == 0 and self.entry is None, "an entry sent while a trade is on"
            self.cids.add(cid)
            self.max_entry = max(self.max_entry, parse_client_order_id(cid)[2])  # type: ignore[index]
            if self.rng.random() < 0.15:
                self.pending.append(SubmitFailed(action.client_order_id, "rejected"))
                return
            exit_side = "sell" if action.side == "buy" else "buy"
            self.entry = OrderSnapshot(
                "id-" + action.client_order_id, action.client_order_id, SYM, action.side, OrderType.MARKET,
                OrderStatus.NEW,
                Decimal(action.qty), order_class="bracket",
            )  # fmt: skip
            self.legs = [  # order ids are unique at a broker (the `reflected` keys rely on it)
                replace(leg(kind, exit_side, "held", price), qty=Decimal(action.qty), id=f"{cid}-{kind}")
                for kind, price in (("limit", action.take_profit_price), ("stop", action.stop_price))
            ]
            if self.rng.random() < 0.7:
                self.pending.append(upd("accepted", self.entry, now))
        elif isinstance(action, CancelAll):
            if self.entry is not None:
                self.pending.append(upd("canceled", replace(self.entry, status=OrderStatus.CANCELED), now))
                self.entry = None
            for order in self.legs:
                self.pending.append(upd("canceled", replace(order, status=OrderStatus.CANCELED), now))
            self.legs = []
        elif isinstance(action, CancelOrder):
            for order in [o for o in self.legs if o.id == action.order_id]:
                self.pending.append(upd("canceled", replace(order, status=OrderStatus.CANCELED), now))
                self.legs.remove(order)
            if self.entry is not None and self.entry.id == action.order_id:
                self.pending.append(upd("canceled", replace(self.entry, status=OrderStatus.CANCELED), now))
                self.entry = None
        elif isinstance(action, LookupEntry):
            cid = action.client_order_id
            if self.entry is not None and self.entry.client_order_id == cid:
                self.pending.append(upd("accepted", self.entry, now))
            elif cid not in self.cids:
                self.pending.append(EntryNotFound(cid, now))
            # an entry that arrived and ended: its fill or cancel is on its way already
        elif isinstance(action, CloseAll) and self.position:
            side: Side = "sell" if self.position > 0 else "buy"
            qty = abs(self.position)
            order = OrderSnapshot(
                f"close-{self.n}", "close-uuid", SYM, side, OrderType.MARKET, OrderStatus.FILLED, qty, qty
            )
            self.pending.append(upd("fill", order, now, self.exec_id(), int(qty), "100.00"))
            self.position = Decimal(0)
            self.filled[order.id] = qty
            # The executor's close ends the bracket with it: its take-profit, replaced by a marketable
            # limit, is the exit (the group's stop is canceled), or the legs are canceled before it.
            for leg_order in self.legs:
                self.pending.append(upd("canceled", replace(leg_order, status=OrderStatus.CANCELED), now))
            self.legs = []

    def spontaneous(self, now: datetime, price: float) -> None:
        """Something happens at the broker on its own."""
        r = self.rng.random()
        px = f"{price:.2f}"
        if self.entry is not None:
            e = self.entry
            if r < 0.15 and e.status is OrderStatus.NEW:
                self.pending.append(upd("accepted", e, now))
            elif r < 0.75:
                left = int(e.qty - e.filled_qty)
                q = left if self.rng.random() < 0.6 else self.rng.randint(1, left)
                if e.filled_qty == 0:
                    self.trades += 1
                cum = e.filled_qty + q
                status = OrderStatus.FILLED if cum == e.qty else OrderStatus.PARTIALLY_FILLED
                e = replace(e, filled_qty=cum, status=status, filled_avg_price=Decimal(px))
                self.position += q if e.side == "buy" else -q
                self.filled[e.id] = cum
                event = "fill" if status is OrderStatus.FILLED else "partial_fill"
                self.pending.append(upd(event, e, now, self.exec_id(), q, px))
                self.entry = None if status is OrderStatus.FILLED else e
                self.legs = [replace(o, status=OrderStatus.NEW, qty=cum) for o in self.legs]
            else:
                event = self.rng.choice(["canceled", "rejected", "expired"])
                self.pending.append(upd(event, replace(e, status=OrderStatus(event)), now))
                self.entry = None
                if e.filled_qty == 0:
                    for o in self.legs:
                        self.pending.append(upd("canceled", replace(o, status=OrderStatus.CANCELED), now))
                    self.legs = []
        elif self.position and self.legs:
            if r < 0.8:
                hit = self.rng.choice(self.legs)
                qty = abs(self.position)
                self.pending.append(
                    upd(
                        "fill",
                        replace(hit, status=OrderStatus.FILLED, filled_qty=qty),
                        now,
                        self.exec_id(),
                        int(qty),
                        px,
                    )
                )
                self.position = Decimal(0)
                self.filled[hit.id] = qty
                for o in self.legs:
                    if o is not hit:
                        self.pending.append(upd("canceled", replace(o, status=OrderStatus.CANCELED), now))
                self.legs = []
            else:  # the stop leg vanishes (canceled by someone/something)
                stops = [o for o in self.legs if o.type is OrderType.STOP]
                for o in stops:
                    self.pending.append(upd("canceled", replace(o, status=OrderStatus.CANCELED), now))
                self.legs = [o for o in self.legs if o.type is not OrderType.STOP]

    def reflected(self) -> tuple[tuple[str, Decimal], ...]:
        return tuple(self.filled.items())

    def open_orders(self) -> tuple[OrderSnapshot, ...]:
        if self.entry is not None:
            return (replace(self.entry, legs=tuple(self.legs)),)
        return tuple(self.legs)


def _simulate(rng: random.Random, params: Params, session: Session) -> None:
    broker = Broker(rng)
    state = initial_state(SYM, params)
    now = session.open - timedelta(minutes=5)
    price = 100.0
    history: list[Bar] = []
    minute = session.open
    flatten_at = session.close - timedelta(minutes=params.flatten_minutes)
    no_entry_at = session.close - timedelta(minutes=params.no_entry_minutes)
    recorded: list[str] = []

    def reconcile() -> Reconciled:
        return Reconciled(
            now=now, session=session, next_open=NEXT_OPEN, position_qty=broker.position,
            open_orders=broker.open_orders(), entries_sent_today=broker.max_entry,
            trades_today=broker.trades, recent_bars=tuple(history[-10:]), reflected=broker.reflected(),
        )  # fmt: skip

    def feed(event: Event) -> None:
        nonlocal state
        before = state
        state, actions = step(state, event)
        for action in actions:
            if isinstance(action, SubmitBracket):
                # (The broker model asserts the rest: no entry while a trade is on, never two live ones.)
                assert before.phase is Phase.SEARCHING and before.position_qty == 0, "entry outside a search"
                assert state.now is not None and state.now < no_entry_at, "entry in the no-entry window"
                assert action.signal_end is not None, "an entry without its signal"
                assert state.now - action.signal_end <= MAX_SIGNAL_AGE, "an entry on a stale bar"
            if isinstance(action, RecordFill):
                recorded.append(action.fill.execution_id)
            broker.apply(action, now)
        if state.now is not None and state.now >= flatten_at:
            assert state.phase is Phase.DONE_FOR_THE_DAY, (state.phase, state.now)
        if now >= session.close:  # flat by the close (the model applies CloseAll at once)
            assert broker.position == 0 and broker.entry is None, "not flat at the close"
        if not broker.pending:  # everything reported: the machine holds what the broker holds
            assert state.position_qty == broker.position, (state.position_qty, broker.position, event)
        if isinstance(event, Tick) and state.phase is Phase.ORDER_SENT:  # resolved in bounded time
            assert state.now is not None and state.entry_sent_at is not None
            assert state.now - state.entry_sent_at < GIVE_UP_AFTER, "order_sent for minutes"

    def next_bar() -> Bar:
        nonlocal price, minute
        jump = rng.choice([0.0] * 6 + [0.012, -0.012, 0.03, -0.03])
        o = price
        price = max(1.0, price * (1 + jump + rng.uniform(-0.002, 0.002)))
        bar = mkbar(
            minute, o, max(o, price) + rng.uniform(0, 0.1), min(o, price) - rng.uniform(0, 0.1), price
        )
        history.append(bar)
        minute += timedelta(minutes=1)
        return bar

    feed(reconcile())
    while minute < session.close + timedelta(minutes=3):
        r = rng.random()
        if r < 0.33:  # the current bar closes
            bar = next_bar()
            now = max(now, bar.end)
            feed(BarClosed(bar))
            if rng.random() < 0.05:
                feed(BarClosed(bar))  # duplicated delivery
            if broker.position != state.position_qty:  # the runner's minute position poll sees it
                feed(PositionChanged(now, broker.position, broker.reflected()))
        elif r < 0.43:
            now = max(now, min(now + timedelta(seconds=rng.randint(1, 50)), minute + timedelta(minutes=1)))
            feed(Tick(now))
        elif r < 0.66 and broker.pending:
            event = broker.pending.popleft()
            feed(event)
            if isinstance(event, OrderUpdate) and rng.random() < 0.1:
                feed(event)  # the stream repeats itself / REST replays it
        elif r < 0.80:
            broker.spontaneous(now, price)
        elif r < 0.86:  # a position read, maybe while the stream still brings fills it already holds
            feed(PositionChanged(now, broker.position, broker.reflected()))
        elif r < 0.91:
            if rng.random() < 0.5:
                while broker.pending:  # the runner drains its queue, then reads REST ...
                    feed(broker.pending.popleft())
            feed(reconcile())  # ... or the stream's fills are still queued behind the reconcile
        elif r < 0.93:  # the process stalls for minutes, then catches up: the time first, then the bars
            backlog = [next_bar() for _ in range(rng.randint(2, 12))]
            now = max(now, backlog[-1].end + timedelta(seconds=rng.randint(0, 50)))
            feed(Tick(now))
            for bar in backlog:
                feed(BarClosed(bar))
        else:  # crash and restart: queued stream events are lost, REST is the truth
            broker.pending.clear()
            state = initial_state(SYM, params)
            feed(reconcile())
    while broker.pending:
        feed(broker.pending.popleft())
    assert len(recorded) == len(set(recorded)), "an execution recorded twice"
    # Invariant 3 seen from the broker: nothing held or working overnight.
    assert broker.position == 0 and broker.entry is None and broker.legs == [], "not flat after the close"


@settings(max_examples=60)
@given(
    st.integers(min_value=0, max_value=2**32),
    st.sampled_from(
        [
            Params(),
            Params(max_trades=2),
            Params(max_daily_loss=50.0),
            Params(no_entry_minutes=30),
            Params(no_entry_minutes=7),
        ]
    ),
    st.sampled_from([SESSION, EARLY]),
)
def test_random_interleavings_keep_the_invariants(seed: int, params: Params, session: Session) -> None:
    _simulate(random.Random(seed), params, session)


def test_state_copies_are_independent_and_refuse_unknown_fields() -> None:
    """evolve (the hot path's dataclasses.replace): a new State, the old one untouched."""
    state = initial_state("AAPL")
    moved = evolve(state, phase=Phase.SEARCHING, trades_today=2)
    assert moved == replace(state, phase=Phase.SEARCHING, trades_today=2)
    assert state.phase is Phase.WAITING_FOR_OPEN and state.trades_today == 0
    assert moved.__dict__ is not state.__dict__
    with pytest.raises(TypeError, match="phaze"):
        evolve(state, phaze=Phase.SEARCHING)
    with pytest.raises(AttributeError):
        moved.phase = Phase.DONE_FOR_THE_DAY  # type: ignore[misc]
