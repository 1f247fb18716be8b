"""Clock sources for the runner: the wall clock (paper/live) or the simulator's virtual clock.

The runner never calls time.sleep directly: it asks the clock how long (in wall seconds) to block on its
event queue, so the same loop runs in real time, accelerated, or stepped (virtual time moves only
when the bot waits, which makes simulated sessions fast and repeatable).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, tz-aware (UTC)."""
        ...

    def wall_timeout(self, until: datetime) -> float:
        """Wall seconds to block while waiting for `until` (0 when due)."""
        ...

    def reached(self, until: datetime) -> None:
        """Called when the runner has nothing to do before `until`: a stepped clock jumps there."""
        ...

    def monotonic(self) -> float:
        """Seconds on this clock's time axis, for rate limiting and backoff."""
        ...

    def sleep(self, seconds: float) -> None:
        """Sleep on this clock's time axis (rate limiter and retry backoff)."""
        ...


class WallClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def wall_timeout(self, until: datetime) -> float:
        return max(0.0, (until - self.now()).total_seconds())

    def reached(self, until: datetime) -> None:
        return None

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClockLike(Protocol):
    @property
    def speed(self) -> float: ...

    def now(self) -> datetime: ...

    def advance_to(self, when: datetime) -> object: ...


class SimulatorClock:
    """The simulator's virtual clock, seen from the bot.

    speed > 0: virtual time flows by itself; waits are scaled to wall time.
    speed == 0 (stepped): time is frozen until the bot waits, then it jumps to the wait's end.
    """

    def __init__(self, virtual: VirtualClockLike) -> None:
        self._virtual = virtual

    @property
    def stepped(self) -> bool:
        return self._virtual.speed <= 0

    def now(self) -> datetime:
        return self._virtual.now().astimezone(timezone.utc)

    def wall_timeout(self, until: datetime) -> float:
        if self.stepped:
            return 0.0
        return max(0.0, (until - self.now()).total_seconds() / self._virtual.speed)

    def reached(self, until: datetime) -> None:
        if self.stepped and until > self.now():
            self._virtual.advance_to(until)

    def monotonic(self) -> float:
        return self.now().timestamp()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.stepped:
            self._virtual.advance_to(self._virtual.now() + timedelta(seconds=seconds))
        else:
            time.sleep(seconds / self._virtual.speed)
