"""The client-side request throttle: a thread-safe sliding window shared by every broker call of a
process (the simulator's server-side quota is sim/quota.py).

Alpaca allows 200 requests per minute per API key (NOTES.md §4). We stay under it with a margin
(190 by default) so that a clock skew or a request we do not see (another tool on the same key)
does not tip us over. The window is measured on an injectable clock, so that in simulator mode it
runs on the simulator's virtual time and in tests on a fake clock.

Invariant (property-tested): for any schedule of callers, the acquisition times never contain more
than ``max_requests`` timestamps inside any half-open interval of ``window`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

DEFAULT_MAX_REQUESTS = 190
DEFAULT_WINDOW = 60.0
MIN_WAIT = 1e-6


class RequestThrottle:
    """At most ``max_requests`` acquisitions in any ``window`` seconds; ``acquire`` blocks until a slot frees."""

    def __init__(
        self,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        window: float = DEFAULT_WINDOW,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_acquire: Callable[[float], None] | None = None,
    ) -> None:
        """``on_acquire(t)`` is called (under the lock) with each acquisition instant: metrics, tests."""
        if max_requests < 1:
            raise ValueError("max_requests must be >= 1")
        if window <= 0:
            raise ValueError("window must be > 0")
        self.max_requests = max_requests
        self.window = float(window)
        self._now = now
        self._sleep = sleep
        self._on_acquire = on_acquire
        self._lock = threading.Lock()
        self._stamps: deque[float] = deque()
        self._blocked_until = float("-inf")
        self.total = 0  # acquisitions so far (diagnostics)
        self.waited = 0.0  # seconds spent sleeping in acquire (diagnostics)

    def _purge(self, now: float) -> None:
        # A request at t counts for every window containing t: it leaves the window once
        # now - t >= window (the same expression everywhere, so float rounding cannot disagree).
        stamps = self._stamps
        while stamps and now - stamps[0] >= self.window:
            stamps.popleft()

    def _wait_needed(self, now: float) -> float:
        """Seconds to wait before a slot is free at `now` (0: take it). Caller holds the lock."""
        self._purge(now)
        if now < self._blocked_until:
            return self._blocked_until - now
        if len(self._stamps) < self.max_requests:
            return 0.0
        # Never 0 here: rounding could make the computed wait vanish while the oldest stamp is
        # still (by a hair) inside the window; a tiny positive wait always moves the clock on.
        return max(self.window - (now - self._stamps[0]), MIN_WAIT)

    def _take(self, now: float) -> None:
        self._stamps.append(now)
        self.total += 1
        if self._on_acquire is not None:
            self._on_acquire(now)

    def try_acquire(self) -> bool:
        """Take a slot if one is free now; never blocks."""
        with self._lock:
            now = self._now()
            if self._wait_needed(now) > 0:
                return False
            self._take(now)
            return True

    def acquire(self) -> None:
        """Block (on the injected sleep) until a slot is free, then take it."""
        while True:
            with self._lock:
                now = self._now()
                wait = self._wait_needed(now)
                if wait <= 0:
                    self._take(now)
                    return
            # Sleep outside the lock so other threads can read the state; re-check afterwards (another
            # thread may have taken the slot that freed up).
            self.waited += wait
            self._sleep(wait)

    def pause_until(self, when: float) -> None:
        """Hold every caller until `when` (this limiter's clock), e.g. after a 429 with a reset time."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, when)

    def in_window(self) -> int:
        """Acquisitions inside the current window."""
        with self._lock:
            self._purge(self._now())
            return len(self._stamps)

    def __repr__(self) -> str:
        return f"RequestThrottle(max_requests={self.max_requests}, window={self.window})"
