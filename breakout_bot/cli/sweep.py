"""The backtest command's --sweep: its flags, and the run on the fast kernel (backtest/sweep.py), in
sample or out of sample (backtest/oos.py), in this process, forked, or on Dask (cli/cluster.py).

Imports nothing heavy at module level: `breakout-bot backtest --help` reads the flags without numpy,
pandas or numba.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import pathlib
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..backtest.grid import FIELDS, SweepSpec, grid, parse_specs
from ..core.params import Params
from ..errors import UserError
from .args import parse_date_flag
from .cluster import executor_from_args
from .progress import progress_bar

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..backtest.oos import Window
    from ..backtest.sweep import SweepResult


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --sweep NAME=SPEC..., --sweep-out, --heatmap, --sweep-top, --sweep-jobs, --train-to and
    --walk-forward. A placeholder `--sweep` the command may already define is replaced (argparse's
    "resolve" conflict handling)."""
    previous = parser.conflict_handler
    parser.conflict_handler = "resolve"  # groups copy it when created
    try:
        group = parser.add_argument_group("parameter sweep (fast kernel)")
    finally:
        parser.conflict_handler = previous
    group.add_argument(
        "--sweep",
        nargs="+",
        metavar="NAME=SPEC",
        help="sweep parameters over a grid: lookback=5:20 (ints, inclusive), min_range=0.1:0.5:0.05 "
        "(start:stop:step), qty=100, flatten=5,10; names: " + ", ".join(sorted(set(FIELDS))),
    )
    group.add_argument("--sweep-out", metavar="CSV", help="write every combination's results to this CSV")
    group.add_argument(
        "--heatmap",
        metavar="FILE",
        help="net P&L heatmap over the first two swept parameters: .html (plotly) or .png (matplotlib); "
        "in-sample and out-of-sample side by side with --train-to / --walk-forward",
    )
    group.add_argument(
        "--sweep-top", type=int, default=20, metavar="N", help="rows of the results table (default 20)"
    )
    group.add_argument(
        "--sweep-jobs",
        type=int,
        default=0,
        metavar="N",
        help="processes on this machine (default: 2 for large grids on >= 2 cores, else 1)",
    )
    oos = group.add_mutually_exclusive_group()
    oos.add_argument(
        "--train-to",
        metavar="YYYY-MM-DD",
        help="out of sample: choose the best point on the sessions up to this date, report it on the rest",
    )
    oos.add_argument(
        "--walk-forward",
        metavar="TRAIN:TEST",
        help="out of sample, rolling: e.g. 6M:1M re-chooses on each 6 months and trades the next month "
        "(D, W, M, Y); the test months, stitched, are the out-of-sample record",
    )
    group.add_argument(
        "--oos-equity",
        metavar="CSV",
        help="with --walk-forward: write the stitched out-of-sample record per session (date, window, "
        "the point chosen, its net P&L that session, the cumulative net P&L)",
    )


def _base_params(args: argparse.Namespace) -> Params:
    """The backtest command's strategy flags (when present) as the base of the grid."""
    base = getattr(args, "params", None)
    if isinstance(base, Params):
        return base
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Params):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return Params(**values)


def _cost(args: argparse.Namespace, name: str) -> float:
    return float(getattr(args, name, None) or getattr(args, f"{name}_per_share", 0.0) or 0.0)


