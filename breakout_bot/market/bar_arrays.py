"""One-minute bars as flat arrays, and the rules every bar file goes through, in numpy alone.

`market/bars.py` is the loader: any file, as a DataFrame (`load_bars`). This module holds the part of
it that needs no pandas: the columns a file may name, the epoch-number times, which rows are kept
(`kept_rows`), and Parquet files of plain numbers and timestamps read straight into arrays. With
those, `load_bar_arrays` gives the single-symbol backtest its bars without importing pandas (~0.25 s of
a ~2 s command on a million bars; benchmarks/README.md) wherever the file allows it, and through
`load_bars` everywhere else: the same bars either way (tests/market/test_bar_arrays.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.model import NEW_YORK
from ..errors import DataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("breakout_bot.market.bars")  # the loader's logger: one name for its warnings

PRICE_COLUMNS = ("open", "high", "low", "close")
TIME_ALIASES = ("timestamp", "datetime", "date_time", "time_stamp", "t")
ALIASES = {
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}
SYMBOL_ALIASES = ("symbol", "ticker", "s")
KNOWN_COLUMNS = frozenset(
    (*TIME_ALIASES, "date", "time", *SYMBOL_ALIASES, *(a for aliases in ALIASES.values() for a in aliases))
)
_NAT = np.iinfo(np.int64).min  # numpy's and pandas' NaT, as an int64
_NS_PER = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


@dataclass
class BarArrays:
    """Bars as flat arrays: starts (UTC epoch nanoseconds, strictly increasing) and float64 prices and
    volumes; `dropped` and `source` are what `load_bars` keeps in a frame's attrs."""

    ns: np.ndarray
    o: np.ndarray
    h: np.ndarray
    lo: np.ndarray
    c: np.ndarray
    v: np.ndarray
    dropped: int = 0
    source: str = ""

    def __len__(self) -> int:
        return len(self.ns)

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> BarArrays:
        """A frame as `load_bars` returns it (tz-aware index, the five columns), flattened."""
        o, h, lo, c, v = (frame[name].to_numpy(dtype=np.float64) for name in ALIASES)
        return cls(
            frame.index.as_unit("ns").asi8,  # type: ignore[attr-defined]
            o,
            h,
            lo,
            c,
            v,
            dropped=int(frame.attrs.get("dropped_rows", 0) or 0),
            source=str(frame.attrs.get("source", "")),
        )

    def frame(self) -> pd.DataFrame:
        """The bars as `load_bars` returns them (for the charts, which draw with pandas)."""
        import pandas as pd

        index = pd.DatetimeIndex(self.ns, tz="UTC").tz_convert(NEW_YORK)
        index.name = "timestamp"
        frame = pd.DataFrame(
            dict(zip(ALIASES, (self.o, self.h, self.lo, self.c, self.v), strict=True)), index=index
        )
        frame.attrs["dropped_rows"] = self.dropped
        frame.attrs["source"] = self.source
        return frame


def column_names(names: Any) -> dict[str, Any]:
    """A table's column names by their lower-case, stripped form (how the loader matches them)."""
    return {str(c).strip().lower(): c for c in names}


def time_column(cols: dict[str, Any]) -> Any | None:
    """The one column that holds the bars' times, if any (else date + time, time or date alone)."""
    return next((cols[c] for c in TIME_ALIASES if c in cols), None)


def source_column(cols: dict[str, Any], col: str) -> Any | None:
    """The table's column for `col` (open, high, ... volume), by its aliases in order."""
    return next((cols[a] for a in ALIASES[col] if a in cols), None)


def epoch_numbers_to_ns(values: np.ndarray) -> np.ndarray:
    """Epoch seconds or milliseconds (UTC; told apart by size) as int64 nanoseconds (NaN -> NaT)."""
    values = np.asarray(values, dtype=np.float64)
    known = np.abs(values[~np.isnan(values)])
    scale = 1_000_000 if len(known) and float(known.max()) > 1e11 else 1_000_000_000  # ms or s -> ns
    with np.errstate(invalid="ignore"):
        return (values * scale).astype("int64")


def price_block(columns: list[np.ndarray]) -> np.ndarray:
    """open, high, low, close, volume (float64) as one block, the prices rounded to 1/10,000: float
    noise (yfinance) must not move a price. One block: a frame built on it copies nothing."""
    block = np.empty((len(ALIASES), len(columns[0])))
    for i, (col, values) in enumerate(zip(ALIASES, columns, strict=True)):
        if col in PRICE_COLUMNS:
            np.round(values, 4, out=block[i])
        else:
            block[i] = values
    return block


