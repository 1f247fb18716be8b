"""Bar sources for the simulator: a seeded synthetic generator and a CSV/Parquet loader.

Bars are the simulator's source of truth: the engine derives its tick tape from them and the market
data endpoints serve them. Everything here is deterministic: same seed/file -> same bars.
`load_bars` is also meant for the backtester (same parsing rules everywhere).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import pathlib
import warnings
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from .calendar import NY, Session, xnys

_EMPTY_F = np.zeros(0, dtype=np.float64)
_EMPTY_I = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class DayBars:
    """One symbol's one-minute bars for one session. t = bar start, epoch seconds (UTC)."""

    symbol: str
    t: np.ndarray  # int64
    o: np.ndarray
    h: np.ndarray
    low: np.ndarray
    c: np.ndarray
    v: np.ndarray  # int64
    n: np.ndarray  # int64 trade count
    vw: np.ndarray
    _json: list[str] | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.t)

    def json_rows(self) -> list[str]:
        """Each bar as market-data-api.json stock_bar JSON text, built once: serving bars is then a
        string join (the simulator answers a bars poll every virtual minute, often at 600x)."""
        if self._json is None:
            rows = []
            for t, o, h, low, c, v, n, vw in zip(
                self.t.tolist(),
                self.o.tolist(),
                self.h.tolist(),
                self.low.tolist(),
                self.c.tolist(),
                self.v.tolist(),
                self.n.tolist(),
                self.vw.tolist(),
                strict=True,
            ):
                stamp = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                rows.append(
                    json.dumps({"t": stamp, "o": o, "h": h, "l": low, "c": c, "v": v, "n": n, "vw": vw})
                )
            object.__setattr__(self, "_json", rows)
        assert self._json is not None
        return self._json

    @classmethod
    def empty(cls, symbol: str) -> DayBars:
        return cls(symbol, _EMPTY_I, _EMPTY_F, _EMPTY_F, _EMPTY_F, _EMPTY_F, _EMPTY_I, _EMPTY_I, _EMPTY_F)

    def closed_count(self, now: float) -> int:
        """How many bars have closed by `now` (a bar starting at T closes at T+60)."""
        return int(np.searchsorted(self.t + 60, now, side="right"))


class BarSource(Protocol):
    def day(self, symbol: str, session: Session) -> DayBars: ...

    def first_session_date(self) -> dt.date | None: ...


# ---------------------------------------------------------------------------------------------------
# Synthetic
# ---------------------------------------------------------------------------------------------------
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


def synthetic_day(seed: int, symbol: str, session: Session) -> DayBars:
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

    def day(self, symbol: str, session: Session) -> DayBars:
        key = (symbol, session.date)
        bars = self._cache.get(key)
        if bars is None:
            bars = synthetic_day(self.seed, symbol, session)
            self._cache[key] = bars
        return bars

    def first_session_date(self) -> dt.date | None:
        return None


# ---------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------
_TIME_COLS = ("timestamp", "datetime", "date_time", "time_stamp", "t")
_ALIASES = {
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "v", "vol"),
}
_SYMBOL_COLS = ("symbol", "ticker", "s")


def _read_table(path: pathlib.Path) -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _parse_times(col: pd.Series, tz: str) -> pd.DatetimeIndex:
    """Naive timestamps are local `tz` (New York); tz-aware ones are converted; epochs are UTC."""
    if pd.api.types.is_numeric_dtype(col):
        values = col.to_numpy(dtype=np.float64)
        scale = 1_000_000 if float(np.nanmax(np.abs(values))) > 1e11 else 1_000_000_000  # ms or s -> ns
        return pd.DatetimeIndex((values * scale).astype("int64"), tz="UTC").tz_convert(tz)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(col).tz_convert(tz)
    text = col.astype(str)
    has_offset = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True)
    if bool(has_offset.any()):
        # Mixed offsets (e.g. -04:00 and -05:00 in one file) only parse as UTC.
        return pd.DatetimeIndex(pd.to_datetime(text, utc=True)).tz_convert(tz)
    with (
        warnings.catch_warnings()
    ):  # "could not infer format": dateutil per value is fine, the warning is noise
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(text)
    return pd.DatetimeIndex(parsed).tz_localize(tz, ambiguous="NaT", nonexistent="NaT")


