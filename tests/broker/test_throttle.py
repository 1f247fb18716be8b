"""RequestThrottle: never more than N acquisitions in any window, over random schedules (virtual time)."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakout_bot.broker.throttle import RequestThrottle


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s > 0, "the limiter must never ask for a zero/negative sleep"
        self.slept.append(s)
        self.t += s


def max_in_window(stamps: list[float], window: float) -> int:
    """Largest number of stamps inside any half-open interval [a, a + window)."""
    stamps = sorted(stamps)
    best = 0
    j = 0
    for i, t in enumerate(stamps):
        while t - stamps[j] >= window:
            j += 1
        best = max(best, i - j + 1)
    return best


def run_schedule(limiter: RequestThrottle, clock: FakeClock, arrivals: list[float]) -> list[float]:
    """One caller per arrival time, served in order; returns the acquisition times."""
    out = []
    for a in sorted(arrivals):
        clock.t = max(clock.t, a)
        limiter.acquire()
        out.append(clock.t)
    return out


@given(
    n=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), min_size=1, max_size=300),
)
def test_never_more_than_n_in_any_window(n: int, gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = RequestThrottle(n, 60.0, now=clock.now, sleep=clock.sleep)
    arrivals, t = [], clock.t
    for g in gaps:
        t += g
        arrivals.append(t)
    stamps = run_schedule(limiter, clock, arrivals)
    assert max_in_window(stamps, 60.0) <= n
    # and it never waits longer than needed: a request starts when it arrives (or when the one
    # before it got its slot) and waits at most until the n-th previous one leaves the window.
    ordered = sorted(arrivals)
    for i, (a, s) in enumerate(zip(ordered, stamps, strict=True)):
        t0 = max(a, stamps[i - 1]) if i else a
        if i < n:
            assert s == t0
        else:
            assert s <= max(t0, stamps[i - n] + 60.0) + 1e-5


def test_bursts_of_190_default() -> None:
    clock = FakeClock()
    limiter = RequestThrottle(now=clock.now, sleep=clock.sleep)
    stamps = run_schedule(limiter, clock, [clock.t] * 1000)
    assert max_in_window(stamps, 60.0) == 190
    # 1000 requests need at least 5 full windows
    assert stamps[-1] - stamps[0] >= 5 * 60.0
    assert limiter.total == 1000


def test_immediate_when_free_and_try_acquire() -> None:
    clock = FakeClock()
    limiter = RequestThrottle(3, 10.0, now=clock.now, sleep=clock.sleep)
    assert limiter.try_acquire() and limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()
    assert clock.slept == []
    limiter.acquire()  # waits exactly until the first stamp leaves the window
    assert sum(clock.slept) == pytest.approx(10.0)
    assert limiter.in_window() == 1  # the three t=1000 stamps left the window at t=1010


def test_pause_until_holds_everyone() -> None:
    clock = FakeClock()
    limiter = RequestThrottle(100, 60.0, now=clock.now, sleep=clock.sleep)
    limiter.pause_until(clock.t + 5)
    limiter.acquire()
    assert clock.t == pytest.approx(1005.0)


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        RequestThrottle(0)
    with pytest.raises(ValueError):
        RequestThrottle(5, 0)


def test_thread_safe_under_contention() -> None:
    """8 threads hammering a 5-per-0.4 s limiter on the real clock: no window ever holds more than 5."""
    lock = threading.Lock()
    stamps: list[float] = []

    def now() -> float:
        return time.monotonic()

    def record(t: float) -> None:  # the limiter's own acquisition instants (taken under its lock)
        with lock:
            stamps.append(t)

    limiter = RequestThrottle(5, 0.4, now=now, sleep=time.sleep, on_acquire=record)

    def worker() -> None:
        for _ in range(5):
            limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert len(stamps) == 40
    assert max_in_window(stamps, 0.4) <= 5
