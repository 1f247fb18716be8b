"""The broker's truth: a `Reconciled` read (at start, after a stream reconnect, on a timer, at a new
session) resets what the machine believes, case by case.

Part of the machine (core/machine.py has the entry point and the rules it keeps).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from .day import close_actions, done, on_time
from .events import Action, CancelAll, CancelOrder, Log, Reconciled, SleepUntil
from .ids import entry_number, parse_client_order_id
from .model import STOP_TYPES, OrderSnapshot, OrderStatus
from .pending import absent_at_broker
from .search import maybe_form_box, start_search
from .state import (
    ACTIVE_TRADE,
    DONE_FOR_THE_DAY,
    EXPOSED,
    ORDER_SENT,
    ORDER_SUBMITTED,
    SEARCHING,
    WAITING_FOR_OPEN,
    State,
    evolve,
    later,
)
from .trade import entry_from_order, merge_reflected, position_closed


def on_reconciled(state: State, event: Reconciled) -> tuple[State, list[Action]]:
    new_day = state.session is None or event.session is None or state.session.date != event.session.date
    base = _adopt(state, event, new_day)
    ours = [o for o in event.open_orders if o.symbol == state.symbol]
    actions = _cancel_strays(state.symbol, event.position_qty, ours)
    if event.shortable is False and (new_day or state.can_short) and event.session is not None:
        actions.append(
            Log(
                "warning",
                f"{state.symbol}: not easy to borrow today (Alpaca opens shorts only in easy-to-borrow "
                "names): short signals are skipped",
            )
        )
    if event.session is None:
        return _closed_today(base, event, actions)
    if event.position_qty != 0:
        return _holding(state, base, event, ours, actions)
    base = evolve(base, unprotected=False)
    if base.flattened:
        # Flattened today: stay done; an order still working (the CancelAll not yet through) is cancelled again.
        base = evolve(base, phase=DONE_FOR_THE_DAY)
        if any(o.is_open for o in ours):
            actions.append(CancelAll(state.symbol))
        return base, actions
    working_entry = _working_entry(ours)
    if working_entry is not None:
        return _entry_working(base, working_entry, actions)
    return _flat(state, base, event, new_day, actions)


def _working_entry(ours: Sequence[OrderSnapshot]) -> OrderSnapshot | None:
    """One of our entries working at the broker (by its client_order_id), if any."""
    return next((o for o in ours if o.is_open and parse_client_order_id(o.client_order_id) is not None), None)


def _adopt(state: State, event: Reconciled, new_day: bool) -> State:
    """The broker's session, position, counts and P&L; a new day forgets yesterday; recent bars join
    the window."""
    base = evolve(
        state,
        now=later(state.now, event.now),
        session=event.session,
        next_open=event.next_open,
        position_qty=event.position_qty,
        entries_sent_today=max(event.entries_sent_today, 0 if new_day else state.entries_sent_today),
        trades_today=max(event.trades_today, 0 if new_day else state.trades_today),
        realized_pnl_today=_realized_after(state, event, new_day),
        equity=event.equity or state.equity,
        can_short=state.can_short if event.shortable is None else event.shortable,
        reflected=merge_reflected(() if new_day else state.reflected, event.reflected),
    )
    if new_day:
        base = evolve(
            base,
            bars=(),
            box=None,
            box_not_before=None,
            flattened=False,
            entry=None,
            avg_entry_price=None,
            seen_executions=frozenset(),
            closing=False,
            close_retry_at=None,
            close_failures=0,
        )
    if event.position_qty != 0 and base.avg_entry_price is None and event.avg_entry_price is not None:
        # A restart mid-trade: the exit's realized P&L needs the entry price (daily loss limit).
        base = evolve(base, avg_entry_price=event.avg_entry_price)
    bars = tuple(
        b
        for b in event.recent_bars
        if event.session is not None and event.session.open <= b.t < event.session.close
    )
    merged = {b.t: b for b in (*base.bars, *bars)}
    return evolve(base, bars=tuple(merged[t] for t in sorted(merged))[-state.params.lookback :])


def _cancel_strays(symbol: str, position: Decimal, ours: Sequence[OrderSnapshot]) -> list[Action]:
    """Open orders on our symbol that we did not send, and that do not protect the position, go."""
    closing_side = "sell" if position > 0 else "buy"
    actions: list[Action] = []
    for order in ours:
        if parse_client_order_id(order.client_order_id) is not None:
            continue
        if position != 0 and order.side == closing_side:
            continue  # an exit leg of the trade we hold (legs carry broker-made ids)
        actions.append(
            Log("warning", f"{symbol}: canceling stray open order {order.id} ({order.client_order_id})")
        )
        actions.append(CancelOrder(symbol, order.id))
    return actions


def _closed_today(base: State, event: Reconciled, actions: list[Action]) -> tuple[State, list[Action]]:
    if event.position_qty != 0:
        actions.append(Log("warning", f"{base.symbol}: holding {event.position_qty} on a closed market day"))
    new_state, more = done(evolve(base, phase=DONE_FOR_THE_DAY), "market closed today")
    return new_state, actions + more


def _holding(
    state: State, base: State, event: Reconciled, ours: Sequence[OrderSnapshot], actions: list[Action]
) -> tuple[State, list[Action]]:
    """The broker holds a position: manage it (flatten it again if today was already flattened)."""
    protected = _protected(event.position_qty, ours, state.symbol)
    phase = DONE_FOR_THE_DAY if base.flattened else ACTIVE_TRADE
    working = _working_entry(ours)
    filling = working if working is not None and working.filled_qty < working.qty else None
    if filling is not None and (base.entry is None or base.entry.client_order_id != filling.client_order_id):
        # Our entry is still filling (a partial fill): the flatten must know it, to cancel the rest.
        base = evolve(base, entry=entry_from_order(filling, base))
    if state.phase is not ACTIVE_TRADE:
        actions.append(Log("info", f"{state.symbol}: broker holds {event.position_qty}; managing it"))
    base = evolve(base, phase=phase, unprotected=not protected)
    if base.flattened:
        if base.close_retry_at is not None:
            return base, actions  # a retry of the close is due: it will go out then
        return base, [*actions, *close_actions(base, "still not flat after flatten")]
    new_state, more = on_time(base)
    return new_state, actions + more


def _entry_working(
    base: State, working_entry: OrderSnapshot, actions: list[Action]
) -> tuple[State, list[Action]]:
    """Flat, with one of our entries working at the broker: wait for it (rebuilt after a restart)."""
    entry = base.entry
    if entry is None or entry.client_order_id != working_entry.client_order_id:
        actions.append(
            Log("info", f"{base.symbol}: entry {working_entry.client_order_id} is working; waiting")
        )
        entry = entry_from_order(working_entry, base)
    new_state, more = on_time(evolve(base, phase=ORDER_SUBMITTED, entry=entry))
    return new_state, actions + more


def _flat(
    state: State, base: State, event: Reconciled, new_day: bool, actions: list[Action]
) -> tuple[State, list[Action]]:
    """Flat with nothing of ours working: the trade (or the entry) is over, or a session starts."""
    assert event.session is not None
    if (
        base.phase is ORDER_SENT
        and base.entry is not None
        and event.entries_sent_today < entry_number(base.entry.client_order_id)
    ):
        # Our submission is in flight or its outcome unknown, and today's orders do not list its
        # client_order_id: right after the POST that proves nothing (wait for the ack or a
        # SubmitFailed rather than search and maybe send a second entry next to the first); once any
        # attempt would have landed, it never arrived (pending.py).
        new_state, more = on_time(base)
        if new_state.phase is not ORDER_SENT:
            return new_state, actions + more
        return absent_at_broker(new_state, actions + more)
    if base.phase in EXPOSED:
        # Flat with nothing working: the trade ended (or the entry never arrived) while we were not looking.
        if base.phase is ACTIVE_TRADE:
            return position_closed(base, actions, event.now)
        base = start_search(base, None)
        actions.append(Log("info", f"{state.symbol}: no working entry at the broker; searching"))
    if base.phase is DONE_FOR_THE_DAY and not new_day:
        return base, actions
    if new_day or base.phase is DONE_FOR_THE_DAY:
        base = evolve(base, phase=WAITING_FOR_OPEN)
    if base.phase is WAITING_FOR_OPEN:
        if event.now < event.session.open:
            return base, [*actions, SleepUntil(event.session.open, "market open")]
        base = evolve(base, phase=SEARCHING, box=None)
    new_state, more = on_time(base)
    if new_state.phase is SEARCHING and new_state.box is None:
        new_state, more = maybe_form_box(new_state, more)
    return new_state, actions + more


def _protected(position: Decimal, orders: Sequence[OrderSnapshot], symbol: str) -> bool:
    """Is there a working stop on the closing side of this position? A held stop-loss leg of a filled
    bracket counts: Alpaca keeps it `held` until its price trades (forum t/3697), and lists it only under
    status=all/closed (the reader adds today's held legs to the open orders: `with_held_legs`)."""
    closing_side = "sell" if position > 0 else "buy"
    candidates = [o for o in orders if o.symbol == symbol]
    candidates += [leg for o in candidates for leg in o.legs]
    return any(o.type in STOP_TYPES and o.side == closing_side and o.is_open for o in candidates)


def _realized_after(state: State, event: Reconciled, new_day: bool) -> float:
    """Today's realized P&L after a reconcile. A new day (or a restart) takes the broker's figure; later
    the lower of ours and the broker's, as either may not have seen the latest fill yet: a loss seen by
    one side only still counts against the daily limit."""
    ours = 0.0 if new_day else state.realized_pnl_today
    broker = event.realized_pnl_today
    if broker is None:
        return ours
    return broker if new_day else min(ours, broker)


def with_held_legs(
    open_orders: Sequence[OrderSnapshot], todays_orders: Sequence[OrderSnapshot]
) -> tuple[OrderSnapshot, ...]:
    """The open orders plus the held legs of today's filled parents, which Alpaca's status=open leaves out
    (alpaca-trade-api-python #322, alpaca-trade-api-js #87); `todays_orders` is status=all&nested=true."""
    known = {o.id for o in _walk(open_orders)}
    held = tuple(
        leg
        for parent in todays_orders
        if parent.filled_qty > 0
        for leg in parent.legs
        if leg.status is OrderStatus.HELD and leg.id not in known
    )
    return (*open_orders, *held)


def _walk(orders: Sequence[OrderSnapshot]) -> list[OrderSnapshot]:
    out: list[OrderSnapshot] = []
    for o in orders:
        out.append(o)
        out.extend(_walk(o.legs))
    return out
