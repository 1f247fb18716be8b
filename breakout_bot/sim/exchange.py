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
import heapq
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..core.model import NEW_YORK
from ..market.calendar import CalendarSession, MarketCalendar
from ..market.days import BarSource, DayBars
from .acceptance import Rules, accept, reserved_buying_power
from .account import Account, AccountView
from .assets import WITH_TAPE, Asset, build_universe
from .book import OrderBook
from .config import SimConfig
from .errors import ApiError, invalid, not_found, unprocessable
from .feeds import feed_bars, is_revised
from .matching import Matcher
from .models import BarPrint, Execution, Order, OrderView, Position, Published, TapePrint, TradeEvent
from .orders import OrderRequest, parse_replace_request
from .tape import BAR, BAR_UPDATE, SESSION_CLOSE, TICK, Event, day_events, tick_price, tick_size

DAY_TIFS = frozenset({"day", "opg", "cls", "ioc", "fok"})
# "pending_cancel: Sent when the order is awaiting cancelation. Most cancelations will occur without the
# order entering this state" (docs, streaming): only a slow cancel shows it.
PENDING_CANCEL_AFTER_S = 1.0
PROMOTE = "promote"  # timer kinds: a pending_new order reaches the exchange ...
CANCEL = "cancel"  # ... a requested cancel is processed


@dataclass(frozen=True)
class RequestRecord:
    """One REST request as the simulator saw it (virtual time), for the 200/min invariant."""

    t: float
    method: str
    path: str
    status: int
    agent: str = ""  # the client's User-Agent (which SDK sent it)
    wall: float = 0.0  # time.time() when it arrived (a client's reaction time, in benchmarks)


