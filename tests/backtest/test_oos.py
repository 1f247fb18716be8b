"""Out of sample: --train-to and --walk-forward choose on one stretch and report on the next; each
figure is checked against a plain fast_backtest of that stretch alone."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from breakout_bot.backtest import oos
from breakout_bot.backtest.grid import grid, parse_specs
from breakout_bot.backtest.kernel import fast_backtest
from breakout_bot.backtest.sweep_report import fmt_value
from breakout_bot.cli import sweep as sweep_command
from breakout_bot.cli.cluster import add_cluster_arguments
from breakout_bot.core.params import Params
from breakout_bot.errors import UserError
from breakout_bot.market.synthetic import synthetic_bars

SPECS = ["lookback=4:12:4", "min_range=0.1:0.3:0.1"]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return synthetic_bars("OOS", 3, 130, start=dt.date(2024, 1, 2))


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbol", default="OOS")
    parser.add_argument("--commission", type=float, default=0.0)
    parser.add_argument("--slippage", type=float, default=0.0)
    sweep_command.add_sweep_arguments(parser)
    add_cluster_arguments(parser)
    return parser.parse_args(list(argv))


def _net(bars: pd.DataFrame, params: Params, lo: dt.date, hi: dt.date) -> tuple[int, float]:
    days = bars.index.date
    trades = fast_backtest(bars[(days >= lo) & (days <= hi)], "OOS", params, commission_per_share=0.005)
    return len(trades), sum(t.net_pnl for t in trades)


def test_periods_and_walk_forward_windows() -> None:
    month = oos.parse_period("1M", "--walk-forward")
    assert month.after(dt.date(2024, 1, 31)) == dt.date(2024, 2, 29)  # clamped to the month's end
    assert oos.parse_period("2w", "x").after(dt.date(2024, 1, 1)) == dt.date(2024, 1, 15)
    assert oos.parse_period("1Y", "x").after(dt.date(2024, 2, 29)) == dt.date(2025, 2, 28)
    for bad in ("", "6", "M", "0M", "6Q", "-1M"):
        with pytest.raises(UserError, match="not a period"):
            oos.parse_period(bad, "--walk-forward")
    with pytest.raises(UserError, match="TRAIN:TEST"):
        oos.parse_walk_forward("6M")
    with pytest.raises(UserError, match="shorter than one"):
        oos.walk_forward(dt.date(2024, 1, 2), dt.date(2024, 3, 1), *oos.parse_walk_forward("6M:1M"))


@given(
    first=st.dates(dt.date(2020, 1, 1), dt.date(2024, 12, 31)),
    days=st.integers(30, 900),
    train=st.integers(1, 6),
    test=st.integers(1, 3),
    unit=st.sampled_from("DWM"),
)
@example(first=dt.date(2024, 1, 29), days=424, train=1, test=1, unit="M")  # a test start on Feb 28 (clamped)
def test_windows_roll_by_the_test_length_and_tile_the_out_of_sample(
    first: dt.date, days: int, train: int, test: int, unit: str
) -> None:
    last = first + dt.timedelta(days=days)
    train_p, test_p = oos.Period(train * (10 if unit == "D" else 1), unit), oos.Period(test, unit)
    try:
        segments, windows = oos.walk_forward(first, last, train_p, test_p)
    except UserError:
        assert train_p.after(first) > last
        return
    assert windows[0].train_from == first and windows[0].test_from == train_p.after(first)
    for w in windows:
        assert w.train_from <= w.train_to < w.test_from <= w.test_to <= last
        assert w.train_to == w.test_from - dt.timedelta(days=1)
        assert w.index == 0 or w.train_from == max(first, train_p.after(w.test_from, -1))
        assert w.train_first < w.test_first < w.test_stop <= len(segments)
    for a, b in itertools.pairwise(windows):
        assert b.test_from == a.test_to + dt.timedelta(days=1)  # the tests tile the out-of-sample span
    # Test windows are counted from the first one's start (walk_forward: test.after(first_test, i)), so a
    # start clamped to a short month (Feb 28 from the 29th) does not shift the windows after it.
    end = test_p.after(windows[0].test_from, len(windows)) - dt.timedelta(days=1)
    assert windows[-1].test_to == min(last, end)


def test_train_to_chooses_on_the_training_window_and_reports_it_on_the_test(
    bars: pd.DataFrame, tmp_path: Path
) -> None:
    csv = tmp_path / "tt.csv"
    out = io.StringIO()
    args = _args(
        "--sweep", *SPECS, "--train-to", "2024-04-30", "--sweep-out", str(csv), "--commission", "0.005"
    )
    assert sweep_command.run_sweep(args, bars, out=out) == 0
    text = out.getvalue()
    assert "out-of-sample" in text and "in-sample" in text
    frame = pd.read_csv(csv)
    sets = grid(parse_specs(SPECS), Params())
    first, last = bars.index[0].date(), bars.index[-1].date()
    split = dt.date(2024, 4, 30)
    nets = [_net(bars, p, first, split) for p in sets]
    best = int(np.argmax([n for _, n in nets]))
    chosen = frame.iloc[0]  # sorted by in-sample net P&L
    assert (chosen["lookback"], chosen["min_range"]) == (sets[best].lookback, sets[best].min_range_pct)
    assert chosen["net_pnl"] == pytest.approx(nets[best][1], abs=1e-6)
    trades, net = _net(bars, sets[best], split + dt.timedelta(days=1), last)
    assert chosen["oos_trades"] == trades and chosen["oos_net_pnl"] == pytest.approx(net, abs=1e-6)
    assert f"{net:,.2f}" in text.split("chosen on the training window")[1]
    with pytest.raises(UserError, match="both the training and the test"):
        sweep_command.run_sweep(_args("--sweep", *SPECS, "--train-to", "2030-01-01"), bars, out=io.StringIO())


def test_walk_forward_rechooses_each_window_and_stitches_the_tests(
    bars: pd.DataFrame, tmp_path: Path
) -> None:
    csv = tmp_path / "wf.csv"
    heat = tmp_path / "wf.html"
    equity = tmp_path / "wf-equity.csv"
    out = io.StringIO()
    args = _args(
        "--sweep", *SPECS, "--walk-forward", "2M:1M", "--sweep-out", str(csv), "--heatmap", str(heat),
        "--oos-equity", str(equity), "--commission", "0.005",
    )  # fmt: skip
    assert sweep_command.run_sweep(args, bars, out=out) == 0
    text = out.getvalue()
    assert "walk-forward" in text and "out-of-sample, stitched" in text
    frame = pd.read_csv(csv, parse_dates=["train_from", "train_to", "test_from", "test_to"])
    sets = grid(parse_specs(SPECS), Params())
    total_trades, total_net = 0, 0.0
    windows = frame.groupby("window", sort=True)
    stitched_equity = pd.read_csv(equity)
    assert (
        stitched_equity["cum_net_pnl"]
        .diff()
        .dropna()
        .round(6)
        .eq(stitched_equity["net_pnl"][1:].round(6))
        .all()
    )
    assert windows.ngroups >= 3
    for _, rows in windows:
        w = rows.iloc[0]
        train = [_net(bars, p, w["train_from"].date(), w["train_to"].date()) for p in sets]
        best = int(np.argmax([n for _, n in train]))
        assert rows["chosen"].tolist() == [i == best for i in range(len(sets))]
        trades, net = _net(bars, sets[best], w["test_from"].date(), w["test_to"].date())
        assert rows.iloc[best]["oos_net_pnl"] == pytest.approx(net, abs=1e-6)
        days = stitched_equity[stitched_equity["window"] == w["window"]]
        test_days = sorted({d for d in bars.index.date if w["test_from"].date() <= d <= w["test_to"].date()})
        assert [dt.date.fromisoformat(d) for d in days["date"]] == test_days  # every test session, in order
        assert days["net_pnl"].sum() == pytest.approx(net, abs=1e-6)
        label = " ".join(f"{s.name}={fmt_value(getattr(sets[best], s.field))}" for s in parse_specs(SPECS))
        assert set(days["chosen"]) == {label}
        total_trades += trades
        total_net += net
    stitched = text.split("out-of-sample, stitched")[1].splitlines()
    row = next(line for line in stitched if line.strip().startswith("out-of-sample"))
    assert f" {total_trades} " in row and f"{total_net:,.2f}" in row
    assert stitched_equity["cum_net_pnl"].iloc[-1] == pytest.approx(total_net, abs=1e-6)
    with pytest.raises(UserError, match="only with --walk-forward"):
        sweep_command.run_sweep(
            _args("--sweep", *SPECS, "--oos-equity", str(equity)), bars, out=io.StringIO()
        )
    page = heat.read_text()
    assert "out-of-sample net P&amp;L" in page or "out-of-sample net P&L" in page
