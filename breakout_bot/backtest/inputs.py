"""The backtest's input: bars as flat arrays (market/bar_arrays.py) from any frame, and sessions in epoch seconds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from ..core.model import NEW_YORK
from ..market.bar_arrays import BarArrays

if TYPE_CHECKING:
    import pandas as pd


class SessionCalendar:
    """Sessions as epoch seconds: the XNYS calendar (market/calendar.py), or any object with its API."""

    def __init__(self, calendar: Any | None) -> None:
        if calendar is None:
            from ..market.calendar import xnys

            calendar = xnys()
        self.cal = calendar

    def session(self, day: dt.date) -> tuple[float, float] | None:
        s = self.cal.session(day)
        return None if s is None else (float(s.open), float(s.close))

    def next_open(self, day: dt.date, today_open: float) -> float:
        try:
            return float(self.cal.session_after(day).open)
        except ValueError:  # beyond the calendar's last session: only SleepUntil uses it
            return today_open + 86_400


N = TypeVar("N", int, float)


def numbers(array: np.ndarray, kind: type[N]) -> Sequence[N]:
    """The array as a sequence of Python ints or floats (a memoryview: no copy)."""
    dtype = np.int64 if kind is int else np.float64
    contiguous: Any = np.ascontiguousarray(array, dtype=dtype)  # a buffer (numpy's stubs do not say so)
    return cast("Sequence[N]", memoryview(contiguous))


def column(bars: pd.DataFrame, name: str) -> np.ndarray:
    import pandas as pd

    col = bars[name]
    if col.dtype == np.float64:
        return col.to_numpy()
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)


def prepare(bars: pd.DataFrame) -> BarArrays:
    """Arrays of the bars, sorted by time, duplicates dropped (the last wins), New York time."""
    import pandas as pd

    if not isinstance(bars.index, pd.DatetimeIndex):
        raise ValueError("bars must have a DatetimeIndex of bar starts")
    cols = {str(c).lower(): c for c in bars.columns}
    missing = [c for c in ("open", "high", "low", "close") if c not in cols]
    if missing:
        raise ValueError(f"bars lack columns {missing}")
    o, h, lo, c = (column(bars, cols[name]) for name in ("open", "high", "low", "close"))
    v = np.nan_to_num(column(bars, cols["volume"])) if "volume" in cols else np.zeros(len(bars))
    idx = bars.index
    idx = (idx.tz_localize(NEW_YORK) if idx.tz is None else idx.tz_convert(NEW_YORK)).as_unit("ns")
    stamps = idx.asi8
    # Strictly increasing = sorted and unique, without is_unique's hash table of every bar.
    if len(stamps) > 1 and not bool((np.diff(stamps) > 0).all()):
        # Stable sort, then keep the last of each timestamp (the file's latest correction).
        order = np.argsort(idx.asi8, kind="stable")
        stamps = idx.asi8[order]
        last = np.ones(len(stamps), dtype=bool)
        last[:-1] = stamps[1:] != stamps[:-1]
        order = order[last]
        idx = idx[order]
        o, h, lo, c, v = o[order], h[order], lo[order], c[order], v[order]
    return BarArrays(idx.asi8, o, h, lo, c, v)