def run_sweep(
    args: argparse.Namespace,
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    out: TextIO | None = None,
) -> int:
    """The backtest command's --sweep over one symbol's bars (a frame) or several (symbol -> frame):
    run the grid on the kernel, print the best points (in and out of sample), write the CSV and the
    heatmap. Returns the exit code (0). Bad specs raise UserError (one line)."""
    import numpy as np
    import pandas as pd

    from ..backtest import kernel, oos
    from ..backtest.sweep import Segments, run_grid, session_days

    out = out or sys.stdout
    specs = parse_specs(args.sweep or [])
    if not specs:
        raise UserError("--sweep: give at least one NAME=SPEC")
    heatmap = getattr(args, "heatmap", None)
    if heatmap and pathlib.Path(heatmap).suffix.lower() not in (".html", ".htm", ".png"):
        raise UserError(f"--heatmap {heatmap}: use a .html or .png file name")
    if isinstance(bars, pd.DataFrame):
        symbol = str(getattr(args, "symbol", None) or bars.attrs.get("source") or "SYMBOL")
        frames: Mapping[str, pd.DataFrame] = {symbol: bars}
    else:
        frames = bars
    commission, slippage = _cost(args, "commission"), _cost(args, "slippage")
    for flag, value, check in (
        ("--slippage", slippage, kernel.slippage_u8),
        ("--commission", commission, kernel.commission_u8),
    ):
        try:
            check(value)
        except ValueError as exc:
            raise UserError(f"{flag}: {exc}") from None
    base = _base_params(args)
    if getattr(base, "risk_pct", None) is not None:
        raise UserError(
            "--sweep: the fast kernel trades a fixed --qty; --risk-pct sizing needs the event path"
        )
    if base.max_positions and len(frames) > 1:
        raise UserError(
            "--sweep: the fast kernel runs each symbol alone; --max-positions across symbols needs the "
            "event path (backtest without --sweep)"
        )
    param_sets = grid(specs, base)
    started = time.perf_counter()
    prepared = {s: kernel.prepare_bars(frame) for s, frame in frames.items()}
    prepared = {s: p for s, p in prepared.items() if len(p)}
    if not prepared:
        raise UserError("--sweep: no regular-session bars to backtest")
    all_days = np.unique(np.concatenate([session_days(p) for p in prepared.values()]))
    first, last = dt.date.fromordinal(int(all_days[0])), dt.date.fromordinal(int(all_days[-1]))
    windows: list[Window] = []
    train_to = getattr(args, "train_to", None)
    walk = getattr(args, "walk_forward", None)
    if getattr(args, "oos_equity", None) and not walk:
        raise UserError("--oos-equity: only with --walk-forward TRAIN:TEST (the stitched test windows)")
    if train_to:
        split = parse_date_flag(train_to, "--train-to")
        segments = oos.train_test(split)
        n_train = int((all_days <= split.toordinal()).sum())
        if n_train == 0 or n_train == len(all_days):
            raise UserError(
                f"--train-to {split}: the data runs from {first} to {last}; "
                "both the training and the test window need sessions"
            )
    elif walk:
        train, test = oos.parse_walk_forward(walk)
        segments, windows = oos.walk_forward(first, last, train, test)
    else:
        segments = Segments()
    compile_s = kernel.warm_up()
    bars_total = sum(len(p) for p in prepared.values())
    jobs = int(getattr(args, "sweep_jobs", 0) or 0)
    if jobs <= 0:
        from ..backtest.parallel import default_workers

        jobs = default_workers(bars_total * len(param_sets), 300_000_000)
    up = time.perf_counter()
    with executor_from_args(args, jobs) as executor:
        t0 = time.perf_counter()  # the cluster is up and warm: from here on, the sweep itself
        with progress_bar("sweep", "tasks", len(prepared)) as progress:
            try:
                result = run_grid(
                    prepared,
                    param_sets,
                    segments=segments,
                    commission_per_share=commission,
                    slippage_per_share=slippage,
                    executor=executor,
                    progress=progress,
                )
            except ValueError as exc:
                raise UserError(f"--sweep: {exc}") from None
        run_s = time.perf_counter() - t0
        where = _where(executor)
    label = _label(list(prepared))
    rate = bars_total * len(param_sets) / run_s if run_s > 0 else float("inf")
    cluster = f", cluster start {t0 - up:.2f} s" if t0 - up >= 0.05 else ""
    print(
        f"{label}: {len(param_sets)} combinations x {bars_total:,} bars ({len(all_days)} sessions) in "
        f"{run_s:.2f} s ({rate / 1e6:,.1f}M bars/s, {result.tasks} tasks {where}; setup "
        f"{up - started - compile_s:.2f} s, compile/cache {compile_s:.2f} s{cluster})",
        file=out,
    )
    top = int(getattr(args, "sweep_top", 20) or 20)
    costs = f"commission {commission}/share, slippage {slippage}/share"
    names = [s.name for s in specs]
    panels: tuple[tuple[str, str], ...]
    if train_to:
        frame = _train_test_report(result, specs, names, top, costs, out)
        panels = (("net_pnl", "in-sample net P&L"), ("oos_net_pnl", "out-of-sample net P&L"))
    elif windows:
        frame, whole = _walk_forward_report(result, specs, names, windows, costs, out)
        equity_out = getattr(args, "oos_equity", None)
        if equity_out:
            path = pathlib.Path(equity_out)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                _stitched_equity(result, specs, windows, frame).to_csv(path, index=False)
            except OSError as exc:
                raise UserError(f"--oos-equity {path}: {exc.strerror or exc}") from None
            print(f"out-of-sample equity: {path}", file=out)
        panels = (("net_pnl", "in-sample net P&L (whole sample)"), ("oos_net_pnl", "out-of-sample net P&L"))
    else:
        from ..backtest.sweep import window_stats
        from ..backtest.sweep_report import format_table, results_frame

        frame = results_frame(specs, param_sets, window_stats(result, 0, 1))
        print(f"top {min(top, len(frame))} by net P&L ({costs}):", file=out)
        print(format_table(frame, names, top), file=out)
        panels = (("net_pnl", "net P&L"),)
    sweep_out = getattr(args, "sweep_out", None)
    if sweep_out:
        path = pathlib.Path(sweep_out)
        table = frame if windows else frame.sort_values("net_pnl", ascending=False, kind="stable")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(path, index=False)
        except OSError as exc:
            raise UserError(f"--sweep-out {path}: {exc.strerror or exc}") from None
        print(f"results: {path}", file=out)
    if heatmap:
        from ..backtest.sweep_report import write_heatmap

        path = pathlib.Path(heatmap)
        shown = whole if windows else frame
        try:
            write_heatmap(shown, specs, path, f"{label} breakout sweep: net P&L", panels)
        except OSError as exc:
            raise UserError(f"--heatmap {path}: {exc.strerror or exc}") from None
        print(f"heatmap: {path}", file=out)
    return 0


