"""One-minute bar files: CSV, Parquet, or the `breakout-bot bars` cache; one loader for every reader.

`load_bars` returns one shape: a DataFrame indexed by the bar's start (tz-aware, America/New_York,
named "timestamp"), columns open high low close volume (float64), sorted, unique, invalid rows dropped.
The backtester reads it as is; the simulator keeps the regular session and splits it into `DayBars`
per session (`FileSource`), so a file means the same thing to `backtest`, `run --data` and `sim --data`.
Bad input raises DataError with one line.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..core.model import NEW_YORK
from ..errors import DataError
from .bar_arrays import (
    ALIASES,
    SYMBOL_ALIASES,
    column_names,
    epoch_numbers_to_ns,
    kept_rows,
    no_bars_between,
    plain_parquet_columns,
    price_block,
    release_arrow_memory,
    source_column,
    time_column,
    usable_columns,
    warn_dropped,
)
from .calendar import CalendarSession, xnys
from .days import DayBars


def load_bars(
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
    `start`/`end` (inclusive New York dates) restrict the range. Raises DataError with one line.
    """
    p = pathlib.Path(path)
    if p.is_dir():
        raw, name = _read_cache_dir(p, symbol, start, end)
    else:
        raw, name = read_table(p), p.name
    return restrict_dates(normalize_bars(raw, name, symbol), name, start, end)


def restrict_dates(df: pd.DataFrame, name: str, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    """The bars of a loaded frame between `start` and `end` (inclusive New York dates)."""
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
            raise no_bars_between(name, start, end)
    return df


def read_table(p: pathlib.Path) -> pd.DataFrame:
    """A CSV or Parquet file as read, or one DataError line."""
    if not p.exists():
        raise DataError(f"--data: no such file or directory: {p}")
    try:
        if p.suffix.lower() not in (".parquet", ".pq"):
            return pd.read_csv(p)
        frame = _read_parquet(p)
        release_arrow_memory()
        if isinstance(frame.index, pd.DatetimeIndex):  # a frame saved with its time index
            frame = frame.reset_index()
        return frame
    except pd.errors.EmptyDataError:
        raise DataError(f"--data: {p.name} is empty") from None
    except Exception as exc:  # pyarrow / parser / decoding errors all mean "cannot read this"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"--data: cannot read {p.name}: {first}") from None


def _read_parquet(p: pathlib.Path) -> pd.DataFrame:
    """A Parquet file's usable columns: numbers and timestamps as `plain_parquet_columns` streams them,
    other kinds (a symbol column's strings) through pandas."""
    read = plain_parquet_columns(p)
    if read is None:
        import pyarrow.parquet as pq

        columns = usable_columns(pq.read_schema(p, memory_map=True).names)
        return pd.read_parquet(p, columns=columns, memory_map=True)
    arrays, zones = read
    data: dict[str, Any] = {}
    for name, values in arrays.items():
        zone = zones.get(name)
        data[name] = pd.DatetimeIndex(values).tz_localize("UTC").tz_convert(zone) if zone else values
    return pd.DataFrame(data, copy=False)


def parse_times(col: pd.Series) -> pd.DatetimeIndex:
    """Naive timestamps are New York time; tz-aware ones are converted; numbers are epoch s or ms (UTC)."""
    if pd.api.types.is_numeric_dtype(col):
        ns = epoch_numbers_to_ns(col.to_numpy(dtype=np.float64))
        return pd.DatetimeIndex(ns, tz="UTC").tz_convert(NEW_YORK)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(col).tz_convert(NEW_YORK)
    text = col.astype(str)
    has_offset = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True)
    if bool(has_offset.any()):
        # Mixed offsets (e.g. -04:00 and -05:00 in one file) only parse as UTC.
        return pd.DatetimeIndex(pd.to_datetime(text, utc=True)).tz_convert(NEW_YORK)
    with (
        warnings.catch_warnings()
    ):  # "could not infer format": dateutil per value is fine, the warning is noise
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(text)
    return pd.DatetimeIndex(parsed).tz_localize(NEW_YORK, ambiguous="NaT", nonexistent="NaT")


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


def symbol_column(raw: pd.DataFrame) -> pd.Series | None:
    """The table's symbol column (upper case), or None when it has none."""
    cols = column_names(raw.columns)
    col = next((cols[c] for c in SYMBOL_ALIASES if c in cols), None)
    return None if col is None else raw[col].astype(str).str.strip().str.upper()


