"""Backtest totals and the text report (a rich table), plus trade export (.csv / .json)."""

from __future__ import annotations

import csv
import json
import math
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.ticks import tick_size
from ..errors import UserError
from .texttable import Justify, render
from .trades import Trade

if TYPE_CHECKING:
    from .portfolio import PortfolioResult
    from .results import BacktestResult

TRADING_DAYS = 252


@dataclass(frozen=True)
class Metrics:
    trades: int
    wins: int
    losses: int
    win_rate: float  # 0..1 (0 with no trades)
    gross_pnl: float
    net_pnl: float
    commissions: float
    profit_factor: (
        float  # gross wins / gross losses of net P&L; inf with wins and no losses; nan with no trades
    )
    avg_win: float
    avg_loss: float  # negative (or 0)
    max_drawdown: float  # dollars, >= 0, on the equity after each trade
    max_drawdown_pct: float  # percent of the running peak
    sharpe: float  # annualized (sqrt 252) mean/std of daily returns; nan with < 2 days or no variance
    exposure: float  # 0..1: minutes in a position / regular-session minutes
    initial_equity: float
    final_equity: float
    days: int


def compute_metrics(
    trades: Sequence[Trade],
    daily_pnl: Sequence[float] | None = None,
    *,
    initial_equity: float = 100_000.0,
    session_minutes: int = 0,
) -> Metrics:
    """Totals of a trade list. `daily_pnl` (net, one value per session, zero days included) feeds the
    Sharpe ratio; without it the days are those of the trades' exits. Exposure is the time between
    each trade's entry and exit fills (bar starts) over `session_minutes`."""
    net = np.array([t.net_pnl for t in trades], dtype=np.float64)
    gross = float(sum(t.gross_pnl for t in trades))
    commissions = float(sum(t.commission for t in trades))
    wins = net[net > 0]
    losses = net[net < 0]
    win_sum = float(wins.sum())
    loss_sum = float(-losses.sum())
    if not len(net):
        profit_factor = math.nan
    elif loss_sum == 0:
        profit_factor = math.inf if win_sum > 0 else math.nan
    else:
        profit_factor = win_sum / loss_sum
    equity = initial_equity + np.concatenate(([0.0], np.cumsum(net)))
    peak = np.maximum.accumulate(equity)
    dd = peak - equity
    i = int(np.argmax(dd)) if len(dd) else 0
    max_dd = float(dd[i]) if len(dd) else 0.0
    max_dd_pct = float(dd[i] / peak[i] * 100.0) if len(dd) and peak[i] > 0 else 0.0
    if daily_pnl is None:
        by_day: dict[object, float] = {}
        for t in trades:
            day = t.exit_time.date()
            by_day[day] = by_day.get(day, 0.0) + t.net_pnl
        daily = np.array([by_day[d] for d in sorted(by_day, key=str)], dtype=np.float64)
    else:
        daily = np.asarray(daily_pnl, dtype=np.float64)
    sharpe = math.nan
    if len(daily) >= 2:
        start = initial_equity + np.concatenate(([0.0], np.cumsum(daily)[:-1]))
        returns = daily / start
        sd = float(returns.std(ddof=1))
        if sd > 0:
            sharpe = float(returns.mean() / sd * math.sqrt(TRADING_DAYS))
    held = sum((t.exit_time - t.entry_time).total_seconds() / 60.0 for t in trades)
    return Metrics(
        trades=len(net),
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / len(net) if len(net) else 0.0,
        gross_pnl=gross,
        net_pnl=float(net.sum()),
        commissions=commissions,
        profit_factor=profit_factor,
        avg_win=float(wins.mean()) if len(wins) else 0.0,
        avg_loss=float(losses.mean()) if len(losses) else 0.0,
        max_drawdown=max_dd,
        max_drawdown_pct=max_dd_pct,
        sharpe=sharpe,
        exposure=held / session_minutes if session_minutes else 0.0,
        initial_equity=initial_equity,
        final_equity=float(equity[-1]),
        days=len(daily),
    )


