"""Benchmark: what the dashboard costs the bot.

1. The observer on the runner's thread (`RunFeed.__call__`): microseconds per step, with a browser
   connected and with the server's loop stalled (a second of sleep on it), a session's bars in it.
2. A whole simulated day as a user runs it (`breakout-bot run --symbol AAPL`, stepped clock), as
   processes, without and with `--dashboard 127.0.0.1:0`, alternating, median of N.

    .venv/bin/python benchmarks/dashboard.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp

from breakout_bot.core.model import NEW_YORK, Bar, Session
from breakout_bot.core.state import SEARCHING, evolve, initial_state
from breakout_bot.live.dashboard.feed import RunFeed
from breakout_bot.live.dashboard.server import DashboardServer, build_app
from breakout_bot.live.runner import RunnerStatus

CONSOLE = Path(sys.executable).with_name("breakout-bot")


def observer_cost(steps: int = 5_000) -> None:
    server = DashboardServer("127.0.0.1", 0, lambda hub: build_app(hub, mode="run")).start()
    stop = threading.Event()

    def browser() -> None:  # one page reading the stream as fast as it comes
        async def read() -> None:
            async with aiohttp.ClientSession() as s, s.get(server.url + "events") as r:
                async for _ in r.content:
                    if stop.is_set():
                        return

        asyncio.run(read())

    threading.Thread(target=browser, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        feed = RunFeed(server, Path(tmp) / "past_trades.json", simulated=True)
        t0 = datetime(2024, 3, 4, 9, 30, tzinfo=NEW_YORK)
        session = Session(t0.date(), t0, t0.replace(hour=16))
        state = evolve(initial_state("AAPL"), phase=SEARCHING, session=session)
        for label, stall in (("browser connected", False), ("server loop stalled", True)):
            if stall:
                server.call(time.sleep, 1.0)
            timings = []
            for i in range(steps):
                minute = i % 390
                bars = tuple(
                    Bar(t0 + timedelta(minutes=m), 100.0, 100.5, 99.5, 100.2)
                    for m in range(max(0, minute - 9), minute + 1)
                )
                status = RunnerStatus(
                    t0 + timedelta(minutes=minute), True, (evolve(state, bars=bars),), Decimal("100000")
                )
                start = time.perf_counter_ns()
                feed(status)
                timings.append(time.perf_counter_ns() - start)
            timings.sort()
            print(
                f"observer, {label}: median {timings[len(timings) // 2] / 1000:.1f} µs, "
                f"p99 {timings[int(len(timings) * 0.99)] / 1000:.1f} µs, max {timings[-1] / 1000:.1f} µs per step"
            )
    stop.set()
    server.close()


def whole_runs(runs: int) -> None:
    times: dict[str, list[float]] = {"without": [], "with --dashboard": []}
    for _ in range(runs):
        for label, extra in (("without", []), ("with --dashboard", ["--dashboard", "127.0.0.1:0"])):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                subprocess.run(
                    [str(CONSOLE), "run", "--symbol", "AAPL", *extra],
                    cwd=tmp,
                    check=True,
                    capture_output=True,
                )
                times[label].append(time.perf_counter() - start)
    for label, values in times.items():
        print(
            f"breakout-bot run --symbol AAPL (a simulated day, stepped clock) {label}: "
            f"median {statistics.median(values):.2f} s of {', '.join(f'{v:.2f}' for v in values)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    observer_cost()
    whole_runs(args.runs)


if __name__ == "__main__":
    main()
