"""Bars for backtests: CSV / Parquet files, the `breakout-bot bars` cache, and synthetic days.

Every loader returns the same shape: a DataFrame indexed by the bar's start (tz-aware,
America/New_York, named "timestamp"), columns open high low close volume (float64), sorted, unique.
Timestamp parsing is shared with the simulator (breakout_bot.sim.data), so a file means the same
thing to `backtest` and to `sim --data`.
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
import warnings

import numpy as np
import pandas as pd

from ..errors import UserError
from ..sim.data import _parse_times

log = logging.getLogger(__name__)

NY_NAME = "America/New_York"
PRICE_COLUMNS = ("open", "high", "low", "close")
_TIME_ALIASES = ("timestamp", "datetime", "date_time", "time_stamp", "t")
_ALIASES = {
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}
_SYMBOL_ALIASES = ("symbol", "ticker", "s")


def load_bar_file(
    path: str | pathlib.Path,
    symbol: str | None = None,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pd.DataFrame:
    """Load one-minute bars from a CSV/Parquet file or a `breakout-bot bars` cache directory
    (`<dir>/<SYMBOL>/<YYYY-MM-DD>.parquet`).

    Columns match case-insensitively: timestamp|datetime|t (or date + time, or time alone),
    open|o, high|h, low|l, close|c, volume|vol|v (optional: 0 when absent); a symbol column selects
    `symbol`'s rows. Naive timestamps are New York time, tz-aware ones are converted. Duplicate
    timestamps keep the last row. Rows with a NaN/non-positive price, high < low, or an open/close
    outside [low, high] are dropped; their count is in `df.attrs["dropped_rows"]` (and logged).
    `start`/`end` (inclusive New York dates) restrict the range. Raises UserError with one line.
    """
    p = pathlib.Path(path)
    if not p.exists():
        raise UserError(f"--data: no such file or directory: {p}")
    if p.is_dir():
        raw, name = _read_cache_dir(p, symbol, start, end)
    else:
        name = p.name
        try:
            raw = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
        except pd.errors.EmptyDataError:
            raise UserError(f"--data: {name} is empty") from None
        except Exception as exc:  # pyarrow / parser / decoding errors all mean "cannot read this"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"--data: cannot read {name}: {first}") from None
    df = normalize_bars(raw, name, symbol)
    if start is not None or end is not None:
        days = pd.DatetimeIndex(df.index).date
        keep = np.ones(len(df), dtype=bool)
        if start is not None:
            keep &= days >= start
        if end is not None:
            keep &= days <= end
        dropped = df.attrs.get("dropped_rows", 0)
        df = df[keep]
        df.attrs["dropped_rows"] = dropped
        if not len(df):
            raise UserError(
                f"--data: {name} has no bars between {start or 'the start'} and {end or 'the end'}"
            )
    return df


def _timestamp_problem(stamps: pd.Series, exc: Exception) -> str:
    """Which value failed to parse, and where (data rows counted from 1, the header not counted): the
    first one that does not read in the format the column's other values set."""
    text = stamps.astype(str)
    with warnings.catch_warnings():  # "could not infer format": the point here is to find the odd one
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(text, errors="coerce", utc=True)
    bad = np.flatnonzero(parsed.isna().to_numpy() & stamps.notna().to_numpy())
    if len(bad):
        return f"unreadable timestamp {text.iloc[bad[0]][:40]!r} in data row {bad[0] + 1}"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"unreadable timestamps ({first[:120]})"