def kept_rows(times_ns: np.ndarray, block: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Which rows of bars (starts, int64 of any unit, NaT for none; `price_block`) the loader keeps, in
    time order, one per start (the last row wins: a file's latest correction), or None when all of them
    are kept as they are; and how many it drops for a missing time or a missing, non-positive or
    inconsistent price (high < low, open or close outside [low, high]). Volumes: NaN -> 0, in place."""
    o, h, lo, c, volume = block
    with np.errstate(invalid="ignore"):
        good = (
            (times_ns != _NAT)
            & np.isfinite(o)
            & np.isfinite(h)
            & np.isfinite(lo)
            & np.isfinite(c)
            & (lo > 0)
            & (h >= lo)
            & (np.minimum(o, c) >= lo)
            & (np.maximum(o, c) <= h)
        )
    np.nan_to_num(volume, copy=False, nan=0.0)
    dropped = int(len(good) - np.count_nonzero(good))
    rows = np.flatnonzero(good) if dropped else None
    stamps = times_ns if rows is None else times_ns[rows]
    # Strictly increasing = sorted and unique, without a hash table of every bar.
    if len(stamps) > 1 and not bool((np.diff(stamps) > 0).all()):
        order = np.argsort(stamps, kind="stable")
        ordered = stamps[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = ordered[1:] != ordered[:-1]
        order = order[last]
        rows = order if rows is None else rows[order]
    return rows, dropped


def warn_dropped(name: str, dropped: int) -> None:
    if dropped:
        log.warning("%s: dropped %d rows with missing or inconsistent prices", name, dropped)


def new_york_midnight_ns(day: dt.date) -> int:
    """The start of a New York calendar day, as UTC epoch nanoseconds (US clocks change at 2 a.m.)."""
    return int(dt.datetime.combine(day, dt.time(), NEW_YORK).timestamp()) * 1_000_000_000


def no_bars_between(name: str, start: dt.date | None, end: dt.date | None) -> DataError:
    return DataError(f"--data: {name} has no bars between {start or 'the start'} and {end or 'the end'}")


def usable_columns(names: list[str]) -> list[str] | None:
    """The columns of a table that a bar can use, when it has a time and every price (else None: read
    them all, so that an error can name what the file holds). Reading only those keeps wide files
    (vwap, trade counts, anything) from costing memory."""
    wanted = [n for n in names if n.strip().lower() in KNOWN_COLUMNS]
    lower = {n.strip().lower() for n in wanted}
    has_time = bool(lower & {*TIME_ALIASES, "date", "time"})
    has_prices = all(lower & set(aliases) for col, aliases in ALIASES.items() if col != "volume")
    return wanted if has_time and has_prices else None


ParquetColumns = tuple[dict[str, np.ndarray], dict[str, str | None]]


def _numbers(array: Any, dtype: np.dtype[Any], missing: float | int) -> np.ndarray:
    """A pyarrow array of fixed-width numbers (`dtype`: its layout, int64 ticks for timestamps) as
    float64, or int64 when `missing` is an int (timestamps: NaT), null -> `missing`, read from its
    buffers: pyarrow's `to_numpy` imports pandas, and its `cast` pyarrow.compute (~0.03 s)."""
    n, offset = len(array), array.offset
    out_dtype = np.int64 if isinstance(missing, int) else np.float64
    if not n:
        return np.empty(0, dtype=out_dtype)
    validity, data = array.buffers()[:2]
    values = np.frombuffer(data, dtype=dtype)[offset : offset + n].astype(out_dtype)
    if array.null_count:
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        values[~bits[offset : offset + n].astype(bool)] = missing
    return values


def _layout(kind: Any) -> np.dtype[Any] | None:
    """The numpy dtype of a pyarrow column's values: integers and floats of any width, timestamps (their
    int64 ticks); None for any other kind."""
    import pyarrow as pa

    if pa.types.is_timestamp(kind):
        return np.dtype(np.int64)
    if pa.types.is_integer(kind):
        return np.dtype(f"{'i' if pa.types.is_signed_integer(kind) else 'u'}{kind.bit_width // 8}")
    if pa.types.is_floating(kind):
        return np.dtype(f"f{kind.bit_width // 8}")
    return None


def plain_parquet_columns(path: pathlib.Path) -> ParquetColumns | None:
    """A Parquet file's bar columns as arrays (numbers as float64, NaN for null; timestamps as
    datetime64 of their unit, UTC instants), streamed batch by batch into one array per column (a
    million bars: ~50 MB at the peak instead of ~150 MB), and each timestamp column's zone (None:
    naive). None unless it has rows, a time and every price column (`usable_columns`), all of them
    numbers or timestamps: the general path (pandas) reads it then."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path, memory_map=True)
    schema = source.schema_arrow
    wanted = usable_columns(schema.names)
    if wanted is None or not source.metadata.num_rows:
        return None
    fields = [schema.field(n) for n in wanted]
    layouts = [_layout(f.type) for f in fields]
    if any(layout is None for layout in layouts):
        return None
    n = source.metadata.num_rows
    arrays = {
        f.name: np.empty(
            n, dtype=f"datetime64[{f.type.unit}]" if pa.types.is_timestamp(f.type) else np.float64
        )
        for f in fields
    }
    pos = 0
    for batch in source.iter_batches(batch_size=65_536, columns=wanted, use_threads=False):
        rows = batch.num_rows
        for f, layout in zip(fields, layouts, strict=True):
            chunk = batch.column(f.name)
            assert layout is not None
            if pa.types.is_timestamp(f.type):  # UTC instants in the column's unit; null: NaT
                arrays[f.name].view(np.int64)[pos : pos + rows] = _numbers(chunk, layout, _NAT)
            else:  # nulls: NaN
                arrays[f.name][pos : pos + rows] = _numbers(chunk, layout, np.nan)
        pos += rows
    zones = {f.name: f.type.tz for f in fields if pa.types.is_timestamp(f.type)}
    return arrays, zones


def release_arrow_memory() -> None:
    """Hand the memory pyarrow's pool keeps after a read back to the system (the arrays own their data)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def load_bar_arrays(
    path: str | pathlib.Path,
    symbol: str | None = None,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> BarArrays:
    """`load_bars(path, symbol, start=, end=)`, as arrays: the same bars, the same errors. A Parquet
    file of numbers and timestamps, with a single time column (epoch numbers or zoned times) and no
    symbol column, is read without pandas; anything else goes through `load_bars`."""
    p = pathlib.Path(path)
    fast = _read_plain(p) if p.is_file() and p.suffix.lower() in (".parquet", ".pq") else None
    if fast is None:
        from .bars import load_bars

        return BarArrays.of_frame(load_bars(p, symbol, start=start, end=end))
    times, block = fast
    rows, dropped = kept_rows(times, block)
    if rows is not None:
        times, block = times[rows], block[:, rows]
    warn_dropped(p.name, dropped)
    if not len(times):
        raise DataError(f"--data: {p.name} holds no valid bars")
    if start is not None or end is not None:
        keep = np.ones(len(times), dtype=bool)
        if start is not None:
            keep &= times >= new_york_midnight_ns(start)
        if end is not None:
            keep &= times < new_york_midnight_ns(end + dt.timedelta(days=1))
        times, block = times[keep], block[:, keep]
        if not len(times):
            raise no_bars_between(p.name, start, end)
    o, h, lo, c, v = block
    return BarArrays(times, o, h, lo, c, v, dropped=dropped, source=p.name)


def _read_plain(p: pathlib.Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A plain Parquet file's bar starts (int64 UTC ns, NaT for none) and `price_block`, or None when
    it takes the general path: no such layout, a symbol column, several time columns, naive times
    (New York wall clock: pandas resolves its DST folds and gaps), or times beyond int64 nanoseconds."""
    try:
        read = plain_parquet_columns(p)
    except Exception:  # unreadable here: the general path reads it again and words the error
        return None
    release_arrow_memory()  # (the general path's read_table does this for its reads)
    if read is None:
        return None
    arrays, zones = read
    cols = column_names(arrays)
    time_col = time_column(cols)
    if time_col is None or any(a in cols for a in SYMBOL_ALIASES):
        return None
    stamps = arrays[time_col]
    if np.issubdtype(stamps.dtype, np.datetime64):
        if zones.get(time_col) is None or not _fits_ns(stamps):
            return None
        times = stamps.astype("datetime64[ns]").view(np.int64)
    else:
        times = epoch_numbers_to_ns(stamps)
    columns = []
    for col in ALIASES:
        src = source_column(cols, col)
        if src is None:
            if col != "volume":
                return None
            columns.append(np.zeros(len(times)))
        else:
            columns.append(arrays[src])
    return times, price_block(columns)


def _fits_ns(stamps: np.ndarray) -> bool:
    """Whether datetime64 values (NaT aside) convert to int64 nanoseconds without overflow."""
    per = _NS_PER.get(np.datetime_data(stamps.dtype)[0])
    if per is None:
        return False
    values = stamps.view(np.int64)
    real = values[values != _NAT]
    limit = np.iinfo(np.int64).max // per
    return not len(real) or bool(real.max() <= limit and real.min() >= -limit)
