"""Synthetic one-minute bars: seeded, deterministic, realistic enough for the box to break both ways.

The simulator serves them when it has no file (`SyntheticSource`); backtests and benchmarks take them
as a frame (`synthetic_bars`). Same seed, symbol and date -> the same bars, in any process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math

import numpy as np
import pandas as pd

from ..core.model import NEW_YORK
from ..errors import UserError
from .calendar import CalendarSession, xnys
from .days import DayBars


def _stable_int(*parts: object) -> int:
    """A hash that is stable across processes (Python's hash() is salted)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _price_level(symbol: str, day: dt.date) -> float:
    """Per-symbol price level ($20-$400) with a slow, smooth drift across dates."""
    h = _stable_int("level", symbol)
    base = 20.0 + (h % 38_000) / 100.0
    phase = (h >> 20) % 628 / 100.0
    return base * (1.0 + 0.15 * math.sin(day.toordinal() / 40.0 + phase))


def synthetic_day(seed: int, symbol: str, session: CalendarSession) -> DayBars:
    """A realistic-looking intraday path: U-shaped volatility (strong at the open, some at the close)
    and alternating trend/range regimes, so a 10-bar box is broken both ways several times a day."""
    n = session.minutes
    rng = np.random.default_rng(_stable_int(seed, symbol, session.date.isoformat()))
    level = _price_level(symbol, session.date) * float(np.exp(rng.normal(0.0, 0.01)))
    sigma = 0.0004 * level  # per-minute sd: ~0.8 % per day from noise alone
    idx = np.arange(n)
    u = 1.0 + 1.5 * np.exp(-idx / 25.0) + 0.6 * np.exp(-(n - 1 - idx) / 30.0)
    z = rng.normal(size=(n, 4))
    o = np.empty(n)
    c = np.empty(n)
    prev = level
    i = 0
    while i < n:
        seg = int(rng.integers(15, 60))
        trend = rng.random() < 0.5
        drift = (1 if rng.random() < 0.5 else -1) * float(rng.uniform(0.25, 0.6)) * sigma if trend else 0.0
        kappa = 0.0 if trend else 0.15
        anchor = prev
        for k in range(i, min(n, i + seg)):
            o[k] = prev + (0.0 if k == 0 else 0.1 * sigma * z[k, 0])
            step = drift + kappa * (anchor - o[k]) + sigma * u[k] * z[k, 1]
            c[k] = max(0.05, o[k] + step)
            prev = c[k]
        i += seg
    o = np.maximum(np.round(o, 2), 0.01)
    c = np.maximum(np.round(c, 2), 0.01)
    h = np.round(np.maximum(o, c) + np.abs(z[:, 2]) * sigma * u * 0.6, 2)
    low = np.maximum(np.round(np.minimum(o, c) - np.abs(z[:, 3]) * sigma * u * 0.6, 2), 0.01)
    h = np.maximum(h, np.maximum(o, c))
    low = np.minimum(low, np.minimum(o, c))
    base_vol = 2_000 + _stable_int("vol", symbol) % 18_000
    v = np.maximum(1, (base_vol * u * rng.lognormal(0.0, 0.4, size=n)).astype(np.int64))
    t = (np.int64(session.open) + idx * 60).astype(np.int64)
    trades = np.maximum(1, v // 80).astype(np.int64)
    vw = np.round((h + low + c) / 3.0, 4)
    return DayBars(symbol, t, o, h, low, c, v, trades, vw)


class SyntheticSource:
    """Generates any symbol on demand; caches the days it has made."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._cache: dict[tuple[str, dt.date], DayBars] = {}

    def day(self, symbol: str, session: CalendarSession) -> DayBars:
        key = (symbol, session.date)
        bars = self._cache.get(key)
        if bars is None:
            bars = synthetic_day(self.seed, symbol, session)
            self._cache[key] = bars
        return bars

    def first_session_date(self) -> dt.date | None:
        return None

    def session_dates(self) -> list[dt.date] | None:
        return None  # any session: bars are made on demand


def synthetic_bars(symbol: str, seed: int, days: int, start: dt.date | None = None) -> pd.DataFrame:
    """`days` sessions of the simulator's seeded synthetic bars from `start` (default 2024-01-02), as
    the frame the bar loader returns (market/bars.py)."""
    if days < 1:
        raise UserError("--days must be at least 1")
    cal = xnys()
    first = start or dt.date(2024, 1, 2)
    try:
        session = cal.session_on_or_after(first)
    except ValueError as exc:
        raise UserError(f"--from: {exc}") from None
    frames = []
    for _ in range(days):
        b = synthetic_day(seed, symbol, session)
        idx = pd.DatetimeIndex(pd.to_datetime(b.t, unit="s", utc=True)).tz_convert(NEW_YORK)
        frames.append(
            pd.DataFrame(
                {"open": b.o, "high": b.h, "low": b.low, "close": b.c, "volume": b.v.astype(np.float64)},
                index=idx,
            )
        )
        try:
            session = cal.session_after(session.date)
        except ValueError:
            break
    df = pd.concat(frames)
    df.index.name = "timestamp"
    df.attrs["dropped_rows"] = 0
    df.attrs["source"] = f"synthetic(seed={seed})"
    return df
