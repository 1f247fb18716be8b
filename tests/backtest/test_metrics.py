"""Backtest totals on a hand-made trade list, the text report and the trade files."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from breakout_bot.backtest.metrics import compute_metrics, format_report, write_trades
from breakout_bot.backtest.results import BacktestResult
from breakout_bot.backtest.trades import Trade
from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.core.params import Params
from breakout_bot.errors import UserError


def trade(
    day: int,
    side: str,
    entry: float,
    exit_: float,
    qty: int = 100,
    minutes: int = 30,
    commission: float = 1.0,
) -> Trade:
    t0 = dt.datetime(2024, 3, day, 10, 0, tzinfo=NY)
    return Trade(
        symbol="X",
        side=side,  # type: ignore[arg-type]
        qty=qty,
        entry_time=t0,
        entry_price=entry,
        exit_time=t0 + dt.timedelta(minutes=minutes),
        exit_price=exit_,
        exit_reason="take_profit" if (exit_ - entry) * (1 if side == "buy" else -1) > 0 else "stop_loss",
        stop_price=entry - 1,
        take_profit_price=entry + 1,
        box_high=entry,
        box_low=entry - 0.5,
        box_range=0.5,
        commission=commission,
    )


TRADES = [
    trade(4, "buy", 100.0, 101.0),  # +100 gross, +99 net
    trade(4, "sell", 50.0, 51.0),  # -100 gross, -101 net
    trade(5, "buy", 10.0, 13.0),  # +300 gross, +299 net
    trade(6, "sell", 20.0, 22.0),  # -200 gross, -201 net
]


def test_metrics_by_hand() -> None:
    m = compute_metrics(TRADES, [-2.0, 299.0, -201.0], initial_equity=10_000.0, session_minutes=3 * 390)
    assert (m.trades, m.wins, m.losses) == (4, 2, 2)
    assert m.win_rate == 0.5
    assert m.gross_pnl == pytest.approx(100.0)
    assert m.commissions == pytest.approx(4.0)
    assert m.net_pnl == pytest.approx(96.0)
    assert m.profit_factor == pytest.approx(398.0 / 302.0)
    assert m.avg_win == pytest.approx(199.0)
    assert m.avg_loss == pytest.approx(-151.0)
    # Equity after each trade: 10000, 10099, 9998, 10297, 10096 -> worst drawdown 201 from 10297.
    assert m.max_drawdown == pytest.approx(201.0)
    assert m.max_drawdown_pct == pytest.approx(201.0 / 10_297.0 * 100)
    r = [-2.0 / 10_000, 299.0 / 9_998, -201.0 / 10_297]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert m.sharpe == pytest.approx(mean / sd * math.sqrt(252))
    assert m.exposure == pytest.approx(120 / 1170)
    assert m.final_equity == pytest.approx(10_096.0)


def test_metrics_edge_cases() -> None:
    empty = compute_metrics([])
    assert empty.trades == 0 and math.isnan(empty.profit_factor) and math.isnan(empty.sharpe)
    assert empty.max_drawdown == 0.0 and empty.win_rate == 0.0
    winners = compute_metrics([trade(4, "buy", 10, 11, commission=0.0)])
    assert winners.profit_factor == math.inf and winners.max_drawdown == 0.0


def _result(trades: list[Trade]) -> BacktestResult:
    return BacktestResult(
        symbol="X",
        params=Params(),
        trades=trades,
        fills=[],
        days=[dt.date(2024, 3, d) for d in (4, 5, 6)],
        day_pnl=[-2.0, 299.0, -201.0],
        bars_processed=1170,
        sessions=3,
        skipped=[],
        session_minutes=1170,
    )


def test_format_report_has_trades_and_totals() -> None:
    text = format_report(_result(TRADES))
    for needle in (
        "X: 4 trades",
        "net P&L",
        "96.00",
        "profit factor",
        "max drawdown",
        "Sharpe",
        "exposure",
        "take_profit",
    ):
        assert needle in text
    assert "no trades" in format_report(_result([]))
    assert "earlier trades not shown" in format_report(_result(TRADES), max_rows=2)


def test_format_report_prices_keep_their_tick_decimals() -> None:
    # Order prices print with their tick's decimals: "619.60", not "619.6"; cents kept at $600k
    # (":g" printed 623330 for 623,329.99); four decimals below $1.
    high = replace(trade(4, "buy", 623_329.99, 623_330.5), stop_price=619.6, take_profit_price=623_330.01)
    penny = replace(trade(5, "sell", 0.5123, 0.4), stop_price=0.55, take_profit_price=float("nan"))
    text = format_report(_result([high, penny]), width=200)
    for needle in ("623329.99", "623330.50", "619.60", "623330.01", "0.5123", "0.4000", "0.5500", "n/a"):
        assert needle in text
    assert "619.6 " not in text and "e+05" not in text
    one = replace(_result(TRADES[:1]), sessions=1, bars_processed=390, skipped=["09:45 buy skipped"])
    assert "390 bars, 1 session, 1 breakout skipped\n" in format_report(one)


def test_write_trades_csv_and_json(tmp_path: Path) -> None:
    write_trades(TRADES, tmp_path / "t.csv")
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert len(rows) == 4 and rows[0]["side"] == "buy" and float(rows[0]["net_pnl"]) == pytest.approx(99.0)
    assert rows[0]["entry_time"] == "2024-03-04T10:00:00-05:00"
    write_trades(TRADES, tmp_path / "sub" / "t.json")
    data = json.loads((tmp_path / "sub" / "t.json").read_text())
    assert data[3]["exit_reason"] == "stop_loss" and data[3]["gross_pnl"] == pytest.approx(-200.0)
    with pytest.raises(UserError):
        write_trades(TRADES, tmp_path / "t.txt")
