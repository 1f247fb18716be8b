"""What the machine hears (events) and what it asks for (actions). Plain values, no behaviour.

The live runner turns the world into events and executes the actions (live/executor.py); the backtest
engine does the same against its simulated broker (backtest/engine.py).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from .model import Bar, Box, Fill, OrderEvent, OrderSnapshot, Session, Side
from .valuetype import value_type

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
    # May the symbol be sold short today (shortable and easy to borrow: the asset, re-read each
    # session)? None: not read (no change).
    shortable: bool | None = None
    # (order id, filled qty) of today's orders as the position read saw them: a fill reported later
    # with a cumulative quantity within these is already in position_qty (core/trade.py, `_book_fill`).
    reflected: tuple[tuple[str, Decimal], ...] = ()


@value_type
class Tick:
    now: datetime


@value_type
class BarClosed:
    bar: Bar


@value_type
class OrderUpdate:
    """A trade_updates event (or one synthesized from a REST order read)."""

    event: OrderEvent
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
    reflected: tuple[tuple[str, Decimal], ...] = ()  # as Reconciled.reflected


@value_type
class CloseFailed:
    """The close of a position was not accepted; try again `retry_after` seconds later.

    `unprotected`: nothing protects the position at the broker any more (its legs were canceled, or
    there were none); `refused`: the broker refused the close itself (not a wait for cancels to finish),
    so the position needs a stop of its own meanwhile."""

    symbol: str
    reason: str
    retry_after: float
    unprotected: bool = False
    refused: bool = False


@value_type
class EntryNotFound:
    """A lookup by client_order_id: the broker has no order with this id (a provable 404)."""

    client_order_id: str
    now: datetime


Event = (
    Reconciled | Tick | BarClosed | OrderUpdate | SubmitFailed | PositionChanged | CloseFailed | EntryNotFound
)

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
    reference_price: Decimal | None = None  # the signal bar's close: the price the risk gate values at
    signal_end: datetime | None = None  # the end of the bar whose close decided it (None: rebuilt)


@value_type
class LookupEntry:
    """Ask the broker for our entry by its client_order_id (its outcome is still unknown)."""

    symbol: str
    client_order_id: str


@value_type
class CancelAll:
    symbol: str


@value_type
class CancelOrder:
    """Cancel one order (an open order on our symbol that we did not send)."""

    symbol: str
    order_id: str


@value_type
class CloseAll:
    """Get the position closed: the executor replaces the take-profit leg by a marketable limit (the stop
    keeps protecting until the exit fills), or, without one, cancels what holds the shares and closes."""

    symbol: str
    reason: str
    last_price: Decimal | None = None  # the latest close the machine saw (prices the marketable limit)
    stop_price: Decimal | None = None  # the trade's stop (the marketable limit stays a cent beyond it)


@value_type
class ProtectPosition:
    """Send a stop order for the position (its close was refused and nothing protects it)."""

    symbol: str
    side: Side  # the closing side
    qty: Decimal
    stop_price: Decimal
    reason: str


@value_type
class WakeAt:
    """Step the machine (a Tick) at `when`: a retry the machine scheduled."""

    symbol: str
    when: datetime
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


Action = (
    SubmitBracket
    | LookupEntry
    | CancelAll
    | CancelOrder
    | CloseAll
    | ProtectPosition
    | RecordFill
    | SleepUntil
    | WakeAt
    | Log
)
