"""Clock sources for the runner: the wall clock (paper/live) or the simulator's virtual clock.

The runner never calls time.sleep directly: it asks the clock how long (in wall seconds) to block on its
event queue, so the same loop runs in real time, accelerated, or stepped (virtual time moves only
when the bot waits, which makes simulated sessions fast and repeatable).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

HttpJson = Callable[[str, dict[str, Any] | None], dict[str, Any]]


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


class RemoteSimulatorClock:
    """The virtual clock of a `breakout-bot sim` running in another process (fault suite, demos).

    Reads {now, speed} from GET /sim/state and extrapolates locally, re-reading it at most every quarter
    of a wall second (another process, e.g. a fault injector, may move the clock too). A reading is
    anchored to the moment its request went out, not to its answer: an answer that reached a suspended
    process late (SIGSTOP while the fault suite moves the clock on) is re-read at the next call.
    Loopback only: this is a development tool, never a route to a real broker.
    """

    def __init__(self, base_url: str, http_get: HttpJson, http_post: HttpJson) -> None:
        self._base = base_url.rstrip("/")
        self._get = http_get
        self._post = http_post
        self._anchor_virtual = 0.0
        self._anchor_wall = -1e9
        self._speed = 0.0
        self._sync()

    def _sync(self, state: dict[str, Any] | None = None, sent: float | None = None) -> None:
        if state is None:
            sent = time.monotonic()
            state = self._get(f"{self._base}/sim/state", None)
        self._anchor_virtual = datetime.fromisoformat(str(state["now"]).replace("Z", "+00:00")).timestamp()
        self._anchor_wall = time.monotonic() if sent is None else sent
        self._speed = float(state["speed"])

    @property
    def stepped(self) -> bool:
        return self._speed <= 0

    def now(self) -> datetime:
        if time.monotonic() - self._anchor_wall > 0.25:
            self._sync()
        elapsed = (time.monotonic() - self._anchor_wall) * self._speed
        return datetime.fromtimestamp(self._anchor_virtual + elapsed, timezone.utc)

    def wall_timeout(self, until: datetime) -> float:
        if self.stepped:
            return 0.0
        return max(0.0, (until - self.now()).total_seconds() / self._speed)

    def reached(self, until: datetime) -> None:
        if self.stepped and until > self.now():
            sent = time.monotonic()
            self._sync(self._post(f"{self._base}/sim/clock", {"advance_to": until.isoformat()}), sent)

    def monotonic(self) -> float:
        return self.now().timestamp()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.stepped:
            self.reached(self.now() + timedelta(seconds=seconds))
        else:
            time.sleep(seconds / self._speed)
