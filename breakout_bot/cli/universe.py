"""The backtest command over several symbols: `--symbols A,B,...` or `--universe FILE`.

The bars come from `--data` (a file with a symbol column, a folder of per-symbol files, a bars cache;
market/universe.py) or, without it, the simulator's synthetic bars for each symbol. The event path
runs on backtest/portfolio.py (one account; independent symbols on the executor the flags name), a
`--sweep` on the kernel over every symbol (cli/sweep.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.params import Params
from ..errors import UserError
from .args import parse_date_flag


def add_universe_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("several symbols (one account)")
    group.add_argument(
        "--symbols",
        dest="symbol_list",
        action="append",
        metavar="A,B,...",
        help="backtest these symbols together (comma-separated, or repeated); each follows its own "
        "machine as in a live multi-symbol run",
    )
    group.add_argument(
        "--universe", type=Path, metavar="FILE", help="the symbols listed in FILE (one a line)"
    )
    group.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="processes on this machine for the event path (default: 2 on >= 2 cores for long runs; 1: this one)",
    )


def universe_symbols(args: argparse.Namespace) -> list[str]:
    """The symbols of --symbols and --universe (in that order, each once); [] when neither is given."""
    listed = getattr(args, "symbol_list", None) or []
    universe = getattr(args, "universe", None)
    if not listed and universe is None:
        return []  # without importing market/universe.py (pandas): a one-symbol backtest never needs it
    from ..market.universe import parse_symbols, read_universe_file

    named = parse_symbols(listed, "--symbols")
    if universe is not None:
        named = parse_symbols([*named, *read_universe_file(universe)], "--universe")
    return named


def run_universe(args: argparse.Namespace, params: Params, symbols: list[str]) -> int:
    import pandas as pd

    from ..backtest.parallel import default_workers
    from ..backtest.portfolio import run_portfolio
    from ..market.universe import load_universe
    from .cluster import executor_from_args
    from .progress import progress_bar

    if getattr(args, "symbol", None):
        raise UserError("--symbol and --symbols/--universe: give one (--symbols A,B for several)")
    start = parse_date_flag(args.date_from, "--from") if args.date_from else None
    end = parse_date_flag(args.date_to, "--to") if args.date_to else None
    if start and end and start > end:
        raise UserError(f"--from {start} is after --to {end}")
    frames: dict[str, pd.DataFrame]
    if args.data is None or args.data.lower() == "synthetic":
        from ..market.synthetic import synthetic_bars

        frames = {s: synthetic_bars(s, args.seed, args.days, start) for s in symbols}
    else:
        frames = dict(load_universe(args.data, symbols, start=start, end=end))
    dropped = sum(int(f.attrs.get("dropped_rows", 0) or 0) for f in frames.values())
    if dropped:
        print(f"note: {dropped} rows with missing or inconsistent prices were dropped", file=sys.stderr)
    if args.sweep:
        from .sweep import run_sweep

        args.params = params
        return run_sweep(args, frames)
    if args.trades_out is not None and args.trades_out.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--trades-out: {args.trades_out.name}: use a .csv or .json file name")
    bars = sum(len(f) for f in frames.values())
    jobs = args.jobs if args.jobs > 0 else default_workers(bars, 150_000)
    with (
        executor_from_args(args, jobs) as executor,
        progress_bar("backtest", "tasks", len(frames)) as progress,
    ):
        result = run_portfolio(
            frames,
            params,
            commission_per_share=args.commission,
            slippage_per_share=args.slippage,
            initial_equity=args.initial_equity,
            exact=args.exact_events,
            executor=executor,
            progress=progress,
        )
    empty = [s for s, r in result.results.items() if r.sessions == 0]
    if empty:
        raise UserError(f"--data: no regular-session bars for {', '.join(empty)} in the requested range")
    from ..backtest.metrics import format_portfolio, write_trades

    print(format_portfolio(result), end="")
    if args.trades_out is not None:
        print(f"trades written to {write_trades(result.trades, args.trades_out)}")
    if args.report is not None:
        from ..backtest.charts import write_portfolio_html

        print(f"report written to {write_portfolio_html(result, args.report)}")
    if args.png is not None:
        from ..backtest.charts import write_portfolio_png

        print(f"chart written to {write_portfolio_png(result, args.png)}")
    return 0
