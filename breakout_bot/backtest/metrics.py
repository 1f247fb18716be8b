"""Backtest totals and the text report (a rich table), plus trade export (.csv / .json)."""

from __future__ import annotations

import csv
import io
import json
import math
import pathlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.ticks import tick_size
from ..errors import UserError
from .trades import Trade

if TYPE_CHECKING:
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
        result.daily["pnl"].tolist(),
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


def format_report(result: BacktestResult, *, max_rows: int = 200, width: int = 140) -> str:
    """The trades (the last `max_rows`) and the totals, as rich tables rendered to text."""
    from rich.console import Console
    from rich.table import Table

    m = result_metrics(result)
    table = Table(title=f"{result.symbol}: {len(result.trades)} trades", title_justify="left")
    for name, justify in (
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
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    shown = result.trades[-max_rows:] if max_rows else []
    first = len(result.trades) - len(shown)
    if first:
        table.add_row("…", f"{first} earlier trades not shown", *[""] * 9)
    for n, t in enumerate(shown, start=first + 1):
        pnl = t.net_pnl
        table.add_row(
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
            f"[green]{pnl:,.2f}[/]" if pnl > 0 else f"[red]{pnl:,.2f}[/]" if pnl < 0 else f"{pnl:.2f}",
        )
    totals = Table(title="totals", title_justify="left", show_header=False)
    totals.add_column("metric")
    totals.add_column("value", justify="right")
    for key, value in totals_rows(m):
        totals.add_row(key, value)
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    if result.trades:
        console.print(table)
    else:
        console.print(f"{result.symbol}: no trades")
    console.print(totals)
    console.print(
        f"{_count(result.bars_processed, 'bar')}, {_count(result.sessions, 'session')}"
        + (f", {_count(len(result.skipped), 'breakout')} skipped" if result.skipped else "")
    )
    return buf.getvalue()


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


_PRICE_FIELDS = (
    "entry_price",
    "exit_price",
    "stop_price",
    "take_profit_price",
    "box_high",
    "box_low",
    "box_range",
)


def trade_record(t: Trade) -> dict[str, object]:
    """One exported row: prices to 4 decimals (the bars' precision), money to the cent, no float noise."""
    row: dict[str, object] = asdict(t)
    row["entry_time"] = t.entry_time.isoformat()
    row["exit_time"] = t.exit_time.isoformat()
    for name in _PRICE_FIELDS:
        row[name] = round(float(getattr(t, name)), 4)
    row["commission"] = round(t.commission, 4)
    row["gross_pnl"] = t.gross_pnl
    row["net_pnl"] = t.net_pnl
    return {k: row[k] for k in TRADE_FIELDS}


def write_trades(trades: Sequence[Trade], path: str | pathlib.Path) -> pathlib.Path:
    """Write trades as CSV or JSON (by the file's suffix)."""
    p = pathlib.Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise UserError(f"--trades-out: {p.name}: use a .csv or .json file name")
    rows = [trade_record(t) for t in trades]
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".json":
            p.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        else:
            with p.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=TRADE_FIELDS)
                writer.writeheader()
                writer.writerows(rows)
    except OSError as exc:
        raise UserError(f"--trades-out: cannot write {p}: {exc.strerror or exc}") from None
    return p
