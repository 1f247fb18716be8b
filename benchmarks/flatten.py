"""Benchmark: the flatten, "decision -> flat", on loopback (issue 15; target p99 < 3 s).

The real bot (Runner, AlpacaBroker, Journal in a temp dir) holds one position at 15:54:58 in an
in-process SimServer whose clock runs at wall speed (speed 1): the flatten falls due at close - 5 min,
and the benchmark times, in wall seconds (time.perf_counter), from the step in which the machine decides
to flatten (`flattened` turns true) to the step in which it hears the exit's fill (position 0). Both
stamps come from a runner observer, so everything between is in the figure: the REST round trips, the
cancel latency, the retries, the fill reaching the bot over the trade_updates websocket.

Three ways the position is held:

* `bracket`: the bot's own bracket. The flatten replaces the take-profit by a marketable limit; the
  stop keeps working until the exit fills (no unprotected moment).
* `stop-only`: a plain stop protects it (no take-profit). The flatten cancels the stop, waits for the
  cancel (300 virtual ms, Alpaca-like), retries the close within a second on "insufficient qty" or at
  once on the `canceled` event, and closes.
* `stop-only-slow`: the same with 2-second cancels (pending_cancel).

The simulator prints a trade every 0.25 s between each bar's anchor trades (`trade_interval_s`, the
continuous price its matcher already assumes): on Alpaca a marketable order fills within milliseconds,
and with the default tape (a trade every 9-15 s) the figure would measure the tape's gaps, not the bot.
Before issue 15 the close waited 30 s (up to 90 s) after a 403 "insufficient qty" before it was sent
again, and a real account's held stop leg made the first reconcile flatten every trade.

    .venv/bin/python benchmarks/flatten.py --samples 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from breakout_bot.cli.commands.run import simulated_session
from breakout_bot.core.params import Params
from breakout_bot.journal import Journal
from breakout_bot.live.runner import Runner, RunnerOptions, RunnerStatus
from breakout_bot.sim.orders import parse_order_request

SYMBOL = "AAPL"
DAY = dt.date(2024, 3, 4)
MODES = ("bracket", "stop-only", "stop-only-slow")


def _hold(server: Any, mode: str) -> None:
    """Open the position (and what protects it) before the bot starts; wait for its fill."""
    exchange = server.exchange
    last = exchange.price(SYMBOL)
    assert last is not None
    buy: dict[str, Any] = {
        "symbol": SYMBOL,
        "qty": "100",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
    }
    if mode == "bracket":
        buy |= {
            "order_class": "bracket",
            "client_order_id": f"bb-{SYMBOL}-{DAY:%Y%m%d}-1",
            "take_profit": {"limit_price": f"{last + 5:.2f}"},
            "stop_loss": {"stop_price": f"{last - 5:.2f}"},
        }
    exchange.submit(parse_order_request(buy))
    deadline = time.monotonic() + 5
    while SYMBOL not in exchange.positions and time.monotonic() < deadline:
        time.sleep(0.01)
    if mode != "bracket":
        stop = {
            "symbol": SYMBOL,
            "qty": "100",
            "side": "sell",
            "type": "stop",
            "stop_price": f"{last - 5:.2f}",
        }
        exchange.submit(parse_order_request({**stop, "time_in_force": "day"}))
        if mode == "stop-only-slow":
            server.control.set_cancel_latency(2000)


def one(mode: str, seed: int) -> tuple[float, float]:
    """(decision -> flat, stop ended -> flat) in wall seconds, for one flatten."""
    world = {"start_time": dt.time(15, 54, 57), "trade_interval_s": 0.25}
    with (
        tempfile.TemporaryDirectory() as tmp,
        simulated_session([SYMBOL], start=DAY, speed=1.0, seed=seed, feed="sip", world=world) as (
            broker,
            clock,
            server,
        ),
    ):
        _hold(server, mode)
        journal = Journal(Path(tmp) / "past_trades.json")
        journal.load()
        runner = Runner(broker, broker.market_data, clock, journal, [SYMBOL], Params(), RunnerOptions(days=1))
        stamps: dict[str, float] = {}

        def watch(status: RunnerStatus) -> None:
            state = status.states[0]
            now = time.perf_counter()
            if state.flattened and "decided" not in stamps:
                stamps["decided"] = now
            if "decided" in stamps and state.position_qty == 0 and "flat" not in stamps:
                stamps["flat"] = now

        runner.observe(watch)
        runner.run()
        assert "flat" in stamps, f"{mode}: not flat"
        stop = next(o for o in server.exchange.orders.values() if o.type == "stop")
        fill = server.exchange.executions[-1]
        unprotected = max(0.0, fill.time - (stop.canceled_at or fill.time))  # virtual = wall seconds here
        return stamps["flat"] - stamps["decided"], unprotected


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30, help="flattens per mode (default 30)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the bot's retries log warnings by design
    print(f"flatten decision -> flat, wall seconds, {args.samples} samples per mode (target p99 < 3 s)")
    print(f"{'mode':<16}{'p50':>8}{'p99':>8}{'max':>8}{'unprotected max':>17}")
    worst = 0.0
    for mode in args.modes:
        times, gaps = [], []
        for i in range(args.samples):
            took, gap = one(mode, seed=100 + i)
            times.append(took)
            gaps.append(gap)
        worst = max(worst, pct(times, 99))
        print(
            f"{mode:<16}{statistics.median(times):>8.3f}{pct(times, 99):>8.3f}{max(times):>8.3f}"
            f"{max(gaps):>16.2f}s"
        )
    print(f"worst p99 {worst:.3f} s: {'✔' if worst < 3 else '✘'} target p99 < 3 s")
    return 0 if worst < 3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