def result_metrics(result: BacktestResult, initial_equity: float | None = None) -> Metrics:
    equity = result.initial_equity if initial_equity is None else initial_equity
    return compute_metrics(
        result.trades,
        result.day_pnl,
        initial_equity=equity,
        session_minutes=result.session_minutes,
    )


def _num(x: float, digits: int = 2) -> str:
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:,.{digits}f}"


def totals_rows(m: Metrics) -> list[tuple[str, str]]:
    return [
        ("trades", str(m.trades)),
        ("wins / losses", f"{m.wins} / {m.losses}"),
        ("win rate", f"{m.win_rate * 100:.1f} %"),
        ("gross P&L", _num(m.gross_pnl)),
        ("commissions", _num(m.commissions)),
        ("net P&L", _num(m.net_pnl)),
        ("profit factor", _num(m.profit_factor)),
        ("average win", _num(m.avg_win)),
        ("average loss", _num(m.avg_loss)),
        ("max drawdown", f"{_num(m.max_drawdown)} ({m.max_drawdown_pct:.2f} %)"),
        ("Sharpe (daily, annualized)", _num(m.sharpe)),
        ("exposure", f"{m.exposure * 100:.1f} %"),
        ("equity", f"{_num(m.initial_equity)} -> {_num(m.final_equity)}"),
        ("sessions", str(m.days)),
    ]


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def price_text(price: float) -> str:
    """A price with at least its tick's decimals (core.ticks.tick_size: 2 from $1 up, 4 below) and as
    many more as it has, up to 4: "619.60", not "619.6"; "620.935" (a bar's open), not "620.94", or
    the row's P&L would not follow from its prices; never "6.2e+05" and never float noise."""
    if math.isnan(price):
        return "n/a"
    decimals = -int(tick_size(price).as_tuple().exponent)
    text = f"{price:.4f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(decimals, "0")
    return f"{whole}.{fraction}"


TRADE_COLUMNS: tuple[tuple[str, Justify], ...] = (
    ("#", "right"),
    ("side", "left"),
    ("qty", "right"),
    ("entry", "left"),
    ("entry px", "right"),
    ("exit", "left"),
    ("exit px", "right"),
    ("reason", "left"),
    ("stop", "right"),
    ("take-profit", "right"),
    ("net P&L", "right"),
)


def trade_row(n: int, t: Trade) -> list[str]:
    pnl = t.net_pnl
    return [
        str(n),
        "long" if t.side == "buy" else "short",
        str(t.qty),
        f"{t.entry_time:%Y-%m-%d %H:%M}",
        price_text(t.entry_price),
        f"{t.exit_time:%Y-%m-%d %H:%M}"
        if t.exit_time.date() != t.entry_time.date()
        else f"{t.exit_time:%H:%M}",
        price_text(t.exit_price),
        t.exit_reason,
        price_text(t.stop_price),
        price_text(t.take_profit_price),
        f"{pnl:,.2f}" if pnl else f"{pnl:.2f}",
    ]


def format_report(result: BacktestResult, *, max_rows: int = 200, width: int = 140) -> str:
    """The trades (the last `max_rows`) and the totals, as text tables (drawn as rich draws them)."""
    m = result_metrics(result)
    shown = result.trades[-max_rows:] if max_rows else []
    first = len(result.trades) - len(shown)
    rows = [trade_row(n, t) for n, t in enumerate(shown, start=first + 1)]
    title = f"{result.symbol}: {len(result.trades)} trades"
    if first:  # a line of its own (in the table it made the side column too wide for the console)
        title += f" (the last {len(shown)}; {first} earlier trades not shown)"
    parts = []
    if result.trades:
        parts.append(render(title, TRADE_COLUMNS, rows, width=width))
    else:
        parts.append(f"{result.symbol}: no trades\n")
    parts.append(
        render(
            "totals", (("metric", "left"), ("value", "right")), totals_rows(m), show_header=False, width=width
        )
    )
    parts.append(
        f"{_count(result.bars_processed, 'bar')}, {_count(result.sessions, 'session')}"
        + (f", {_count(len(result.skipped), 'breakout')} skipped" if result.skipped else "")
        + "\n"
    )
    return "".join(parts)


