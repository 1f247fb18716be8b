"""Fixtures for the simulator tests: hand-made bar sources, engines and a live server on loopback."""

from __future__ import annotations

import datetime as dt

import numpy as np

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.market.calendar import CalendarSession, xnys
from breakout_bot.market.days import DayBars
from breakout_bot.sim import ApiError, Exchange, SimConfig, wire
from breakout_bot.sim.orders import parse_order_request

DAY = dt.date(2024, 3, 4)  # a Monday, regular session 09:30-16:00


class FakeSource:
    """Bars given as (open, high, low, close) per minute from 09:30; the rest of the day is flat."""

    def __init__(
        self, bars: dict[str, list[tuple[float, float, float, float]]], day: dt.date = DAY, flat: bool = True
    ) -> None:
        self.bars = bars
        self.day_ = day
        self.flat = flat

    def day(self, symbol: str, session: CalendarSession) -> DayBars:
        rows = list(self.bars.get(symbol, []))
        if session.date != self.day_:
            if session.date < self.day_ and rows:
                c = rows[0][0]
                rows = [(c, c, c, c)] * session.minutes
            else:
                return DayBars.empty(symbol)
        elif self.flat and rows:
            c = rows[-1][3]
            rows += [(c, c, c, c)] * (session.minutes - len(rows))
        n = len(rows)
        if not n:
            return DayBars.empty(symbol)
        a = np.array(rows, dtype=np.float64)
        t = (np.int64(session.open) + np.arange(n) * 60).astype(np.int64)
        v = np.full(n, 400, dtype=np.int64)
        return DayBars(
            symbol, t, a[:, 0], a[:, 1], a[:, 2], a[:, 3], v, np.full(n, 5, dtype=np.int64), a[:, 3]
        )

    def first_session_date(self) -> dt.date | None:
        return self.day_


def ny(hh: int, mm: int, ss: float = 0.0, day: dt.date = DAY) -> float:
    return dt.datetime.combine(day, dt.time(hh, mm), NY).timestamp() + ss


class JsonExchange:
    """The exchange as the REST API shows it: its models through the wire's JSON (what a client reads)."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def __getattr__(self, name: str) -> object:  # sync, cash, positions, executions, orders, equity...
        return getattr(self.exchange, name)

    @property
    def cash(self) -> float:
        return self.exchange.account.cash

    @property
    def realized_pl(self) -> float:
        return self.exchange.account.realized_pl

    @property
    def trade_events(self) -> list[dict[str, object]]:
        return [wire.trade_update_json(ev) for ev in self.exchange.trade_events]

    def submit_order(self, body: object) -> dict[str, object]:
        return wire.order_view_json(self.exchange.submit(parse_order_request(body)))

    def replace_order(self, order_id: str, body: object) -> dict[str, object]:
        return wire.order_view_json(self.exchange.view(self.exchange.replace_order(order_id, body)))

    def close_position(self, symbol: str) -> dict[str, object]:
        return wire.order_view_json(self.exchange.close_position(symbol))

    def close_all(self) -> list[dict[str, object]]:
        return [
            {"symbol": sym, "status": r.status, "body": wire.error_json(r)}
            if isinstance(r, ApiError)
            else {"symbol": sym, "status": 200, "body": wire.order_view_json(r)}
            for sym, r in self.exchange.close_all()
        ]

    def position_json(self, symbol: str) -> dict[str, object]:
        ex = self.exchange
        p = ex.position(symbol)
        return wire.position_json(p, ex.mark(p.symbol), ex.lastday.get(p.symbol, ex.mark(p.symbol)))

    def account_json(self) -> dict[str, object]:
        return wire.account_json(self.exchange.account_view(), self.exchange.now)


def make_engine(bars: dict[str, list[tuple[float, float, float, float]]], **cfg: object) -> JsonExchange:
    config = SimConfig(symbols=tuple(bars), start=DAY, speed=0, **cfg)  # type: ignore[arg-type]
    return JsonExchange(Exchange(config, FakeSource(bars), xnys(), ny(9, 25)))
