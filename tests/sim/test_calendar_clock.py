"""XNYS calendar (holidays, early closes) and the virtual clock."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.market.calendar import xnys
from breakout_bot.sim import VirtualClock


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


def test_frozen_clock_advances_only_when_told() -> None:
    start = dt.datetime(2024, 3, 4, 9, 25, tzinfo=NY)
    clock = VirtualClock(start, speed=0)
    time.sleep(0.01)
    assert clock.now() == start
    assert clock.now().tzinfo is not None
    seen: list[float] = []
    clock.add_listener(seen.append)
    clock.advance(90)
    assert clock.now() == start + dt.timedelta(seconds=90)
    assert seen == [start.timestamp() + 90]
    clock.advance_to(start)  # the past: no-op
    assert clock.now() == start + dt.timedelta(seconds=90)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_running_clock_and_wait_until() -> None:
    start = dt.datetime(2024, 3, 4, 9, 25, tzinfo=NY)
    clock = VirtualClock(start, speed=600)
    t0 = time.monotonic()
    assert clock.wait_until(start + dt.timedelta(seconds=30), timeout_wall=5)
    assert 0.03 <= time.monotonic() - t0 < 1.0
    clock.set_speed(0)
    target = clock.now() + dt.timedelta(minutes=5)
    assert not clock.wait_until(target, timeout_wall=0.05)
    threading.Timer(0.05, clock.advance, args=(600,)).start()
    assert clock.wait_until(target, timeout_wall=5)  # a jump from another thread wakes the waiter
