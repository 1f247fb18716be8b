"""The backtest's broker: Alpaca-like orders for one symbol, filled bar by bar.

The backtest engine (backtest/engine.py) drives it: the machine's actions become orders here, and each
bar produces the trade updates Alpaca would have sent, as `OrderUpdate` events. Fill rules (docs/design.md,
"The strategy, precisely"; the level-or-gap rule is market/fills.py's, shared with the simulator):

* A market order (the entry, or a close) fills at the open of the next bar, adverse slippage
  included (buy: open + slippage, sell: open - slippage).
* A filled bracket entry activates its two legs; they are checked against every bar from the entry
  bar itself on. A stop triggers when the bar's low reaches it (long; high for a short), a
  take-profit when the high reaches it (long; low for a short).
* A triggered leg fills at its price, or at the bar's open when the bar opened beyond it (a gap:
  worse for a stop, better for a take-profit). A stop becomes a market order once triggered, so it
  pays the slippage; a take-profit is a limit and never fills worse than its price.
* When both legs are touched in one bar the stop is taken (conservative); the sibling is canceled.
* Fills are whole (no partials) and every execution id is deterministic: `<order id>-1`.

Only one symbol's orders live here (a backtest runs one symbol). Read methods mirror the Broker
protocol (`get_position_qty`, `list_open_orders`, `get_order`, `get_order_by_client_id`,
`fill_activities`) so that tests and reports can inspect it like a real account.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass, field
from decimal import Decimal

from ..broker.base import FillActivity
from ..core.events import OrderUpdate, SubmitBracket
from ..core.model import NEW_YORK, OrderEvent, OrderSnapshot, OrderStatus, OrderType, Side
from ..core.ticks import fill_price
from ..errors import BrokerNotFound
from ..market.fills import touches

_ZERO = Decimal(0)
_NO_LOW, _NO_HIGH = float("-inf"), float("inf")
# Module constants for the hot path (EnumType.__getattr__ is slow on Python 3.11).
NEW, HELD, FILLED, CANCELED = OrderStatus.NEW, OrderStatus.HELD, OrderStatus.FILLED, OrderStatus.CANCELED
MARKET, LIMIT, STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
ACCEPTED, FILL = OrderEvent.ACCEPTED, OrderEvent.FILL

OrderKind = str  # entry | stop_loss | take_profit | flatten | end_of_data


@dataclass(slots=True, eq=False)
class BacktestOrder:
    id: str
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType  # market | stop | limit
    qty: Decimal  # whole shares, kept as the Decimal every snapshot reports
    kind: OrderKind
    submitted_at: dt.datetime
    status: OrderStatus = OrderStatus.NEW  # new | held | filled | canceled | expired
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    order_class: str = ""
    legs: list[BacktestOrder] = field(default_factory=list)
    filled_qty: Decimal = _ZERO
    filled_avg_price: Decimal | None = None
    # The last snapshot (every change of an order here changes its status: a fill sets filled_qty and
    # filled_avg_price together with FILLED).
    _snap: OrderSnapshot | None = field(default=None, repr=False)

    @property
    def is_open(self) -> bool:
        status = self.status
        return status is NEW or status is HELD

    def snapshot(self) -> OrderSnapshot:
        # One snapshot per trade update, several per backtest trade (the hot path): built positionally,
        # and reused while neither the order's status nor its legs' snapshots changed (a bracket's held
        # legs appear in two updates of its entry).
        legs = tuple([leg.snapshot() for leg in self.legs]) if self.legs else ()
        snap = self._snap
        if snap is not None and snap.status == self.status and all(map(operator.is_, legs, snap.legs)):
            return snap
        snap = self._snap = OrderSnapshot(
            self.id,
            self.client_order_id,
            self.symbol,
            self.side,
            self.type,
            self.status,
            self.qty,
            self.filled_qty,
            self.filled_avg_price,
            self.stop_price,
            self.limit_price,
            self.order_class,
            legs,
        )
        return snap


class BacktestBroker:
    """Orders and one position for one symbol; fills come from bars (see the module docstring)."""

    def __init__(self, symbol: str, *, slippage_per_share: float = 0.0, id_prefix: str = "sim") -> None:
        if slippage_per_share < 0:
            raise ValueError("slippage_per_share must be >= 0")
        self.symbol = symbol
        self.slippage = Decimal(repr(float(slippage_per_share)))
        self._prefix = id_prefix
        self._id_stem = id_prefix
        self._seq = 0
        self.position = 0  # signed shares
        self.orders: dict[str, BacktestOrder] = {}
        self._open: dict[str, BacktestOrder] = {}  # open orders only (cancel stays O(open), not O(history))
        self._by_cid: dict[str, BacktestOrder] = {}
        self.pending: list[BacktestOrder] = []  # market orders waiting for the next bar's open
        self._stop: BacktestOrder | None = None  # active bracket legs (after the entry filled)
        self._take: BacktestOrder | None = None
        self._stop_f = 0.0
        self._take_f = 0.0
        self._long = True
        # A bar with low > leg_low and high < leg_high touches no active leg (attributes, not a method:
        # the engine reads them before every scan).
        self.leg_low = _NO_LOW
        self.leg_high = _NO_HIGH
        self._fills: list[tuple[BacktestOrder, str, dt.datetime]] = []  # (order, execution id, time)

    # ------------------------------------------------------------------ state the engine polls
    @property
    def busy(self) -> bool:
        """Something can fill on the next bar (a pending market order or active legs)."""
        return bool(self.pending) or self._stop is not None

    # ------------------------------------------------------------------ orders
    def start_session(self, day: dt.date) -> None:
        """Order ids from here on name the session (`sim-20240304-000001`): a session's ids do not
        depend on the sessions replayed before it, so sessions replayed apart (other processes, other
        machines) give the same orders and fills as one replay."""
        self._id_stem = f"{self._prefix}-{day:%Y%m%d}"
        self._seq = 0

    def forget_closed(self) -> None:
        """Drop every order that is no longer open, and the fill activities: the engine calls it after a
        session, once it has built that session's trades (a long replay would otherwise keep every
        order it ever saw)."""
        self.orders = dict(self._open)
        self._by_cid = {o.client_order_id: o for o in self._open.values()}
        self._fills.clear()

    def _new_id(self) -> str:
        self._seq += 1
        return f"{self._id_stem}-{self._seq:06d}"

    def _add(self, order: BacktestOrder) -> BacktestOrder:
        self.orders[order.id] = order
        self._open[order.id] = order
        self._by_cid[order.client_order_id] = order
        return order

    def submit_bracket(self, request: SubmitBracket, now: dt.datetime) -> list[OrderUpdate]:
        """A market bracket entry, acknowledged at once (`new`); its legs are held until it fills."""
        if request.symbol != self.symbol:
            raise ValueError(f"this simulated broker trades {self.symbol}, not {request.symbol}")
        side = request.side
        closing: Side = "sell" if side == "buy" else "buy"
        qty = Decimal(int(request.qty))
        symbol = self.symbol
        # Positional (the field order of BacktestOrder): one bracket per backtest trade. Ids in the order
        # entry, take-profit, stop; both legs are held until the entry fills.
        entry = BacktestOrder(
            self._new_id(), request.client_order_id, symbol, side, MARKET, qty, "entry", now, NEW,
            None, None, "bracket",
        )  # fmt: skip
        take_id = self._new_id()
        take = BacktestOrder(
            take_id, f"{take_id}-tp", symbol, closing, LIMIT, qty, "take_profit", now, HELD,
            None, request.take_profit_price, "bracket",
        )  # fmt: skip
        stop_id = self._new_id()
        stop = BacktestOrder(
            stop_id, f"{stop_id}-sl", symbol, closing, STOP, qty, "stop_loss", now, HELD,
            request.stop_price, None, "bracket",
        )  # fmt: skip
        entry.legs = [take, stop]
        self._add(take)
        self._add(stop)
        self._add(entry)
        self.pending.append(entry)
        return [OrderUpdate(ACCEPTED, entry.snapshot(), now)]

    def cancel_orders(self, symbol: str, now: dt.datetime) -> list[OrderUpdate]:
        """Cancel every open order of `symbol` (a bracket's legs too)."""
        return self._end_open_orders(symbol, now, OrderStatus.CANCELED, OrderEvent.CANCELED)

    def expire_day_orders(self, now: dt.datetime) -> list[OrderUpdate]:
        """Time-in-force day: what is still open at the close expires."""
        return self._end_open_orders(self.symbol, now, OrderStatus.EXPIRED, OrderEvent.EXPIRED)

    def _end_open_orders(
        self, symbol: str, now: dt.datetime, status: OrderStatus, event: OrderEvent
    ) -> list[OrderUpdate]:
        if symbol != self.symbol:
            return []
        events = []
        for order in self._open.values():
            order.status = status
            events.append(OrderUpdate(event, order.snapshot(), now))
        self._open.clear()
        self.pending.clear()
        self._end_legs()
        return events

    def close_position(self, symbol: str, now: dt.datetime, kind: OrderKind = "flatten") -> list[OrderUpdate]:
        """A market order closing the whole position at the next bar's open (no-op when flat or when
        a close is already working)."""
        if symbol != self.symbol or self.position == 0:
            return []
        if any(o.kind in ("flatten", "end_of_data") for o in self.pending):
            return []
        oid = self._new_id()
        order = self._add(
            BacktestOrder(
                id=oid,
                client_order_id=f"{oid}-close",
                symbol=self.symbol,
                side="sell" if self.position > 0 else "buy",
                type=MARKET,
                qty=Decimal(abs(self.position)),
                kind=kind,
                submitted_at=now,
            )
        )
        self.pending.append(order)
        return [OrderUpdate(ACCEPTED, order.snapshot(), now)]

    # ------------------------------------------------------------------ fills
    def _fill(self, order: BacktestOrder, price: Decimal, when: dt.datetime) -> OrderUpdate:
        order.status = FILLED
        self._open.pop(order.id, None)
        qty = order.filled_qty = order.qty
        order.filled_avg_price = price
        self.position += int(qty) if order.side == "buy" else -int(qty)
        execution_id = f"{order.id}-1"
        self._fills.append((order, execution_id, when))
        return OrderUpdate(FILL, order.snapshot(), when, execution_id, qty, price)

    def _activate_legs(self, entry: BacktestOrder) -> None:
        take, stop = entry.legs  # submit_bracket adds the take-profit, then the stop
        if take.status is not HELD or stop.status is not HELD:  # canceled with the entry: nothing to do
            return
        take.status = stop.status = NEW
        assert stop.stop_price is not None and take.limit_price is not None
        self._stop, self._take = stop, take
        self._stop_f, self._take_f = float(stop.stop_price), float(take.limit_price)
        self._long = entry.side == "buy"
        self.leg_low, self.leg_high = (
            (self._stop_f, self._take_f) if self._long else (self._take_f, self._stop_f)
        )

    def _end_legs(self) -> None:
        self._stop = self._take = None
        self.leg_low, self.leg_high = _NO_LOW, _NO_HIGH

    def on_bar(self, t: int, o: float, h: float, low: float) -> list[OrderUpdate]:
        """Bar starting at epoch second `t`: (1) pending market orders fill at its open, (2) active legs
        are checked against its range. Returns the trade updates, in order ([] when nothing happened)."""
        events: list[OrderUpdate] = []
        when: dt.datetime | None = None
        if self.pending:
            when = dt.datetime.fromtimestamp(t, NEW_YORK)
            pending, self.pending = self.pending, []
            for order in pending:
                price = fill_price(o)
                price = price + self.slippage if order.side == "buy" else price - self.slippage
                events.append(self._fill(order, price, when))
                if order.kind == "entry":
                    self._activate_legs(order)
        stop = self._stop
        if stop is None:
            return events
        take = self._take
        assert take is not None
        if self._long:
            stop_hit = low <= self._stop_f
            take_hit = h >= self._take_f
        else:
            stop_hit = h >= self._stop_f
            take_hit = low <= self._take_f
        if not (stop_hit or take_hit):
            return events
        if when is None:
            when = dt.datetime.fromtimestamp(t, NEW_YORK)
        self._end_legs()
        # A touched leg fills at its level, or at the open when the bar opened beyond it (market/fills.py:
        # the open is the first trade after the gap); both touched: the stop first (conservative).
        if stop_hit:
            assert stop.stop_price is not None
            price = fill_price(o) if touches(self._stop_f, o, not self._long) else stop.stop_price
            price = price - self.slippage if self._long else price + self.slippage
            filled, sibling = stop, take
        else:
            assert take.limit_price is not None
            price = fill_price(o) if touches(self._take_f, o, self._long) else take.limit_price
            filled, sibling = take, stop
        events.append(self._fill(filled, price, when))
        sibling.status = CANCELED
        self._open.pop(sibling.id, None)
        events.append(OrderUpdate(OrderEvent.CANCELED, sibling.snapshot(), when))
        return events

    def fill_closes_at(self, price: float, when: dt.datetime) -> list[OrderUpdate]:
        """No bar is left in the session: pending closing orders fill at `price` (the last bar's close,
        no slippage) at `when` or when they were sent, whichever is later. Pending entries stay (and
        expire at the close)."""
        events = []
        keep = []
        for order in self.pending:
            if order.kind in ("flatten", "end_of_data"):
                events.append(self._fill(order, fill_price(price), max(when, order.submitted_at)))
            else:
                keep.append(order)
        self.pending = keep
        return events

    # ------------------------------------------------------------------ reads (Broker-protocol style)
    def get_position_qty(self, symbol: str) -> Decimal:
        return Decimal(self.position) if symbol == self.symbol else _ZERO

    def list_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        """Open orders with legs nested under their parent (like Alpaca's nested=true)."""
        open_orders = list(self._open.values())
        leg_ids = {leg.id for o in self.orders.values() for leg in o.legs}
        parents = {o.id: o for o in self.orders.values() if any(leg in open_orders for leg in o.legs)}
        tops = [o for o in open_orders if o.id not in leg_ids]
        tops += [p for p in parents.values() if p.id not in self._open]
        return [o.snapshot() for o in tops if symbol is None or o.symbol == symbol]

    def get_order(self, order_id: str) -> OrderSnapshot:
        order = self.orders.get(order_id)
        if order is None:
            raise BrokerNotFound(f"order {order_id} not found")
        return order.snapshot()

    def get_order_by_client_id(self, client_order_id: str) -> OrderSnapshot | None:
        order = self._by_cid.get(client_order_id)
        return order.snapshot() if order is not None else None

    @property
    def activities(self) -> list[FillActivity]:
        """Every fill as the FILL activity Alpaca would list (built on demand: backtests never ask)."""
        return [_activity(order, execution_id, when) for order, execution_id, when in self._fills]

    def fill_activities(self, since: dt.datetime) -> list[FillActivity]:
        return [a for a in self.activities if a.transaction_time >= since]

    def close(self) -> None:
        pass


def _activity(order: BacktestOrder, execution_id: str, when: dt.datetime) -> FillActivity:
    assert order.filled_avg_price is not None
    return FillActivity(
        id=f"{when:%Y%m%d%H%M%S}::{execution_id}",
        execution_id=execution_id,
        order_id=order.id,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        price=order.filled_avg_price,
        cum_qty=order.qty,
        leaves_qty=_ZERO,
        transaction_time=when,
        type="fill",
    )
