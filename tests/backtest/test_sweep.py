"""--sweep: spec parsing (UserError one-liners), the grid, the results table/CSV/heatmap, and that
every row is what a single fast_backtest of those parameters gives."""

from __future__ import annotations

import argparse
import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakout_bot.backtest import grid as gr
from breakout_bot.backtest import sweep as sw
from breakout_bot.backtest.kernel import fast_backtest, prepare_bars
from breakout_bot.backtest.metrics import compute_metrics
from breakout_bot.backtest.sweep_report import results_frame
from breakout_bot.cli import sweep as sweep_command
from breakout_bot.cli.cluster import add_cluster_arguments
from breakout_bot.core.params import Params
from breakout_bot.errors import UserError


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    from breakout_bot.market.synthetic import synthetic_bars

    return synthetic_bars("SWP", 4, 12, start=dt.date(2024, 5, 1))


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbol", default="SWP")
    parser.add_argument("--lookback", type=int, default=10)
    parser.add_argument("--min-range-pct", type=float, default=0.3)
    parser.add_argument("--commission", type=float, default=0.0)
    parser.add_argument("--slippage", type=float, default=0.0)
    parser.add_argument("--sweep", action="store_true")  # the backtest command's placeholder: replaced
    sweep_command.add_sweep_arguments(parser)
    add_cluster_arguments(parser)
    return parser.parse_args(list(argv))


def test_specs() -> None:
    assert gr.parse_spec("lookback=5:8").values == (5, 6, 7, 8)
    spec = gr.parse_spec("min_range=0.1:0.5:0.05")
    assert spec.field == "min_range_pct" and len(spec.values) == 9
    assert spec.values[0] == 0.1 and spec.values[-1] == 0.5 and spec.values[2] == 0.2  # exact decimals
    assert gr.parse_spec("qty=100").values == (100,)
    assert gr.parse_spec("flatten=5,10").field == "flatten_minutes"
    assert gr.parse_spec("no_entry_minutes=10:30:10").values == (10, 20, 30)
    assert gr.parse_spec("max-trades=0:2").values == (0, 1, 2)
    assert gr.parse_spec("min_range_pct=1:2").values == (1.0, 2.0)


@pytest.mark.parametrize(
    "spec",
    [
        "lookback",
        "lookback=",
        "foo=1:2",
        "lookback=a:b",
        "lookback=5:2",
        "lookback=1:5:0",
        "lookback=1.5",
        "lookback=0:3",
        "min_range=0.1:0.5",
        "qty=1:2:3:4",
        "min_range=nan",
    ],
)
def test_bad_specs_are_one_line_user_errors(spec: str) -> None:
    with pytest.raises(UserError) as info:
        gr.parse_specs([spec])
    message = str(info.value)
    assert "\n" not in message and message.startswith("--sweep")


def test_duplicate_and_huge_grids_are_refused() -> None:
    with pytest.raises(UserError, match="twice"):
        gr.parse_specs(["min_range=0.1", "min_range_pct=0.2"])
    with pytest.raises(UserError, match="too many"):
        gr.parse_specs(["lookback=1:1000", "qty=1:2000"])


def test_grid_order_and_base() -> None:
    specs = gr.parse_specs(["lookback=2:3", "min_range=0.1,0.2"])
    sets = gr.grid(specs, Params(qty=7, max_trades=2))
    assert [(p.lookback, p.min_range_pct) for p in sets] == [(2, 0.1), (2, 0.2), (3, 0.1), (3, 0.2)]
    assert all(p.qty == 7 and p.max_trades == 2 for p in sets)


