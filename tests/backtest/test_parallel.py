"""Executors: every one returns the results in task order, whoever ran them and whenever they finished."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from breakout_bot.backtest.parallel import ForkExecutor, SerialExecutor, default_workers


def _square_slowly(data: dict[str, int], args: tuple[int, float]) -> tuple[int, int, int]:
    n, pause = args
    time.sleep(pause)
    return n, n * data["base"], os.getpid()


def _fail_on_three(data: object, n: int) -> int:
    if n == 3:
        raise ValueError("three is not allowed")
    return n


def test_forked_results_come_back_in_task_order() -> None:
    tasks = [("d", (n, 0.05 if n % 3 == 0 else 0.0)) for n in range(12)]  # uneven: finish out of order
    data = {"d": {"base": 10}}
    seen: list[tuple[int, int]] = []
    forked = ForkExecutor(2).map(_square_slowly, tasks, data, lambda done, total: seen.append((done, total)))
    serial = SerialExecutor().map(_square_slowly, tasks, data)
    assert [r[:2] for r in forked] == [r[:2] for r in serial] == [(n, 10 * n) for n in range(12)]
    assert len({r[2] for r in forked}) == 2  # two processes took tasks
    assert seen[-1] == (12, 12)


def test_a_failing_task_in_a_child_raises_in_the_parent() -> None:
    with pytest.raises((RuntimeError, ValueError), match="three is not allowed"):
        ForkExecutor(2).map(_fail_on_three, [("d", n) for n in range(8)], {"d": None})


def test_one_worker_or_one_task_runs_here() -> None:
    assert ForkExecutor(1).map(_fail_on_three, [("d", 1), ("d", 2)], {"d": None}) == [1, 2]
    assert [r[2] for r in ForkExecutor(4).map(_square_slowly, [("d", (1, 0.0))], {"d": {"base": 1}})] == [
        os.getpid()
    ]
    assert default_workers(10, 100) == 1


def test_buffered_output_is_not_written_twice() -> None:
    """A child leaves with os._exit: the parent's unflushed stdout is not flushed a second time."""
    code = (
        "import sys\n"
        "from breakout_bot.backtest.parallel import ForkExecutor\n"
        "print('before', end='')\n"
        "print(ForkExecutor(2).map(lambda d, a: a, [(0, 1), (0, 2), (0, 3)], {0: None}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout == "before[1, 2, 3]\n"
