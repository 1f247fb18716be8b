"""Benchmark: decision latency, "bar close -> entry order received by the simulator", in `--bars stream`.

The real bot (Runner with RunnerOptions(bars_stream=True), AlpacaBroker, Journal in a temp dir) trades
an in-process SimServer on loopback (the same wiring as `breakout-bot run` without keys:
`cli.commands.run.simulated_session`), once per SDK (`--sdk`: alpaca-trade-api and alpaca-py in turn,
in one process, each with a fresh simulator; a summary table compares them), over a CSV of synthetic one-minute bars built to break out often:
quiet bars, a breakout close (alternately up and down), a bar that hits the take-profit at once,
repeat (36 entries per 390-minute session). `--days` is computed from `--entries` (28 for 1,000).

What is timed (time.perf_counter, one process, so all stamps are on one axis):

* bar close  = the moment the simulator pushes that bar's `b` message on the market-data websocket
  (`sim.websockets.Conn.send_data`, just before the frame is written). On the stepped clock (speed 0)
  virtual time jumps past the bar's close in one step, so the only well-defined wall-time instant of
  the close is this push: the bar closes at that virtual instant.
* order received = the simulator's HTTP middleware receives `POST /v2/orders` for the entry
  (before auth, rate limit and matching). The entry is tied to its bar by client_order_id: a wrapper
  around `machine.step` records, for each SubmitBracket decided on a BarClosed, the bar and whether
  that bar reached the runner through the websocket or through the runner's REST minute poll.

Everything is monkeypatched in this process only (restored afterwards); no product file changes.
`--speed 0` (default) is the stepped clock of `breakout-bot run` on the simulator. There the runner
jumps virtual time to its minute poll (close + 2 s) and polls REST bars at once, so the entry is
decided on the polled copy of the bar while the pushed copy is still in flight: the figure is then
"bar pushed -> order received" with the decision made by the poll (the output says which path each
decision took). `--speed X` lets virtual time flow (X virtual s per wall s): the runner waits on its
queue and most decisions come from the websocket bar, as in paper/live. Outside the sessions the
benchmark switches the clock to stepped so that nights and weekends take no wall time. Keep X <= 1000:
the entry must reach the simulator within 10 virtual seconds of the close to fill at the next open.

    .venv/bin/python benchmarks/latency.py                 # stepped clock, >= 1,000 entries, each SDK
    .venv/bin/python benchmarks/latency.py --sdk alpaca-py # one SDK
    .venv/bin/python benchmarks/latency.py --speed 1000 --days 3   # flowing virtual time, ~75 s per SDK

Target: p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import json
import logging
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from breakout_bot.cli.commands.run import simulated_session
from breakout_bot.config.settings import SDKS
from breakout_bot.core import machine
from breakout_bot.core.events import Action, BarClosed, Event, SubmitBracket
from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.core.model import Bar, Session
from breakout_bot.core.params import Params
from breakout_bot.core.state import State
from breakout_bot.core.strategy import bracket_prices, compute_box
from breakout_bot.journal import Journal
from breakout_bot.live.feed import BarFeed
from breakout_bot.live.runner import Runner, RunnerOptions
from breakout_bot.market.calendar import xnys
from breakout_bot.sim import app as sim_app
from breakout_bot.sim import websockets as sim_websockets

SYMBOL = "LATX"
START = dt.date(2024, 3, 4)
LOOKBACK = 10  # Params default
NO_ENTRY_MINUTES = 20  # Params default


# --------------------------------------------------------------------------------------- data


def _cents(x: int) -> float:
    return x / 100


def session_bars(minutes: int) -> tuple[list[tuple[float, float, float, float]], int]:
    """One session's bars (o, h, l, c) and its number of entries.

    After an exit the machine freezes the next box over the 10 bars ending with the exit bar (the bar
    that contained the exit belongs in the box, whenever the runner learns of the fill). Each cycle:
    8 quiet bars inside that box at its breakout edge, a breakout close 2 cents beyond it (long and
    short in turn), then the exit bar: the entry fills at its open, the take-profit trades inside it.
    Prices come from the strategy's own box and bracket arithmetic, so every breakout is a valid
    entry; the range grows ~3 cents a cycle and starts afresh each session."""
    bars: list[tuple[int, int, int, int]] = []  # cents
    entries = 0
    long = True
    quiet = (10_000, 10_005, 9_995, 10_000)
    bars += [quiet] * LOOKBACK
    window = bars[-LOOKBACK:]
    t0 = dt.datetime(2000, 1, 3, 9, 30, tzinfo=NY)
    while True:
        box = compute_box([Bar(t0, *(_cents(x) for x in b)) for b in window], Params().min_range_pct)
        hi, lo = round(box.high * 100), round(box.low * 100)
        if len(bars) > LOOKBACK:  # quiet bars after the exit (the first box is the open's 10 bars)
            edge = (hi - 1, hi, hi - 2, hi - 1) if long else (lo + 1, lo + 2, lo, lo + 1)
            bars += [edge] * (LOOKBACK - 2)
        i = len(bars)  # the breakout bar's index
        if minutes - (i + 1) <= NO_ENTRY_MINUTES or i + 2 > minutes:
            break
        bracket = bracket_prices(box, "buy" if long else "sell")
        tp = round(float(bracket.take_profit_price) * 100)
        if long:
            bars.append((hi - 1, hi + 3, hi - 2, hi + 2))  # breakout close > box high
            bars.append((hi + 2, tp + 1, hi + 1, tp))  # close >= open: low first, then the take-profit
        else:
            bars.append((lo + 1, lo + 2, lo - 3, lo - 2))
            bars.append((lo - 2, lo - 1, tp - 1, tp))  # close < open: high first, then the take-profit
        entries += 1
        long = not long
        window = bars[-LOOKBACK:]
    quiet_fill = bars[-1][3]
    bars += [(quiet_fill, quiet_fill, quiet_fill, quiet_fill)] * (minutes - len(bars))
    return [tuple(_cents(x) for x in b) for b in bars[:minutes]], entries  # type: ignore[misc]


def sessions_for(entries: int, start: dt.date) -> int:
    cal = xnys()
    total, days = 0, 0
    day = start
    while total < entries:
        s = cal.session_on_or_after(day)
        total += session_bars(s.minutes)[1]
        days += 1
        day = s.date + dt.timedelta(days=1)
    return days


def write_bars(path: Path, start: dt.date, days: int) -> int:
    """The CSV; returns the number of entries it is built for."""
    cal = xnys()
    total = 0
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        day = start
        for _ in range(days):
            s = cal.session_on_or_after(day)
            day = s.date + dt.timedelta(days=1)
            rows, n = session_bars(s.minutes)
            total += n
            for i, row in enumerate(rows):
                t = dt.datetime.fromtimestamp(s.open + 60 * i, NY).replace(tzinfo=None)
                w.writerow([t.isoformat(sep=" "), *(f"{x:.2f}" for x in row), 1000])
    return total


# --------------------------------------------------------------------------------------- probes


class Probes:
    """perf_counter stamps collected by the patched functions (several threads write; dict ops are atomic)."""

    def __init__(self) -> None:
        self.push: dict[tuple[str, int], float] = {}  # (symbol, bar start epoch s) -> first push
        self.received: dict[str, float] = {}  # client_order_id -> first POST /v2/orders
        self.decisions: dict[str, tuple[str, int, str, float]] = {}  # cid -> (symbol, bar t, path, when)
        self.origin: dict[tuple[str, int], str] = {}  # (symbol, bar start) -> how the feed got it


@contextmanager
def full_collections(into: list[float]) -> Iterator[None]:
    """Time the garbage collector's full (generation 2) passes: each stops every thread, the runner's too."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            into.append((time.perf_counter() - started.pop()) * 1000)

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