class Exchange:
    def __init__(self, cfg: SimConfig, source: BarSource, calendar: MarketCalendar, start: float) -> None:
        self.cfg = cfg
        self.source = source
        self.calendar = calendar
        self._lock = threading.RLock()
        self.assets: dict[str, Asset] = build_universe(cfg.symbols)
        self.tape_symbols: tuple[str, ...] = tuple(sorted(set(cfg.symbols) | set(WITH_TAPE)))
        ids = random.Random(cfg.id_seed)  # None: seeded from the OS, unique to this instance
        account_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))
        # Alpaca's paper numbers look like PA3X2M0EDW4T; ours say what they are and differ per instance.
        number = "PSIM" + account_id.replace("-", "")[:8].upper()
        self.account = Account(cfg.initial_cash, cfg.margin_multiplier, self.mark, account_id, number)
        self.book = OrderBook(ids, self.account, self._publish_trade, random.Random(ids.getrandbits(64)))
        self.matcher = Matcher(
            self.book, self.account, self.assets, cfg.partial_fills, cfg.take_profit_on_stop
        )
        self.executions: list[Execution] = self.matcher.executions  # every fill, in order
        self.requests: list[RequestRecord] = []
        # Faults / switches (the server's /sim/faults flips these).
        self.latency_ms: int = cfg.latency_ms
        self.cancel_latency_ms: int = cfg.cancel_latency_ms
        self.reject_next_orders: int = 0
        self.price_drift_pct: float = 0.0  # one-shot: the next order meets a price moved by this much
        self.free_plan: bool = cfg.free_plan
        self.rules = Rules(cfg.wash_trade_status if cfg.wash_trade_check else None, cfg.legacy_pdt)
        # Timers: (virtual time, seq, kind, order id), processed in time order with the tape.
        self._timers: list[tuple[float, int, str, str]] = []
        self._timer_seq = 0
        self._prev_tick: dict[
            str, tuple[int, float, float]
        ] = {}  # symbol -> (bar, t, price) of its last tick
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
                if self._i >= len(self._events) and self._load_next_session(ts):
                    continue
                ev = self._events[self._i] if self._i < len(self._events) else None
                timer = self._timers[0] if self._timers else None
                if timer is not None and timer[0] <= ts and (ev is None or timer[0] <= ev.t):
                    heapq.heappop(self._timers)
                    self._fire(timer[0], timer[2], timer[3])
                    continue
                if ev is None or ev.t > ts:
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
        cfg = self.cfg

        def revised(symbol: str, bar_start: float) -> bool:
            return is_revised(cfg.seed, symbol, bar_start, cfg.updated_bar_pct)

        self._events = day_events(session, self._days, revised, cfg.trade_interval_s)
        self._i = 0
        self._prev_tick.clear()
        self._next_date = session.date + dt.timedelta(days=1)
        return True

    def next_event_time(self) -> float | None:
        """When the next tape event happens (for the server's background pump)."""
        with self._lock:
            timer = self._timers[0][0] if self._timers else None
            if self._i < len(self._events):
                tape = self._events[self._i].t
                return tape if timer is None else min(tape, timer)
            if timer is not None:
                return timer
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
            p = tick_price(bars, ev.bar, ev.leg) if ev.leg >= 0 else ev.price
            last = self._prev_tick.get(ev.symbol)
            prev, prev_t = (last[2], last[1]) if last is not None and last[0] == ev.bar else (None, ev.t)
            self._prev_tick[ev.symbol] = (ev.bar, ev.t, p)
            self._trade(ev.symbol, ev.t, p, tick_size(bars, ev.bar), prev, prev_t)
        elif ev.kind in (BAR, BAR_UPDATE):
            if self.publishing and self.publish_data:
                self.outbox.append(BarPrint(ev.symbol, self._days[ev.symbol], ev.bar, ev.kind == BAR_UPDATE))
        elif ev.kind == SESSION_CLOSE:
            self._close_session(ev.t)

    def _trade(self, symbol: str, t: float, p: float, size: int, prev: float | None, prev_t: float) -> None:
        self.last[symbol] = p
        self.last_trade[symbol] = (t, p, size)
        if self.publishing and self.publish_data:
            self.outbox.append(TapePrint(symbol, t, p, size))
        self.matcher.match(symbol, t, p, prev, prev_t)

    # ------------------------------------------------------------------ timers
    def _schedule(self, t: float, kind: str, order_id: str) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (t, self._timer_seq, kind, order_id))

    def _fire(self, t: float, kind: str, order_id: str) -> None:
        o = self.book.orders.get(order_id)
        if o is None:
            return
        if kind == PROMOTE:
            self.book.promote(o, t)
        elif kind == CANCEL and o.is_open and o.cancel_at is not None:
            self.book.cancel(o, t)

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
            return self.account.view(reserved_buying_power(self.book, self.ask))

    def ask(self, symbol: str) -> float:
        """The simulator's ask: one cent above the last trade (its quotes are ±1 cent)."""
        return self.last.get(symbol, 0.0) + 0.01

    def equity(self) -> float:
        return self.account.equity()

    # ------------------------------------------------------------------ orders: submit
    def submit(self, req: OrderRequest) -> OrderView:
        """POST /v2/orders: the order as accepted (ApiError with Alpaca's status/code/message if not)."""
        with self._lock:
            if self.price_drift_pct and self.price(req.symbol) is not None:
                self._drift(req.symbol)
            asset = accept(req, self.assets.get(req.symbol), self.book, self.account, self.price, self.rules)
            order = self.book.create(req, asset.id, self.now, self.latency_ms / 1000.0)
            # POST /v2/orders answers `pending_new` in the session and `accepted` outside it (the order
            # statuses doc: accepted is "often seen outside of trading session hours"; QC Lean #41: a
            # live order streams pending_new, then new). The order reaches the exchange after the latency.
            initial = "pending_new" if self.calendar.is_open(self.now) else "accepted"
            members = [order, *(self.book.legs(order) if req.order_class == "oco" else [])]
            for o in members:
                o.status = initial
            self.book.emit(initial, order, self.now)
            answer = OrderView(copy.copy(order), tuple(copy.copy(leg) for leg in self.book.legs(order)))
            if self.reject_next_orders > 0:
                # Fault: Alpaca accepts over REST, then rejects asynchronously on the stream.
                self.reject_next_orders -= 1
                for o in [order, *self.book.legs(order)]:
                    o.status = "rejected"
                    o.failed_at = self.now
                    o.updated_at = self.now
                self.book.emit("rejected", order, self.now)
                return answer
            if initial == "pending_new":
                for o in members:
                    if order.active_at <= self.now:
                        self.book.promote(o, self.now)
                    else:
                        self._schedule(order.active_at, PROMOTE, o.id)
            return answer

    def _drift(self, symbol: str) -> None:
        """Fault: the price moves before this order is checked (a trade printed now)."""
        last = self.price(symbol)
        assert last is not None
        drifted = round(last * (1 + self.price_drift_pct / 100.0), 2 if last >= 1 else 4)
        self.price_drift_pct = 0.0
        self._trade(symbol, self.now, drifted, 100, None, self.now)

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
        """GET /v2/orders (trading-api.json paths./v2/orders.get): filters on submitted_at, exclusive.

        Held legs are not "open": "the stop-limit order is seen as a closed order with 'Held' status"
        (alpaca-trade-api-python #322); before the entry fills the flat open list shows the parent only,
        after it the take-profit only, and `status=open&nested=true` nothing once the parent is filled
        (alpaca-trade-api-js #80, #87). They are listed by status=closed and status=all, nested under
        their parent."""
        with self._lock:
            rows = []
            for o in sorted(self.book.orders.values(), key=lambda x: x.seq):
                if nested and o.parent_id is not None:
                    continue
                listed_open = o.is_open and o.status != "held"
                if status == "open" and not listed_open:
                    continue
                if status == "closed" and listed_open:
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
        """DELETE /v2/orders/{id}: 204; 422 when already final (NOTES.md 2e message). The cancel is a
        request ("accepted with return status 204", trading-api.json; "in all cases simply a request",
        Alpaca support, forum t/813): processed `cancel_latency_ms` later, the order may fill meanwhile
        and its shares stay held. Canceling one order of a bracket or OCO cancels the group ("If any one
        of the orders is canceled, any remaining open order in the group is canceled", docs; forum
        t/11938); canceling an entry that partly filled keeps its legs for the filled shares."""
        with self._lock:
            o = self.get_order(order_id)
            if not o.is_open:
                raise unprocessable(f'order is already in "{o.status}" state')
            self.request_cancel(o)

    def request_cancel(self, o: Order) -> None:
        is_entry = o.parent_id is None and o.order_class != "oco"
        members = [o] if is_entry else self.book.group(o)
        latency = self.cancel_latency_ms / 1000.0
        for m in members:
            if not m.is_open or m.cancel_at is not None:
                continue
            if latency <= 0:
                self.book.cancel(m, self.now)
                continue
            m.cancel_at = self.now + latency
            if latency >= PENDING_CANCEL_AFTER_S and m.status != "held":
                m.status = "pending_cancel"
                m.updated_at = self.now
                self.book.emit("pending_cancel", m, self.now)
            self._schedule(m.cancel_at, CANCEL, m.id)

    def cancel_all(self) -> list[Order]:
        """DELETE /v2/orders: a cancel request for every open order (207, one row each); legs go with
        their parent."""
        with self._lock:
            out: list[Order] = []
            for o in [x for x in self.book.open if x.is_open and x.cancel_at is None]:
                if o.is_open and o.cancel_at is None:
                    self.request_cancel(o)
                    out.append(o)
            self.book.prune()
            return out

    def replace_order(self, order_id: str, body: object) -> Order:
        """PATCH /v2/orders/{id} (its decoded body): a new order replaces the old one (new id)."""
        with self._lock:
            old = self.get_order(order_id)
            if not isinstance(body, dict):
                raise ApiError(400, 40010000, "request body format is invalid")
            if not old.is_open or old.status == "partially_filled" or old.cancel_at is not None:
                state = "pending_cancel" if old.cancel_at is not None and old.is_open else old.status
                raise unprocessable(f'order is not replaceable in "{state}" state')
            change = parse_replace_request(body)
            coid = change.client_order_id
            if coid is not None and coid in self.book.by_client_id:
                raise invalid("client_order_id must be unique")
            lp, sp = change.limit_price, change.stop_price
            if old.parent_id is not None or old.order_class == "oco":
                self._check_group_prices(old, lp.value if lp else None, sp.value if sp else None)
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
                armed=old.armed,
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
                self.book.emit(
                    new.status if new.status in ("accepted", "pending_new") else "new", new, self.now
                )
            return new

    def _check_group_prices(self, old: Order, limit: float | None, stop: float | None) -> None:
        """A replaced leg keeps its group valid: the take-profit a cent beyond the stop (the OCO rule of
        check_bracket_prices)."""
        group = self.book.group(old)
        take = next((o for o in group if o.type == "limit" and o.is_open), None)
        stop_leg = next((o for o in group if o.type in ("stop", "stop_limit") and o.is_open), None)
        if take is None or stop_leg is None:
            return
        tp = limit if old is take and limit is not None else take.limit_price
        sl = stop if old is stop_leg and stop is not None else stop_leg.stop_price
        assert tp is not None and sl is not None
        side = take.side
        if side == "sell" and sl > round(tp - 0.01, 4):
            raise unprocessable("stop_loss.stop_price must be <= take_profit.limit_price - 0.01")
        if side == "buy" and sl < round(tp + 0.01, 4):
            raise unprocessable("stop_loss.stop_price must be >= take_profit.limit_price + 0.01")

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

    def feed_day(self, bars: DayBars, feed: str) -> DayBars:
        """What `feed` shows of a day's bars (sim/feeds.py: IEX is thinner)."""
        return feed_bars(bars, feed, self.cfg.seed, self.cfg.iex_missing_pct)

    def set_easy_to_borrow(self, symbol: str, easy: bool) -> None:
        """The asset's borrow flag changed (Alpaca: "the flags can change overnight")."""
        with self._lock:
            asset = self.assets.get(symbol)
            if asset is not None:
                self.assets[symbol] = replace(asset, easy_to_borrow=easy)

    def visible_bars(
        self, symbol: str, start: float, end: float, feed: str = "sip"
    ) -> list[tuple[DayBars, int, int]]:
        """(DayBars, lo, hi) slices of `feed`'s bars with start <= t <= end that have closed by now."""
        out: list[tuple[DayBars, int, int]] = []
        sd = dt.datetime.fromtimestamp(start, NEW_YORK).date()
        ed = dt.datetime.fromtimestamp(min(end, self.now), NEW_YORK).date()
        for s in self.calendar.sessions_between(sd, ed):
            bars = self.feed_day(self.source.day(symbol, s), feed)
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