def _where(executor: Any) -> str:
    from ..backtest.parallel import ForkExecutor, SerialExecutor

    if isinstance(executor, SerialExecutor | ForkExecutor):
        return "in this process" if executor.workers == 1 else f"in {executor.workers} processes"
    return f"on {executor.workers} Dask workers"


def _label(symbols: Sequence[str]) -> str:
    if len(symbols) == 1:
        return symbols[0]
    shown = ", ".join(symbols[:5]) + (", ..." if len(symbols) > 5 else "")
    return f"{len(symbols)} symbols ({shown})"


def _span(result: SweepResult, first: int, stop: int) -> str:
    lo, hi = result.day_range(first, stop)
    if hi <= lo:
        return "no sessions"
    a, b = dt.date.fromordinal(int(result.days[lo])), dt.date.fromordinal(int(result.days[hi - 1]))
    return f"{a} to {b}, {hi - lo} sessions"


def _point(specs: Sequence[SweepSpec], params: Params) -> str:
    from ..backtest.sweep_report import fmt_value

    return " ".join(f"{s.name}={fmt_value(getattr(params, s.field))}" for s in specs)


def _figure_rows(rows: Sequence[tuple[str, Mapping[str, np.ndarray], int]]) -> str:
    """(label, stats, index) rows: trades, win rate, net P&L, profit factor, max drawdown."""
    from ..backtest.sweep_report import FIGURE_HEADERS, aligned, stat_columns

    cells = []
    for label, stats, i in rows:
        c = stat_columns(stats)
        pf = c["profit_factor"][i]
        cells.append(
            [
                label,
                str(int(c["trades"][i])),
                "-" if c["trades"][i] == 0 else f"{c['win_rate'][i] * 100:.1f}%",
                f"{c['net_pnl'][i]:,.2f}",
                "-" if pf != pf else ("inf" if pf == float("inf") else f"{pf:.2f}"),
                f"{c['max_drawdown'][i]:,.2f}",
            ]
        )
    return aligned(["", *FIGURE_HEADERS], cells)


