"""The simulator's control and fault API: /sim/* over HTTP (no auth, not rate limited), and the same
operations in Python (`server.control.inject_http_fault(...)`). See docs/simulator.md, "Control and
faults"."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from aiohttp import web

from ..core.model import NEW_YORK
from ..market.calendar import MarketCalendar
from . import wire
from .clock import VirtualClock
from .config import SimConfig
from .exchange import Exchange
from .faults import FaultState, HttpFault
from .responses import json_response
from .websockets import Websockets


class Control:
    def __init__(
        self,
        cfg: SimConfig,
        clock: VirtualClock,
        exchange: Exchange,
        calendar: MarketCalendar,
        faults: FaultState,
        sockets: Websockets,
        drop: Callable[[str], int],
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.exchange = exchange
        self.calendar = calendar
        self.faults = faults
        self.sockets = sockets
        self._drop = drop  # abort open websocket connections on the server's loop

    def register(self, r: web.UrlDispatcher) -> None:
        r.add_get("/sim/state", self.get_state)
        r.add_post("/sim/clock", self.move_clock)
        r.add_post("/sim/faults", self.post_faults)
        r.add_get("/sim/requests", self.get_requests)
        r.add_get("/sim/fills", self.get_fills)

    # ------------------------------------------------------------------ in Python
    def state(self) -> dict[str, object]:
        e = self.exchange
        now = self.clock.timestamp()
        return {
            "now": wire.ts_utc(now),
            "now_new_york": wire.ts_ny(now),
            "speed": self.clock.speed,
            "is_open": self.calendar.is_open(now),
            "orders": len(e.orders),
            "open_orders": sum(1 for o in e.orders.values() if o.is_open),
            "fills": len(e.executions),
            "positions": {s: p.qty for s, p in sorted(e.positions.items())},
            "cash": wire.dec(round(e.account.cash, 2)),
            "equity": wire.dec(round(e.equity(), 2)),
            "requests": len(e.requests),
            "faults": self.faults.describe(),
            "partial_fills": e.partial_fills,
            "reject_next_orders": e.reject_next_orders,
            "cancel_latency_ms": e.cancel_latency_ms,
            "legacy_pdt": sorted(e.rules.legacy_pdt),
            "wash_trade": e.rules.wash_trade,
            "free_plan": e.free_plan,
            "take_profit_on_stop": e.matcher.take_profit_on_stop,
            "data_connection_limit": sorted(self.sockets.occupied),
            "connections": {"trading": len(self.sockets.trading), "data": len(self.sockets.data)},
        }

    def inject_http_fault(
        self, status: int, count: int = 1, paths: str = "", after: bool = False, method: str = ""
    ) -> None:
        self.faults.add_http(HttpFault(status, count, paths, after, method))

    def set_latency(self, ms: int) -> None:
        """Wall-clock delay on every REST response and virtual order-arrival delay."""
        self.faults.latency_ms = ms
        self.exchange.latency_ms = ms

    def set_partial_fills(self, on: bool) -> None:
        self.exchange.partial_fills = on

    def reject_next_orders(self, n: int) -> None:
        self.exchange.reject_next_orders = n

    def set_forbidden(self, on: bool) -> None:
        self.faults.forbidden = on

    def drop_streams(self, which: str = "all") -> int:
        """Abort open websocket connections ("trading", "data" or "all"); returns how many."""
        return self._drop(which)

    def set_cancel_latency(self, ms: int) -> None:
        """Slow (or instant) cancels: a cancel is processed this many virtual ms after its 204."""
        self.exchange.cancel_latency_ms = ms

    def set_legacy_pdt(self, which: str | bool) -> None:
        """The legacy pattern-day-trader refusal: "entries", "exits", "both", or off (False / "")."""
        kinds = {"entries": {"entries"}, "exits": {"exits"}, "both": {"entries", "exits"}}
        self.exchange.rules.legacy_pdt = frozenset(kinds.get(str(which), set()) if which else set())

    def set_wash_trade(self, status: int | bool) -> None:
        """The wash-trade refusal's status (403 or 422; True: 403), or off (False)."""
        on = status is not False and status != 0
        self.exchange.rules.wash_trade = (422 if status == 422 else 403) if on else None

    def set_free_plan(self, on: bool) -> None:
        """No SIP subscription: recent SIP bars 403, the sip stream 409."""
        self.exchange.free_plan = on

    def set_easy_to_borrow(self, flags: dict[str, bool]) -> None:
        for symbol, easy in flags.items():
            self.exchange.set_easy_to_borrow(symbol.upper(), bool(easy))

    def drift_next_order(self, pct: float) -> None:
        """The price moves by `pct` % (a trade) just before the next order is checked."""
        self.exchange.price_drift_pct = pct

    def set_data_connection_limit(self, on: bool) -> None:
        """Another client holds the one data connection of every feed: the bot's connections drop and
        its next authentication meets 406."""
        self.sockets.occupied = {"iex", "sip", "test"} if on else set()
        if on:
            self.drop_streams("data")

    def set_take_profit_on_stop(self, how: str) -> None:
        if how not in ("canceled", "replaced"):
            raise ValueError('take_profit_on_stop: "canceled" or "replaced"')
        self.exchange.matcher.take_profit_on_stop = how

    def clear_faults(self) -> None:
        cfg, e = self.cfg, self.exchange
        self.faults.clear()
        e.reject_next_orders = 0
        e.partial_fills = cfg.partial_fills
        e.latency_ms = cfg.latency_ms
        e.cancel_latency_ms = cfg.cancel_latency_ms
        e.price_drift_pct = 0.0
        e.free_plan = cfg.free_plan
        e.rules.legacy_pdt = cfg.legacy_pdt
        e.rules.wash_trade = cfg.wash_trade_status if cfg.wash_trade_check else None
        e.matcher.take_profit_on_stop = cfg.take_profit_on_stop
        self.sockets.occupied = set()

    def apply_faults(self, body: dict[str, object]) -> None:
        """The POST /sim/faults body (see docs/simulator.md)."""
        if body.get("clear"):
            self.clear_faults()
        if "http_status" in body:
            self.inject_http_fault(
                int(str(body["http_status"])),
                int(str(body.get("count", 1))),
                str(body.get("paths") or ""),
                bool(body.get("after", False)),
                str(body.get("method") or ""),
            )
        if "latency_ms" in body:
            self.set_latency(int(str(body["latency_ms"])))
        if "partial_fills" in body:
            self.set_partial_fills(bool(body["partial_fills"]))
        if "reject_next_orders" in body:
            self.reject_next_orders(int(str(body["reject_next_orders"])))
        if "forbidden" in body:
            self.set_forbidden(bool(body["forbidden"]))
        if "drop_streams" in body:
            self.drop_streams(str(body["drop_streams"]))
        if "cancel_latency_ms" in body:
            self.set_cancel_latency(int(str(body["cancel_latency_ms"])))
        if "legacy_pdt" in body:
            value = body["legacy_pdt"]
            self.set_legacy_pdt(value if isinstance(value, bool) else str(value))
        if "wash_trade" in body:
            value = body["wash_trade"]
            self.set_wash_trade(value if isinstance(value, bool) else int(str(value)))
        if "free_plan" in body:
            self.set_free_plan(bool(body["free_plan"]))
        if "easy_to_borrow" in body:
            flags = body["easy_to_borrow"]
            if not isinstance(flags, dict):
                raise ValueError('easy_to_borrow: {"SYMBOL": true|false}')
            self.set_easy_to_borrow({str(k): bool(v) for k, v in flags.items()})
        if "price_drift_pct" in body:
            self.drift_next_order(float(str(body["price_drift_pct"])))
        if "data_connection_limit" in body:
            self.set_data_connection_limit(bool(body["data_connection_limit"]))
        if "take_profit_on_stop" in body:
            self.set_take_profit_on_stop(str(body["take_profit_on_stop"]))

    # ------------------------------------------------------------------ over HTTP
    async def get_state(self, request: web.Request) -> web.Response:
        return json_response(self.state())

    async def move_clock(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            if "advance_seconds" in body:
                await asyncio.to_thread(self.clock.advance, float(body["advance_seconds"]))
            if "advance_to" in body:
                when = dt.datetime.fromisoformat(str(body["advance_to"]).replace("Z", "+00:00"))
                await asyncio.to_thread(
                    self.clock.advance_to, when if when.tzinfo else when.replace(tzinfo=NEW_YORK)
                )
            if "speed" in body:
                self.clock.set_speed(float(body["speed"]))
        except (ValueError, TypeError) as e:
            return json_response({"code": 40010001, "message": str(e)}, status=422)
        return json_response(self.state())

    async def post_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            self.apply_faults(body)
        except (ValueError, TypeError) as e:
            return json_response({"code": 40010001, "message": str(e)}, status=422)
        return json_response(self.state())

    async def get_requests(self, request: web.Request) -> web.Response:
        return json_response(
            [
                {
                    "t": wire.ts_utc(r.t),
                    "ts": r.t,
                    "method": r.method,
                    "path": r.path,
                    "status": r.status,
                    "agent": r.agent,
                    "wall": r.wall,
                }
                for r in list(self.exchange.requests)
            ]
        )

    async def get_fills(self, request: web.Request) -> web.Response:
        return json_response(
            [
                {**wire.activity_json(x), "execution_id": x.execution_id}
                for x in list(self.exchange.executions)
            ]
        )
