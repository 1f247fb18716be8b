"""Stop a runner at a chosen moment, without cleanup, as a crash (kill -9) would: its orders and
position stay at the broker, and the next runner must find them."""

from __future__ import annotations

from collections.abc import Callable

from ..live.runner import Runner, RunnerStatus


def stop_when(runner: Runner, condition: Callable[[Runner], bool]) -> Runner:
    """Make `runner` return from run() at its next turn after a step leaves `condition(runner)` true."""

    def check(_: RunnerStatus) -> None:
        if condition(runner):
            runner.stop()

    runner.observe(check)
    return runner