@contextmanager
def instrumented(p: Probes) -> Iterator[None]:
    orig_send = sim_websockets.Conn.send_data
    orig_mw = sim_app.SimServer.guard
    orig_step = machine.step
    orig_streamed = BarFeed.streamed
    orig_poll_all = BarFeed.poll_all

    async def send_data(self: Any, msgs: list[dict[str, object]]) -> None:
        now = time.perf_counter()
        for m in msgs:
            if m.get("T") == "b":
                p.push.setdefault((str(m["S"]), int(float(str(m["t"])))), now)
        await orig_send(self, msgs)

    @web.middleware
    async def middleware(self: Any, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/v2/orders":
            now = time.perf_counter()
            try:
                body = await request.json()
                cid = str(body.get("client_order_id") or "")
            except ValueError:
                cid = ""
            if cid:
                p.received.setdefault(cid, now)
        return await orig_mw(self, request, handler)

    def step(state: State, event: Event) -> tuple[State, list[Action]]:
        new, actions = orig_step(state, event)
        if isinstance(event, BarClosed):
            for a in actions:
                if isinstance(a, SubmitBracket):
                    t = int(event.bar.t.timestamp())
                    path = p.origin.get((a.symbol, t), "?")
                    p.decisions[a.client_order_id] = (a.symbol, t, path, time.perf_counter())
        return new, actions

    def streamed(self: BarFeed, symbol: str, bar: Bar, session: Session) -> list[Bar]:
        bars = orig_streamed(self, symbol, bar, session)
        if bars:
            p.origin[(symbol, int(bars[-1].t.timestamp()))] = "stream"
        return bars

    def poll_all(self: BarFeed, sessions: Any, now: dt.datetime) -> dict[str, list[Bar]]:
        polled = orig_poll_all(self, sessions, now)
        for symbol, bars in polled.items():
            for b in bars:
                p.origin[(symbol, int(b.t.timestamp()))] = "poll"
        return polled

    sim_websockets.Conn.send_data = send_data  # type: ignore[method-assign]
    sim_app.SimServer.guard = middleware  # type: ignore[method-assign]
    machine.step = step  # type: ignore[assignment]
    BarFeed.streamed = streamed  # type: ignore[method-assign]
    BarFeed.poll_all = poll_all  # type: ignore[method-assign]
    try:
        yield
    finally:
        sim_websockets.Conn.send_data = orig_send  # type: ignore[method-assign]
        sim_app.SimServer.guard = orig_mw  # type: ignore[method-assign]
        machine.step = orig_step
        BarFeed.streamed = orig_streamed  # type: ignore[method-assign]
        BarFeed.poll_all = orig_poll_all  # type: ignore[method-assign]


def session_speed_keeper(server: Any, speed: float, stop: threading.Event) -> None:
    """--speed X: flowing time inside sessions (09:29 to close + 2 min), stepped outside them."""
    cal = xnys()
    while not stop.wait(0.02):
        now = server.clock.timestamp()
        s = cal.session(dt.datetime.fromtimestamp(now, NY).date())
        inside = s is not None and s.open - 60 <= now < s.close + 120
        want = speed if inside else 0.0
        if server.clock.speed != want:
            server.clock.set_speed(want)


# --------------------------------------------------------------------------------------- main


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Measured:
    """One run of the bot on one SDK."""

    sdk: str
    code: int
    wall: float
    planned: int
    decided: int
    received: int
    fills: int
    unmatched: int
    by_path: dict[str, list[float]]  # ms, bar pushed -> order received, by how the bar reached the runner
    decide: list[float]  # ms, bar pushed -> machine.step returned
    timeline: list[tuple[float, float]]  # (decided, latency ms) for the drift line
    full_collections: list[float]  # ms each, the collector's generation-2 passes during the run

    @property
    def measured(self) -> list[float]:
        return [x for xs in self.by_path.values() for x in xs]


def prefill(path: Path, records: int) -> None:
    """A journal that already holds `records` fills (years of trading), as the bot finds it at start."""
    rows = [
        {
            "id": f"old-{i:08d}",
            "order_id": f"old-ord-{i // 2:08d}",
            "client_order_id": f"bb-OLD-20200102-{i // 2}",
            "symbol": "OLD",
            "side": "buy" if i % 2 == 0 else "sell",
            "qty": "100",
            "price": "101.25",
            "timestamp": "2020-01-02T15:00:00Z",
            "leg": "entry" if i % 2 == 0 else "take_profit",
            "source": "rest",
            "cum_qty": "100",
            "mode": "paper",
            "account": "PA0BENCH",
            "run": "20200102T143000Z-000000",
        }
        for i in range(records)
    ]
    path.write_text(json.dumps(rows, indent=2) + "\n")


def measure(sdk: str, start: dt.date, days: int, speed: float, ledger_records: int = 0) -> Measured:
    """The bot on `sdk` trades `days` sessions of the breakout-rich bars; every decision timed."""
    probes = Probes()
    collections: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bb-latency-") as tmp:
        data = Path(tmp) / "bars.csv"
        planned = write_bars(data, start, days)
        journal = Journal(Path(tmp) / "past_trades.json")
        if ledger_records:
            prefill(journal.path, ledger_records)
        journal.load()
        journal.ensure_writable()  # as the bot starts (the sqlite ledger: its migration)
        t0 = time.perf_counter()
        with (
            instrumented(probes),
            full_collections(collections),
            simulated_session([SYMBOL], start=start, speed=speed, data=data, sdk=sdk, feed="sip") as (
                broker,
                clock,
                server,
            ),
        ):
            stop = threading.Event()
            keeper = None
            if speed > 0:
                keeper = threading.Thread(
                    target=session_speed_keeper, args=(server, speed, stop), daemon=True
                )
                keeper.start()
            try:
                runner = Runner(
                    broker,
                    broker.market_data,
                    clock,
                    journal,
                    [SYMBOL],
                    Params(),
                    RunnerOptions(days=days, bars_stream=True),
                )
                code = runner.run()
            finally:
                stop.set()
                if keeper is not None:
                    keeper.join()
            fills = len(server.exchange.executions)
        journal.close()
        wall = time.perf_counter() - t0

    by_path: dict[str, list[float]] = {}
    decide: list[float] = []
    timeline: list[tuple[float, float]] = []
    unmatched = 0
    for cid, (symbol, bar_t, path, decided) in probes.decisions.items():
        pushed = probes.push.get((symbol, bar_t))
        received = probes.received.get(cid)
        if pushed is None or received is None:
            unmatched += 1
            continue
        by_path.setdefault(path, []).append((received - pushed) * 1000)
        decide.append((decided - pushed) * 1000)
        timeline.append((decided, (received - pushed) * 1000))
    return Measured(
        sdk,
        code,
        wall,
        planned,
        len(probes.decisions),
        len(probes.received),
        fills,
        unmatched,
        by_path,
        decide,
        timeline,
        collections,
    )


def report(m: Measured, entries: int) -> bool:
    """Print one run's figures; False when nothing was measured."""
    print(
        f"[{m.sdk}] entries planned by the data {m.planned}, decided {m.decided}, POSTs received {m.received}, "
        f"sim executions {m.fills}, unmatched {m.unmatched}, runner exit code {m.code}, wall {m.wall:.1f} s"
    )
    for path, xs in sorted(m.by_path.items()):
        print(f"  bar reached the runner via {path}: {len(xs)} decisions")
    measured = m.measured
    if not measured:
        print("  no decisions measured")
        return False
    print(f"  decisions measured: {len(measured)}")
    print(
        f"  p50 {pct(measured, 50):.3f} ms  p90 {pct(measured, 90):.3f} ms  p99 {pct(measured, 99):.3f} ms  "
        f"max {max(measured):.3f} ms  (mean {statistics.fmean(measured):.3f} ms)"
    )
    print(
        f"  of which push -> decision (machine.step returned): p50 {pct(m.decide, 50):.3f} ms  "
        f"p99 {pct(m.decide, 99):.3f} ms  max {max(m.decide):.3f} ms"
    )
    for path, xs in sorted(m.by_path.items()):
        if len(m.by_path) > 1:
            print(f"  via {path}: p50 {pct(xs, 50):.3f}  p99 {pct(xs, 99):.3f}  max {max(xs):.3f} ms")
    ordered = [v for _, v in sorted(m.timeline)]
    tenth = max(1, len(ordered) // 10)
    print(
        f"  drift: p50 of the first {tenth} decisions {pct(ordered[:tenth], 50):.3f} ms, "
        f"of the last {tenth} {pct(ordered[-tenth:], 50):.3f} ms"
    )
    gcs = m.full_collections
    print(
        f"  full garbage collections during the run: {len(gcs)}"
        + (f", longest {max(gcs):.1f} ms" if gcs else "")
        + " (the runner freezes its start heap after the first reconcile)"
    )
    p99 = pct(measured, 99)
    print(f"  target p99 < 10 ms: {'met' if p99 < 10 else 'NOT met'} ({p99:.3f} ms)")
    if len(measured) < entries:
        print(f"  warning: fewer than --entries {entries} decisions measured")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=1000, help="entries (decisions) to measure (default 1000)")
    ap.add_argument("--days", type=int, help="sessions to trade (default: computed from --entries)")
    ap.add_argument("--start", default=START.isoformat(), help=f"first session (default {START})")
    ap.add_argument("--speed", type=float, default=0.0, help="virtual s per wall s in sessions (0 = stepped)")
    ap.add_argument(
        "--sdk",
        action="append",
        choices=SDKS,
        help="the SDK under the bot; repeat for several, run in turn in this process (default: each SDK)",
    )
    ap.add_argument(
        "--ledger-records",
        type=int,
        default=0,
        metavar="N",
        help="start with a journal already holding N fills (issue 21: 100000)",
    )
    args = ap.parse_args()
    start = dt.date.fromisoformat(args.start)
    days = args.days or sessions_for(args.entries, start)
    sdks = args.sdk or list(SDKS)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    print(
        f"latency: bar pushed on the data websocket -> entry POST /v2/orders received by the simulator "
        f"(speed {args.speed:g}{' = stepped clock' if args.speed == 0 else ''}, {days} sessions "
        f"from {start}, SDKs in turn: {', '.join(sdks)})"
    )
    runs = [measure(sdk, start, days, args.speed, args.ledger_records) for sdk in sdks]
    ok = [report(m, args.entries) for m in runs]
    if len(runs) > 1 and all(ok):
        print(
            f"{'sdk':<18}{'decisions':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'wall s':>8}"
        )
        for m in runs:
            xs = m.measured
            print(
                f"{m.sdk:<18}{len(xs):>10}{pct(xs, 50):>9.3f}{pct(xs, 90):>9.3f}{pct(xs, 99):>9.3f}"
                f"{max(xs):>9.3f}{m.wall:>8.1f}"
            )
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
