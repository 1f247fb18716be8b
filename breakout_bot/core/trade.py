"""The trade: order updates, fills, the broker's position reads and refused entries.

Part of the machine (core/machine.py has the entry point and the rules it keeps).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from .day import close_actions, done, on_time, protect, retry_close
from .events import (
    Action,
    Log,
    OrderUpdate,
    PositionChanged,
    RecordFill,
    SubmitBracket,
    SubmitFailed,
)
from .ids import entry_number, is_entry_of, order_leg
from .model import FILL_EVENTS, STOP_TYPES, Fill, Leg, OrderEvent, OrderSnapshot, OrderType
from .positions import apply_fill
from .search import resume_search, start_search
from .state import (
    ACTIVE_TRADE,
    DONE_FOR_THE_DAY,
    ORDER_SENT,
    ORDER_SUBMITTED,
    PRE_TRADE,
    SEARCHING,
    State,
    advance,
    evolve,
)

# Module constants, as for the phases (EnumType.__getattr__ is slow on Python 3.11).
ACCEPTED = OrderEvent.ACCEPTED
FILL = OrderEvent.FILL
# An order that ended without (more) fills.
ENDED_EVENTS = frozenset({OrderEvent.CANCELED, OrderEvent.EXPIRED, OrderEvent.REJECTED})
_ENTRY_PENDING = (ORDER_SENT, ORDER_SUBMITTED)


def on_order_update(state: State, event: OrderUpdate) -> tuple[State, list[Action]]:
    order = event.order
    if order.symbol != state.symbol:
        return state, []
    state = advance(state, event.timestamp)
    entry_cid = state.entry.client_order_id if state.entry else None
    leg = order_leg(order, entry_cid)
    actions: list[Action] = []
    previous_qty = state.position_qty
    fill = _fill_of(event, leg)
    if fill is not None:
        if fill.execution_id in state.seen_executions:
            return state, []  # the same execution via stream and REST: count it once
        actions.append(RecordFill(fill))
        state = _book_fill(state, fill)
    if leg == "entry" and order.client_order_id == entry_cid:
        return _on_our_entry(state, event, fill, actions, previous_qty)
    if fill is not None:  # an exit leg (take-profit, stop, flatten) or a stranger's order filled
        actions.append(Log("info", "{}: {} filled {} @ {}", (state.symbol, leg, fill.qty, fill.price)))
        return after_position_change(state, actions, event.timestamp, _grew(previous_qty, state))
    if leg == "entry":
        return _on_other_entry(state, event, actions)
    if event.event in ENDED_EVENTS and state.position_qty != 0 and (state.flattened or state.closing):
        return _on_exit_order_ended(state, event, leg, actions)
    if leg == "stop_loss":
        return _on_stop_leg(state, event, actions)
    return state, actions


def _on_exit_order_ended(
    state: State, event: OrderUpdate, leg: Leg, actions: list[Action]
) -> tuple[State, list[Action]]:
    """While we close the position: the close order died (send another now), or an order that held the
    shares is gone and the close waits for a retry (send it now rather than at the retry)."""
    if leg == "flatten":
        more_state, more = retry_close(state, f"close order {event.order.id} {event.event.value}")
        return more_state, [
            *actions,
            Log("warning", f"{state.symbol}: close order {event.event.value}; sending another"),
            *more,
        ]
    if state.close_retry_at is not None:
        more_state, more = retry_close(state, f"{leg} {event.event.value}")
        return more_state, [*actions, *more]
    return state, actions


def _on_our_entry(
    state: State, event: OrderUpdate, fill: Fill | None, actions: list[Action], previous_qty: Decimal
) -> tuple[State, list[Action]]:
    """The entry of the current trade: it fills (we are in the trade), is accepted, or dies."""
    phase = state.phase
    kind = event.event
    if fill is not None:
        if phase in (ORDER_SENT, ORDER_SUBMITTED, SEARCHING):
            state = evolve(state, phase=ACTIVE_TRADE, trades_today=state.trades_today + 1)
            actions.append(
                Log("info", "{}: entry filled {} @ {}; in trade", (state.symbol, fill.qty, fill.price))
            )
        return after_position_change(state, actions, event.timestamp, _grew(previous_qty, state))
    if kind is ACCEPTED and phase is ORDER_SENT:
        return evolve(state, phase=ORDER_SUBMITTED), [
            *actions,
            Log("info", "{}: entry {} accepted", (state.symbol, event.order.client_order_id)),
        ]
    if kind in ENDED_EVENTS and phase in _ENTRY_PENDING:
        if state.position_qty != 0:  # a partial fill then cancel: trade what filled
            return evolve(state, phase=ACTIVE_TRADE), [
                *actions,
                Log("info", f"{state.symbol}: entry {kind.value} after a partial fill; in trade"),
            ]
        return resume_search(
            state,
            event.timestamp,
            [*actions, Log("warning", f"{state.symbol}: entry {kind.value}; searching again")],
        )
    return state, actions


def _on_other_entry(state: State, event: OrderUpdate, actions: list[Action]) -> tuple[State, list[Action]]:
    """One of our entries that is not the current trade's: adopt it if it is today's and working
    although we believed it dead (e.g. after a SubmitFailed that was wrong), so that no second entry
    goes out next to it."""
    order = event.order
    if (
        state.entry is None
        and event.event is ACCEPTED
        and order.is_open
        and state.phase is SEARCHING
        and state.position_qty == 0
        and state.session is not None
        and is_entry_of(order.client_order_id, state.symbol, state.session.date)
    ):
        return evolve(
            state,
            phase=ORDER_SUBMITTED,
            entry=entry_from_order(order, state),
            entries_sent_today=max(state.entries_sent_today, entry_number(order.client_order_id)),
        ), [
            *actions,
            Log("warning", f"{state.symbol}: entry {order.client_order_id} is working; adopting it"),
        ]
    return state, actions


def _on_stop_leg(state: State, event: OrderUpdate, actions: list[Action]) -> tuple[State, list[Action]]:
    """The trade's stop ended without a fill while we hold the position: it is unprotected. A stop at
    another price than this trade's is an earlier trade's (its cancel, delivered late by the stream
    after the next entry filled): news of nothing we hold."""
    entry = state.entry
    stop = event.order.stop_price
    if entry is not None and entry.stop_price and stop is not None and stop != entry.stop_price:
        return state, actions
    if (
        event.event in ENDED_EVENTS
        and state.position_qty != 0
        and state.phase is ACTIVE_TRADE
        and not state.flattened
        and not state.closing
    ):
        new_state, more = protect(state)
        return new_state, actions + more
    return state, actions


def _fill_of(event: OrderUpdate, leg: Leg) -> Fill | None:
    if event.event not in FILL_EVENTS or event.execution_id is None:
        return None
    order = event.order
    qty = event.qty
    price = event.price
    if qty is None:
        # Only a full fill without its own size falls back to the order's totals (never partials:
        # peers double-count partial fills by summing cumulative filled_qty).
        if event.event is not FILL:
            return None
        qty, price = order.filled_qty, order.filled_avg_price
    if price is None:
        return None
    return Fill(
        execution_id=event.execution_id,
        order_id=order.id,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        qty=qty,
        price=price,
        timestamp=event.timestamp,
        leg=leg,
        cum_qty=order.filled_qty if order.filled_qty else None,
    )


def _book_fill(state: State, fill: Fill) -> State:
    """Update position, average entry and realized P&L from one execution, and remember its id.

    An execution the broker's last position read already held (`state.reflected`: that read came after
    it, its report comes after the read) moves the position no further; it is booked as if the position
    had been read just before it, so average and P&L still count it. Issue 16: the reconcile read the
    fills, the entry filled, the position read said 100, and the queued stream fill made it 200."""
    signed = fill.qty if fill.side == "buy" else -fill.qty
    before = state.position_qty
    if state.reflected and _reflected(state.reflected, fill):
        before -= signed
    position, average, realized = apply_fill(before, state.avg_entry_price, signed, fill.price)
    pnl = state.realized_pnl_today
    if realized is not None:
        pnl += float(realized)
    return evolve(  # one State copy for all of it (the backtest applies a fill per order update)
        state,
        position_qty=position,
        avg_entry_price=average,
        realized_pnl_today=pnl,
        seen_executions=state.seen_executions | {fill.execution_id},
    )


def _reflected(reflected: tuple[tuple[str, Decimal], ...], fill: Fill) -> bool:
    cum = fill.cum_qty
    return cum is not None and any(oid == fill.order_id and cum <= qty for oid, qty in reflected)


def merge_reflected(
    held: tuple[tuple[str, Decimal], ...], read: tuple[tuple[str, Decimal], ...]
) -> tuple[tuple[str, Decimal], ...]:
    """What a newer position read holds: everything an older one did, and what the newer one lists."""
    if not read:
        return held
    merged = dict(held)
    for oid, qty in read:
        if qty > merged.get(oid, Decimal(0)):
            merged[oid] = qty
    return tuple(merged.items())


def _grew(previous_qty: Decimal, state: State) -> bool:
    return abs(state.position_qty) > abs(previous_qty)


def after_position_change(
    state: State, actions: list[Action], when: datetime, grew: bool = False
) -> tuple[State, list[Action]]:
    if state.position_qty != 0:
        if state.phase in PRE_TRADE:
            state = evolve(state, phase=ACTIVE_TRADE)
        elif state.phase is DONE_FOR_THE_DAY and state.flattened and grew:
            # An entry filled after the flatten (its cancel lost the race): flatten again.
            actions = [
                *actions,
                Log("warning", f"{state.symbol}: position {state.position_qty} opened after the flatten"),
                *close_actions(state, "still not flat after flatten"),
            ]
        return state, actions
    if state.close_retry_at is not None or state.close_failures:
        state = evolve(state, close_retry_at=None, close_failures=0)
    if state.phase is ACTIVE_TRADE:
        return position_closed(state, actions, when)
    return state, actions


def position_closed(state: State, actions: list[Action], when: datetime) -> tuple[State, list[Action]]:
    """Stop or take-profit hit: the guide re-arms with a new box, unless a daily limit says stop."""
    p = state.params
    actions = [
        *actions,
        Log("info", "{}: position closed; realized today {:.2f}", (state.symbol, state.realized_pnl_today)),
    ]
    if p.max_trades and state.trades_today >= p.max_trades:
        new_state, more = done(start_search(state, when), f"max {p.max_trades} trades per day reached")
        return new_state, actions + more
    if p.max_daily_loss and -state.realized_pnl_today >= p.max_daily_loss:
        new_state, more = done(start_search(state, when), f"daily loss limit {p.max_daily_loss:.2f} reached")
        return new_state, actions + more
    new_state, actions = resume_search(state, when, actions)
    if new_state.phase is SEARCHING:
        actions.append(Log("info", f"{state.symbol}: searching for the next breakout"))
    return new_state, actions


def on_submit_failed(state: State, event: SubmitFailed) -> tuple[State, list[Action]]:
    if state.entry is None or event.client_order_id != state.entry.client_order_id:
        return state, []
    if state.phase not in _ENTRY_PENDING or state.position_qty != 0:
        return state, [Log("warning", f"{state.symbol}: late submit failure ignored: {event.reason}")]
    return resume_search(
        state,
        state.now,
        [
            Log(
                "warning",
                f"{state.symbol}: entry {event.client_order_id} refused: {event.reason}; searching again",
            )
        ],
    )


def on_position(state: State, event: PositionChanged) -> tuple[State, list[Action]]:
    state = advance(state, event.now)
    if event.reflected:
        state = evolve(state, reflected=merge_reflected(state.reflected, event.reflected))
    if event.qty == state.position_qty:
        if (
            event.qty != 0
            and state.phase is DONE_FOR_THE_DAY
            and state.flattened
            and state.close_retry_at is None
        ):
            # Still holding after the flatten (the minute's position read): make sure a close works.
            return state, close_actions(state, "still not flat after flatten")
        return on_time(state)
    previous = state.position_qty
    state = evolve(state, position_qty=event.qty)
    actions: list[Action] = [Log("info", f"{state.symbol}: position {previous} -> {event.qty} (broker)")]
    if event.qty == 0:
        state = evolve(state, close_retry_at=None, close_failures=0)
    if event.qty == 0 and state.phase is ACTIVE_TRADE:
        return position_closed(state, actions, event.now)
    if event.qty != 0 and state.phase is DONE_FOR_THE_DAY and state.flattened:
        if state.close_retry_at is not None:
            return state, actions  # a retry is already due
        return state, [*actions, *close_actions(state, "still not flat after flatten")]
    if event.qty != 0 and state.phase in PRE_TRADE:
        state = evolve(state, phase=ACTIVE_TRADE)
    more_state, more = on_time(state)
    return more_state, actions + more


def entry_from_order(order: OrderSnapshot, state: State) -> SubmitBracket:
    """Rebuild the entry we must have sent before a restart, from the broker's copy of it."""
    stop = next((leg.stop_price for leg in order.legs if leg.type in STOP_TYPES), None)
    take = next((leg.limit_price for leg in order.legs if leg.type is OrderType.LIMIT), None)
    return SubmitBracket(
        symbol=order.symbol,
        side=order.side,
        qty=int(order.qty),
        stop_price=stop or Decimal(0),
        take_profit_price=take or Decimal(0),
        client_order_id=order.client_order_id,
        box=state.box,
    )
