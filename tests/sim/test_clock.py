"""The simulator's virtual clock: frozen or running, jumps, waits."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.sim import VirtualClock


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
