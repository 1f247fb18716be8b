"""The local minute-bar cache written by `breakout-bot bars` (market/bars.py reads it).

Layout: ``<cache>/<SYMBOL>/<YYYY-MM-DD>.parquet``, one file per symbol per trading day, columns
``timestamp`` (bar start, tz UTC), ``open high low close volume trade_count vwap``. A file exists only
once complete: it is written to a temporary name in the same folder and renamed into place, so an
interrupted download never leaves a partial day behind (and a rerun resumes where it stopped).

`compact` turns a symbol's day files into one file per year, ``<cache>/<SYMBOL>/<YYYY>.parquet``
(sorted, row groups of about a month, the days it covers, those without bars included, listed in
its metadata), written the same atomic way before the day files go; a later download adds day files
beside it, and the next `compact` merges them in. A cached day is a day file or a day a year file
lists. `read_symbol` reads both kinds through one pyarrow dataset, filtered to the requested dates.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "trade_count", "vwap")
DAYS_KEY = b"breakout_bot_days"  # a year file's metadata: the days it covers (ISO dates, comma-separated)
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.parquet$")
_YEAR_FILE = re.compile(r"^\d{4}\.parquet$")
ROW_GROUP = 8_192  # ~3 weeks of minute bars: a date filter skips the rest of a year file unread


def cache_path(cache_dir: Path, symbol: str, day: dt.date) -> Path:
    return Path(cache_dir) / symbol.upper() / f"{day.isoformat()}.parquet"


def year_path(cache_dir: Path, symbol: str, year: int) -> Path:
    return Path(cache_dir) / symbol.upper() / f"{year:04d}.parquet"


def is_cached(cache_dir: Path, symbol: str, day: dt.date) -> bool:
    return cache_path(cache_dir, symbol, day).is_file() or day in year_days(
        year_path(cache_dir, symbol, day.year)
    )


def cached_days(cache_dir: Path, symbol: str) -> list[dt.date]:
    """Every cached day of `symbol`: its day files and the days its year files cover."""
    folder = Path(cache_dir) / symbol.upper()
    out: set[dt.date] = set()
    for f in day_files(folder):
        out.add(dt.date.fromisoformat(f.stem))
    for f in year_files(folder):
        out |= year_days(f)
    return sorted(out)


def day_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.glob("*.parquet") if _DAY_FILE.match(f.name))


def year_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.glob("*.parquet") if _YEAR_FILE.match(f.name))


def year_days(path: Path) -> set[dt.date]:
    """The days a year file covers (read from its metadata only), or none if there is no such file."""
    if not path.is_file():
        return set()
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    text = meta.get(DAYS_KEY, b"").decode()
    return {dt.date.fromisoformat(d) for d in text.split(",") if d}


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


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("timestamp", pa.timestamp("ns", tz="UTC")),
            ("open", pa.float64()),
            ("high", pa.float64()),
            ("low", pa.float64()),
            ("close", pa.float64()),
            ("volume", pa.float64()),
            ("trade_count", pa.int64()),
            ("vwap", pa.float64()),
        ]
    )


def _read_table(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path).select(list(COLUMNS)).cast(_schema())


def compact(cache_dir: Path, symbol: str) -> list[Path]:
    """Merge `symbol`'s day files (and any year file they extend) into one file per year; returns the
    year files written. Each is complete before its day files are removed: an interruption leaves
    either the day files or the year file (or both: they hold the same bars, and readers keep one)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = Path(cache_dir) / symbol.upper()
    by_year: dict[int, list[Path]] = {}
    for f in day_files(folder):
        by_year.setdefault(int(f.name[:4]), []).append(f)
    written = []
    for year, files in sorted(by_year.items()):
        target = year_path(cache_dir, symbol, year)
        days = year_days(target) | {dt.date.fromisoformat(f.stem) for f in files}
        tables = ([_read_table(target)] if target.is_file() else []) + [_read_table(f) for f in files]
        table = pa.concat_tables(tables)
        # Sorted by time; a minute held twice (a day re-downloaded) keeps the later file's bar.
        order = pc.sort_indices(
            pa.table({"t": table["timestamp"], "i": pa.array(range(len(table)))}),
            sort_keys=[("t", "ascending"), ("i", "descending")],
        )
        table = table.take(order)
        if len(table) > 1:
            stamps = table["timestamp"].cast(pa.int64()).to_numpy()
            keep = pa.array([True, *(stamps[1:] != stamps[:-1])])
            table = table.filter(keep)
        metadata = {DAYS_KEY: ",".join(d.isoformat() for d in sorted(days)).encode()}
        table = table.replace_schema_metadata(metadata)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{year}.", suffix=".tmp", dir=folder)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh, row_group_size=ROW_GROUP)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        for f in files:
            f.unlink()
        written.append(target)
    return written


def read_symbol(folder: Path, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    """A symbol folder's bars (year and day files) between start and end (inclusive New York dates),
    through one pyarrow dataset: a year file's row groups outside the dates are not read."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from ..core.model import NEW_YORK

    files = [f for f in year_files(folder) if _year_wanted(f, start, end)]
    files += [f for f in day_files(folder) if _day_wanted(f, start, end)]
    if not files:
        return pd.DataFrame(columns=list(COLUMNS))
    dataset = ds.dataset([str(f) for f in files], format="parquet", schema=_schema())
    condition = None
    if start is not None:
        low = pd.Timestamp(start, tz=NEW_YORK).tz_convert("UTC")
        condition = ds.field("timestamp") >= pa.scalar(low, type=pa.timestamp("ns", tz="UTC"))
    if end is not None:
        high = pd.Timestamp(end + dt.timedelta(days=1), tz=NEW_YORK).tz_convert("UTC")
        below = ds.field("timestamp") < pa.scalar(high, type=pa.timestamp("ns", tz="UTC"))
        condition = below if condition is None else condition & below
    table = dataset.to_table(filter=condition)
    return table.to_pandas()


def _year_wanted(path: Path, start: dt.date | None, end: dt.date | None) -> bool:
    year = int(path.stem)
    return not ((start is not None and year < start.year) or (end is not None and year > end.year))


def _day_wanted(path: Path, start: dt.date | None, end: dt.date | None) -> bool:
    day = dt.date.fromisoformat(path.stem)
    return not ((start is not None and day < start) or (end is not None and day > end))
