"""One symbol's one-minute bars for one session, as arrays: what the simulator's tape and its market
data API read, from a bar source (synthetic or a file)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .calendar import CalendarSession

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
    # What a reader derives from these bars once and keeps (the simulator: each bar's JSON text).
    memo: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def empty(cls, symbol: str) -> DayBars:
        return cls(symbol, _EMPTY_I, _EMPTY_F, _EMPTY_F, _EMPTY_F, _EMPTY_F, _EMPTY_I, _EMPTY_I, _EMPTY_F)

    def closed_count(self, now: float) -> int:
        """How many bars have closed by `now` (a bar starting at T closes at T+60)."""
        return int(np.searchsorted(self.t + 60, now, side="right"))


class BarSource(Protocol):
    def day(self, symbol: str, session: CalendarSession) -> DayBars: ...

    def first_session_date(self) -> dt.date | None: ...

    def session_dates(self) -> list[dt.date] | None:
        """The sessions this source has bars for; None: every session (synthetic)."""
        ...
