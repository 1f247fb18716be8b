"""The trading state machine: step(state, event) -> (state, actions). Pure: no I/O, no clock, no threads.

The same `step` drives live, paper, simulator and backtest runs. The runner turns the world into
events and executes the actions; it never decides strategy. The machine never does I/O.

Phases follow the guide: waiting_for_open -> searching -> order_sent -> order_submitted -> active_trade
-> (searching again after an exit) ... -> done_for_the_day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from .strategy import (
    Bar,
    Box,
    Side,
    bracket_prices,
    bracket_skip_reason,
    breakout_signal,
    compute_box,
    is_valid_bar,
    position_size,
)
from .valuetype import value_type


class Phase(str, Enum):
    WAITING_FOR_OPEN = "waiting_for_open"
    SEARCHING = "searching"
    ORDER_SENT = "order_sent"
    ORDER_SUBMITTED = "order_submitted"
    ACTIVE_TRADE = "active_trade"
    DONE_FOR_THE_DAY = "done_for_the_day"


# The phases as module constants for the hot path: on Python 3.11 every `Phase.X` read goes through
# EnumType.__getattr__'s slow lookup hook (~150 ns, 4x a plain class attribute; gone in 3.12).
WAITING_FOR_OPEN = Phase.WAITING_FOR_OPEN
SEARCHING = Phase.SEARCHING
ORDER_SENT = Phase.ORDER_SENT
ORDER_SUBMITTED = Phase.ORDER_SUBMITTED
ACTIVE_TRADE = Phase.ACTIVE_TRADE
DONE_FOR_THE_DAY = Phase.DONE_FOR_THE_DAY

# Order events of Alpaca's trade_updates stream that end an order's life.
TERMINAL_WITHOUT_FILL = frozenset({"canceled", "expired", "rejected", "done_for_day", "stopped", "suspended"})
FILL_EVENTS = frozenset({"fill", "partial_fill"})
ACK_EVENTS = frozenset({"new", "accepted", "pending_new", "held", "replaced"})
OPEN_STATUSES = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "partially_filled",
        "held",
        "accepted_for_bidding",
        "pending_replace",
        "pending_cancel",
        "calculated",
    }
)
STOP_TYPES = frozenset({"stop", "stop_limit", "trailing_stop"})

CLIENT_ORDER_PREFIX = "bb"
_CID_HEAD = f"{CLIENT_ORDER_PREFIX}-"
_NEW_YORK = ZoneInfo("America/New_York")


@value_type
class Params:
    lookback: int = 10
    min_range_pct: float = 0.3
    qty: int = 100
    no_entry_minutes: int = 20
    flatten_minutes: int = 5
    max_trades: int = 0  # per day; 0 = unlimited (the guide re-arms after every exit)
    max_daily_loss: float = 0.0  # dollars of realized loss that stop the day; 0 = off
    risk_pct: float | None = None  # size each trade to lose this % of equity at the stop; None = qty


@value_type
class Session:
    date: date
    open: datetime
    close: datetime


@value_type
class OrderSnapshot:
    """What the machine needs of a broker order (adapter-neutral)."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    type: str
    status: str
    qty: Decimal
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    order_class: str = ""
    legs: tuple[OrderSnapshot, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@value_type
class Fill:
    """One execution, as recorded in past_trades.json (keyed by execution id)."""

    execution_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    timestamp: datetime
    leg: str
    cum_qty: Decimal | None = None  # the order's filled qty after this execution: a source-independent key


# ---------------------------------------------------------------- events


@value_type
class Reconciled:
    """The broker's truth, read over REST: at start, after a stream reconnect, and on a timer."""

    now: datetime
    session: Session | None  # today's regular session; None when the market does not open today
    next_open: datetime
    position_qty: Decimal  # signed: short < 0
    open_orders: tuple[OrderSnapshot, ...] = ()
    entries_sent_today: int = 0  # highest entry number among our client_order_ids today
    trades_today: int = 0  # our entries that filled today
    # From today's fills at the broker (the daily loss limit survives a restart); None: unreadable.
    realized_pnl_today: float | None = None
    recent_bars: tuple[Bar, ...] = ()  # today's most recent closed session bars
    equity: float = 0.0  # account equity (sizes trades when Params.risk_pct is set)
    avg_entry_price: Decimal | None = None  # of position_qty, from today's fills (None: unknown)


@value_type
class Tick:
    now: datetime


@value_type
class BarClosed:
    bar: Bar


@value_type
class OrderUpdate:
    """A trade_updates event (or one synthesized from a REST order read)."""

    event: str
    order: OrderSnapshot
    timestamp: datetime
    execution_id: str | None = None
    qty: Decimal | None = None  # this execution's own size (never the cumulative filled_qty)
    price: Decimal | None = None


@value_type
class SubmitFailed:
    """The broker refused the entry (422/403) or it provably never arrived."""

    client_order_id: str
    reason: str


@value_type
class PositionChanged:
    """A successful positions read (a failed read is not proof of flat and must not be sent)."""

    now: datetime
    qty: Decimal


Event = Reconciled | Tick | BarClosed | OrderUpdate | SubmitFailed | PositionChanged

# ---------------------------------------------------------------- actions


@value_type
class SubmitBracket:
    symbol: str
    side: Side
    qty: int
    stop_price: Decimal
    take_profit_price: Decimal
    client_order_id: str
    box: Box | None = None  # None when rebuilt from the broker after a restart


@value_type
class CancelAll:
    symbol: str


@value_type
class CloseAll:
    symbol: str
    reason: str


@value_type
class RecordFill:
    fill: Fill


@value_type
class SleepUntil:
    when: datetime
    reason: str


@value_type
class Log:
    """A line for the log. `text` is the message itself, or a str.format template of `args`:
    formatted only when read (a backtest makes millions of these and reads almost none)."""

    level: Literal["debug", "info", "warning", "error"]
    text: str
    args: tuple[object, ...] = ()

    @property
    def message(self) -> str:
        return self.text.format(*self.args) if self.args else self.text


Action = SubmitBracket | CancelAll | CloseAll | RecordFill | SleepUntil | Log

# ---------------------------------------------------------------- state


@dataclass(frozen=True)  # no slots: _evolve copies __dict__, ~5x cheaper than dataclasses.replace
class State:
    symbol: str
    params: Params = field(default_factory=Params)
    phase: Phase = WAITING_FOR_OPEN
    now: datetime | None = None
    session: Session | None = None
    next_open: datetime | None = None
    bars: tuple[Bar, ...] = ()  # the most recent closed session bars (at most `lookback`)
    box: Box | None = None
    box_not_before: datetime | None = None  # the next box uses only bars closed after this (the exit bar)
    position_qty: Decimal = Decimal(0)
    entry: SubmitBracket | None = None  # the working or filled entry of the current trade
    entries_sent_today: int = 0
    trades_today: int = 0
    realized_pnl_today: float = 0.0
    avg_entry_price: Decimal | None = None
    equity: float = 0.0
    flattened: bool = False  # close - flatten_minutes reached and CloseAll sent
    unprotected: bool = False  # a position without a working stop: flatten as soon as the market is open
    seen_executions: frozenset[str] = frozenset()  # today's execution ids already applied
    closing: bool = False  # CloseAll sent for an unprotected position: the legs' cancels must not re-send it


_STATE_FIELDS = frozenset(f.name for f in fields(State))
_new_object = object.__new__
_set_attribute = object.__setattr__
_N_STATE_FIELDS = len(_STATE_FIELDS)


def _evolve(state: State, **changes: Any) -> State:
    """dataclasses.replace for State, without its per-call overhead (the backtest's hot path).
    State is frozen: nothing mutates the copy after this function returns."""
    d = state.__dict__.copy()  # a whole-table copy: ~2x cheaper than inserting key by key
    d.update(changes)
    # A misspelled field adds a key: checking the size is cheaper than a set difference per call.
    if len(d) != _N_STATE_FIELDS:
        raise TypeError(f"State has no field(s) {sorted(changes.keys() - _STATE_FIELDS)}")
    new = _new_object(State)
    _set_attribute(new, "__dict__", d)  # past State's frozen __setattr__
    return new


def initial_state(symbol: str, params: Params | None = None) -> State:
    return State(symbol=symbol, params=params or Params())


def client_order_id(symbol: str, session_date: date, entry_number: int) -> str:
    """Deterministic per (symbol, session, entry n): a restart recomputes it, so it never doubles an order."""
    return f"{CLIENT_ORDER_PREFIX}-{symbol}-{_yyyymmdd(session_date)}-{entry_number}"


@lru_cache(maxsize=16)  # a day's entries share it
def _yyyymmdd(day: date) -> str:
    """`f"{day:%Y%m%d}"` without strftime (several times slower; one per entry of a backtest)."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def parse_client_order_id(cid: str) -> tuple[str, date, int] | None:
    if not cid.startswith(_CID_HEAD):  # most orders are not ours (bracket legs): answer cheaply
        return None
    parts = cid.split("-")
    if len(parts) < 4 or parts[0] != CLIENT_ORDER_PREFIX:
        return None
    try:
        number = int(parts[-1])
        day = datetime.strptime(parts[-2], "%Y%m%d").date()
    except ValueError:
        return None
    return "-".join(parts[1:-2]), day, number


def order_leg(order: OrderSnapshot, entry_cid: str | None) -> str:
    """Which part of our trade an order is: entry, take_profit, stop_loss or flatten."""
    if entry_cid is not None and order.client_order_id == entry_cid:
        return "entry"
    parsed = parse_client_order_id(order.client_order_id)
    if parsed is not None:
        return "entry"
    if order.type in STOP_TYPES:
        return "stop_loss"
    if order.type == "limit":
        return "take_profit"
    if order.type == "market":
        return "flatten"
    return "unknown"


# ---------------------------------------------------------------- step


def step(state: State, event: Event) -> tuple[State, list[Action]]:
    """Advance the machine by one event. Total: every (phase, event) pair is handled."""
    # Most frequent first (a backtest sends millions).
    if isinstance(event, BarClosed):
        return _on_bar(state, event.bar)
    if isinstance(event, OrderUpdate):
        return _on_order_update(state, event)
    if isinstance(event, Tick):
        return _on_time(_advance(state, event.now))
    if isinstance(event, Reconciled):
        return _on_reconciled(state, event)
    if isinstance(event, SubmitFailed):
        return _on_submit_failed(state, event)
    if isinstance(event, PositionChanged):
        return _on_position(state, event)
    raise TypeError(f"unknown event {event!r}")


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _advance(state: State, when: datetime) -> State:
    """The clock moved to `when` (it never goes back); no State copy when it did not move."""
    return _evolve(state, now=when) if state.now is None or when > state.now else state


def _market_open(state: State) -> bool:
    s = state.session
    return s is not None and state.now is not None and s.open <= state.now < s.close


def _done(state: State, reason: str) -> tuple[State, list[Action]]:
    actions: list[Action] = [Log("info", f"{state.symbol}: done for the day ({reason})")]
    if state.next_open is not None:
        actions.append(SleepUntil(state.next_open, "next session"))
    return _evolve(state, phase=DONE_FOR_THE_DAY, box=None), actions


def _start_search(state: State, exit_time: datetime | None) -> State:
    return _evolve(
        state,
        phase=SEARCHING,
        box=None,
        box_not_before=exit_time,
        entry=None,
        avg_entry_price=None,
        closing=False,
    )


def _resume_search(
    state: State, exit_time: datetime | None, actions: list[Action]
) -> tuple[State, list[Action]]:
    """Back to searching after an exit / a dead entry: the clock decides first (no searching inside the
    no-entry window), then the box forms at once when the exit bar has already closed."""
    new_state, more = _on_time(_start_search(state, exit_time))
    actions = [*actions, *more]
    if new_state.phase is SEARCHING and new_state.box is None:
        new_state, actions = _maybe_form_box(new_state, actions)
    return new_state, actions


def _flatten(state: State, reason: str) -> tuple[State, list[Action]]:
    actions: list[Action] = [
        Log("info", f"{state.symbol}: flatten ({reason})"),
        CancelAll(state.symbol),
        CloseAll(state.symbol, reason),
    ]
    new_state, done_actions = _done(_evolve(state, flattened=True, unprotected=False), reason)
    return new_state, actions + done_actions


def _on_time(state: State) -> tuple[State, list[Action]]:
    """Clock-driven transitions: open, no-entry window, flatten window."""
    p = state.params
    session = state.session
    now = state.now
    if session is None or now is None:
        return state, []
    minutes_left = (session.close - now).total_seconds() / 60.0
    if now >= session.close:
        exposed = state.position_qty != 0 or state.phase in (
            ORDER_SENT,
            ORDER_SUBMITTED,
            ACTIVE_TRADE,
        )
        if exposed and not state.flattened:
            # The flatten window was skipped (no tick/bar between close - flatten_minutes and the close):
            # still cancel and close rather than go to sleep holding a position or a working entry.
            return _flatten(state, "session closed before the flatten")
        if state.phase is not DONE_FOR_THE_DAY:
            return _done(state, "session closed")
        return state, []
    if minutes_left <= p.flatten_minutes and not state.flattened:
        return _flatten(state, f"{p.flatten_minutes} minutes before the close")
    if state.phase is WAITING_FOR_OPEN and now >= session.open:
        if state.position_qty != 0:
            return _evolve(state, phase=ACTIVE_TRADE), [
                Log("info", f"{state.symbol}: market open holding {state.position_qty}; managing it")
            ]
        if minutes_left <= p.no_entry_minutes:
            return _done(state, "too close to the close to trade")
        return _evolve(state, phase=SEARCHING, box=None, box_not_before=None), [
            Log("info", f"{state.symbol}: market open, searching")
        ]
    if state.phase is SEARCHING and minutes_left <= p.no_entry_minutes:
        return _done(state, f"no new entry in the last {p.no_entry_minutes} minutes")
    if state.unprotected and _market_open(state) and state.position_qty != 0:
        return _protect(state)
    return state, []


def _protect(state: State) -> tuple[State, list[Action]]:
    """A position without a working stop: the guide's bracket is gone, so flatten rather than hope."""
    return _evolve(state, unprotected=False, closing=True), [
        Log("warning", f"{state.symbol}: position {state.position_qty} has no working stop; flattening"),
        CancelAll(state.symbol),
        CloseAll(state.symbol, "unprotected position"),
    ]


def _on_bar(state: State, bar: Bar) -> tuple[State, list[Action]]:
    if not is_valid_bar(bar):
        return state, [Log("warning", f"{state.symbol}: ignoring invalid bar {bar}")]
    session = state.session
    if session is None or not (session.open <= bar.t < session.close):
        return state, []  # pre/post-market bars never enter a box
    if state.bars and bar.t <= state.bars[-1].t:
        return state, []  # a repeated or out-of-order bar (poll overlap, replay): already seen
    bars = (*state.bars, bar)[-state.params.lookback :]
    state = _evolve(state, bars=bars, now=_later(state.now, bar.end))
    state, actions = _on_time(state)
    if state.phase is not SEARCHING:
        return state, actions
    if state.box is None:
        return _maybe_form_box(state, actions)
    return _check_breakout(state, bar, actions)


def _maybe_form_box(state: State, actions: list[Action]) -> tuple[State, list[Action]]:
    p = state.params
    if not state.bars:
        return state, actions
    if state.box_not_before is not None and state.bars[-1].end <= state.box_not_before:
        return state, actions  # the bar that contained the exit has not closed yet: it belongs in the box
    if len(state.bars) < p.lookback:
        return state, actions
    box = compute_box(state.bars[-p.lookback :], p.min_range_pct)
    note = f" (floored at {p.min_range_pct:.2f}%)" if box.floored else ""
    return _evolve(state, box=box, box_not_before=None), [
        *actions,
        Log(
            "info",
            "{}: box {:.4f}-{:.4f} range {:.4f}{} from {} bars ending {:%H:%M}",
            (state.symbol, box.low, box.high, box.range, note, p.lookback, box.end.astimezone(_NEW_YORK)),
        ),
    ]


def _check_breakout(state: State, bar: Bar, actions: list[Action]) -> tuple[State, list[Action]]:
    box = state.box
    session = state.session
    assert box is not None and session is not None
    side = breakout_signal(box, bar.close)
    if side is None:
        return state, actions
    if state.position_qty != 0:  # defensive: one position per symbol, whatever the path that got here
        return _evolve(state, phase=ACTIVE_TRADE), [
            *actions,
            Log("warning", f"{state.symbol}: holding {state.position_qty} while searching; not entering"),
        ]
    p = state.params
    if p.max_trades and state.trades_today >= p.max_trades:
        return _done(state, f"max {p.max_trades} trades per day reached")
    if p.max_daily_loss and -state.realized_pnl_today >= p.max_daily_loss:
        return _done(state, f"daily loss limit {p.max_daily_loss:.2f} reached")
    bracket = bracket_prices(box, side)
    skip = bracket_skip_reason(bracket, bar.close)
    if skip is not None:
        return state, [
            *actions,
            Log("info", f"{state.symbol}: {side} breakout at {bar.close} skipped: {skip}"),
        ]
    level = box.high if side == "buy" else box.low
    qty = position_size(p.qty, p.risk_pct, state.equity, level, bracket.stop_price)
    if qty < 1:
        return state, [
            *actions,
            Log("warning", f"{state.symbol}: {side} breakout skipped: {p.risk_pct}% of equity buys no share"),
        ]
    number = state.entries_sent_today + 1
    order = SubmitBracket(
        symbol=state.symbol,
        side=side,
        qty=qty,
        stop_price=bracket.stop_price,
        take_profit_price=bracket.take_profit_price,
        client_order_id=client_order_id(state.symbol, session.date, number),
        box=box,
    )
    return _evolve(state, phase=ORDER_SENT, entry=order, entries_sent_today=number), [
        *actions,
        Log(
            "info",
            "{}: {} breakout: close {} {} {}; {} {} stop {} take-profit {}",
            (
                state.symbol,
                "long" if side == "buy" else "short",
                bar.close,
                ">" if side == "buy" else "<",
                level,
                side,
                qty,
                bracket.stop_price,
                bracket.take_profit_price,
            ),
        ),
        order,
    ]


def _fill_of(state: State, event: OrderUpdate, leg: str) -> Fill | None:
    if event.event not in FILL_EVENTS or event.execution_id is None:
        return None
    order = event.order
    qty = event.qty
    price = event.price
    if qty is None:
        # Only a full fill without its own size falls back to the order's totals (never partials:
        # peers double-count partial fills by summing cumulative filled_qty).
        if event.event != "fill":
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


def _apply_fill(state: State, fill: Fill) -> State:
    """Update position, average entry and realized P&L from one execution, and remember its id."""
    signed = fill.qty if fill.side == "buy" else -fill.qty
    pos = state.position_qty
    avg = state.avg_entry_price
    realized = state.realized_pnl_today
    new_pos = pos + signed
    if pos == 0 or (pos > 0) == (signed > 0):
        # Opening or adding: weighted average entry.
        total = abs(pos) + fill.qty
        avg = fill.price if avg is None or pos == 0 else (avg * abs(pos) + fill.price * fill.qty) / total
    else:
        closed = min(abs(pos), fill.qty)
        if avg is not None:
            direction = 1 if pos > 0 else -1
            realized += float((fill.price - avg) * closed * direction)
        if abs(signed) > abs(pos):  # flipped through zero
            avg = fill.price
        elif new_pos == 0:
            avg = None
    return _evolve(  # one State copy for all of it (the backtest applies a fill per order update)
        state,
        position_qty=new_pos,
        avg_entry_price=avg,
        realized_pnl_today=realized,
        seen_executions=state.seen_executions | {fill.execution_id},
    )


def _on_order_update(state: State, event: OrderUpdate) -> tuple[State, list[Action]]:
    order = event.order
    if order.symbol != state.symbol:
        return state, []
    state = _advance(state, event.timestamp)
    entry_cid = state.entry.client_order_id if state.entry else None
    leg = order_leg(order, entry_cid)
    actions: list[Action] = []
    previous_qty = state.position_qty
    fill = _fill_of(state, event, leg)
    if fill is not None:
        if fill.execution_id in state.seen_executions:
            return state, []  # the same execution via stream and REST: count it once
        actions.append(RecordFill(fill))
        state = _apply_fill(state, fill)

    is_our_entry = leg == "entry" and order.client_order_id == entry_cid
    phase = state.phase
    if is_our_entry:
        if fill is not None:
            if phase in (ORDER_SENT, ORDER_SUBMITTED, SEARCHING):
                state = _evolve(state, phase=ACTIVE_TRADE, trades_today=state.trades_today + 1)
                actions.append(
                    Log("info", "{}: entry filled {} @ {}; in trade", (state.symbol, fill.qty, fill.price))
                )
            return _after_position_change(state, actions, event.timestamp, _grew(previous_qty, state))
        if event.event in ACK_EVENTS and phase is ORDER_SENT:
            return _evolve(state, phase=ORDER_SUBMITTED), [
                *actions,
                Log("info", "{}: entry {} accepted ({})", (state.symbol, order.client_order_id, event.event)),
            ]
        if event.event in TERMINAL_WITHOUT_FILL and phase in (ORDER_SENT, ORDER_SUBMITTED):
            if state.position_qty != 0:  # a partial fill then cancel: trade what filled
                return _evolve(state, phase=ACTIVE_TRADE), [
                    *actions,
                    Log("info", f"{state.symbol}: entry {event.event} after a partial fill; in trade"),
                ]
            return _resume_search(
                state,
                event.timestamp,
                [*actions, Log("warning", f"{state.symbol}: entry {event.event}; searching again")],
            )
        return state, actions

    # An exit leg (take-profit, stop, flatten) or a stranger's order on our symbol.
    if fill is not None:
        actions.append(Log("info", "{}: {} filled {} @ {}", (state.symbol, leg, fill.qty, fill.price)))
        return _after_position_change(state, actions, event.timestamp, _grew(previous_qty, state))
    if (
        leg == "entry"
        and state.entry is None
        and event.event in ACK_EVENTS
        and order.is_open
        and phase is SEARCHING
        and state.position_qty == 0
        and _is_todays_entry(state, order.client_order_id)
    ):
        # One of our entries is working although we believed it dead (e.g. a SubmitFailed that was wrong):
        # adopt it, so that no second entry goes out next to it.
        number = _entry_number(order.client_order_id)
        return _evolve(
            state,
            phase=ORDER_SUBMITTED,
            entry=_entry_from_order(order, state),
            entries_sent_today=max(state.entries_sent_today, number),
        ), [
            *actions,
            Log("warning", f"{state.symbol}: entry {order.client_order_id} is working; adopting it"),
        ]
    if (
        leg == "stop_loss"
        and event.event in TERMINAL_WITHOUT_FILL
        and state.position_qty != 0
        and state.phase is ACTIVE_TRADE
        and not state.flattened
        and not state.closing
    ):
        new_state, protect = _protect(state)
        return new_state, actions + protect
    return state, actions


_PRE_TRADE = (WAITING_FOR_OPEN, SEARCHING, ORDER_SENT, ORDER_SUBMITTED)


def _grew(previous_qty: Decimal, state: State) -> bool:
    return abs(state.position_qty) > abs(previous_qty)


def _is_todays_entry(state: State, cid: str) -> bool:
    parsed = parse_client_order_id(cid)
    return (
        parsed is not None
        and state.session is not None
        and parsed[0] == state.symbol
        and parsed[1] == state.session.date
    )


def _after_position_change(
    state: State, actions: list[Action], when: datetime, grew: bool = False
) -> tuple[State, list[Action]]:
    if state.position_qty != 0:
        if state.phase in _PRE_TRADE:
            state = _evolve(state, phase=ACTIVE_TRADE)
        elif state.phase is DONE_FOR_THE_DAY and state.flattened and grew:
            # An entry filled after the flatten (its cancel lost the race): flatten again.
            actions = [
                *actions,
                Log("warning", f"{state.symbol}: position {state.position_qty} opened after the flatten"),
                CancelAll(state.symbol),
                CloseAll(state.symbol, "still not flat after flatten"),
            ]
        return state, actions
    if state.phase is ACTIVE_TRADE:
        return _position_closed(state, actions, when)
    return state, actions


def _position_closed(state: State, actions: list[Action], when: datetime) -> tuple[State, list[Action]]:
    """Stop or take-profit hit: the guide re-arms with a new box, unless a daily limit says stop."""
    p = state.params
    actions = [
        *actions,
        Log("info", "{}: position closed; realized today {:.2f}", (state.symbol, state.realized_pnl_today)),
    ]
    if p.max_trades and state.trades_today >= p.max_trades:
        new_state, more = _done(_start_search(state, when), f"max {p.max_trades} trades per day reached")
        return new_state, actions + more
    if p.max_daily_loss and -state.realized_pnl_today >= p.max_daily_loss:
        new_state, more = _done(
            _start_search(state, when), f"daily loss limit {p.max_daily_loss:.2f} reached"
        )
        return new_state, actions + more
    new_state, actions = _resume_search(state, when, actions)
    if new_state.phase is SEARCHING:
        actions.append(Log("info", f"{state.symbol}: searching for the next breakout"))
    return new_state, actions


def _on_submit_failed(state: State, event: SubmitFailed) -> tuple[State, list[Action]]:
    if state.entry is None or event.client_order_id != state.entry.client_order_id:
        return state, []
    if state.phase not in (ORDER_SENT, ORDER_SUBMITTED) or state.position_qty != 0:
        return state, [Log("warning", f"{state.symbol}: late submit failure ignored: {event.reason}")]
    return _resume_search(
        state,
        state.now,
        [
            Log(
                "warning",
                f"{state.symbol}: entry {event.client_order_id} refused: {event.reason}; searching again",
            )
        ],
    )


def _on_position(state: State, event: PositionChanged) -> tuple[State, list[Action]]:
    state = _advance(state, event.now)
    if event.qty == state.position_qty:
        return _on_time(state)
    previous = state.position_qty
    state = _evolve(state, position_qty=event.qty)
    actions: list[Action] = [Log("info", f"{state.symbol}: position {previous} -> {event.qty} (broker)")]
    if event.qty == 0 and state.phase is ACTIVE_TRADE:
        return _position_closed(state, actions, event.now)
    if event.qty != 0 and state.phase is DONE_FOR_THE_DAY and state.flattened:
        return state, [
            *actions,
            CancelAll(state.symbol),
            CloseAll(state.symbol, "still not flat after flatten"),
        ]
    if event.qty != 0 and state.phase in _PRE_TRADE:
        state = _evolve(state, phase=ACTIVE_TRADE)
    more_state, more = _on_time(state)
    return more_state, actions + more


def _protected(position: Decimal, orders: Sequence[OrderSnapshot], symbol: str) -> bool:
    """Is there a working stop on the closing side of this position (held legs count: Alpaca activates them)?"""
    closing_side = "sell" if position > 0 else "buy"
    candidates = [o for o in orders if o.symbol == symbol]
    candidates += [leg for o in candidates for leg in o.legs]
    return any(o.type in STOP_TYPES and o.side == closing_side and o.is_open for o in candidates)


def _on_reconciled(state: State, event: Reconciled) -> tuple[State, list[Action]]:
    new_day = state.session is None or event.session is None or state.session.date != event.session.date
    base = _evolve(
        state,
        now=_later(state.now, event.now),
        session=event.session,
        next_open=event.next_open,
        position_qty=event.position_qty,
        entries_sent_today=max(event.entries_sent_today, 0 if new_day else state.entries_sent_today),
        trades_today=max(event.trades_today, 0 if new_day else state.trades_today),
        realized_pnl_today=_realized_after(state, event, new_day),
        equity=event.equity or state.equity,
    )
    if new_day:
        base = _evolve(
            base,
            bars=(),
            box=None,
            box_not_before=None,
            flattened=False,
            entry=None,
            avg_entry_price=None,
            seen_executions=frozenset(),
            closing=False,
        )
    if event.position_qty != 0 and base.avg_entry_price is None and event.avg_entry_price is not None:
        # A restart mid-trade: the exit's realized P&L needs the entry price (daily loss limit).
        base = _evolve(base, avg_entry_price=event.avg_entry_price)
    bars = tuple(
        b
        for b in event.recent_bars
        if event.session is not None and event.session.open <= b.t < event.session.close
    )
    merged = {b.t: b for b in (*base.bars, *bars)}
    base = _evolve(base, bars=tuple(merged[t] for t in sorted(merged))[-state.params.lookback :])
    actions: list[Action] = []

    ours = [o for o in event.open_orders if o.symbol == state.symbol]
    working_entry = next(
        (o for o in ours if o.is_open and parse_client_order_id(o.client_order_id) is not None), None
    )
    if event.session is None:
        if event.position_qty != 0:
            actions.append(
                Log("warning", f"{state.symbol}: holding {event.position_qty} on a closed market day")
            )
        new_state, more = _done(_evolve(base, phase=DONE_FOR_THE_DAY), "market closed today")
        return new_state, actions + more

    if event.position_qty != 0:
        protected = _protected(event.position_qty, ours, state.symbol)
        phase = DONE_FOR_THE_DAY if base.flattened else ACTIVE_TRADE
        if state.phase is not ACTIVE_TRADE:
            actions.append(Log("info", f"{state.symbol}: broker holds {event.position_qty}; managing it"))
        base = _evolve(base, phase=phase, unprotected=not protected)
        if base.flattened:
            return base, [
                *actions,
                CancelAll(state.symbol),
                CloseAll(state.symbol, "still not flat after flatten"),
            ]
        new_state, more = _on_time(base)
        return new_state, actions + more

    base = _evolve(base, unprotected=False)
    if base.flattened:
        # Flattened today: stay done; an order still working (the CancelAll not yet through) is cancelled again.
        base = _evolve(base, phase=DONE_FOR_THE_DAY)
        if any(o.is_open for o in ours):
            actions.append(CancelAll(state.symbol))
        return base, actions
    if working_entry is not None:
        entry = base.entry
        if entry is None or entry.client_order_id != working_entry.client_order_id:
            actions.append(
                Log("info", f"{state.symbol}: entry {working_entry.client_order_id} is working; waiting")
            )
            entry = _entry_from_order(working_entry, base)
        new_state, more = _on_time(_evolve(base, phase=ORDER_SUBMITTED, entry=entry))
        return new_state, actions + more

    if (
        base.phase is ORDER_SENT
        and base.entry is not None
        and event.entries_sent_today < _entry_number(base.entry.client_order_id)
    ):
        # Our submission is still in flight (or its outcome unknown): the broker has not seen its
        # client_order_id yet, so "no working entry" proves nothing. Wait for the ack or a SubmitFailed
        # rather than search (and maybe send a second entry next to the first).
        new_state, more = _on_time(base)
        return new_state, [
            *actions,
            Log("info", f"{state.symbol}: entry {base.entry.client_order_id} not seen at the broker yet"),
            *more,
        ]
    if base.phase in (ACTIVE_TRADE, ORDER_SENT, ORDER_SUBMITTED):
        # Flat with nothing working: the trade ended (or the entry never arrived) while we were not looking.
        if base.phase is ACTIVE_TRADE:
            return _position_closed(base, actions, event.now)
        base = _start_search(base, None)
        actions.append(Log("info", f"{state.symbol}: no working entry at the broker; searching"))
    if base.phase is DONE_FOR_THE_DAY and not new_day:
        return base, actions
    if new_day or base.phase is DONE_FOR_THE_DAY:
        base = _evolve(base, phase=WAITING_FOR_OPEN)
    if base.phase is WAITING_FOR_OPEN:
        if event.now < event.session.open:
            return base, [*actions, SleepUntil(event.session.open, "market open")]
        base = _evolve(base, phase=SEARCHING, box=None)
    new_state, more = _on_time(base)
    if new_state.phase is SEARCHING and new_state.box is None:
        new_state, more = _maybe_form_box(new_state, more)
    return new_state, actions + more


def _realized_after(state: State, event: Reconciled, new_day: bool) -> float:
    """Today's realized P&L after a reconcile. A new day (or a restart) takes the broker's figure; later
    the lower of ours and the broker's, as either may not have seen the latest fill yet: a loss seen by
    one side only still counts against the daily limit."""
    ours = 0.0 if new_day else state.realized_pnl_today
    broker = event.realized_pnl_today
    if broker is None:
        return ours
    return broker if new_day else min(ours, broker)


def _entry_number(cid: str) -> int:
    parsed = parse_client_order_id(cid)
    return parsed[2] if parsed is not None else 0


def _entry_from_order(order: OrderSnapshot, state: State) -> SubmitBracket:
    """Rebuild the entry we must have sent before a restart, from the broker's copy of it."""
    stop = next((leg.stop_price for leg in order.legs if leg.type in STOP_TYPES), None)
    take = next((leg.limit_price for leg in order.legs if leg.type == "limit"), None)
    return SubmitBracket(
        symbol=order.symbol,
        side=order.side,
        qty=int(order.qty),
        stop_price=stop or Decimal(0),
        take_profit_price=take or Decimal(0),
        client_order_id=order.client_order_id,
        box=state.box,
    )


def status_line(state: State) -> dict[str, str]:
    """What the terminal panel shows (pure: the runner renders it)."""
    box = state.box
    last = state.bars[-1] if state.bars else None
    return {
        "symbol": state.symbol,
        "phase": state.phase.value,
        "last_bar": f"{last.t.astimezone(_NEW_YORK):%H:%M} c={last.close}" if last else "-",
        "box": f"{box.low:.2f}-{box.high:.2f} r={box.range:.2f}" if box else "-",
        "position": str(state.position_qty),
        "realized": f"{state.realized_pnl_today:.2f}",
        "entries": str(state.entries_sent_today),
    }


__all__ = [
    "ACK_EVENTS",
    "FILL_EVENTS",
    "Action",
    "BarClosed",
    "CancelAll",
    "CloseAll",
    "Event",
    "Fill",
    "Log",
    "OrderSnapshot",
    "OrderUpdate",
    "Params",
    "Phase",
    "PositionChanged",
    "Reconciled",
    "RecordFill",
    "Session",
    "SleepUntil",
    "State",
    "SubmitBracket",
    "SubmitFailed",
    "Tick",
    "client_order_id",
    "initial_state",
    "order_leg",
    "parse_client_order_id",
    "status_line",
    "step",
]
