"""The backtest command's --sweep: its flags, and the run on the fast kernel (backtest/sweep.py)."""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time
from typing import Any, TextIO

import pandas as pd

from ..backtest import kernel
from ..backtest.sweep import FIELDS, format_table, grid, parse_specs, results_frame, sweep, write_heatmap
from ..core.params import Params
from ..errors import UserError


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --sweep NAME=SPEC..., --sweep-out, --heatmap, --sweep-top, --sweep-jobs. A placeholder
    `--sweep` the command may already define is replaced (argparse's "resolve" conflict handling)."""
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
        help="net P&L heatmap over the first two swept parameters: .html (plotly) or .png (matplotlib)",
    )
    group.add_argument(
        "--sweep-top", type=int, default=20, metavar="N", help="rows of the results table (default 20)"
    )
    group.add_argument(
        "--sweep-jobs",
        type=int,
        default=0,
        metavar="N",
        help="worker processes (default: 2 for large grids on >= 2 cores, else 1)",
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


def run_sweep(args: argparse.Namespace, bars: pd.DataFrame, out: TextIO | None = None) -> int:
    """The backtest command's --sweep: run the grid on the kernel, print the top results, write the
    CSV / heatmap. Returns the exit code (0). Bad specs raise UserError (one line)."""
    out = out or sys.stdout
    specs = parse_specs(args.sweep or [])
    if not specs:
        raise UserError("--sweep: give at least one NAME=SPEC")
    heatmap = getattr(args, "heatmap", None)
    if heatmap and pathlib.Path(heatmap).suffix.lower() not in (".html", ".htm", ".png"):
        raise UserError(f"--heatmap {heatmap}: use a .html or .png file name")
    symbol = str(getattr(args, "symbol", None) or bars.attrs.get("source") or "SYMBOL")
    commission = float(getattr(args, "commission", None) or getattr(args, "commission_per_share", 0.0) or 0.0)
    slippage = float(getattr(args, "slippage", None) or getattr(args, "slippage_per_share", 0.0) or 0.0)
    try:
        kernel.slippage_u8(slippage)
    except ValueError as exc:
        raise UserError(f"--slippage: {exc}") from None
    base = _base_params(args)
    if getattr(base, "risk_pct", None) is not None:
        raise UserError(
            "--sweep: the fast kernel trades a fixed --qty; --risk-pct sizing needs the event path"
        )
    param_sets = grid(specs, base)
    started = time.perf_counter()
    prepared = kernel.prepare_bars(bars)
    if len(prepared) == 0:
        raise UserError("--sweep: no regular-session bars to backtest")
    compile_s = kernel.warm_up()
    t0 = time.perf_counter()
    stats = sweep(
        prepared,
        param_sets,
        commission_per_share=commission,
        slippage_per_share=slippage,
        jobs=int(getattr(args, "sweep_jobs", 0) or 0),
    )
    run_s = time.perf_counter() - t0
    frame = results_frame(specs, param_sets, stats)
    names = [s.name for s in specs]
    sessions = len(prepared.bounds) - 1
    rate = len(prepared) * len(param_sets) / run_s if run_s > 0 else float("inf")
    print(
        f"{symbol}: {len(param_sets)} combinations x {len(prepared):,} bars ({sessions} sessions) in "
        f"{run_s:.2f} s ({rate / 1e6:,.1f}M bars/s; setup {t0 - started - compile_s:.2f} s, "
        f"compile/cache {compile_s:.2f} s)",
        file=out,
    )
    top = int(getattr(args, "sweep_top", 20) or 20)
    print(
        f"top {min(top, len(frame))} by net P&L (commission {commission}/share, slippage {slippage}/share):",
        file=out,
    )
    print(format_table(frame, names, top), file=out)
    sweep_out = getattr(args, "sweep_out", None)
    if sweep_out:
        path = pathlib.Path(sweep_out)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.sort_values("net_pnl", ascending=False, kind="stable").to_csv(path, index=False)
        except OSError as exc:
            raise UserError(f"--sweep-out {path}: {exc.strerror or exc}") from None
        print(f"results: {path}", file=out)
    if heatmap:
        path = pathlib.Path(heatmap)
        try:
            write_heatmap(frame, specs, path, f"{symbol} breakout sweep: net P&L")
        except OSError as exc:
            raise UserError(f"--heatmap {path}: {exc.strerror or exc}") from None
        print(f"heatmap: {path}", file=out)
    return 0
