"""The matching engine and the simulated account: orders, fills, positions, cash, activities.

No I/O and no aiohttp: the server calls `sync(now)` and the REST-facing methods, which return JSON-
ready dicts. Thread-safe (one re-entrant lock). Deterministic: ids come from a seeded RNG, the tape
from the bars, and every event is processed in (time, kind, symbol, order seq) order.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..core.model import NEW_YORK
from ..market.calendar import CalendarSession, MarketCalendar
from ..market.days import BarSource, DayBars
from . import wire
from .assets import NOSHORT, Asset, build_universe
from .config import SimConfig
from .errors import ApiError, forbidden, invalid, not_found, unprocessable
from .models import WORKING, Execution, Order, Position
from .orders import OrderRequest, check_bracket_prices, parse_order_request, parse_price, parse_qty
from .tape import BAR, SESSION_CLOSE, TICK, TICK_OFFSETS, Event, day_events, tick_price, tick_size

DAY_TIFS = frozenset({"day", "opg", "cls", "ioc", "fok"})


@dataclass(frozen=True)
class RequestRecord:
    """One REST request as the simulator saw it (virtual time), for the 200/min invariant."""

    t: float
    method: str
    path: str
    status: int


def _opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def _rises_to(level: float, p: float, prev: float | None) -> float | None:
    """Price reaching `level` from below: hit exactly when crossed inside a bar, else (a gap, or the
    order arrived with the price already beyond) at the tick price."""
    if p >= level:
        return level if prev is not None and prev < level else p
    return None


def _falls_to(level: float, p: float, prev: float | None) -> float | None:
    if p <= level:
        return level if prev is not None and prev > level else p
    return None


class Engine:
    def __init__(self, cfg: SimConfig, source: BarSource, calendar: MarketCalendar, start: float) -> None:
        self.cfg = cfg
        self.source = source
        self.calendar = calendar
        self._lock = threading.RLock()
        self._rng = random.Random(cfg.seed)
        self.assets: dict[str, Asset] = build_universe(cfg.symbols)
        self.tape_symbols: tuple[str, ...] = tuple(sorted(set(cfg.symbols) | {NOSHORT}))
        # Account state.
        self.cash: float = cfg.initial_cash
        self.last_equity: float = cfg.initial_cash
        self.realized_pl: float = 0.0
        self.orders: dict[str, Order] = {}
        self.by_client_id: dict[str, Order] = {}
        self._open: list[Order] = []  # open orders in seq order (pruned lazily)
        self.positions: dict[str, Position] = {}
        self.executions: list[Execution] = []
        self.trade_events: list[dict[str, object]] = []  # every trade_updates payload, in order
        self.requests: list[RequestRecord] = []
        self._seq = 0
        # Faults / switches (the server's /sim/faults flips these).
        self.partial_fills: bool = cfg.partial_fills
        self.latency_ms: int = cfg.latency_ms
        self.reject_next_orders: int = 0
        # Outbox for the websockets: ("trading", data) and ("data", message) in emission order.
        self.publishing = False
        self.publish_data = False  # market data messages only while someone subscribes (cheap jumps)
        self.outbox: deque[tuple[str, dict[str, object]]] = deque()
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

    # ------------------------------------------------------------------------------------------------
    # ids and prices
    # ------------------------------------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

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

    # ------------------------------------------------------------------------------------------------
    # time
    # ------------------------------------------------------------------------------------------------
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
            self._open = [o for o in self._open if o.is_open]
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
                self._publish_tick(ev.symbol, ev.t, p, size)
            self._match(ev.symbol, ev.t, p, prev, prev_t)
        elif ev.kind == BAR:
            if self.publishing and self.publish_data:
                b = self._days[ev.symbol]
                i = ev.bar
                self.outbox.append(
                    (
                        "data",
                        {
                            "T": "b",
                            "S": ev.symbol,
                            "o": float(b.o[i]),
                            "h": float(b.h[i]),
                            "l": float(b.low[i]),
                            "c": float(b.c[i]),
                            "v": int(b.v[i]),
                            "t": float(b.t[i]),
                            "n": int(b.n[i]),
                            "vw": float(b.vw[i]),
                        },
                    )
                )
        elif ev.kind == SESSION_CLOSE:
            self._close_session(ev.t)

    def _publish_tick(self, sym: str, t: float, p: float, size: int) -> None:
        # Stream trade/quote shapes: docs realtime.md ("T":"t" / "T":"q"); t is converted per codec.
        self.outbox.append(
            (
                "data",
                {"T": "t", "S": sym, "i": int(t), "x": "V", "p": p, "s": size, "c": ["@"], "z": "C", "t": t},
            )
        )
        self.outbox.append(
            (
                "data",
                {
                    "T": "q",
                    "S": sym,
                    "bx": "V",
                    "bp": round(p - 0.01, 4),
                    "bs": 1,
                    "ax": "V",
                    "ap": round(p + 0.01, 4),
                    "as": 1,
                    "c": ["R"],
                    "z": "C",
                    "t": t,
                },
            )
        )

    def _close_session(self, t: float) -> None:
        """The closing bell: day orders expire (event `expired`); marks roll for tomorrow."""
        for o in list(self._open):
            if o.is_open and o.time_in_force in DAY_TIFS and o.submitted_at <= t:
                o.status = "expired"
                o.expired_at = t
                o.updated_at = t
                self._emit("expired", o, t)
        self.lastday.update(self.last)
        self.last_equity = self.equity()

    # ------------------------------------------------------------------------------------------------
    # matching
    # ------------------------------------------------------------------------------------------------
    def _match(self, sym: str, t: float, p: float, prev: float | None, prev_t: float) -> None:
        for o in [o for o in self._open if o.symbol == sym and o.status in WORKING]:
            if not o.is_open or o.status not in WORKING or o.active_at >= t:
                continue  # canceled by a sibling's fill in this very loop, or not arrived yet
            cont = prev if prev is not None and o.active_at < prev_t else None
            first_look = o.pieces is None
            price = self._fill_price(o, p, cont)
            if price is not None:
                self._execute(o, price, t, self._next_piece(o))
            elif first_look and o.time_in_force in ("ioc", "fok"):
                o.pieces = []
            if o.is_open and o.time_in_force in ("ioc", "fok") and o.pieces is not None:
                self._cancel(o, t)  # immediate-or-cancel: whatever did not fill at the first look

    def _fill_price(self, o: Order, p: float, cont: float | None) -> float | None:
        buy = o.side == "buy"
        if o.type == "market":
            return p
        if o.type == "limit" or (o.type == "stop_limit" and o.triggered):
            assert o.limit_price is not None
            return _falls_to(o.limit_price, p, cont) if buy else _rises_to(o.limit_price, p, cont)
        assert o.stop_price is not None
        hit = _rises_to(o.stop_price, p, cont) if buy else _falls_to(o.stop_price, p, cont)
        if hit is None or o.type == "stop":
            return hit
        o.triggered = True  # stop_limit: now a limit; fills at once only if marketable
        assert o.limit_price is not None
        marketable = hit <= o.limit_price if buy else hit >= o.limit_price
        return hit if marketable else None

    def _next_piece(self, o: Order) -> int:
        if o.pieces is None:
            splittable = (
                self.partial_fills
                and o.type in ("market", "limit")
                and o.parent_id is None
                and o.order_class != "oco"
                and o.time_in_force != "fok"
                and o.remaining >= 2
            )
            if splittable:
                n = min(2 + o.seq % 2, o.remaining)
                base = o.remaining // n
                o.pieces = [base] * (n - 1) + [o.remaining - base * (n - 1)]
            else:
                o.pieces = [o.remaining]
        piece = o.pieces.pop(0) if o.pieces else o.remaining
        return min(piece, o.remaining)

    def _execute(self, o: Order, price: float, t: float, qty: int) -> None:
        o.filled_qty += qty
        o.filled_notional += qty * price
        o.updated_at = t
        full = o.filled_qty >= o.qty
        o.status = "filled" if full else "partially_filled"
        if full:
            o.filled_at = t
        self._book_fill(o.symbol, o.side, qty, price)
        ex = Execution(
            execution_id=self._uuid(),
            order_id=o.id,
            symbol=o.symbol,
            side=o.side,
            qty=qty,
            price=price,
            time=t,
            cum_qty=o.filled_qty,
            leaves_qty=o.remaining,
            order_status=o.status,
            kind="fill" if full else "partial_fill",
        )
        self.executions.append(ex)
        self._emit(ex.kind, o, t, ex)
        if o.legs and o.order_class in ("bracket", "oto"):
            for leg in self._legs(o):
                if leg.status == "held":
                    leg.qty = o.filled_qty  # legs follow the parent's filled quantity
            if full:
                for leg in self._legs(o):
                    self._activate(leg, t)
        if full:
            for sib in self._oco_siblings(o):
                self._cancel(sib, t)

    def _book_fill(self, sym: str, side: str, qty: int, price: float) -> None:
        """Average-cost position keeping; cash moves by the trade value (short proceeds included)."""
        pos = self.positions.get(sym)
        if pos is None:
            pos = Position(sym, self.assets[sym].id if sym in self.assets else "")
            self.positions[sym] = pos
        signed = qty if side == "buy" else -qty
        q = pos.qty
        if q == 0 or (q > 0) == (signed > 0):
            new_q = q + signed
            pos.avg_entry_price = (abs(q) * pos.avg_entry_price + qty * price) / abs(new_q)
        else:
            closing = min(abs(q), qty)
            pnl = closing * (price - pos.avg_entry_price) * (1 if q > 0 else -1)
            pos.realized_pl += pnl
            self.realized_pl += pnl
            new_q = q + signed
            if new_q == 0:
                pos.avg_entry_price = 0.0
            elif (new_q > 0) != (q > 0):
                pos.avg_entry_price = price
        pos.qty = new_q
        self.cash = round(self.cash - signed * price, 6)
        if pos.qty == 0:
            del self.positions[sym]

    def _legs(self, o: Order) -> list[Order]:
        return [self.orders[i] for i in o.legs]

    def _oco_siblings(self, o: Order) -> list[Order]:
        """The orders canceled when `o` fills: the other legs of a bracket, or the other side of an OCO."""
        if o.parent_id is not None:
            parent = self.orders[o.parent_id]
            group = [x for x in self._legs(parent) if x.id != o.id]
            if parent.order_class == "oco":
                group.insert(0, parent)
            return [x for x in group if x.is_open]
        if o.order_class == "oco":
            return [x for x in self._legs(o) if x.is_open]
        return []

    def _activate(self, leg: Order, t: float) -> None:
        if leg.status != "held":
            return
        leg.status = "new"
        leg.active_at = max(leg.active_at, t)
        leg.updated_at = t
        self._emit("new", leg, t)

    def _cancel(self, o: Order, t: float) -> None:
        if not o.is_open:
            return
        o.status = "canceled"
        o.canceled_at = t
        o.updated_at = t
        self._emit("canceled", o, t)
        if o.parent_id is None and o.legs:
            for leg in self._legs(o):
                if o.filled_qty > 0 and leg.status == "held":
                    leg.qty = o.filled_qty  # a partly filled entry keeps its protection
                    self._activate(leg, t)
                else:
                    self._cancel(leg, t)

    # ------------------------------------------------------------------------------------------------
    # events out
    # ------------------------------------------------------------------------------------------------
    def order_json(self, o: Order, nested: bool = True, stream: bool = False) -> dict[str, object]:
        legs = self._legs(o) if nested and o.legs and o.parent_id is None else None
        return wire.order_json(o, legs, stream=stream)

    def _emit(self, event: str, o: Order, t: float, ex: Execution | None = None) -> None:
        pos = self.positions.get(o.symbol)
        data = wire.trade_update(event, self.order_json(o, stream=True), t, ex, pos.qty if pos else 0)
        self.trade_events.append(data)
        if self.publishing:
            self.outbox.append(("trading", data))

    def drain(self) -> list[tuple[str, dict[str, object]]]:
        with self._lock:
            out = list(self.outbox)
            self.outbox.clear()
            return out

    # ------------------------------------------------------------------------------------------------
    # account
    # ------------------------------------------------------------------------------------------------
    def _mark(self, sym: str) -> float:
        return self.last.get(sym, 0.0)

    def equity(self) -> float:
        return self.cash + sum(p.qty * self._mark(s) for s, p in self.positions.items())

    def buying_power(self) -> float:
        """Intraday margin: multiplier (4) x equity minus gross exposure, floored at 0 (documented)."""
        gross = sum(abs(p.qty) * self._mark(s) for s, p in self.positions.items())
        return max(0.0, self.cfg.margin_multiplier * self.equity() - gross)

    def account_json(self) -> dict[str, object]:
        """trading-api.json components.schemas.Account (example field set, strings for money)."""
        with self._lock:
            longs = sum(p.qty * self._mark(s) for s, p in self.positions.items() if p.qty > 0)
            shorts = sum(p.qty * self._mark(s) for s, p in self.positions.items() if p.qty < 0)
            eq = self.equity()
            bp = self.buying_power()
            day = dt.datetime.fromtimestamp(self.now, NEW_YORK).date().isoformat()
            return {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "breakout-bot-sim/" + self.cfg.key)),
                "admin_configurations": {},
                "user_configurations": None,
                "account_number": "PSIM00001",
                "status": "ACTIVE",
                "crypto_status": "INACTIVE",
                "currency": "USD",
                "buying_power": wire.dec(round(bp, 2)),
                "regt_buying_power": wire.dec(round(max(0.0, 2 * eq - (longs - shorts)), 2)),
                "daytrading_buying_power": wire.dec(round(bp, 2)),
                "options_buying_power": "0",
                "effective_buying_power": wire.dec(round(bp, 2)),
                "non_marginable_buying_power": wire.dec(round(max(0.0, self.cash), 2)),
                "bod_dtbp": "0",
                "cash": wire.dec(round(self.cash, 2)),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "pending_transfer_out": "0",
                "portfolio_value": wire.dec(round(eq, 2)),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": "2024-01-02T14:30:00.000000Z",
                "trade_suspended_by_user": False,
                "multiplier": wire.dec(self.cfg.margin_multiplier),
                "shorting_enabled": True,
                "equity": wire.dec(round(eq, 2)),
                "last_equity": wire.dec(round(self.last_equity, 2)),
                "long_market_value": wire.dec(round(longs, 2)),
                "short_market_value": wire.dec(round(shorts, 2)),
                "position_market_value": wire.dec(round(longs - shorts, 2)),
                "initial_margin": wire.dec(round((longs - shorts) * 0.5, 2)),
                "maintenance_margin": wire.dec(round((longs - shorts) * 0.3, 2)),
                "last_maintenance_margin": "0",
                "sma": wire.dec(round(eq, 2)),
                "daytrade_count": 0,
                "balance_asof": day,
                "crypto_tier": 0,
                "options_trading_level": 0,
                "options_approved_level": 0,
                "intraday_adjustments": "0",
                "pending_reg_taf_fees": "0",
            }

    # ------------------------------------------------------------------------------------------------
    # orders: submit
    # ------------------------------------------------------------------------------------------------
    def submit_order(self, body: object) -> dict[str, object]:
        """POST /v2/orders. Returns the Order JSON or raises ApiError (Alpaca's status/code/message)."""
        with self._lock:
            req = parse_order_request(body)
            asset = self.assets.get(req.symbol)
            if asset is None:
                raise invalid(f'asset "{req.symbol}" not found')
            if not asset.tradable:
                raise unprocessable(f'asset "{req.symbol}" is not tradable')
            if req.client_order_id is not None and req.client_order_id in self.by_client_id:
                raise invalid("client_order_id must be unique")
            if req.order_class in ("bracket", "oto", "oco"):
                base = self._base_price(req)
                if base is not None:
                    check_bracket_prices(req, base)
            self._check_position_rules(req, asset)
            self._check_buying_power(req)
            order = self._create(req)
            if self.reject_next_orders > 0:
                # Fault: Alpaca accepts over REST, then rejects asynchronously on the stream.
                self.reject_next_orders -= 1
                snapshot = self.order_json(order)
                snapshot["status"] = "accepted"
                for o in [order, *self._legs(order)]:
                    o.status = "rejected"
                    o.failed_at = self.now
                    o.updated_at = self.now
                self._emit("rejected", order, self.now)
                return snapshot
            self._emit("new", order, self.now)
            if req.order_class == "oco":
                for leg in self._legs(order):
                    self._emit("new", leg, self.now)
            return self.order_json(order)

    def _base_price(self, req: OrderRequest) -> float | None:
        if req.order_class == "oco":
            return req.take_profit.value if req.take_profit else None
        if req.type == "limit" and req.limit_price is not None:
            return req.limit_price.value
        return self.price(req.symbol)

    def _held_qty(self, sym: str, side: str) -> int:
        return sum(
            o.remaining for o in self._open if o.symbol == sym and o.side == side and o.status in WORKING
        )

    def _check_position_rules(self, req: OrderRequest, asset: Asset) -> None:
        """No flipping a position in one order, qty held by open orders is not available, shorts need a
        shortable asset (messages per NOTES.md 2e: 403 40310000)."""
        if req.order_class == "oco":
            return  # exit orders: their qty is checked when they fill (simplification, documented)
        q = self.positions[req.symbol].qty if req.symbol in self.positions else 0
        closing = (q > 0 and req.side == "sell") or (q < 0 and req.side == "buy")
        if closing:
            available = abs(q) - self._held_qty(req.symbol, req.side)
            if req.qty > available:
                raise forbidden(
                    f"insufficient qty available for order (requested: {req.qty}, available: {max(available, 0)})",
                    available=str(max(available, 0)),
                    existing_qty=str(abs(q)),
                    held_for_orders=str(self._held_qty(req.symbol, req.side)),
                    symbol=req.symbol,
                )
        elif req.side == "sell" and not asset.shortable:
            raise forbidden(f"asset {req.symbol} cannot be sold short")

    def _estimate(self, req: OrderRequest) -> float:
        if req.limit_price is not None:
            return req.limit_price.value
        if req.stop_price is not None:
            return req.stop_price.value
        return self.price(req.symbol) or 0.0

    def _check_buying_power(self, req: OrderRequest) -> None:
        q = self.positions[req.symbol].qty if req.symbol in self.positions else 0
        opening = not ((q > 0 and req.side == "sell") or (q < 0 and req.side == "buy"))
        if not opening or req.order_class == "oco":
            return
        reserved = sum(
            o.remaining * (o.limit_price or o.stop_price or self._mark(o.symbol))
            for o in self._open
            if o.parent_id is None and o.status in WORKING and o.position_intent.endswith("to_open")
        )
        cost = req.qty * self._estimate(req)
        bp = self.buying_power() - reserved
        if cost > bp:
            raise forbidden(
                "insufficient buying power",
                buying_power=wire.dec(round(bp, 2)) or "0",
                cost_basis=wire.dec(round(cost, 2)) or "0",
            )

    def _new_order(
        self,
        req: OrderRequest,
        side: str,
        otype: str,
        limit: float | None,
        stop: float | None,
        status: str,
        parent: Order | None,
        coid: str | None = None,
    ) -> Order:
        self._seq += 1
        q = self.positions[req.symbol].qty if req.symbol in self.positions else 0
        if side == "buy":
            intent = "buy_to_close" if q < 0 else "buy_to_open"
        else:
            intent = "sell_to_close" if q > 0 else "sell_to_open"
        if parent is not None:
            intent = "sell_to_close" if side == "sell" else "buy_to_close"
        o = Order(
            id=self._uuid(),
            client_order_id=coid or self._uuid(),
            symbol=req.symbol,
            asset_id=self.assets[req.symbol].id,
            side=side,
            type=otype,
            time_in_force=req.time_in_force,
            qty=req.qty,
            limit_price=limit,
            stop_price=stop,
            order_class=req.order_class,
            status=status,
            created_at=self.now,
            seq=self._seq,
            active_at=self.now + self.latency_ms / 1000.0,
            position_intent=intent,
            extended_hours=req.extended_hours,
            updated_at=self.now,
            submitted_at=self.now,
            parent_id=parent.id if parent else None,
        )
        self.orders[o.id] = o
        self.by_client_id[o.client_order_id] = o
        self._open.append(o)
        return o

    def _create(self, req: OrderRequest) -> Order:
        lp = req.limit_price.value if req.limit_price else None
        sp = req.stop_price.value if req.stop_price else None
        if req.order_class == "oco":
            assert req.take_profit is not None and req.stop_loss_stop is not None
            parent = self._new_order(
                req, req.side, "limit", req.take_profit.value, None, "new", None, req.client_order_id
            )
            parent.position_intent = "sell_to_close" if req.side == "sell" else "buy_to_close"
            self._add_stop_leg(req, parent, req.side, "new")
            return parent
        parent = self._new_order(req, req.side, req.type, lp, sp, "new", None, req.client_order_id)
        if req.order_class in ("bracket", "oto"):
            exit_side = _opposite(req.side)
            if req.take_profit is not None:
                leg = self._new_order(req, exit_side, "limit", req.take_profit.value, None, "held", parent)
                parent.legs.append(leg.id)
            if req.stop_loss_stop is not None:
                self._add_stop_leg(req, parent, exit_side, "held")
        return parent

    def _add_stop_leg(self, req: OrderRequest, parent: Order, side: str, status: str) -> None:
        assert req.stop_loss_stop is not None
        sl_limit = req.stop_loss_limit.value if req.stop_loss_limit else None
        otype = "stop_limit" if sl_limit is not None else "stop"
        leg = self._new_order(req, side, otype, sl_limit, req.stop_loss_stop.value, status, parent)
        parent.legs.append(leg.id)

    # ------------------------------------------------------------------------------------------------
    # orders: read, cancel, replace
    # ------------------------------------------------------------------------------------------------
    def get_order(self, order_id: str) -> Order:
        o = self.orders.get(order_id)
        if o is None:
            raise not_found("order not found")
        return o

    def get_by_client_order_id(self, coid: str) -> Order:
        o = self.by_client_id.get(coid)
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
    ) -> list[dict[str, object]]:
        """GET /v2/orders (trading-api.json paths./v2/orders.get): filters on submitted_at, exclusive."""
        with self._lock:
            rows = []
            for o in sorted(self.orders.values(), key=lambda x: x.seq):
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
            return [self.order_json(o, nested=nested) for o in rows[:limit]]

    def cancel_order(self, order_id: str) -> None:
        """DELETE /v2/orders/{id}: 204; 422 when already final (NOTES.md 2e message)."""
        with self._lock:
            o = self.get_order(order_id)
            if not o.is_open:
                raise unprocessable(f'order is already in "{o.status}" state')
            self._cancel(o, self.now)

    def cancel_all(self) -> list[dict[str, object]]:
        """DELETE /v2/orders: 207 body [{id, status, body}]; legs go with their parent."""
        with self._lock:
            out: list[dict[str, object]] = []
            for o in [x for x in self._open if x.is_open and x.parent_id is None]:
                self._cancel(o, self.now)
                out.append({"id": o.id, "status": 200, "body": self.order_json(o)})
            for o in [x for x in self._open if x.is_open]:  # active legs of filled parents
                self._cancel(o, self.now)
                out.append({"id": o.id, "status": 200, "body": self.order_json(o)})
            self._open = [o for o in self._open if o.is_open]
            return out

    def replace_order(self, order_id: str, body: object) -> dict[str, object]:
        """PATCH /v2/orders/{id} (PatchOrderRequest): a new order replaces the old one (new id)."""
        with self._lock:
            old = self.get_order(order_id)
            if not isinstance(body, dict):
                raise ApiError(400, 40010000, "request body format is invalid")
            if not old.is_open or old.status == "partially_filled":
                raise unprocessable(f'order is not replaceable in "{old.status}" state')
            qty = parse_qty(body["qty"]) if body.get("qty") not in (None, "") else old.qty
            lp = parse_price(body.get("limit_price"), "limit_price")
            sp = parse_price(body.get("stop_price"), "stop_price")
            tif = str(body.get("time_in_force") or old.time_in_force)
            coid = body.get("client_order_id")
            if coid is not None and (not isinstance(coid, str) or coid in self.by_client_id):
                raise invalid("client_order_id must be unique")
            self._seq += 1
            new = Order(
                id=self._uuid(),
                client_order_id=coid or self._uuid(),
                symbol=old.symbol,
                asset_id=old.asset_id,
                side=old.side,
                type=old.type,
                time_in_force=tif,
                qty=qty,
                limit_price=lp.value if lp and old.type in ("limit", "stop_limit") else old.limit_price,
                stop_price=sp.value if sp and old.type in ("stop", "stop_limit") else old.stop_price,
                order_class=old.order_class,
                status=old.status,
                created_at=self.now,
                seq=self._seq,
                active_at=self.now + self.latency_ms / 1000.0,
                position_intent=old.position_intent,
                extended_hours=old.extended_hours,
                updated_at=self.now,
                submitted_at=self.now,
                replaces=old.id,
                legs=list(old.legs),
                parent_id=old.parent_id,
            )
            self.orders[new.id] = new
            self.by_client_id[new.client_order_id] = new
            self._open.append(new)
            for leg in self._legs(new):
                leg.parent_id = new.id
            if old.parent_id is not None:
                parent = self.orders[old.parent_id]
                parent.legs = [new.id if x == old.id else x for x in parent.legs]
            old.status = "replaced"
            old.replaced_at = self.now
            old.replaced_by = new.id
            old.updated_at = self.now
            old.legs = []
            self._emit("replaced", old, self.now)
            if new.status != "held":
                self._emit("new", new, self.now)
            return self.order_json(new)

    # ------------------------------------------------------------------------------------------------
    # positions
    # ------------------------------------------------------------------------------------------------
    def position_json(self, sym: str) -> dict[str, object]:
        with self._lock:
            p = self.positions.get(sym.upper())
            if p is None:
                raise not_found("position does not exist")
            return wire.position_json(
                p, self._mark(p.symbol), self.lastday.get(p.symbol, self._mark(p.symbol))
            )

    def positions_json(self) -> list[dict[str, object]]:
        with self._lock:
            return [self.position_json(s) for s in sorted(self.positions)]

    def close_position(
        self, sym: str, qty: int | None = None, percentage: float | None = None
    ) -> dict[str, object]:
        """DELETE /v2/positions/{symbol}: a market order for the position (or part of it)."""
        with self._lock:
            sym = sym.upper()
            p = self.positions.get(sym)
            if p is None:
                raise not_found("position does not exist")
            n = abs(p.qty)
            if qty is not None:
                n = min(n, qty)
            elif percentage is not None:
                n = max(1, int(n * percentage / 100.0))
            body = {
                "symbol": sym,
                "qty": str(n),
                "side": "sell" if p.qty > 0 else "buy",
                "type": "market",
                "time_in_force": "day",
            }
            return self.submit_order(body)

    def close_all(self, cancel_orders: bool = True) -> list[dict[str, object]]:
        """DELETE /v2/positions: 207 body [{symbol, status, body: Order}]. Like cancel_orders=true,
        each symbol's open orders are canceled first so their held qty is released."""
        with self._lock:
            out: list[dict[str, object]] = []
            for sym in sorted(self.positions):
                if cancel_orders:
                    for o in [x for x in self._open if x.symbol == sym and x.is_open]:
                        self._cancel(o, self.now)
                try:
                    out.append({"symbol": sym, "status": 200, "body": self.close_position(sym)})
                except ApiError as e:
                    out.append({"symbol": sym, "status": e.status, "body": e.body()})
            return out

    # ------------------------------------------------------------------------------------------------
    # activities
    # ------------------------------------------------------------------------------------------------
    def activities(
        self,
        date: dt.date | None = None,
        after: float | None = None,
        until: float | None = None,
        direction: str = "desc",
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> list[dict[str, object]]:
        """GET /v2/account/activities[/FILL]: FILL activities, paged by id (docs account-activities.md)."""
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
            out = [wire.activity_json(e) for e in rows]
            if page_token:
                ids = [str(a["id"]) for a in out]
                if page_token in ids:
                    out = out[ids.index(page_token) + 1 :]
            size = page_size if page_size is not None else (None if date is not None else 100)
            return out if size is None else out[:size]

    # ------------------------------------------------------------------------------------------------
    # market data helpers
    # ------------------------------------------------------------------------------------------------
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