def normalize_bars(raw: pd.DataFrame, name: str = "data", symbol: str | None = None) -> pd.DataFrame:
    """Any table of bars -> the canonical frame (see the module docstring). UserError on bad layouts."""
    if raw is None or not len(raw.columns) or not len(raw):
        raise UserError(f"--data: {name} is empty")
    cols = {str(c).strip().lower(): c for c in raw.columns}
    sym_col = next((cols[c] for c in _SYMBOL_ALIASES if c in cols), None)
    if sym_col is not None:
        values = raw[sym_col].astype(str).str.strip().str.upper()
        if symbol is not None:
            raw = raw[(values == symbol.upper()).to_numpy()]
            if not len(raw):
                raise UserError(f"--data: {name} has no rows for symbol {symbol.upper()}")
        elif values.nunique() > 1:
            raise UserError(f"--data: {name} holds several symbols; choose one with --symbol")
    time_col = next((cols[c] for c in _TIME_ALIASES if c in cols), None)
    if time_col is not None:
        stamps = raw[time_col]
    elif "date" in cols and "time" in cols:
        stamps = raw[cols["date"]].astype(str) + " " + raw[cols["time"]].astype(str)
    elif "time" in cols:
        stamps = raw[cols["time"]]
    elif "date" in cols:
        stamps = raw[cols["date"]]
    else:
        raise UserError(
            f"--data: {name}: no timestamp column (expected timestamp, datetime, t, time or date + time; "
            f"found {', '.join(map(str, raw.columns[:8]))})"
        )
    try:
        times = _parse_times(stamps, NY_NAME)
    except (ValueError, TypeError, OverflowError) as exc:
        raise UserError(f"--data: {name}: {_timestamp_problem(stamps, exc)}") from None
    out: dict[str, np.ndarray] = {}
    for col, aliases in _ALIASES.items():
        src = next((cols[a] for a in aliases if a in cols), None)
        if src is None:
            if col == "volume":
                out[col] = np.zeros(len(raw))
                continue
            raise UserError(
                f"--data: {name}: no {col!r} column (expected one of {', '.join(aliases)}; "
                f"found {', '.join(map(str, raw.columns[:8]))})"
            )
        out[col] = pd.to_numeric(raw[src], errors="coerce").to_numpy(dtype=np.float64)
    for col in PRICE_COLUMNS:
        out[col] = np.round(out[col], 4)  # float noise (yfinance) must not move a price
    o, h, lo, c = (out[k] for k in PRICE_COLUMNS)
    with np.errstate(invalid="ignore"):
        good = (
            ~np.asarray(times.isna())
            & np.isfinite(o)
            & np.isfinite(h)
            & np.isfinite(lo)
            & np.isfinite(c)
            & (lo > 0)
            & (h >= lo)
            & (np.minimum(o, c) >= lo)
            & (np.maximum(o, c) <= h)
        )
    out["volume"] = np.nan_to_num(out["volume"], nan=0.0)
    df = pd.DataFrame(out, index=times)
    df.index.name = "timestamp"
    dropped = int((~good).sum())
    df = df[good]
    df = df[~df.index.duplicated(keep="last")].sort_index()
    if dropped:
        log.warning("%s: dropped %d rows with missing or inconsistent prices", name, dropped)
    if not len(df):
        raise UserError(f"--data: {name} holds no valid bars")
    df.attrs["dropped_rows"] = dropped
    df.attrs["source"] = name
    return df


def _read_cache_dir(
    root: pathlib.Path, symbol: str | None, start: dt.date | None, end: dt.date | None
) -> tuple[pd.DataFrame, str]:
    """The `bars` command's cache: <root>/<SYMBOL>/<YYYY-MM-DD>.parquet (root may be the symbol dir)."""
    folder = root
    if symbol is not None and (root / symbol.upper()).is_dir():
        folder = root / symbol.upper()
    elif not any(root.glob("*.parquet")):
        subdirs = sorted(d for d in root.iterdir() if d.is_dir() and any(d.glob("*.parquet")))
        if not subdirs:
            raise UserError(f"--data: {root} holds no .parquet bar files")
        if symbol is not None:
            raise UserError(
                f"--data: no {symbol.upper()} folder in {root} (found {', '.join(d.name for d in subdirs[:8])})"
            )
        if len(subdirs) > 1:
            raise UserError(f"--data: {root} caches several symbols; choose one with --symbol")
        folder = subdirs[0]
    files = []
    for f in sorted(folder.glob("*.parquet")):
        try:
            day = dt.date.fromisoformat(f.stem)
        except ValueError:
            day = None
        if day is not None and ((start and day < start) or (end and day > end)):
            continue
        files.append(f)
    name = f"{folder}"
    if not files:
        raise UserError(
            f"--data: {folder} has no cached days between {start or 'the start'} and {end or 'the end'}"
        )
    try:
        frames = [pd.read_parquet(f) for f in files]
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--data: cannot read the cache in {folder}: {first}") from None
    frames = [f if "timestamp" in f.columns or f.index.name is None else f.reset_index() for f in frames]
    return pd.concat(frames, ignore_index=True), name


def synthetic_bars(symbol: str, seed: int, days: int, start: dt.date | None = None) -> pd.DataFrame:
    """`days` sessions of the simulator's seeded synthetic bars from `start` (default 2024-01-02)."""
    from ..sim.calendar import xnys
    from ..sim.data import synthetic_day

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
        idx = pd.DatetimeIndex(pd.to_datetime(b.t, unit="s", utc=True)).tz_convert(NY_NAME)
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