def test_rows_are_single_runs(bars: pd.DataFrame) -> None:
    specs = gr.parse_specs(["lookback=3:12:3", "min_range=0.1:0.4:0.15", "max_trades=0,2"])
    sets = gr.grid(specs, Params())
    prepared = prepare_bars(bars)
    stats = sw.sweep(prepared, sets, commission_per_share=0.005, slippage_per_share=0.01, jobs=1)
    assert stats.shape == (len(sets), 6)
    result = sw.run_grid({"SWP": prepared}, sets, commission_per_share=0.005, slippage_per_share=0.01)
    frame = results_frame(specs, sets, sw.window_stats(result, 0, 1))
    assert len(frame) == len(sets) == 4 * 3 * 2
    for row, params in zip(frame.itertuples(), sets, strict=True):
        trades = fast_backtest(prepared, "SWP", params, commission_per_share=0.005, slippage_per_share=0.01)
        assert row.trades == len(trades)
        assert row.net_pnl == pytest.approx(sum(t.net_pnl for t in trades), abs=1e-6)
        metrics = compute_metrics(trades)
        assert row.max_drawdown == pytest.approx(metrics.max_drawdown, abs=1e-6)
    # two processes give the same numbers as one
    both = sw.sweep(prepared, sets, commission_per_share=0.005, slippage_per_share=0.01, jobs=2)
    assert np.array_equal(both, stats)


def test_run_sweep_table_csv_and_heatmaps(bars: pd.DataFrame, tmp_path: Path) -> None:
    csv = tmp_path / "out" / "results.csv"
    html = tmp_path / "heat.html"
    args = _args(
        "--sweep", "lookback=4:9", "min_range=0.1:0.3:0.1", "--sweep-out", str(csv), "--heatmap", str(html),
        "--commission", "0.005", "--sweep-top", "5",
    )  # fmt: skip
    out = io.StringIO()
    assert sweep_command.run_sweep(args, bars, out=out) == 0
    text = out.getvalue()
    assert "18 combinations" in text and "net P&L" in text and "profit factor" in text
    table = text.split("-----")[-1].strip().splitlines()[1:]
    assert [line.startswith(("results:", "heatmap:")) for line in table] == [False] * 5 + [True] * 2
    frame = pd.read_csv(csv)
    assert len(frame) == 18
    assert list(frame.columns[:2]) == ["lookback", "min_range"]
    assert {"trades", "win_rate", "net_pnl", "profit_factor", "max_drawdown"} <= set(frame.columns)
    assert frame["net_pnl"].is_monotonic_decreasing
    page = html.read_text()
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js inlined: works offline
    assert 'src="http' not in page
    png = tmp_path / "heat.png"
    args = _args("--sweep", "lookback=4:6", "--heatmap", str(png))  # one swept parameter: one row
    assert sweep_command.run_sweep(args, bars, out=io.StringIO()) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_sweep_errors(bars: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="heatmap"):
        sweep_command.run_sweep(_args("--sweep", "lookback=4:5", "--heatmap", str(tmp_path / "x.svg")), bars)
    with pytest.raises(UserError, match="unknown parameter"):
        sweep_command.run_sweep(_args("--sweep", "speed=4:5"), bars)
    empty = bars.iloc[:0]
    with pytest.raises(UserError, match="no regular-session bars"):
        sweep_command.run_sweep(_args("--sweep", "lookback=4:5"), empty, out=io.StringIO())


def test_the_backtest_command_delegates(tmp_path: Path) -> None:
    from breakout_bot.cli import main as cli

    csv = tmp_path / "r.csv"
    code = cli.main(["backtest", "--days", "3", "--sweep", "lookback=5:6", "--sweep-out", str(csv)])
    assert code == 0
    assert len(pd.read_csv(csv)) == 2


# ------------------------------------------------------------------ segments, years, symbols, executors


@pytest.fixture(scope="module")
def two_years() -> dict[str, pd.DataFrame]:
    """Two symbols over a year boundary (the sweep cuts its tasks at calendar years)."""
    from breakout_bot.market.synthetic import synthetic_bars

    return {s: synthetic_bars(s, 7, 70, start=dt.date(2023, 11, 1)) for s in ("AAA", "BBB")}


def _trades_between(bars: pd.DataFrame, params: Params, lo: dt.date | None, hi: dt.date | None) -> list:
    days = bars.index.date
    keep = np.ones(len(bars), dtype=bool)
    if lo is not None:
        keep &= days >= lo
    if hi is not None:
        keep &= days <= hi
    return fast_backtest(bars[keep], "X", params, commission_per_share=0.005, slippage_per_share=0.01)


@settings(max_examples=10)
@given(cuts=st.lists(st.integers(0, 69), max_size=5, unique=True))
def test_segments_fold_into_the_whole_run(two_years: dict[str, pd.DataFrame], cuts: list[int]) -> None:
    """The timeline cut anywhere: each segment's figures are that stretch's own trades, and the
    segments combine (exactly) into the whole run's figures, drawdown included."""
    bars = two_years["AAA"]
    prepared = prepare_bars(bars)
    days = sorted(set(bars.index.date))
    edges = sorted({days[c] for c in cuts})
    segments = sw.Segments.at(edges)
    params = [Params(lookback=8), Params(lookback=12, min_range_pct=0.2)]
    cut = sw.run_grid(
        {"AAA": prepared}, params, segments=segments, commission_per_share=0.005, slippage_per_share=0.01
    )
    whole = sw.run_grid({"AAA": prepared}, params, commission_per_share=0.005, slippage_per_share=0.01)
    assert np.array_equal(cut.fold(0, len(segments))["AAA"], whole.summaries["AAA"][:, 0, :])
    bounds = [None, *edges, None]
    for g in range(len(segments)):
        stats = sw.window_stats(cut, g, g + 1)
        lo = bounds[g]
        hi = None if bounds[g + 1] is None else bounds[g + 1] - dt.timedelta(days=1)
        for i, p in enumerate(params):
            trades = _trades_between(bars, p, lo, hi)
            assert stats["trades"][i] == len(trades)
            assert stats["net_pnl"][i] == pytest.approx(sum(t.net_pnl for t in trades), abs=1e-6)
    assert np.array_equal(cut.daily.sum(axis=1), whole.summaries["AAA"][:, 0, 4])  # session nets add up


def test_a_portfolio_grid_adds_its_symbols(two_years: dict[str, pd.DataFrame]) -> None:
    prepared = {s: prepare_bars(b) for s, b in two_years.items()}
    params = [Params(lookback=lb) for lb in (6, 10, 14)]
    both = sw.run_grid(prepared, params, commission_per_share=0.005, slippage_per_share=0.01)
    stats = sw.window_stats(both, 0, 1)
    for i, p in enumerate(params):
        per_symbol = [_trades_between(b, p, None, None) for b in two_years.values()]
        assert stats["trades"][i] == sum(map(len, per_symbol))
        assert stats["net_pnl"][i] == pytest.approx(sum(t.net_pnl for ts in per_symbol for t in ts), abs=1e-6)
        for symbol, trades in zip(two_years, per_symbol, strict=True):
            folded = both.fold(0, 1)[symbol][i]
            assert folded[0] == len(trades)
            assert folded[7] / 1e8 == pytest.approx(compute_metrics(trades).max_drawdown, abs=1e-6)
    # the portfolio's drawdown is taken on its equity at each session close
    equity = np.cumsum(both.daily, axis=1)
    assert np.array_equal(
        stats["max_drawdown"] * 1e8,
        np.max(np.maximum(np.maximum.accumulate(equity, axis=1), 0) - equity, axis=1),
    )


def test_every_executor_gives_the_same_csv_byte_for_byte(
    two_years: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    outputs = []
    for jobs in ("1", "2"):
        csv = tmp_path / f"jobs{jobs}.csv"
        args = _args(
            "--sweep", "lookback=4:12:2", "min_range=0.1:0.3:0.1", "--sweep-out", str(csv),
            "--sweep-jobs", jobs, "--commission", "0.005", "--slippage", "0.01", "--train-to", "2023-12-29",
        )  # fmt: skip
        assert sweep_command.run_sweep(args, two_years, out=io.StringIO()) == 0
        outputs.append(csv.read_bytes())
    assert outputs[0] == outputs[1] and len(outputs[0]) > 1000
