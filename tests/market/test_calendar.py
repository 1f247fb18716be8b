"""The XNYS calendar: holidays, early closes, the next open and close."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.market import calendar
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


def test_the_schedule_cache_holds_what_exchange_calendars_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk cache answers with exactly the built schedule; a damaged or unwritable cache only
    means building it again (never an error)."""
    monkeypatch.setenv("BREAKOUT_CACHE_DIR", str(tmp_path / "cache"))
    built = calendar.build_xnys_schedule()
    path = calendar.schedule_cache_path()
    assert path is not None and path.parent == tmp_path / "cache" and not path.exists()
    first = calendar.xnys_schedule()  # builds and writes
    assert path.is_file() and np.array_equal(first, built)
    calls: list[int] = []
    monkeypatch.setattr(calendar, "build_xnys_schedule", lambda: calls.append(1) or built)
    cached = calendar.xnys_schedule()
    assert calls == [] and np.array_equal(cached, built)
    fresh = calendar.MarketCalendar()  # through the cache: the same sessions as the built calendar
    assert fresh.session(dt.date(2015, 12, 24)) == xnys().session(dt.date(2015, 12, 24))
    assert fresh.first_date == xnys().first_date and fresh.last_date == xnys().last_date
    path.write_bytes(b"not a numpy file")
    assert np.array_equal(calendar.xnys_schedule(), built) and calls == [1]
    assert np.array_equal(np.load(path), built)  # rewritten
    # Tomorrow (a new default range) is another file.
    assert calendar.schedule_cache_path(dt.date.today() + dt.timedelta(days=1)) != path
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("BREAKOUT_CACHE_DIR", str(blocked / "cache"))
    assert np.array_equal(calendar.xnys_schedule(), built)
