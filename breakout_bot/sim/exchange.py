"""The simulated exchange: the tape, matching, and the trading API's operations, on models (no JSON).

No I/O and no aiohttp: the server calls `sync(now)` and the operations below, which return orders,
positions, executions and the account (sim/wire.py renders them) or raise ApiError (Alpaca's status,
code and message). Thread-safe (one re-entrant lock). Deterministic: the tape comes from the bars and
every event is processed in (time, kind, symbol, order seq) order, so the same bars and requests give
the same fills. Ids (orders, executions, the account) are fresh for every instance unless
`SimConfig.id_seed` fixes them: a journal keyed by id must never see two runs' fills as one.

The parts: book.py (orders, their events), account.py (cash and positions), matching.py (orders against
the tape, by market/fills.py's rules, shared with the backtest), acceptance.py (which orders are
refused), tape.py (trades from bars). See docs/simulator.md, "Tape and fills".
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..core.model import NEW_YORK
from ..market.calendar import CalendarSession, MarketCalendar
from ..market.days import BarSource, DayBars
from .acceptance import accept
from .account import Account, AccountView
from .assets import NOSHORT, Asset, build_universe
from .book import OrderBook
from .config import SimConfig
from .errors import ApiError, invalid, not_found, unprocessable
from .matching import Matcher
from .models import BarPrint, Execution, Order, OrderView, Position, Published, TapePrint, TradeEvent
from .orders import OrderRequest, parse_replace_request
from .tape import BAR, SESSION_CLOSE, TICK, TICK_OFFSETS, Event, day_events, tick_price, tick_size

DAY_TIFS = frozenset({"day", "opg", "cls", "ioc", "fok"})


@dataclass(frozen=True)
class RequestRecord:
    """One REST request as the simulator saw it (virtual time), for the 200/min invariant."""

    t: float
    method: str
    path: str
    status: int
    agent: str = ""  # the client's User-Agent (which SDK sent it)


class Exchange:
    def __init__(self, cfg: SimConfig, source: BarSource, calendar: MarketCalendar, start: float) -> None:
        self.cfg = cfg
        self.source = source
        self.calendar = calendar
        self._lock = threading.RLock()
        self.assets: dict[str, Asset] = build_universe(cfg.symbols)
        self.tape_symbols: tuple[str, ...] = tuple(sorted(set(cfg.symbols) | {NOSHORT}))
        ids = random.Random(cfg.id_seed)  # None: seeded from the OS, unique to this instance
        account_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))
        # Alpaca's paper numbers look like PA3X2M0EDW4T; ours say what they are and differ per instance.
        number = "PSIM" + account_id.replace("-", "")[:8].upper()
        self.account = Account(cfg.initial_cash, cfg.margin_multiplier, self.mark, account_id, number)
        self.book = OrderBook(ids, self.account, self._publish_trade)
        self.matcher = Matcher(self.book, self.account, self.assets, cfg.partial_fills)
        self.executions: list[Execution] = self.matcher.executions  # every fill, in order
        self.requests: list[RequestRecord] = []
        # Faults / switches (the server's /sim/faults flips these).
        self.latency_ms: int = cfg.latency_ms
        self.reject_next_orders: int = 0
        # Outbox for the websockets, in emission order.
        self.publishing = False
        self.publish_data = False  # market data messages only while someone subscribes (cheap jumps)
        self.outbox: deque[Published] = deque()
        self.on_output: Callable[[], None] | None = None
        # Tape cursor.
        self.now: float = 0.0
        self.last: dict[str, float] = {}
        self.last_trade: dict[str, tuple[float, float, int]] = {}  # symbol -> (t, price, size)
        self.lastday: dict[str, float] = {}
        self._session: CalendarSession | None = None
        self._days: dict[str, DayBars] = {}
        self._events: list[Event] = []
        self._i = 0
        start_day = dt.datetime.fromtimestamp(start, NEW_YORK).date()
        self._next_date: dt.date | None = self.calendar.session_on_or_after(start_day).date
        self._seed_prices(start_day)
        self.now = dt.datetime.combine(start_day, dt.time(0, 0), NEW_YORK).timestamp()
        self.sync(start)

    # ------------------------------------------------------------------ the book, read
    @property
    def orders(self) -> dict[str, Order]:
        return self.book.orders

    @property
    def positions(self) -> dict[str, Position]:
        return self.account.positions

    @property
    def partial_fills(self) -> bool:
        """Orders fill in pieces (a switch of /sim/faults)."""
        return self.matcher.partial_fills

    @partial_fills.setter
    def partial_fills(self, on: bool) -> None:
        self.matcher.partial_fills = on

    @property
    def trade_events(self) -> list[TradeEvent]:
        """Every trade_updates event, in order."""
        return self.book.events

    def legs(self, o: Order) -> list[Order]:
        return self.book.legs(o)

    # ------------------------------------------------------------------ prices
    def _seed_prices(self, day: dt.date) -> None:
        """Last trade before the start: the previous session's close, else the first open we have."""
        prev = self.calendar.session_before(day)
        first = self.calendar.session_on_or_after(day)
        for sym in self.tape_symbols:
            price = None
            if prev is not None:
                bars = self.source.day(sym, prev)
                if len(bars):
                    price = float(bars.c[-1])
            if price is None:
                bars = self.source.day(sym, first)
                if len(bars):
                    price = float(bars.o[0])
            if price is not None:
                self.last[sym] = price
                self.lastday[sym] = price

    def price(self, symbol: str) -> float | None:
        """Last trade price (the bracket base price and the mark for positions)."""
        return self.last.get(symbol)

    def mark(self, symbol: str) -> float:
        return self.last.get(symbol, 0.0)

    # ------------------------------------------------------------------ time
    def sync(self, ts: float) -> None:
        """Process every tape event with time <= ts, in order. Never goes backwards."""
        with self._lock:
            while True:
                if self._i >= len(self._events):
                    if not self._load_next_session(ts):
                        break
                    continue
                ev = self._events[self._i]
                if ev.t > ts:
                    break
                self._i += 1
                self._apply(ev)
            if ts > self.now:
                self.now = ts
            self.book.prune()
        if self.outbox and self.on_output is not None:
            self.on_output()

    def _load_next_session(self, ts: float) -> bool:
        if self._next_date is None:
            return False
        try:
            session = self.calendar.session_on_or_after(self._next_date)
        except ValueError:
            self._next_date = None
            return False
        if session.open > ts + 60:
            return False
        self._session = session
        self._days = {s: self.source.day(s, session) for s in self.tape_symbols}
        self._events = day_events(session, self._days)
        self._i = 0
        self._next_date = session.date + dt.timedelta(days=1)
        return True

    def next_event_time(self) -> float | None:
        """When the next tape event happens (for the server's background pump)."""
        with self._lock:
            if self._i < len(self._events):
                return self._events[self._i].t
            if self._next_date is None:
                return None
            try:
                return self.calendar.session_on_or_after(self._next_date).open + 1
            except ValueError:
                return None

    @property
    def session(self) -> CalendarSession | None:
        return self._session

    def _apply(self, ev: Event) -> None:
        if ev.kind == TICK:
            bars = self._days[ev.symbol]
            p = tick_price(bars, ev.bar, ev.leg)
            prev = tick_price(bars, ev.bar, ev.leg - 1) if ev.leg > 0 else None
            prev_t = ev.t - (TICK_OFFSETS[ev.leg] - TICK_OFFSETS[ev.leg - 1]) if ev.leg > 0 else ev.t
            size = tick_size(bars, ev.bar)
            self.last[ev.symbol] = p
            self.last_trade[ev.symbol] = (ev.t, p, size)
            if self.publishing and self.publish_data:
                self.outbox.append(TapePrint(ev.symbol, ev.t, p, size))
            self.matcher.match(ev.symbol, ev.t, p, prev, prev_t)
        elif ev.kind == BAR:
            if self.publishing and self.publish_data:
                self.outbox.append(BarPrint(ev.symbol, self._days[ev.symbol], ev.bar))
        elif ev.kind == SESSION_CLOSE:
            self._close_session(ev.t)

    def _close_session(self, t: float) -> None:
        """The closing bell: day orders expire (event `expired`); marks roll for tomorrow."""
        for o in list(self.book.open):
            if o.is_open and o.time_in_force in DAY_TIFS and o.submitted_at <= t:
                o.status = "expired"
                o.expired_at = t
                o.updated_at = t
                self.book.emit("expired", o, t)
        self.lastday.update(self.last)
        self.account.close_day()

    def _publish_trade(self, event: TradeEvent) -> None:
        if self.publishing:
            self.outbox.append(event)

    def drain(self) -> list[Published]:
        with self._lock:
            out = list(self.outbox)
            self.outbox.clear()
            return out

    # ------------------------------------------------------------------ the account
    def account_view(self) -> AccountView:
        with self._lock:
            return self.account.view()

    def equity(self) -> float:
        return self.account.equity()

    # ------------------------------------------------------------------ orders: submit
    def submit(self, req: OrderRequest) -> OrderView:
        """POST /v2/orders: the order as accepted (ApiError with Alpaca's status/code/message if not)."""
        with self._lock:
            asset = accept(req, self.assets.get(req.symbol), self.book, self.account, self.price)
            order = self.book.create(req, asset.id, self.now, self.latency_ms / 1000.0)
            if self.reject_next_orders > 0:
                # Fault: Alpaca accepts over REST, then rejects asynchronously on the stream.
                self.reject_next_orders -= 1
                accepted = OrderView(  # what the REST answer shows: accepted, before the rejection
                    replace(order, status="accepted"), tuple(copy.copy(leg) for leg in self.book.legs(order))
                )
                for o in [order, *self.book.legs(order)]:
                    o.status = "rejected"
                    o.failed_at = self.now
                    o.updated_at = self.now
                self.book.emit("rejected", order, self.now)
                return accepted
            self.book.emit("new", order, self.now)
            if req.order_class == "oco":
                for leg in self.book.legs(order):
                    self.book.emit("new", leg, self.now)
            return self.view(order)

    def view(self, o: Order) -> OrderView:
        """An order with its legs (nested under a parent, as Alpaca's nested listings show them)."""
        return OrderView(o, tuple(self.book.legs(o)) if o.legs and o.parent_id is None else ())

    # ------------------------------------------------------------------ orders: read, cancel, replace
    def get_order(self, order_id: str) -> Order:
        o = self.book.orders.get(order_id)
        if o is None:
            raise not_found("order not found")
        return o

    def get_by_client_order_id(self, coid: str) -> Order:
        o = self.book.by_client_id.get(coid)
        if o is None:
            raise not_found("order not found")
        return o

    def list_orders(
        self,
        status: str = "open",
        limit: int = 50,
        after: float | None = None,
        until: float | None = None,
        direction: str = "desc",
        nested: bool = False,
        symbols: set[str] | None = None,
        side: str | None = None,
    ) -> list[Order]:
        """GET /v2/orders (trading-api.json paths./v2/orders.get): filters on submitted_at, exclusive."""
        with self._lock:
            rows = []
            for o in sorted(self.book.orders.values(), key=lambda x: x.seq):
                if nested and o.parent_id is not None:
                    continue
                if status == "open" and not o.is_open:
                    continue
                if status == "closed" and o.is_open:
                    continue
                if after is not None and not o.submitted_at > after:
                    continue
                if until is not None and not o.submitted_at < until:
                    continue
                if symbols and o.symbol not in symbols:
                    continue
                if side and o.side != side:
                    continue
                rows.append(o)
            if direction == "desc":
                rows.reverse()
            return rows[:limit]

    def cancel_order(self, order_id: str) -> None:
        """DELETE /v2/orders/{id}: 204; 422 when already final (NOTES.md 2e message)."""
        with self._lock:
            o = self.get_order(order_id)
            if not o.is_open:
                raise unprocessable(f'order is already in "{o.status}" state')
            self.book.cancel(o, self.now)

    def cancel_all(self) -> list[Order]:
        """DELETE /v2/orders: the orders canceled; legs go with their parent."""
        with self._lock:
            out: list[Order] = []
            for o in [x for x in self.book.open if x.is_open and x.parent_id is None]:
                self.book.cancel(o, self.now)
                out.append(o)
            for o in [x for x in self.book.open if x.is_open]:  # active legs of filled parents
                self.book.cancel(o, self.now)
                out.append(o)
            self.book.prune()
            return out

    def replace_order(self, order_id: str, body: object) -> Order:
        """PATCH /v2/orders/{id} (its decoded body): a new order replaces the old one (new id)."""
        with self._lock:
            old = self.get_order(order_id)
            if not isinstance(body, dict):
                raise ApiError(400, 40010000, "request body format is invalid")
            if not old.is_open or old.status == "partially_filled":
                raise unprocessable(f'order is not replaceable in "{old.status}" state')
            change = parse_replace_request(body)
            coid = change.client_order_id
            if coid is not None and coid in self.book.by_client_id:
                raise invalid("client_order_id must be unique")
            lp, sp = change.limit_price, change.stop_price
            new = Order(
                id=self.book.uuid(),
                client_order_id=coid or self.book.uuid(),
                symbol=old.symbol,
                asset_id=old.asset_id,
                side=old.side,
                type=old.type,
                time_in_force=change.time_in_force or old.time_in_force,
                qty=change.qty if change.qty is not None else old.qty,
                limit_price=lp.value if lp and old.type in ("limit", "stop_limit") else old.limit_price,
                stop_price=sp.value if sp and old.type in ("stop", "stop_limit") else old.stop_price,
                order_class=old.order_class,
                status=old.status,
                created_at=self.now,
                seq=self.book.next_seq(),
                active_at=self.now + self.latency_ms / 1000.0,
                position_intent=old.position_intent,
                extended_hours=old.extended_hours,
                updated_at=self.now,
                submitted_at=self.now,
                replaces=old.id,
                legs=list(old.legs),
                parent_id=old.parent_id,
            )
            self.book.add(new)
            for leg in self.book.legs(new):
                leg.parent_id = new.id
            if old.parent_id is not None:
                parent = self.book.orders[old.parent_id]
                parent.legs = [new.id if x == old.id else x for x in parent.legs]
            old.status = "replaced"
            old.replaced_at = self.now
            old.replaced_by = new.id
            old.updated_at = self.now
            old.legs = []
            self.book.emit("replaced", old, self.now)
            if new.status != "held":
                self.book.emit("new", new, self.now)
            return new

    # ------------------------------------------------------------------ positions
    def position(self, sym: str) -> Position:
        p = self.account.positions.get(sym.upper())
        if p is None:
            raise not_found("position does not exist")
        return p

    def close_position(self, sym: str, qty: int | None = None, percentage: float | None = None) -> OrderView:
        """DELETE /v2/positions/{symbol}: a market order for the position (or part of it)."""
        with self._lock:
            p = self.position(sym)
            n = abs(p.qty)
            if qty is not None:
                n = min(n, qty)
            elif percentage is not None:
                n = max(1, int(n * percentage / 100.0))
            side = "sell" if p.qty > 0 else "buy"
            return self.submit(OrderRequest.market(p.symbol, n, side))

    def close_all(self, cancel_orders: bool = True) -> list[tuple[str, OrderView | ApiError]]:
        """DELETE /v2/positions: each symbol's close order or the reason it failed. Like
        cancel_orders=true, each symbol's open orders are canceled first so their held qty is released."""
        with self._lock:
            out: list[tuple[str, OrderView | ApiError]] = []
            for sym in sorted(self.account.positions):
                if cancel_orders:
                    for o in [x for x in self.book.open if x.symbol == sym and x.is_open]:
                        self.book.cancel(o, self.now)
                try:
                    out.append((sym, self.close_position(sym)))
                except ApiError as e:
                    out.append((sym, e))
            return out

    # ------------------------------------------------------------------ activities and bars
    def fills(
        self,
        date: dt.date | None = None,
        after: float | None = None,
        until: float | None = None,
        direction: str = "desc",
    ) -> list[Execution]:
        """The executions behind GET /v2/account/activities[/FILL] (the route pages them by id)."""
        with self._lock:
            rows = list(self.executions)
            if date is not None:
                rows = [e for e in rows if dt.datetime.fromtimestamp(e.time, NEW_YORK).date() == date]
            if after is not None:
                rows = [e for e in rows if e.time > after]
            if until is not None:
                rows = [e for e in rows if e.time < until]
            if direction == "desc":
                rows.reverse()
            return rows

    def visible_bars(self, symbol: str, start: float, end: float) -> list[tuple[DayBars, int, int]]:
        """(DayBars, lo, hi) slices of bars with start <= t <= end that have closed by now."""
        out: list[tuple[DayBars, int, int]] = []
        sd = dt.datetime.fromtimestamp(start, NEW_YORK).date()
        ed = dt.datetime.fromtimestamp(min(end, self.now), NEW_YORK).date()
        for s in self.calendar.sessions_between(sd, ed):
            bars = self.source.day(symbol, s)
            if not len(bars):
                continue
            closed = bars.closed_count(self.now)
            ts = bars.t.tolist()
            lo = bisect.bisect_left(ts, start)
            hi = min(bisect.bisect_right(ts, end), closed)
            if hi > lo:
                out.append((bars, lo, hi))
        return out

    def record_request(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)
