"""The XNYS calendar: holidays, early closes, the next open and close."""

from __future__ import annotations

import datetime as dt

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.market.calendar import xnys


def test_holidays_and_early_close() -> None:
    cal = xnys()
    assert cal.session(dt.date(2024, 7, 4)) is None  # Independence Day
    assert cal.session(dt.date(2024, 3, 2)) is None  # Saturday
    half = cal.session(dt.date(2015, 12, 24))
    assert half is not None
    assert half.open_dt.time() == dt.time(9, 30) and half.close_dt.time() == dt.time(13, 0)
    assert half.minutes == 210
    assert cal.session_on_or_after(dt.date(2024, 7, 4)).date == dt.date(2024, 7, 5)


def test_open_and_next_open_close() -> None:
    cal = xnys()
    before = dt.datetime(2024, 3, 4, 9, 0, tzinfo=NY).timestamp()
    during = dt.datetime(2024, 3, 4, 10, 0, tzinfo=NY).timestamp()
    after = dt.datetime(2024, 3, 4, 16, 0, tzinfo=NY).timestamp()
    assert not cal.is_open(before) and cal.is_open(during) and not cal.is_open(after)
    assert dt.datetime.fromtimestamp(cal.next_open(before), NY) == dt.datetime(2024, 3, 4, 9, 30, tzinfo=NY)
    assert dt.datetime.fromtimestamp(cal.next_open(during), NY) == dt.datetime(2024, 3, 5, 9, 30, tzinfo=NY)
    assert dt.datetime.fromtimestamp(cal.next_close(during), NY) == dt.datetime(2024, 3, 4, 16, 0, tzinfo=NY)
    assert dt.datetime.fromtimestamp(cal.next_close(after), NY) == dt.datetime(2024, 3, 5, 16, 0, tzinfo=NY)