def _train_test_report(
    result: SweepResult, specs: Sequence[SweepSpec], names: list[str], top: int, costs: str, out: TextIO
) -> pd.DataFrame:
    from ..backtest.sweep import best_index, window_stats
    from ..backtest.sweep_report import format_table, results_frame

    train, test = window_stats(result, 0, 1), window_stats(result, 1, 2)
    frame = results_frame(specs, result.param_sets, train, test)
    print(
        f"in-sample (training): {_span(result, 0, 1)}; out-of-sample (test): {_span(result, 1, 2)}", file=out
    )
    print(
        f"top {min(top, len(frame))} by in-sample net P&L, their out-of-sample figures beside ({costs}):",
        file=out,
    )
    print(format_table(frame, names, top), file=out)
    best = best_index(train["net_pnl"])
    print(f"\nchosen on the training window: {_point(specs, result.param_sets[best])}", file=out)
    print(_figure_rows([("in-sample", train, best), ("out-of-sample", test, best)]), file=out)
    return frame


def _stitched_equity(
    result: SweepResult, specs: Sequence[SweepSpec], windows: Sequence[Window], frame: pd.DataFrame
) -> pd.DataFrame:
    """Per test session of the walk-forward, in time order: its window, the point chosen on that
    window's training stretch, that point's net P&L that session (the portfolio's), and the running
    total: the stitched out-of-sample equity, above the starting equity."""
    import pandas as pd

    n = len(result.param_sets)
    chosen = frame["chosen"].to_numpy().reshape(len(windows), n).argmax(axis=1)  # a row per window and point
    rows = []
    for w, point in zip(windows, chosen, strict=True):
        lo, hi = result.day_range(w.test_first, w.test_stop)
        label = _point(specs, result.param_sets[int(point)])
        for day, pnl in zip(result.days[lo:hi], result.daily[int(point), lo:hi], strict=True):
            rows.append((dt.date.fromordinal(int(day)).isoformat(), w.index + 1, label, int(pnl)))
    out = pd.DataFrame(rows, columns=["date", "window", "chosen", "net_pnl"])
    out["cum_net_pnl"] = out["net_pnl"].cumsum() / 1e8  # exact integers (1e-8 $) until here
    out["net_pnl"] = out["net_pnl"] / 1e8
    return out


