"""Fixtures for the simulator tests: hand-made bar sources, engines and a live server on loopback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pytest

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.market.calendar import CalendarSession, xnys
from breakout_bot.market.days import DayBars
from breakout_bot.sim import Engine, SimConfig, SimServer

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


def make_engine(bars: dict[str, list[tuple[float, float, float, float]]], **cfg: object) -> Engine:
    config = SimConfig(symbols=tuple(bars), start=DAY, speed=0, **cfg)  # type: ignore[arg-type]
    return Engine(config, FakeSource(bars), xnys(), ny(9, 25))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimServer]:
    monkeypatch.setenv("APCA_RETRY_MAX", "0")
    srv = SimServer(SimConfig(symbols=("AAPL", "MSFT"), start=DAY, speed=0, seed=7))
    url = srv.start()
    monkeypatch.setenv("APCA_API_BASE_URL", url)
    monkeypatch.setenv("APCA_API_DATA_URL", url)
    monkeypatch.setenv("APCA_API_STREAM_URL", url)
    monkeypatch.setenv("APCA_API_KEY_ID", "simkey")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "simsecret")
    try:
        yield srv
    finally:
        srv.stop()