def normalize_bars(raw: pd.DataFrame, name: str = "data", symbol: str | None = None) -> pd.DataFrame:
    """Any table of bars -> the canonical frame (see the module docstring). DataError on bad layouts."""
    if raw is None or not len(raw.columns) or not len(raw):
        raise DataError(f"--data: {name} is empty")
    cols = column_names(raw.columns)
    values = symbol_column(raw)
    if values is not None:
        if symbol is not None:
            raw = raw[(values == symbol.upper()).to_numpy()]
            if not len(raw):
                raise DataError(f"--data: {name} has no rows for symbol {symbol.upper()}")
        elif values.nunique() > 1:
            raise DataError(f"--data: {name} holds several symbols; choose one with --symbol")
    time_col = time_column(cols)
    if time_col is not None:
        stamps = raw[time_col]
    elif "date" in cols and "time" in cols:
        stamps = raw[cols["date"]].astype(str) + " " + raw[cols["time"]].astype(str)
    elif "time" in cols:
        stamps = raw[cols["time"]]
    elif "date" in cols:
        stamps = raw[cols["date"]]
    else:
        raise DataError(
            f"--data: {name}: no timestamp column (expected timestamp, datetime, t, time or date + time; "
            f"found {', '.join(map(str, raw.columns[:8]))})"
        )
    try:
        times = parse_times(stamps)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"--data: {name}: {_timestamp_problem(stamps, exc)}") from None
    columns = []
    for col in ALIASES:
        src = source_column(cols, col)
        if src is None:
            if col == "volume":
                columns.append(np.zeros(len(raw)))
                continue
            raise DataError(
                f"--data: {name}: no {col!r} column (expected one of {', '.join(ALIASES[col])}; "
                f"found {', '.join(map(str, raw.columns[:8]))})"
            )
        values = raw[src]
        columns.append(
            values.to_numpy()
            if values.dtype == np.float64
            else pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        )
    block = price_block(columns)
    rows, dropped = kept_rows(np.asarray(times.asi8), block)
    df = pd.DataFrame(block.T, index=times, columns=list(ALIASES), copy=False)
    df.index.name = "timestamp"
    if rows is not None:
        df = df.iloc[rows]
    warn_dropped(name, dropped)
    if not len(df):
        raise DataError(f"--data: {name} holds no valid bars")
    df.attrs["dropped_rows"] = dropped
    df.attrs["source"] = name
    return df


def _read_cache_dir(
    root: pathlib.Path, symbol: str | None, start: dt.date | None, end: dt.date | None
) -> tuple[pd.DataFrame, str]:
    """The `bars` command's cache: <root>/<SYMBOL>/<YYYY-MM-DD>.parquet and <YYYY>.parquet (root may be
    the symbol dir), read by market/cache.py."""
    folder = root
    if symbol is not None and (root / symbol.upper()).is_dir():
        folder = root / symbol.upper()
    elif not any(root.glob("*.parquet")):
        subdirs = sorted(d for d in root.iterdir() if d.is_dir() and any(d.glob("*.parquet")))
        if not subdirs:
            raise DataError(f"--data: {root} holds no .parquet bar files")
        if symbol is not None:
            raise DataError(
                f"--data: no {symbol.upper()} folder in {root} (found {', '.join(d.name for d in subdirs[:8])})"
            )
        if len(subdirs) > 1:
            raise DataError(f"--data: {root} caches several symbols; choose one with --symbol")
        folder = subdirs[0]
    from .cache import day_files, read_symbol, year_files

    name = f"{folder}"
    try:
        if not day_files(folder) and not year_files(folder):
            raise DataError(f"--data: {folder} holds no .parquet bar files")
        frame = read_symbol(folder, start, end)
    except DataError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"--data: cannot read the cache in {folder}: {first}") from None
    if not len(frame):
        raise DataError(
            f"--data: {folder} has no cached days between {start or 'the start'} and {end or 'the end'}"
        )
    return frame, name


def regular_session(df: pd.DataFrame) -> pd.DataFrame:
    """The bars that start inside the XNYS regular session of their date (09:30 <= start < close,
    early closes honoured)."""
    if not len(df):
        return df
    index = pd.DatetimeIndex(df.index)
    cal = xnys()
    epochs = index.as_unit("s").asi8.astype(np.float64)
    days = index.tz_convert(NEW_YORK).date
    mask = np.zeros(len(index), dtype=bool)
    for i, (day, ts) in enumerate(zip(days, epochs, strict=True)):
        s = cal.session(day)
        mask[i] = s is not None and s.open <= ts < s.close
    return df[mask]


def frame_to_days(df: pd.DataFrame, symbol: str) -> dict[dt.date, DayBars]:
    """Split a loaded frame into per-session DayBars (whole-share volumes, trade counts and VWAP
    estimated from them)."""
    result: dict[dt.date, DayBars] = {}
    if not len(df):
        return result
    idx = pd.DatetimeIndex(df.index)
    epochs = idx.as_unit("s").asi8.astype(np.int64)
    days = np.array(idx.tz_convert(NEW_YORK).date)
    volume = np.round(df["volume"].to_numpy(dtype=np.float64)).astype(np.int64)
    for day in sorted(set(days)):
        m = days == day
        o, h, lo, c = (df[k].to_numpy(dtype=np.float64)[m] for k in ("open", "high", "low", "close"))
        v = volume[m]
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
    """Bars from a CSV/Parquet file or a `bars` cache for the simulator, read by `load_bars` (the same
    loader and the same one-line errors as `backtest`). A file without a symbol column serves its bars
    for every configured symbol; with one, each symbol gets its own rows, and a symbol it lacks is an
    error (a replay would trade nothing for it)."""

    def __init__(self, path: pathlib.Path, symbols: tuple[str, ...]) -> None:
        self.path = path
        self._days: dict[str, dict[dt.date, DayBars]] = {}
        for sym in symbols:
            rows = regular_session(load_bars(path, sym))
            self._days[sym] = frame_to_days(rows, sym)
        if not any(self._days.values()):
            raise DataError(f"--data: {path.name}: no regular-session bars for {', '.join(symbols)}")

    def day(self, symbol: str, session: CalendarSession) -> DayBars:
        bars = self._days.get(symbol, {}).get(session.date)
        return bars if bars is not None else DayBars.empty(symbol)

    def session_dates(self) -> list[dt.date]:
        """The sessions with bars (of any symbol), in order: a replay trades these and no others."""
        return sorted({d for days in self._days.values() for d in days})

    def first_session_date(self) -> dt.date | None:
        dates = self.session_dates()
        return dates[0] if dates else None