def load_bars(
    path: str | pathlib.Path,
    symbol: str | None = None,
    tz: str = "America/New_York",
    regular_only: bool = True,
) -> pd.DataFrame:
    """Load one-minute bars from CSV or Parquet.

    Columns are matched case-insensitively: a timestamp (timestamp/datetime/t, or date + time),
    open/high/low/close/volume (or o/h/l/c/v). Naive timestamps are `tz` (New York) time, aware ones
    are converted. With a symbol column, `symbol` selects the rows (required if several symbols).
    regular_only keeps bars starting inside the XNYS regular session (early closes honoured).
    Returns a DataFrame indexed by tz-aware bar start, columns open high low close volume
    (prices rounded to 4 decimals to drop float noise, volume int64), sorted, duplicates dropped.
    Raises ValueError (bad columns/content) or OSError (unreadable file).
    """
    p = pathlib.Path(path)
    raw = _read_table(p)
    cols = {str(c).strip().lower(): c for c in raw.columns}
    sym_col = next((cols[c] for c in _SYMBOL_COLS if c in cols), None)
    if sym_col is not None:
        values = raw[sym_col].astype(str).str.upper()
        if symbol is not None:
            raw = raw[values == symbol.upper()]
        elif values.nunique() > 1:
            raise ValueError(f"{p.name}: several symbols in the file; choose one")
    time_col = next((cols[c] for c in _TIME_COLS if c in cols), None)
    if time_col is not None:
        times = _parse_times(raw[time_col], tz)
    elif "date" in cols and "time" in cols:
        times = _parse_times(raw[cols["date"]].astype(str) + " " + raw[cols["time"]].astype(str), tz)
    elif "date" in cols:
        times = _parse_times(raw[cols["date"]], tz)
    else:
        raise ValueError(f"{p.name}: no timestamp column (timestamp, datetime, t, or date + time)")
    out: dict[str, np.ndarray] = {}
    for name, aliases in _ALIASES.items():
        src = next((cols[a] for a in aliases if a in cols), None)
        if src is None:
            raise ValueError(f"{p.name}: missing column {name!r}")
        out[name] = pd.to_numeric(raw[src], errors="coerce").to_numpy(dtype=np.float64)
    df = pd.DataFrame(out, index=times)
    df.index.name = "timestamp"
    keep = ~np.asarray(pd.isna(df.index))
    df = df[keep].dropna(subset=["open", "high", "low", "close"])
    df = df[~np.asarray(df.index.duplicated(keep="last"))].sort_index()
    for name in ("open", "high", "low", "close"):
        df[name] = df[name].round(4)
    df["volume"] = df["volume"].fillna(0).round().astype(np.int64)
    if regular_only and len(df):
        df = df[_regular_mask(pd.DatetimeIndex(df.index))]
    return df


def _regular_mask(index: pd.DatetimeIndex) -> np.ndarray:
    """True for bars that start inside the session of their date (09:30 <= start < close)."""
    cal = xnys()
    epochs = index.as_unit("s").asi8.astype(np.float64)
    days = index.tz_convert(NY).date
    mask = np.zeros(len(index), dtype=bool)
    for i, (day, ts) in enumerate(zip(days, epochs, strict=True)):
        s = cal.session(day)
        mask[i] = s is not None and s.open <= ts < s.close
    return mask


def frame_to_days(df: pd.DataFrame, symbol: str) -> dict[dt.date, DayBars]:
    """Split a load_bars() frame into per-session DayBars."""
    result: dict[dt.date, DayBars] = {}
    if not len(df):
        return result
    idx = pd.DatetimeIndex(df.index)
    epochs = idx.as_unit("s").asi8.astype(np.int64)
    days = np.array(idx.tz_convert(NY).date)
    for day in sorted(set(days)):
        m = days == day
        o, h, lo, c = (df[k].to_numpy(dtype=np.float64)[m] for k in ("open", "high", "low", "close"))
        v = df["volume"].to_numpy(dtype=np.int64)[m]
        result[day] = DayBars(
            symbol,
            epochs[m],
            o,
            h,
            lo,
            c,
            v,
            np.maximum(1, v // 80).astype(np.int64),
            np.round((h + lo + c) / 3.0, 4),
        )
    return result


class FileSource:
    """Bars from a CSV/Parquet file. A file without a symbol column serves its bars for every
    configured symbol; with a symbol column, each symbol gets its own rows."""

    def __init__(self, path: pathlib.Path, symbols: tuple[str, ...]) -> None:
        self.path = path
        self._days: dict[str, dict[dt.date, DayBars]] = {}
        has_symbol_col = self._has_symbol_column(path)
        shared = None if has_symbol_col else load_bars(path)
        for sym in symbols:
            df = shared if shared is not None else load_bars(path, symbol=sym)
            self._days[sym] = frame_to_days(df, sym)
        if not any(self._days.values()):
            raise ValueError(f"{path.name}: no regular-session bars for {', '.join(symbols)}")

    @staticmethod
    def _has_symbol_column(path: pathlib.Path) -> bool:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
        else:
            names = list(pd.read_csv(path, nrows=0).columns)
        return any(str(n).strip().lower() in _SYMBOL_COLS for n in names)

    def day(self, symbol: str, session: Session) -> DayBars:
        bars = self._days.get(symbol, {}).get(session.date)
        return bars if bars is not None else DayBars.empty(symbol)

    def first_session_date(self) -> dt.date | None:
        dates = [d for days in self._days.values() for d in days]
        return min(dates) if dates else None
