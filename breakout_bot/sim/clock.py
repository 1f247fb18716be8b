"""The simulator's virtual clock.

now = anchor_virtual + (monotonic() - anchor_wall) * speed: cheap to read from any thread. Every jump
(advance, set_speed) re-anchors, so virtual time never goes backwards. Listeners are called after a
jump (outside the lock) so the engine can process everything up to the new time before advance()
returns: tests that call advance() then inspect the engine see a settled state.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

UTC = dt.timezone.utc


class VirtualClock:
    """Thread-safe virtual clock. `now()` returns a tz-aware datetime in UTC."""

    def __init__(self, start: dt.datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._cond = threading.Condition(threading.Lock())
        self._anchor_virtual = start.timestamp()
        self._anchor_wall = time.monotonic()
        self._speed = float(speed)
        self._listeners: list[Callable[[float], None]] = []

    # -- reading -------------------------------------------------------------------------------------
    def timestamp(self) -> float:
        """Virtual now as epoch seconds (the engine works in these)."""
        with self._cond:
            return self._now_locked()

    def glance(self) -> float:
        """Virtual now without the lock, for log timestamps: any thread may log at any moment, and a
        lock taken for every log line shifts the threads' timing, and with it a stepped run's course.
        A read racing a jump may see the old anchor with the new wall time: the stamp is off by that
        instant, never the clock."""
        anchor_virtual, anchor_wall, speed = self._anchor_virtual, self._anchor_wall, self._speed
        return anchor_virtual + (time.monotonic() - anchor_wall) * speed if speed else anchor_virtual

    def _now_locked(self) -> float:
        return self._anchor_virtual + (time.monotonic() - self._anchor_wall) * self._speed

    def now(self) -> dt.datetime:
        """Virtual now, tz-aware UTC."""
        return dt.datetime.fromtimestamp(self.timestamp(), UTC)

    @property
    def speed(self) -> float:
        """Virtual seconds per wall second; 0 = frozen (step-driven)."""
        return self._speed

    # -- moving --------------------------------------------------------------------------------------
    def set_speed(self, speed: float) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        with self._cond:
            self._anchor_virtual = self._now_locked()
            self._anchor_wall = time.monotonic()
            self._speed = float(speed)
            self._cond.notify_all()
            now = self._anchor_virtual
        self._notify(now)

    def advance(self, seconds: float) -> dt.datetime:
        """Jump forward by `seconds` of virtual time (negative is refused: time never goes back)."""
        if seconds < 0:
            raise ValueError("the virtual clock never goes backwards")
        with self._cond:
            self._anchor_virtual = self._now_locked() + seconds
            self._anchor_wall = time.monotonic()
            self._cond.notify_all()
            now = self._anchor_virtual
        self._notify(now)
        return dt.datetime.fromtimestamp(now, UTC)

    def advance_to(self, when: dt.datetime) -> dt.datetime:
        """Jump to `when` (tz-aware); a time in the past is a no-op, never a jump back."""
        if when.tzinfo is None:
            raise ValueError("advance_to needs a timezone-aware datetime")
        target = when.timestamp()
        with self._cond:
            now = max(self._now_locked(), target)
            self._anchor_virtual = now
            self._anchor_wall = time.monotonic()
            self._cond.notify_all()
        self._notify(now)
        return dt.datetime.fromtimestamp(now, UTC)

    # -- waiting -------------------------------------------------------------------------------------
    def wall_seconds_until(self, ts: float) -> float | None:
        """Wall seconds until virtual `ts` at the current speed (None when frozen and not there yet)."""
        with self._cond:
            remaining = ts - self._now_locked()
            if remaining <= 0:
                return 0.0
            return None if self._speed == 0 else remaining / self._speed

    def wait_until(self, when: dt.datetime, timeout_wall: float | None = None) -> bool:
        """Block the calling thread until virtual time >= when; False on wall timeout."""
        target = when.timestamp()
        deadline = None if timeout_wall is None else time.monotonic() + timeout_wall
        with self._cond:
            while True:
                remaining = target - self._now_locked()
                if remaining <= 0:
                    return True
                step = 0.5 if self._speed == 0 else remaining / self._speed
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    step = min(step, left)
                # A jump or speed change notifies the condition: we re-evaluate at once.
                self._cond.wait(max(step, 0.0005))

    # -- listeners -----------------------------------------------------------------------------------
    def add_listener(self, callback: Callable[[float], None]) -> None:
        """callback(virtual_epoch_seconds) after every jump or speed change (in the caller's thread)."""
        with self._cond:
            self._listeners.append(callback)

    def _notify(self, now: float) -> None:
        with self._cond:
            listeners = list(self._listeners)
        for cb in listeners:
            cb(now)
