"""NYSE trading sessions (XNYS from exchange-calendars): open/close per date, next open/close.

Why a wrapper: exchange-calendars is slow to build (~1 s) and its pandas API is slow per call; the
simulator asks "is the market open?" on every request, so we build the schedule once into plain
dicts of epoch seconds and answer with a bisect. (The machine's `core.model.Session` is the same
session as datetimes; a `CalendarSession` holds epoch seconds, the calendar's own axis.)

The schedule is also kept on disk (`schedule_cache_path`: the user's cache folder, one small file per
exchange-calendars release and day, since the range runs from FIRST_DATE to a year ahead),
so a command that needs the calendar does not import and build exchange-calendars each time
(~0.3-0.4 s of a backtest). Any problem with the file means building it again, never an error.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.model import NEW_YORK


@dataclass(frozen=True)
class CalendarSession:
    """One regular session. open/close are epoch seconds (UTC)."""

    date: dt.date
    open: float
    close: float

    @property
    def open_dt(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.open, NEW_YORK)

    @property
    def close_dt(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.close, NEW_YORK)

    @property
    def minutes(self) -> int:
        return int((self.close - self.open) // 60)


# exchange-calendars' default window is the last 20 years, which made `--start 1999-01-04` trade
# 2006-12-01: our window starts here (minute bars older than this are rare), and a date outside it is
# refused by whoever asks (first_date/last_date).
FIRST_DATE = dt.date(1990, 1, 1)


class MarketCalendar:
    """The XNYS calendar (holidays and early closes, e.g. 2015-12-24 closes 13:00), from 1990 to a
    year ahead; or a part of it (`only`: the sessions a bar file holds)."""

    def __init__(self, schedule: np.ndarray | Iterable[CalendarSession] | None = None) -> None:
        """`schedule`: rows (day number since 1970-01-01, open, close in epoch seconds), or sessions;
        by default XNYS's from exchange-calendars (through the disk cache)."""
        if schedule is None:
            schedule = xnys_schedule()
        if isinstance(schedule, np.ndarray):
            ordered = [
                CalendarSession(_EPOCH_DAY + dt.timedelta(days=int(d)), o, c) for d, o, c in schedule.tolist()
            ]
        else:
            ordered = sorted(schedule, key=lambda s: s.date)
        if not ordered:
            raise ValueError("a calendar needs at least one session")
        self._dates: list[dt.date] = [s.date for s in ordered]
        self._sessions: dict[dt.date, CalendarSession] = {s.date: s for s in ordered}
        self._opens = [s.open for s in ordered]
        self._closes = [s.close for s in ordered]

    def only(self, dates: Iterable[dt.date]) -> MarketCalendar:
        """This calendar with, between the first and the last of `dates` (a bar file's sessions), only
        their sessions: the market opens on the next of them, so a replay goes from one session with
        bars to the next, gaps of years included. Before and after them the calendar is unchanged (the
        clock keeps a next open after the file's last session)."""
        wanted = set(dates)
        if not wanted:
            return self
        first, last = min(wanted), max(wanted)
        return MarketCalendar(s for d, s in self._sessions.items() if d in wanted or d < first or d > last)

    @property
    def first_date(self) -> dt.date:
        return self._dates[0]

    @property
    def last_date(self) -> dt.date:
        return self._dates[-1]

    def session(self, day: dt.date) -> CalendarSession | None:
        """The session on `day`, or None when the exchange is closed that day."""
        return self._sessions.get(day)

    def is_session(self, day: dt.date) -> bool:
        return day in self._sessions

    def session_on_or_after(self, day: dt.date) -> CalendarSession:
        i = bisect.bisect_left(self._dates, day)
        if i >= len(self._dates):
            raise ValueError(f"{day} is beyond the XNYS calendar ({self.last_date})")
        return self._sessions[self._dates[i]]

    def session_before(self, day: dt.date) -> CalendarSession | None:
        i = bisect.bisect_left(self._dates, day) - 1
        return self._sessions[self._dates[i]] if i >= 0 else None

    def session_after(self, day: dt.date) -> CalendarSession:
        i = bisect.bisect_right(self._dates, day)
        if i >= len(self._dates):
            raise ValueError(f"no XNYS session after {day}")
        return self._sessions[self._dates[i]]

    def sessions_between(self, start: dt.date, end: dt.date) -> list[CalendarSession]:
        """Sessions with start <= date <= end (inclusive, like GET /v2/calendar)."""
        lo = bisect.bisect_left(self._dates, start)
        hi = bisect.bisect_right(self._dates, end)
        return [self._sessions[d] for d in self._dates[lo:hi]]

    def is_open(self, ts: float) -> bool:
        """True while a regular session is in progress (open <= ts < close)."""
        i = bisect.bisect_right(self._opens, ts) - 1
        return i >= 0 and ts < self._closes[i]

    def next_open(self, ts: float) -> float:
        """First session open strictly after ts (Alpaca's next_open while open is tomorrow's)."""
        i = bisect.bisect_right(self._opens, ts)
        if i >= len(self._opens):
            raise ValueError("beyond the XNYS calendar")
        return self._opens[i]

    def next_close(self, ts: float) -> float:
        """First session close strictly after ts (today's close while open or before the open)."""
        i = bisect.bisect_right(self._closes, ts)
        if i >= len(self._closes):
            raise ValueError("beyond the XNYS calendar")
        return self._closes[i]

    def settlement_date(self, day: dt.date) -> dt.date:
        """T+1 since 2024-05-28 (T+2 before): the field settlement_date of trading-api.json Calendar."""
        lag = 1 if day >= dt.date(2024, 5, 28) else 2
        i = bisect.bisect_left(self._dates, day)
        j = min(i + lag, len(self._dates) - 1)
        return self._dates[j]


