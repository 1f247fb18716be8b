"""Parameter sweeps on the fast kernel: every combination of a grid (backtest/grid.py) over one or many
symbols' bars, in pieces that run anywhere and add up exactly.

The work is cut into tasks, one per symbol x calendar year x chunk of parameter sets (`plan`); each
is one compiled call (`kernel.sweep_segments`) that returns, per parameter set, an integer summary of
the trades (`kernel.SUMMARY_COLUMNS`, 1e-8 dollars) for every *segment* of the timeline (`Segments`:
the sample cut at dates, e.g. a training window and a test window) and the net P&L of every session.
Sessions are independent and the summaries are exact integers (`kernel.combine_summaries`), so the
years of a symbol, the symbols of a portfolio and the chunks of a grid combine into the very figures
of one run over everything, whichever executor ran them (backtest/parallel.py, backtest/cluster.py)
and in whatever order they finished: a sweep's CSV is the same byte for byte in this process, in
forked processes or on a Dask cluster.

`SweepResult` holds the combined summaries; `window_stats` turns a stretch of segments into the
figures of the report (per symbol, and for the portfolio: the symbols' sum, its drawdown on the
session closes when there are several symbols). Out-of-sample windows are backtest/oos.py's.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.model import NEW_YORK
from ..core.params import Params
from . import kernel
from .parallel import Executor, Progress, SerialExecutor

_S = {name: i for i, name in enumerate(kernel.SUMMARY_COLUMNS)}


@dataclass(frozen=True)
class Segments:
    """The timeline cut at dates: segment i holds the sessions with edges[i-1] <= day < edges[i]
    (day ordinals; the first segment starts at the beginning of time, the last ends with it)."""

    edges: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.edges) + 1

    def of(self, days: np.ndarray) -> np.ndarray:
        """The segment of each session (day ordinals)."""
        return np.searchsorted(np.asarray(self.edges, dtype=np.int64), days, side="right").astype(np.int64)

    @classmethod
    def at(cls, days: Iterable[dt.date]) -> Segments:
        """Cut before each of `days` (sorted, unique)."""
        return cls(tuple(sorted({d.toordinal() for d in days})))


@dataclass(frozen=True)
class YearBars:
    """One symbol's sessions of one calendar year, as the kernel reads them, and their dates."""

    symbol: str
    year: int
    bars: kernel.PreparedBars
    days: np.ndarray  # int64 day ordinals, one per session


def session_days(prepared: kernel.PreparedBars) -> np.ndarray:
    """The New York date (ordinal) of each session of `prepared`."""
    if not len(prepared.close_t):
        return np.zeros(0, dtype=np.int64)
    closes = pd.to_datetime(prepared.close_t, unit="s", utc=True).tz_convert(NEW_YORK)
    local = closes.tz_localize(None).as_unit("s").asi8 // 86_400
    return local.astype(np.int64) + dt.date(1970, 1, 1).toordinal()


def by_year(symbol: str, prepared: kernel.PreparedBars) -> list[YearBars]:
    """`prepared` cut at the calendar years (views, no copies): sessions never straddle a year."""
    days = session_days(prepared)
    if not len(days):
        return []
    years = np.array([dt.date.fromordinal(int(d)).year for d in days], dtype=np.int64)
    cuts = [0, *(np.flatnonzero(np.diff(years)) + 1).tolist(), len(days)]
    out = []
    for s0, s1 in itertools.pairwise(cuts):
        b0, b1 = int(prepared.bounds[s0]), int(prepared.bounds[s1])
        part = kernel.PreparedBars(
            t=prepared.t[b0:b1],
            o=prepared.o[b0:b1],
            h=prepared.h[b0:b1],
            lo=prepared.lo[b0:b1],
            c=prepared.c[b0:b1],
            bounds=np.ascontiguousarray(prepared.bounds[s0 : s1 + 1] - b0),
            close_t=prepared.close_t[s0:s1],
            tz=prepared.tz,
        )
        out.append(YearBars(symbol, int(years[s0]), part, days[s0:s1]))
    return out


@dataclass(frozen=True)
class TaskArgs:
    """A chunk of the grid (param_sets[first:stop]) with the costs and the segments."""

    param_sets: tuple[Params, ...]
    first: int
    commission: float
    slippage: float
    segments: Segments


def sweep_task(year: YearBars, args: TaskArgs) -> tuple[np.ndarray, np.ndarray]:
    """One task: the chunk's summaries per segment (sets, segments, 8) and its session nets (sets, sessions)."""
    return kernel.sweep_segments(
        year.bars,
        list(args.param_sets),
        args.segments.of(year.days),
        len(args.segments),
        commission_per_share=args.commission,
        slippage_per_share=args.slippage,
    )


@dataclass
class SweepResult:
    """The grid's summaries, combined: per symbol (sets, segments, 8) int64; the portfolio's net P&L per
    session (sets, days) int64 over the sorted union of every symbol's session dates."""

    param_sets: list[Params]
    symbols: list[str]
    segments: Segments
    summaries: dict[str, np.ndarray]
    days: np.ndarray
    daily: np.ndarray
    bars: int = 0
    tasks: int = 0
    sessions_by_symbol: dict[str, int] = field(default_factory=dict)

    def fold(self, first: int, stop: int) -> dict[str, np.ndarray]:
        """Each symbol's summary (sets, 8) over segments first..stop-1, combined in time order."""
        out = {}
        for symbol, s in self.summaries.items():
            total = np.zeros((len(self.param_sets), kernel.N_SUMMARY), dtype=np.int64)
            for g in range(first, stop):
                total = kernel.combine_summaries(total, s[:, g, :])
            out[symbol] = total
        return out

    def day_range(self, first: int, stop: int) -> tuple[int, int]:
        """Indices into `days` of the sessions in segments first..stop-1."""
        edges = (-(2**62), *self.segments.edges, 2**62)
        lo = int(np.searchsorted(self.days, edges[first], side="left"))
        hi = int(np.searchsorted(self.days, edges[stop], side="left"))
        return lo, hi


def window_stats(result: SweepResult, first: int, stop: int) -> dict[str, np.ndarray]:
    """The portfolio's figures per parameter set over segments first..stop-1: trades, wins, net_pnl,
    gross_profit, gross_loss (dollars), max_drawdown (one symbol: on the equity after each trade, as
    the event path's report; several: on the portfolio's equity at each session close) and sessions."""
    folded = result.fold(first, stop)
    total = np.sum(np.stack(list(folded.values())), axis=0) if folded else None
    n_sets = len(result.param_sets)
    if total is None:
        total = np.zeros((n_sets, kernel.N_SUMMARY), dtype=np.int64)
    lo, hi = result.day_range(first, stop)
    if len(folded) == 1:
        drawdown = next(iter(folded.values()))[:, _S["max_drawdown"]]
    else:
        drawdown = close_drawdown(result.daily[:, lo:hi])
    return {
        "trades": total[:, _S["trades"]].astype(np.int64),
        "wins": total[:, _S["wins"]].astype(np.int64),
        "net_pnl": total[:, _S["net"]] / 1e8,
        "gross_profit": total[:, _S["gross_profit"]] / 1e8,
        "gross_loss": total[:, _S["gross_loss"]] / 1e8,
        "max_drawdown": drawdown / 1e8,
        "sessions": np.full(n_sets, hi - lo, dtype=np.int64),
    }


def close_drawdown(daily: np.ndarray) -> np.ndarray:
    """Per row: the largest fall of the cumulative sum from its running peak (0 included), int64."""
    if daily.shape[1] == 0:
        return np.zeros(daily.shape[0], dtype=np.int64)
    equity = np.cumsum(daily, axis=1)
    peak = np.maximum(np.maximum.accumulate(equity, axis=1), 0)
    return np.asarray(np.max(peak - equity, axis=1), dtype=np.int64)


def chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """0..n cut into at most `parts` contiguous chunks of about equal size."""
    parts = max(1, min(parts, n))
    step = math.ceil(n / parts)
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def plan(
    years: Sequence[YearBars],
    param_sets: Sequence[Params],
    segments: Segments,
    *,
    commission: float,
    slippage: float,
    workers: int,
) -> tuple[list[tuple[Hashable, TaskArgs]], dict[Hashable, YearBars]]:
    """The tasks: one per symbol x year x chunk of the grid (enough chunks that every worker has about
    four tasks to take), and the data they read, by key."""
    per_year = max(1, math.ceil(4 * workers / max(len(years), 1))) if workers > 1 else 1
    tasks: list[tuple[Hashable, TaskArgs]] = []
    data: dict[Hashable, YearBars] = {}
    for y in years:
        key = (y.symbol, y.year)
        data[key] = y
        for a, b in chunks(len(param_sets), per_year):
            tasks.append((key, TaskArgs(tuple(param_sets[a:b]), a, commission, slippage, segments)))
    return tasks, data


