"""`breakout-bot backtest`: replay one-minute bars through the live state machine (event path).

    breakout-bot backtest --symbol SPY --data bars.csv [--from 2024-01-02 --to 2024-03-28]
                          [--commission 0.005 --slippage 0.01] [--trades-out trades.csv]
                          [--report report.html] [--png report.png]

`--data synthetic` (or no --data) uses the simulator's seeded synthetic bars (--seed, --days).
`--sweep` hands over to the parameter sweep of breakout_bot.backtest.sweep (the fast kernel).
`--symbols A,B` / `--universe FILE` backtest several symbols on one account (cli/universe.py).
Module-level imports stay light (no pandas, numpy or numba): `backtest --help` answers at once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from pathlib import Path
from typing import Any

from ...core.params import Params
from ...errors import UserError
from ..args import add_strategy_arguments, parse_date_flag, settings_from_args
from ..cluster import add_cluster_arguments
from ..sweep import add_sweep_arguments, run_sweep
from ..universe import add_universe_arguments, run_universe, universe_symbols


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-s", "--symbol", metavar="SYMBOL", help="ticker (selects rows of a multi-symbol file)"
    )
    parser.add_argument(
        "--data",
        metavar="FILE|DIR|synthetic",
        help="CSV/Parquet bars, a `breakout-bot bars` cache directory, or 'synthetic' (the default)",
    )
    parser.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first session (inclusive)")
    parser.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last session (inclusive)")
    parser.add_argument("--seed", type=int, default=1, help="synthetic data: random seed (default 1)")
    parser.add_argument("--days", type=int, default=20, help="synthetic data: sessions (default 20)")
    add_strategy_arguments(parser)
    parser.add_argument(
        "--env-file", type=Path, metavar="PATH", help="read settings from PATH instead of ./.env"
    )
    c = parser.add_argument_group("costs and output")
    c.add_argument(
        "--commission", type=float, default=0.0, metavar="USD", help="per share and fill (e.g. 0.005)"
    )
    c.add_argument(
        "--slippage",
        type=float,
        default=0.0,
        metavar="USD",
        help="per share, adverse, on market and stop fills",
    )
    c.add_argument(
        "--initial-equity", type=float, default=100_000.0, metavar="USD", help="for returns and drawdown %%"
    )
    c.add_argument("--trades-out", type=Path, metavar="PATH", help="write the trades (.csv or .json)")
    c.add_argument(
        "--report", type=Path, metavar="PATH", help="write an HTML report (figures, chart, trades)"
    )
    c.add_argument(
        "--self-contained",
        action="store_true",
        help="with --report: inline plotly.js (~4.5 MB) so the page opens offline (default: plotly's CDN)",
    )
    c.add_argument("--png", type=Path, metavar="PATH", help="write a PNG chart (matplotlib)")
    c.add_argument(
        "--max-rows", type=int, default=200, help="trades shown in the table (default 200; 0 = none)"
    )
    c.add_argument(
        "--exact-events",
        action="store_true",
        help="step the machine on every bar (slower; results are identical)",
    )
    add_sweep_arguments(parser)
    add_universe_arguments(parser)
    add_cluster_arguments(parser)


def _date(value: str | None, flag: str) -> dt.date | None:
    if value is None:
        return None
    return parse_date_flag(value, flag)


def params_from_args(args: argparse.Namespace) -> Params:
    """The strategy as the bot would trade it: flags > environment > .env > defaults, validated by the
    same settings as `run` (a backtest rehearses the configured bot); then the backtest's own flags."""
    params = settings_from_args(args, trading=False).params
    problems = []
    for flag, value in (("--commission", args.commission), ("--slippage", args.slippage)):
        if not math.isfinite(value) or value < 0:
            problems.append(f"{flag} must be >= 0")
    if not math.isfinite(args.initial_equity) or args.initial_equity <= 0:
        problems.append("--initial-equity must be > 0")
    if problems:
        raise UserError("; ".join(problems))
    return params


def bars_from_args(args: argparse.Namespace, *, as_arrays: bool = False) -> tuple[Any, str]:
    """The bars the arguments name (a frame, or `BarArrays` with `as_arrays`: a plain Parquet file is
    then read without pandas), and the symbol to trade."""
    from ...market.bar_arrays import BarArrays, load_bar_arrays

    start = _date(args.date_from, "--from")
    end = _date(args.date_to, "--to")
    if start and end and start > end:
        raise UserError(f"--from {start} is after --to {end}")
    symbol = args.symbol.strip().upper() if args.symbol else None
    if symbol is not None and not symbol.replace(".", "").replace("-", "").isalnum():
        raise UserError(f"--symbol: not a ticker: {args.symbol!r}")
    if args.data is None or args.data.lower() == "synthetic":
        from ...market.synthetic import synthetic_bars

        symbol = symbol or "SYNTH"
        frame = synthetic_bars(symbol, args.seed, args.days, start)
        return (BarArrays.of_frame(frame) if as_arrays else frame), symbol
    path = Path(args.data)
    if symbol is None:
        if path.is_dir():
            symbol = None
        else:
            raise UserError("--symbol is required with --data FILE")
    if as_arrays:
        bars: Any = load_bar_arrays(path, symbol, start=start, end=end)
        source = bars.source or path
    else:
        from ...market.bars import load_bars

        bars = load_bars(path, symbol, start=start, end=end)
        source = bars.attrs.get("source", path)
    if symbol is None:
        symbol = Path(str(source)).name.upper()
    return bars, symbol


