"""The reconcile reader: the broker's truth, read over REST, as one `Reconciled` event per symbol.

Read at start, after every stream (re)connection, on a timer and at each new session. The runner asks
in this order (live/runner.py, `_reconcile`): the market (clock, today's session), today's fills (which
the runner hands to the machines first), the order book (open orders, today's orders, equity), then per
symbol the position (`positions`: one read of every position, between two reads of today's orders), the assets once a session (may
each be sold short today? one read for all: `read_assets`) and the box's history. Today's fills give each symbol its realized P&L and the
entry price of an open position, so the daily limits survive a restart. The open orders include the
held stop-loss legs of today's filled brackets, which Alpaca lists only under status=all
(core.reconcile.with_held_legs): they protect the position.

A position read is a snapshot of moving things: an execution may land between the fills read and the
position read, and its trade_updates message, queued meanwhile, then reaches the machine after a
position that already holds it (issue 16: the bot believed 200 where the broker held 100). So every
position the machines adopt comes with the executions it holds, as (order id, filled qty) of today's
orders read before and after it: when both reads agree, nothing filled in between and the position
holds exactly those; the machine books a later report within them without moving the position again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from ..broker.base import Broker, FillActivity
from ..core.events import Reconciled
from ..core.ids import entries_today
from ..core.model import NEW_YORK, Bar, OrderSnapshot, Session
from ..core.reconcile import with_held_legs
from ..errors import BrokerError
from ..roundtrips import FillLike, todays_realized
from .feed import BarFeed

log = logging.getLogger(__name__)

SESSIONS_AHEAD = timedelta(days=10)  # the calendar read: today and the next sessions
ORDERS_LOOKBACK = timedelta(hours=12)  # today's orders: submitted since before midnight (overnight gtc)
SNAPSHOT_READS = 3  # position reads between order reads before taking one whose brackets disagree


def midnight(day: date) -> datetime:
    """New York midnight of `day` (today's orders and fills are read from there)."""
    return datetime.combine(day, time(0), NEW_YORK)


def filled_quantities(orders: Iterable[OrderSnapshot], symbol: str) -> tuple[tuple[str, Decimal], ...]:
    """(order id, filled qty) of `symbol`'s orders and their legs that filled anything, sorted."""
    out: list[tuple[str, Decimal]] = []
    stack = [o for o in orders if o.symbol == symbol]
    while stack:
        order = stack.pop()
        if order.filled_qty > 0:
            out.append((order.id, order.filled_qty))
        stack.extend(order.legs)
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class PositionRead:
    qty: Decimal  # signed
    reflected: tuple[tuple[str, Decimal], ...]  # the executions it holds (at least these)
    consistent: bool  # the order reads around it agreed: it holds exactly `reflected`


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
        return MarketView(now, session, next_open, midnight(today), over)

    def orders(self, view: MarketView) -> OrderBook:
        open_orders = self.broker.list_open_orders()
        equity = float(self.broker.get_account().equity) if self.read_equity else 0.0
        todays = self.broker.list_orders_since(view.day_start - ORDERS_LOOKBACK)
        return OrderBook(with_held_legs(open_orders, todays), tuple(todays), equity)

    def histories(self, symbols: Sequence[str], view: MarketView) -> dict[str, tuple[Bar, ...]]:
        """The boxes' history at a (re)start, one read for all `symbols` (BarFeed.histories)."""
        return self.feed.histories(symbols, view.session, view.now, self.lookback)

    def read_assets(self, symbols: Sequence[str], session: Session | None) -> None:
        """Read once a session whether each symbol may be sold short: shortable and easy to borrow
        (Alpaca: the flags "can change overnight"), for all `symbols` in one read (Broker.get_assets).
        Unreadable: their shortability stays unknown and the next reconcile asks again."""
        if session is None:
            return
        missing = [s for s in symbols if (s, session.date) not in self._shortable]
        if not missing:
            return
        try:
            assets = self.broker.get_assets(missing)
        except BrokerError as exc:
            log.warning("assets unreadable (%s); shortability unknown", exc)
            return
        for symbol in missing:
            asset = assets.get(symbol)
            if asset is None:
                log.warning("%s: the broker has no such asset; shortability unknown", symbol)
                continue
            self._shortable[(symbol, session.date)] = asset.shortable and asset.easy_to_borrow

    def shortable_today(self, symbol: str, session: Session | None) -> bool | None:
        """May `symbol` be sold short this session (as `read_assets` read it); None when unknown."""
        if session is None:
            return None
        return self._shortable.get((symbol, session.date))

    def positions(
        self, symbols: Sequence[str], since: datetime, book: OrderBook
    ) -> tuple[OrderBook, dict[str, PositionRead]]:
        """Each symbol's position with the executions it holds (module docstring), read after `book`'s
        orders and before a second read of today's orders; a symbol whose two order reads disagree is
        read again (at most SNAPSHOT_READS times, then the earlier read's executions: those it surely
        holds). The book comes back with the latest read of today's orders."""
        reads: dict[str, PositionRead] = {}
        before = book.todays_orders
        pending = list(symbols)
        for attempt in range(1, SNAPSHOT_READS + 1):
            held_now = self.broker.list_positions()  # one read for every symbol (GET /v2/positions)
            qty = {symbol: held_now.get(symbol, Decimal(0)) for symbol in pending}
            after = tuple(self.broker.list_orders_since(since, symbols[0] if len(symbols) == 1 else None))
            for symbol in list(pending):
                held = filled_quantities(before, symbol)
                consistent = held == filled_quantities(after, symbol)
                if consistent or attempt == SNAPSHOT_READS:
                    if not consistent:
                        log.warning("%s: fills kept landing around the position read; using it", symbol)
                    reads[symbol] = PositionRead(qty[symbol], held, consistent)
                    pending.remove(symbol)
            before = after
            if not pending:
                break
        return replace(book, todays_orders=before), reads

    def positions_now(self, symbols: Sequence[str], session_date: date) -> dict[str, PositionRead]:
        """Symbols' positions with the executions they hold (the minute's poll, for the symbols whose
        figure at the broker differs from their machine's): one read of today's orders, of the
        positions, and of the orders again, however many symbols."""
        since = midnight(session_date) - ORDERS_LOOKBACK
        one = symbols[0] if len(symbols) == 1 else None
        book = OrderBook((), tuple(self.broker.list_orders_since(since, one)), 0.0)
        return self.positions(symbols, since, book)[1]

    def reconciled(
        self,
        symbol: str,
        view: MarketView,
        book: OrderBook,
        read: PositionRead,
        todays_fills: Sequence[FillActivity] | None,
        recent_bars: tuple[Bar, ...] = (),
    ) -> Reconciled:
        """One symbol's Reconciled: today's entries counted by the core (`core.ids.entries_today`), the
        position (`read`, from `positions`), realized P&L and entry price from today's fills, and the
        box's history at a (re)start (`recent_bars`: BarFeed.histories, read for all symbols at once)."""
        session = view.session
        entries_sent, trades = (
            (0, 0) if session is None else entries_today(book.todays_orders, symbol, session.date)
        )
        position = read.qty
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
            recent_bars=recent_bars,
            equity=book.equity,
            avg_entry_price=average,
            shortable=self.shortable_today(symbol, session),
            reflected=read.reflected,
        )
