"""The local minute-bar cache written by `breakout-bot bars` (market/bars.py reads it).

Layout: ``<cache>/<SYMBOL>/<YYYY-MM-DD>.parquet``, one file per symbol per trading day, columns
``timestamp`` (bar start, tz UTC), ``open high low close volume trade_count vwap``. A file exists only
once complete: it is written to a temporary name in the same folder and renamed into place, so an
interrupted download never leaves a partial day behind (and a rerun resumes where it stopped).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "trade_count", "vwap")


def cache_path(cache_dir: Path, symbol: str, day: dt.date) -> Path:
    return Path(cache_dir) / symbol.upper() / f"{day.isoformat()}.parquet"


def is_cached(cache_dir: Path, symbol: str, day: dt.date) -> bool:
    return cache_path(cache_dir, symbol, day).is_file()


def cached_days(cache_dir: Path, symbol: str) -> list[dt.date]:
    folder = Path(cache_dir) / symbol.upper()
    out = []
    for f in folder.glob("*.parquet"):
        try:
            out.append(dt.date.fromisoformat(f.stem))
        except ValueError:
            continue
    return sorted(out)


def _record_row(r: Any) -> dict[str, Any]:
    if isinstance(r, Mapping):
        return {
            "timestamp": r["t"],
            "open": r["o"],
            "high": r["h"],
            "low": r["l"],
            "close": r["c"],
            "volume": r.get("v", 0),
            "trade_count": r.get("n"),
            "vwap": r.get("vw"),
        }
    # a strategy.Bar
    return {
        "timestamp": r.t,
        "open": r.open,
        "high": r.high,
        "low": r.low,
        "close": r.close,
        "volume": r.volume,
        "trade_count": None,
        "vwap": None,
    }


def to_frame(records: Iterable[Any]) -> pd.DataFrame:
    """Alpaca v2 bar dicts (t,o,h,l,c,v,n,vw) or Bars as the cache's frame, sorted, one row per minute."""
    rows = [_record_row(r) for r in records]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    for c in ("open", "high", "low", "close", "volume", "vwap"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["trade_count"] = pd.to_numeric(df["trade_count"], errors="coerce").astype("Int64")
    df = df.drop_duplicates("timestamp", keep="last").sort_values("timestamp").reset_index(drop=True)
    return df


def write_day(cache_dir: Path, symbol: str, day: dt.date, records: Iterable[Any]) -> Path:
    """Write one day's bars atomically (temp file in the same folder, fsync, rename). Returns the path."""
    path = cache_path(cache_dir, symbol, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = to_frame(records)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{day.isoformat()}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            df.to_parquet(fh, index=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