TRADE_FIELDS = (
    "symbol",
    "side",
    "qty",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "exit_reason",
    "stop_price",
    "take_profit_price",
    "box_high",
    "box_low",
    "box_range",
    "commission",
    "gross_pnl",
    "net_pnl",
)


def trade_record(t: Trade) -> dict[str, object]:
    """One exported row: prices to 4 decimals (the bars' precision), money to the cent, no float noise."""
    return dict(zip(TRADE_FIELDS, _trade_values(t), strict=True))


def _trade_values(t: Trade) -> tuple[object, ...]:
    """A trade's TRADE_FIELDS values, read field by field (dataclasses.asdict deep-copies each value:
    ~10x slower, and a long backtest writes tens of thousands of trades)."""
    return (
        t.symbol,
        t.side,
        t.qty,
        t.entry_time.isoformat(),
        round(float(t.entry_price), 4),
        t.exit_time.isoformat(),
        round(float(t.exit_price), 4),
        t.exit_reason,
        round(float(t.stop_price), 4),
        round(float(t.take_profit_price), 4),
        round(float(t.box_high), 4),
        round(float(t.box_low), 4),
        round(float(t.box_range), 4),
        round(t.commission, 4),
        t.gross_pnl,
        t.net_pnl,
    )


def write_trades(trades: Sequence[Trade], path: str | pathlib.Path) -> pathlib.Path:
    """Write trades as CSV or JSON (by the file's suffix)."""
    p = pathlib.Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise UserError(f"--trades-out: {p.name}: use a .csv or .json file name")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".json":
            rows = [trade_record(t) for t in trades]
            p.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        else:
            with p.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(TRADE_FIELDS)
                writer.writerows(map(_trade_values, trades))
    except OSError as exc:
        raise UserError(f"--trades-out: cannot write {p}: {exc.strerror or exc}") from None
    return p


PORTFOLIO_COLUMNS: tuple[tuple[str, Justify], ...] = (
    ("symbol", "left"),
    ("trades", "right"),
    ("win rate", "right"),
    ("net P&L", "right"),
    ("profit factor", "right"),
    ("max drawdown", "right"),
    ("exposure", "right"),
    ("sessions", "right"),
)


def _portfolio_row(name: str, m: Metrics) -> list[str]:
    return [
        name,
        str(m.trades),
        f"{m.win_rate * 100:.1f} %",
        _num(m.net_pnl),
        _num(m.profit_factor),
        f"{_num(m.max_drawdown)} ({m.max_drawdown_pct:.2f} %)",
        f"{m.exposure * 100:.1f} %",
        str(m.days),
    ]


def format_portfolio(result: PortfolioResult, *, width: int = 140) -> str:
    """A row per symbol and one for the portfolio (every symbol's trades on one account: its equity
    after each exit, its drawdown, its exposure = time with any position open), then the portfolio's
    totals."""
    per_symbol = result.symbol_metrics()
    m = result.metrics()
    rows = [_portfolio_row(s, per_symbol[s]) for s in result.symbols]
    rows.append(_portfolio_row("portfolio", m))
    how = (
        "advanced together (one account: --risk-pct, --max-positions, --max-daily-loss)"
        if result.lockstep
        else "independent"
    )
    title = f"{len(result.symbols)} symbols, {m.trades} trades; symbols {how}"
    parts = [render(title, PORTFOLIO_COLUMNS, rows, width=width)]
    parts.append(
        render(
            "portfolio totals",
            (("metric", "left"), ("value", "right")),
            totals_rows(m),
            show_header=False,
            width=width,
        )
    )
    bars = sum(r.bars_processed for r in result.results.values())
    skipped = sum(len(r.skipped) for r in result.results.values())
    parts.append(
        f"{_count(bars, 'bar')}, {_count(m.days, 'session')}"
        + (f", {_count(skipped, 'breakout')} skipped" if skipped else "")
        + "\n"
    )
    return "".join(parts)