def _walk_forward_report(
    result: SweepResult,
    specs: Sequence[SweepSpec],
    names: list[str],
    windows: Sequence[Window],
    costs: str,
    out: TextIO,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per window: the point chosen on its training stretch and its figures there and on the test that
    follows; then the test stretches stitched (the out-of-sample record) beside the whole sample's best
    point (the in-sample, hindsight figure). Returns the CSV frame (a row per window and point) and the
    heatmap's (per point: whole sample, and all test stretches)."""
    import numpy as np
    import pandas as pd

    from ..backtest import kernel
    from ..backtest.sweep import best_index, close_drawdown, window_stats
    from ..backtest.sweep_report import aligned, results_frame

    frames = []
    chosen: list[int] = []
    rows = []
    oos_net_by_point = np.zeros(len(result.param_sets))
    oos_trades_by_point = np.zeros(len(result.param_sets), dtype=np.int64)
    for w in windows:
        train = window_stats(result, w.train_first, w.test_first)
        test = window_stats(result, w.test_first, w.test_stop)
        best = best_index(train["net_pnl"])
        chosen.append(best)
        oos_net_by_point += test["net_pnl"]
        oos_trades_by_point += test["trades"]
        f = results_frame(specs, result.param_sets, train, test)
        f.insert(0, "chosen", np.arange(len(f)) == best)
        for col, value in (
            ("test_to", w.test_to),
            ("test_from", w.test_from),
            ("train_to", w.train_to),
            ("train_from", w.train_from),
            ("window", w.index + 1),
        ):
            f.insert(0, col, value)
        frames.append(f)
        rows.append(
            [
                str(w.index + 1),
                f"{w.train_from}..{w.train_to}",
                f"{w.test_from}..{w.test_to}",
                _point(specs, result.param_sets[best]),
                f"{train['net_pnl'][best]:,.2f}",
                str(int(test["trades"][best])),
                f"{test['net_pnl'][best]:,.2f}",
            ]
        )
    print(
        f"walk-forward: {len(windows)} windows; each chooses on its training window, then trades its "
        f"test window out-of-sample ({costs}):",
        file=out,
    )
    headers = ["window", "train", "test", "chosen", "in-sample net P&L", "oos trades", "oos net P&L"]
    print(aligned(headers, rows), file=out)
    # The stitched record: the chosen point of each window over that window's test stretch.
    stitched = {
        k: np.zeros(1, dtype=np.int64 if k in ("trades", "wins", "sessions") else np.float64)
        for k in ("trades", "wins", "net_pnl", "gross_profit", "gross_loss", "max_drawdown", "sessions")
    }
    summary = np.zeros(kernel.N_SUMMARY, dtype=np.int64)
    daily: list[np.ndarray] = []
    for w, best in zip(windows, chosen, strict=True):
        folded = result.fold(w.test_first, w.test_stop)
        total = np.sum(np.stack([s[best] for s in folded.values()]), axis=0)
        summary = kernel.combine_summaries(summary, total) if len(folded) == 1 else summary + total
        lo, hi = result.day_range(w.test_first, w.test_stop)
        daily.append(result.daily[best, lo:hi])
        stitched["sessions"][0] += hi - lo
    columns = {name: i for i, name in enumerate(kernel.SUMMARY_COLUMNS)}
    stitched["trades"][0] = summary[columns["trades"]]
    stitched["wins"][0] = summary[columns["wins"]]
    stitched["net_pnl"][0] = summary[columns["net"]] / 1e8
    stitched["gross_profit"][0] = summary[columns["gross_profit"]] / 1e8
    stitched["gross_loss"][0] = summary[columns["gross_loss"]] / 1e8
    if len(result.symbols) == 1:
        stitched["max_drawdown"][0] = summary[columns["max_drawdown"]] / 1e8
    else:
        stitched["max_drawdown"][0] = close_drawdown(np.concatenate(daily)[None, :])[0] / 1e8
    whole = window_stats(result, 0, len(result.segments))
    best_whole = best_index(whole["net_pnl"])
    first_test, last_test = windows[0].test_from, windows[-1].test_to
    print(
        f"\nout-of-sample, stitched: {first_test} to {last_test}, {int(stitched['sessions'][0])} sessions "
        f"(points re-chosen each window) beside the in-sample best point of the whole sample "
        f"({_point(specs, result.param_sets[best_whole])}, chosen with hindsight):",
        file=out,
    )
    print(
        _figure_rows([("out-of-sample", stitched, 0), ("in-sample (whole sample)", whole, best_whole)]),
        file=out,
    )
    per_point = results_frame(specs, result.param_sets, whole)
    per_point["oos_net_pnl"] = oos_net_by_point
    per_point["oos_trades"] = oos_trades_by_point
    return pd.concat(frames, ignore_index=True), per_point