_SINGLE_RUN_FLAGS = (("trades_out", "--trades-out"), ("report", "--report"), ("png", "--png"))
_SWEEP_FLAGS = (
    ("sweep_out", "--sweep-out"),
    ("heatmap", "--heatmap"),
    ("train_to", "--train-to"),
    ("walk_forward", "--walk-forward"),
    ("oos_equity", "--oos-equity"),
)


def _check_output_flags(args: argparse.Namespace) -> None:
    """A flag the chosen mode would silently ignore is a mistake: say so before any work."""
    if args.sweep:
        given = [flag for name, flag in _SINGLE_RUN_FLAGS if getattr(args, name, None) is not None]
        if args.exact_events:
            given.append("--exact-events")
        if given:
            raise UserError(
                f"{', '.join(given)}: for a single backtest, not a --sweep (a sweep writes --sweep-out and --heatmap)"
            )
    else:
        given = [flag for name, flag in _SWEEP_FLAGS if getattr(args, name, None) is not None]
        if given:
            raise UserError(f"{', '.join(given)}: only with --sweep NAME=SPEC")


def run(args: argparse.Namespace) -> int:
    from ...backtest.engine import run_backtest
    from ...backtest.metrics import format_report, write_trades

    params = params_from_args(args)
    _check_output_flags(args)
    symbols = universe_symbols(args)
    if len(symbols) > 1:
        return run_universe(args, params, symbols)
    if not args.sweep and (getattr(args, "workers", None) is not None or getattr(args, "scheduler", None)):
        raise UserError(
            "--workers/--scheduler: for a --sweep or several symbols (one symbol's replay uses this "
            "machine's cores: --jobs)"
        )
    if symbols:
        args.symbol = symbols[0]
    if args.sweep:
        args.params = params  # the validated strategy flags: the base of the grid
        return run_sweep(args, bars_from_args(args)[0])
    bars, symbol = bars_from_args(args, as_arrays=True)
    if bars.dropped:
        print(f"note: {bars.dropped} rows with missing or inconsistent prices were dropped", file=sys.stderr)
    if args.trades_out is not None and args.trades_out.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--trades-out: {args.trades_out.name}: use a .csv or .json file name")
    result = _run_with_progress(
        lambda progress: run_backtest(
            bars,
            symbol,
            params,
            commission_per_share=args.commission,
            slippage_per_share=args.slippage,
            progress=progress,
            initial_equity=args.initial_equity,
            exact=args.exact_events,
            jobs=_event_jobs(args, len(bars)),
        ),
        len(bars),
    )
    if result.sessions == 0:
        raise UserError(f"--data: no regular-session bars for {symbol} in the requested range")
    print(format_report(result, max_rows=args.max_rows), end="")
    if args.trades_out is not None:
        print(f"trades written to {write_trades(result.trades, args.trades_out)}")
    if args.report is not None or args.png is not None:
        frame = bars.frame()  # the charts draw with pandas: one frame for both
        if args.report is not None:
            from ...backtest.charts import write_html_report

            written = write_html_report(result, frame, args.report, self_contained=args.self_contained)
            print(f"report written to {written}")
        if args.png is not None:
            from ...backtest.charts import write_png_report

            print(f"chart written to {write_png_report(result, frame, args.png)}")
    return 0


def _event_jobs(args: argparse.Namespace, bars: int) -> int:
    """Processes for one symbol's event path: --jobs, else 2 on >= 2 cores from ~150k bars (below, the
    fork and the gathering cost about what the second core saves)."""
    from ...backtest.parallel import default_workers

    jobs = int(getattr(args, "jobs", 0) or 0)
    return jobs if jobs > 0 else default_workers(bars, 150_000)


def _run_with_progress(job: Any, total_bars: int) -> Any:
    """A rich progress bar on a terminal for long runs; silent otherwise (pipes, tests)."""
    from ..progress import progress_bar

    with progress_bar("backtest", "bars", total_bars, minimum=200_000) as progress:
        return job(progress)
