"""Many symbols on the event path: one machine and one simulated broker per symbol, as the live runner
keeps them, and one account.

Each symbol follows exactly the rules of a live multi-symbol run: its own machine (box, trades, daily
limits) and its own orders; what they share is the account. Without `Params.risk_pct` nothing passes
between them, so a symbol's trades are those of its single-symbol backtest, and the symbols (cut into
calendar years: sessions are independent too) run as independent tasks on any executor
(backtest/parallel.py: this process, forked processes, a Dask cluster) with the same result.

With `risk_pct`, every symbol sizes its trades on the account's equity at the session open, which the
other symbols' P&L moves: the replays then advance together (`lockstep`), merged bar by bar on the
moments their generators yield (`engine.Replay.steps`): at each bar, every symbol's fills at its open,
then, in the order of the symbols given, their decisions at its close. That merge is where a
portfolio-level gate (a maximum of positions, buying power across symbols, the order in which
simultaneous breakouts are served) sits between the symbols' decisions: it would see every earlier
step of every symbol, and the symbols' decisions on one bar in a fixed order.

The portfolio's rules (core/portfolio.py: `max_positions`, the daily loss across the symbols) sit
there: with either set the replays advance together too, and each entry passes `portfolio_refusal` on
every symbol's machine as it stands at that step (the live bot's risk gate asks the same function). The
live account's buying power is the broker's figure; the backtest has no buying power of its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..core.events import SubmitBracket
from ..core.params import Params
from ..core.portfolio import portfolio_refusal
from .engine import Equity, Replay, ReplayInput, ReplayPart, gc_paused, replay_run
from .inputs import SessionCalendar
from .metrics import Metrics, compute_metrics, result_metrics
from .parallel import Executor, Progress, SerialExecutor
from .results import BacktestResult, daily_frame
from .trades import Trade


@dataclass
class PortfolioResult:
    """Per symbol, its BacktestResult (in the order given); for the portfolio, every trade (by entry
    time, then symbol order), the daily P&L, and the figures of the account."""

    symbols: list[str]
    results: dict[str, BacktestResult]
    params: Params
    initial_equity: float
    trades: list[Trade]
    daily: pd.DataFrame  # date, pnl (net, every symbol), equity
    session_minutes: int  # regular-session minutes of the days any symbol had bars
    exposure: float  # share of those minutes with at least one position open
    lockstep: bool  # the symbols advanced together (risk_pct: one account sizes them all)

    def metrics(self) -> Metrics:
        """The account's totals: every symbol's trades, the equity after each exit (in time order) for
        the drawdown, the daily P&L for Sharpe; exposure = time with any position open."""
        by_exit = sorted(self.trades, key=lambda t: (t.exit_time, self.symbols.index(t.symbol)))
        m = compute_metrics(
            by_exit,
            self.daily["pnl"].tolist(),
            initial_equity=self.initial_equity,
            session_minutes=self.session_minutes,
        )
        return dataclasses.replace(m, exposure=self.exposure)

    def symbol_metrics(self) -> dict[str, Metrics]:
        return {s: result_metrics(r) for s, r in self.results.items()}


def run_portfolio(
    bars: Mapping[str, pd.DataFrame],
    params: Params,
    *,
    commission_per_share: float = 0.0,
    slippage_per_share: float = 0.0,
    initial_equity: float = 100_000.0,
    exact: bool = False,
    calendar: Any | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    lockstep: bool | None = None,
) -> PortfolioResult:
    """Backtest every symbol of `bars` (symbol -> frame, in the order to serve them) on one account.
    `lockstep` (default: with risk_pct or a portfolio rule: max_positions, max_daily_loss) advances
    the symbols together; otherwise they run as independent tasks (symbol x year) on `executor`
    (default: this process). A portfolio rule needs the lockstep: ValueError without it."""
    cal = calendar if isinstance(calendar, SessionCalendar) else SessionCalendar(calendar)
    symbols = list(bars)
    inputs = {
        s: ReplayInput.of(
            frame,
            s,
            params,
            commission_per_share=commission_per_share,
            slippage_per_share=slippage_per_share,
            calendar=cal,
            initial_equity=initial_equity,
            exact=exact,
        )
        for s, frame in bars.items()
    }
    shared = bool(params.max_positions or params.max_daily_loss) and len(symbols) > 1
    together = (params.risk_pct is not None or shared) if lockstep is None else lockstep
    if shared and not together:
        raise ValueError("max_positions and max_daily_loss across symbols need the lockstep replay")
    if together:
        parts = {
            s: [p]
            for s, p in zip(
                symbols, _lockstep(inputs, initial_equity, commission_per_share, params), strict=True
            )
        }
    else:
        executor = executor or SerialExecutor()
        tasks = [(s, run) for s in symbols for run in years(inputs[s])]
        done = executor.map(replay_run, tasks, inputs, progress)
        parts = {s: [] for s in symbols}
        for (s, _), part in zip(tasks, done, strict=True):
            parts[s].append(part)
    results = {s: inputs[s].assemble(parts[s]) for s in symbols}
    return _portfolio(symbols, results, params, initial_equity, cal, together)


def years(replay: ReplayInput) -> list[tuple[int, int]]:
    """The replay's sessions cut at calendar years (index ranges into replay.sessions)."""
    sessions = replay.sessions
    if not sessions:
        return []
    cuts = [0] + [i for i in range(1, len(sessions)) if sessions[i][0].year != sessions[i - 1][0].year]
    return list(zip(cuts, [*cuts[1:], len(sessions)], strict=True))