@functools.lru_cache(maxsize=1)
def xnys() -> MarketCalendar:
    """The process-wide calendar (built once; it is immutable)."""
    return MarketCalendar()


_EPOCH_DAY = dt.date(1970, 1, 1)


def build_xnys_schedule() -> np.ndarray:
    """XNYS's sessions from exchange-calendars (FIRST_DATE to a year ahead) as rows (day number, open, close)."""
    import exchange_calendars as xc  # heavy import (pandas, ~0.3 s): only when the cache cannot answer

    sched = xc.get_calendar("XNYS", start=FIRST_DATE.isoformat()).schedule
    days = [(ts.date() - _EPOCH_DAY).days for ts in sched.index]
    opens = [ts.timestamp() for ts in sched["open"]]
    closes = [ts.timestamp() for ts in sched["close"]]
    return np.array([days, opens, closes], dtype=np.float64).T.copy()


def cache_dir() -> Path:
    """Where breakout-bot keeps caches: $BREAKOUT_CACHE_DIR, else $XDG_CACHE_HOME/breakout-bot, else
    ~/.cache/breakout-bot."""
    explicit = os.environ.get("BREAKOUT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "breakout-bot"


def schedule_cache_path(today: dt.date | None = None) -> Path | None:
    """The cache file for today's XNYS schedule, named by the installed exchange-calendars (its version
    file and XNYS rules, read as bytes: importing it is what the cache saves); None without it."""
    spec = importlib.util.find_spec("exchange_calendars")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha1(f"{today or dt.date.today()} from {FIRST_DATE}".encode())
    for name in ("_version.py", "exchange_calendar_xnys.py"):
        try:
            digest.update((package / name).read_bytes())
        except OSError:
            digest.update(name.encode())
    return cache_dir() / f"xnys-{digest.hexdigest()[:16]}.npy"


def xnys_schedule() -> np.ndarray:
    """The XNYS schedule, from the disk cache when it holds today's, else built (and cached)."""
    path = schedule_cache_path()
    if path is not None:
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.ndim == 2 and cached.shape[1] == 3 and len(cached) > 0:
                return cached
        except (OSError, ValueError):
            pass
    schedule = build_xnys_schedule()
    if path is not None:
        _write_quietly(path, schedule)
    return schedule


def _write_quietly(path: Path, schedule: np.ndarray) -> None:
    """Write atomically (temp file + rename: parallel processes never read half a file); a cache that
    cannot be written is only slower next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".xnys-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, schedule, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass
