"""NYSE trading sessions (XNYS from exchange-calendars): open/close per date, next open/close.

Why a wrapper: exchange-calendars is slow to build (~1 s) and its pandas API is slow per call; the
simulator asks "is the market open?" on every request, so we build the schedule once into plain
dicts of epoch seconds and answer with a bisect. (The machine's `core.model.Session` is the same
session as datetimes; a `CalendarSession` holds epoch seconds, the calendar's own axis.)
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass

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


def _xnys_sessions() -> list[CalendarSession]:
    import exchange_calendars as xc  # heavy import: only when a calendar is first needed

    sched = xc.get_calendar("XNYS", start=FIRST_DATE.isoformat()).schedule
    dates = [ts.date() for ts in sched.index]
    opens = [ts.timestamp() for ts in sched["open"]]
    closes = [ts.timestamp() for ts in sched["close"]]
    return [CalendarSession(d, o, c) for d, o, c in zip(dates, opens, closes, strict=True)]


class MarketCalendar:
    """The XNYS calendar (holidays and early closes, e.g. 2015-12-24 closes 13:00), from 1990 to a
    year ahead; or a part of it (`only`: the sessions a bar file holds)."""

    def __init__(self, sessions: Iterable[CalendarSession] | None = None) -> None:
        ordered = sorted(_xnys_sessions() if sessions is None else sessions, key=lambda s: s.date)
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
