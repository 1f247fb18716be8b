"""The reconcile reader: the broker's truth, read over REST, as one `Reconciled` event per symbol.

Read at start, after every stream (re)connection, on a timer and at each new session. The runner asks
in this order (live/runner.py, `_reconcile`): the market (clock, today's session), today's fills (which
the runner hands to the machines first), the order book (open orders, today's orders, equity), then per
symbol the position, the asset once a session (may it be sold short today?) and the box's history.
Today's fills give each symbol its realized P&L and the entry price of an open position, so the daily
limits survive a restart. The open orders include the held stop-loss legs of today's filled brackets,
which Alpaca lists only under status=all (core.reconcile.with_held_legs): they protect the position.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from ..broker.base import Broker, FillActivity
from ..core.events import Reconciled
from ..core.ids import entries_today
from ..core.model import NEW_YORK, OrderSnapshot, Session
from ..core.reconcile import with_held_legs
from ..errors import BrokerError
from ..roundtrips import FillLike, todays_realized
from .feed import BarFeed

log = logging.getLogger(__name__)

SESSIONS_AHEAD = timedelta(days=10)  # the calendar read: today and the next sessions
ORDERS_LOOKBACK = timedelta(hours=12)  # today's orders: submitted since before midnight (overnight gtc)


@dataclass(frozen=True, slots=True)
class MarketView:
    now: datetime  # the broker's clock
    session: Session | None  # today's regular session; None when closed today or already over
    next_open: datetime
    day_start: datetime  # New York midnight of the broker's today
    over: Session | None  # today's session when it has already closed


@dataclass(frozen=True, slots=True)
class OrderBook:
    open_orders: tuple[OrderSnapshot, ...]
    todays_orders: tuple[OrderSnapshot, ...]
    equity: float


class ReconcileReader:
    def __init__(self, broker: Broker, feed: BarFeed, lookback: int, read_equity: bool) -> None:
        self.broker = broker
        self.feed = feed
        self.lookback = lookback
        self.read_equity = read_equity  # equity sizes the trades only with risk_pct
        self._shortable: dict[tuple[str, date], bool] = {}  # (symbol, session date) -> may short today

    def market(self) -> MarketView:
        clock = self.broker.get_clock()
        now = clock.timestamp
        today = now.astimezone(NEW_YORK).date()
        sessions = self.broker.get_sessions(today, today + SESSIONS_AHEAD)
        session = next((s for s in sessions if s.date == today), None)
        later = [s for s in sessions if s.open > now]
        next_open = later[0].open if later else clock.next_open
        over = None
        if session is not None and now >= session.close:
            over, session = session, None
        day_start = datetime.combine(today, datetime.min.time(), NEW_YORK)
        return MarketView(now, session, next_open, day_start, over)

    def orders(self, view: MarketView) -> OrderBook:
        open_orders = self.broker.list_open_orders()
        equity = float(self.broker.get_account().equity) if self.read_equity else 0.0
        todays = self.broker.list_orders_since(view.day_start - ORDERS_LOOKBACK)
        return OrderBook(with_held_legs(open_orders, todays), tuple(todays), equity)

    def shortable_today(self, symbol: str, session: Session | None) -> bool | None:
        """May `symbol` be sold short this session: shortable and easy to borrow, read once a session
        (Alpaca: the flags "can change overnight"). None when unreadable (the next reconcile asks again)."""
        if session is None:
            return None
        key = (symbol, session.date)
        if key not in self._shortable:
            try:
                asset = self.broker.get_asset(symbol)
            except BrokerError as exc:
                log.warning("%s: asset unreadable (%s); shortability unknown", symbol, exc)
                return None
            self._shortable[key] = asset.shortable and asset.easy_to_borrow
        return self._shortable[key]

    def reconciled(
        self, symbol: str, view: MarketView, book: OrderBook, todays_fills: Sequence[FillActivity] | None
    ) -> Reconciled:
        """One symbol's Reconciled: today's entries counted by the core (`core.ids.entries_today`), the
        position (read now), realized P&L and entry price from today's fills, and the box's history at a
        (re)start."""
        session = view.session
        entries_sent, trades = (
            (0, 0) if session is None else entries_today(book.todays_orders, symbol, session.date)
        )
        position = self.broker.get_position_qty(symbol)
        realized: Decimal | None = None
        average: Decimal | None = None
        if todays_fills is not None:
            realized, average = todays_realized(
                [
                    FillLike(f.symbol, f.side, f.qty, f.price, f.transaction_time)
                    for f in todays_fills
                    if f.symbol == symbol
                ],
                position,
            )
        return Reconciled(
            now=view.now,
            session=session,
            next_open=view.next_open,
            position_qty=position,
            open_orders=tuple(o for o in book.open_orders if o.symbol == symbol),
            entries_sent_today=entries_sent,
            trades_today=trades,
            realized_pnl_today=None if realized is None else float(realized),
            recent_bars=self.feed.history(symbol, session, view.now, self.lookback),
            equity=book.equity,
            avg_entry_price=average,
            shortable=self.shortable_today(symbol, session),
        )
