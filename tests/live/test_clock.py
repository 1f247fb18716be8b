"""The remote simulator clock (`run --sim-clock`): a stepped clock another process may move too."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from breakout_bot.live.clock import RemoteSimulatorClock

T0 = datetime(2024, 3, 4, 15, 34, 54, tzinfo=timezone.utc)


class _Sim:
    def __init__(self) -> None:
        self.now = T0
        self.gets = 0

    def state(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "speed": 0}

    def get(self, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        self.gets += 1
        return self.state()

    def post(self, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        assert body is not None
        self.now = max(self.now, datetime.fromisoformat(body["advance_to"]))
        answer = self.state()
        # The process is suspended before it reads the answer, and meanwhile the clock moves on.
        time.sleep(0.3)
        self.now += timedelta(minutes=11)
        return answer


def test_an_answer_read_late_is_not_trusted_for_long() -> None:
    sim = _Sim()
    clock = RemoteSimulatorClock("http://127.0.0.1:1", sim.get, sim.post)
    assert clock.now() == T0 and sim.gets == 1
    clock.reached(T0 + timedelta(seconds=6))
    # Anchored when the request went out (0.3 s ago), so the next reading asks the simulator again.
    assert clock.now() == T0 + timedelta(seconds=6, minutes=11)
    assert sim.gets == 2
    assert clock.now() == T0 + timedelta(seconds=6, minutes=11) and sim.gets == 2  # then cached again