def run_grid(
    prepared: Mapping[str, kernel.PreparedBars],
    param_sets: Sequence[Params],
    *,
    segments: Segments | None = None,
    commission_per_share: float = 0.0,
    slippage_per_share: float = 0.0,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Every parameter set over every symbol's bars (prepared by kernel.prepare_bars), on `executor`
    (default: this process). Raises ValueError for costs the kernel cannot represent exactly."""
    segments = segments or Segments()
    executor = executor or SerialExecutor()
    kernel.slippage_u8(slippage_per_share)  # refuse bad costs before any work
    kernel.commission_u8(commission_per_share)
    symbols = list(prepared)
    years = [y for symbol in symbols for y in by_year(symbol, prepared[symbol])]
    tasks, data = plan(
        years,
        param_sets,
        segments,
        commission=commission_per_share,
        slippage=slippage_per_share,
        workers=executor.workers,
    )
    results = executor.map(sweep_task, tasks, data, progress) if param_sets else []
    return combine(
        list(param_sets),
        symbols,
        segments,
        years,
        tasks,
        results,
        bars=sum(len(p) for p in prepared.values()),
    )


def combine(
    param_sets: list[Params],
    symbols: list[str],
    segments: Segments,
    years: Sequence[YearBars],
    tasks: Sequence[tuple[Hashable, TaskArgs]],
    results: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    bars: int,
) -> SweepResult:
    """The tasks' results (in task order) as one SweepResult: years combine in time order per symbol,
    session nets add up per date. Exact integers: any executor, the same figures."""
    n_sets, n_seg = len(param_sets), len(segments)
    all_days = np.unique(np.concatenate([y.days for y in years])) if years else np.zeros(0, np.int64)
    daily = np.zeros((n_sets, len(all_days)), dtype=np.int64)
    by_key: dict[Hashable, YearBars] = {(y.symbol, y.year): y for y in years}
    per_year: dict[Hashable, np.ndarray] = {}
    for (key, args), (summaries, nets) in zip(tasks, results, strict=True):
        rows = slice(args.first, args.first + len(args.param_sets))
        if key not in per_year:
            per_year[key] = np.zeros((n_sets, n_seg, kernel.N_SUMMARY), dtype=np.int64)
        per_year[key][rows] = summaries
        columns = np.searchsorted(all_days, by_key[key].days)
        daily[rows, columns] += nets
    out: dict[str, np.ndarray] = {}
    sessions: dict[str, int] = {}
    for symbol in symbols:
        total = np.zeros((n_sets, n_seg, kernel.N_SUMMARY), dtype=np.int64)
        count = 0
        for y in years:
            if y.symbol != symbol:
                continue
            count += len(y.days)
            part = per_year.get((y.symbol, y.year))
            if part is not None:
                total = kernel.combine_summaries(total, part)
        out[symbol] = total
        sessions[symbol] = count
    return SweepResult(param_sets, symbols, segments, out, all_days, daily, bars, len(tasks), sessions)


def sweep(
    prepared: kernel.PreparedBars,
    param_sets: list[Params],
    *,
    commission_per_share: float = 0.0,
    slippage_per_share: float = 0.0,
    jobs: int = 0,
) -> np.ndarray:
    """Stats (kernel.STAT_COLUMNS) for every parameter set over one symbol's bars; `jobs` processes
    (0: 2 for large grids on >= 2 cores, else 1). The same figures for any `jobs`."""
    from .parallel import ForkExecutor, default_workers

    if not param_sets:
        return np.zeros((0, len(kernel.STAT_COLUMNS)))
    workers = jobs if jobs > 0 else default_workers(len(prepared) * len(param_sets), 300_000_000)
    result = run_grid(
        {"SYMBOL": prepared},
        param_sets,
        commission_per_share=commission_per_share,
        slippage_per_share=slippage_per_share,
        executor=ForkExecutor(workers),
    )
    return kernel.summary_stats(result.summaries["SYMBOL"][:, 0, :])


def best_index(net_pnl: np.ndarray) -> int:
    """The parameter set with the highest net P&L; ties go to the first in grid order."""
    return int(np.argmax(net_pnl)) if len(net_pnl) else -1


__all__ = [
    "Segments",
    "SweepResult",
    "TaskArgs",
    "YearBars",
    "best_index",
    "by_year",
    "chunks",
    "close_drawdown",
    "combine",
    "plan",
    "run_grid",
    "session_days",
    "sweep",
    "sweep_task",
    "window_stats",
]