def _lockstep(
    inputs: Mapping[str, ReplayInput], initial_equity: float, commission: float, params: Params
) -> list[ReplayPart]:
    """Every symbol's replay advanced together on one account: merged by the moment of each step,
    ties (the same bar) in the order of the symbols; each entry passes the portfolio's rules."""
    equity = Equity(initial_equity, commission)
    replays = [Replay(replay, equity) for replay in inputs.values()]
    if len(replays) > 1 and (params.max_positions or params.max_daily_loss):

        def gate(symbol: str, order: SubmitBracket) -> str | None:
            return portfolio_refusal(symbol, [r.state for r in replays], params)

        for replay in replays:
            replay.gate = gate
    with gc_paused():
        for _ in merge_steps([r.steps(0, len(r.input.sessions)) for r in replays]):
            pass
    return [r.part() for r in replays]


def merge_steps(
    steps: Sequence[Iterator[int]], before: Callable[[int, int], None] | None = None
) -> Iterator[int]:
    """Run the generators (each yields the key of its next step before taking it) in key order, ties
    by position in `steps`: a step runs only once every step with a smaller key, in any generator,
    has run. `before(index, key)` is called just before generator `index` takes its step (the place
    for a portfolio view that must be current). Yields the keys in the order they ran."""
    heap: list[tuple[int, int]] = []
    for i, gen in enumerate(steps):
        key = next(gen, None)
        if key is not None:
            heap.append((key, i))
    heapq.heapify(heap)
    while heap:
        key, i = heap[0]
        if before is not None:
            before(i, key)
        nxt = next(steps[i], None)
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (nxt, i))
        yield key


def _portfolio(
    symbols: list[str],
    results: dict[str, BacktestResult],
    params: Params,
    initial_equity: float,
    cal: SessionCalendar,
    lockstep: bool,
) -> PortfolioResult:
    order = {s: i for i, s in enumerate(symbols)}
    trades = sorted(
        (t for r in results.values() for t in r.trades), key=lambda t: (t.entry_time, order[t.symbol])
    )
    pnl: dict[dt.date, float] = {}
    for s in symbols:  # summed in the symbols' order: the same float sums every run
        for day, value in zip(results[s].days, results[s].day_pnl, strict=True):
            pnl[day] = pnl.get(day, 0.0) + float(value)
    days = sorted(pnl)
    daily = daily_frame(days, [pnl[d] for d in days], initial_equity)
    minutes = 0
    for day in days:
        session = cal.session(day)
        if session is not None:
            minutes += int((session[1] - session[0]) // 60)
    return PortfolioResult(
        symbols,
        results,
        params,
        initial_equity,
        trades,
        daily,
        minutes,
        _any_open(trades) / minutes if minutes else 0.0,
        lockstep,
    )


def _any_open(trades: Sequence[Trade]) -> float:
    """Minutes with at least one position open: the union of the trades' [entry, exit) spans."""
    spans = sorted((t.entry_time.timestamp(), t.exit_time.timestamp()) for t in trades)
    total = 0.0
    end = float("-inf")
    start = end
    for a, b in spans:
        if a > end:
            total += max(0.0, end - start)
            start, end = a, b
        else:
            end = max(end, b)
    total += max(0.0, end - start)
    return total / 60.0
