"""The machine's memory: one symbol's `State`, its phases, and `evolve` (the cheap copy).

Phases follow the guide: waiting_for_open -> searching -> order_sent -> order_submitted -> active_trade
-> (searching again after an exit) ... -> done_for_the_day.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from .events import SubmitBracket
from .model import Bar, Box, Session
from .params import Params


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

# Before a trade: a position appearing in one of these phases is a trade to manage.
PRE_TRADE = (WAITING_FOR_OPEN, SEARCHING, ORDER_SENT, ORDER_SUBMITTED)
# An entry working or a trade on: what the close must not find.
EXPOSED = (ORDER_SENT, ORDER_SUBMITTED, ACTIVE_TRADE)


@dataclass(frozen=True)  # no slots: evolve copies __dict__, ~5x cheaper than dataclasses.replace
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
    entry_sent_at: datetime | None = None  # when the machine sent `entry` (order_sent's clock)
    entry_lookup_at: datetime | None = None  # when it last asked the broker for it (LookupEntry)
    entries_sent_today: int = 0
    trades_today: int = 0
    realized_pnl_today: float = 0.0
    avg_entry_price: Decimal | None = None
    equity: float = 0.0
    flattened: bool = False  # close - flatten_minutes reached and CloseAll sent
    unprotected: bool = False  # a position without a working stop: flatten as soon as the market is open
    seen_executions: frozenset[str] = frozenset()  # today's execution ids already applied
    closing: bool = False  # CloseAll sent for an unprotected position: the legs' cancels must not re-send it
    done_reason: str = ""  # why the day is done (the status panel says it in words)
    close_retry_at: datetime | None = None  # a close that did not go through is sent again at this time
    close_failures: int = 0  # closes of the current position that did not go through (the backoff)
    can_short: bool = True  # today's asset: shortable and easy to borrow (re-read each session)
    # (order id, filled qty) that position_qty already holds, from the broker's position reads: a fill
    # reported later within these is booked (journal, P&L) without moving the position again.
    reflected: tuple[tuple[str, Decimal], ...] = ()


_STATE_FIELDS = frozenset(f.name for f in fields(State))
_new_object = object.__new__
_set_attribute = object.__setattr__
_N_STATE_FIELDS = len(_STATE_FIELDS)


def evolve(state: State, **changes: Any) -> State:
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


def advance(state: State, when: datetime) -> State:
    """The clock moved to `when` (it never goes back); no State copy when it did not move."""
    return evolve(state, now=when) if state.now is None or when > state.now else state


def later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def market_open(state: State) -> bool:
    s = state.session
    return s is not None and state.now is not None and s.open <= state.now < s.close
