"""Backtest charts: an interactive, self-contained plotly HTML page and a matplotlib PNG.

Both show the price with each trade's entry/exit and bracket levels, the equity curve after each
trade and the drawdown, on a session axis (bars by their number: no room for nights, weekends or the
years between two sessions), with the net P&L in the title. The HTML page also has the headline
figures and the trade table; it loads plotly.js from plotly's CDN unless asked to be self-contained.
The PNG needs no browser (matplotlib's Agg backend).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import pathlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core.model import NEW_YORK
from ..errors import UserError
from .metrics import price_text

if TYPE_CHECKING:
    from .portfolio import PortfolioResult
    from .results import BacktestResult

CANDLE_LIMIT = 30_000  # more bars than this: a close line instead of candles (keeps the page light)


def _box_price(value: float) -> str:
    """A box level as the bars gave it (up to 4 decimals, no float noise, no exponent)."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _equity(result: BacktestResult) -> tuple[list[dt.datetime], np.ndarray, np.ndarray]:
    """Equity after each trade (starting point: the first bar), and its drawdown in dollars."""
    times: list[dt.datetime] = []
    values = [result.initial_equity]
    for t in result.trades:
        times.append(t.exit_time)
        values.append(values[-1] + t.net_pnl)
    eq = np.array(values, dtype=np.float64)
    dd = eq - np.maximum.accumulate(eq)
    return times, eq, dd


def _session_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars within 09:30-16:00 New York (a light filter: charts only)."""
    idx = pd.DatetimeIndex(bars.index)
    idx = idx.tz_localize(NEW_YORK) if idx.tz is None else idx.tz_convert(NEW_YORK)
    frame = bars.set_axis(idx)
    minutes = idx.hour * 60 + idx.minute
    return frame[(minutes >= 570) & (minutes < 960)]


class SessionAxis:
    """Bars placed by their number, so nights, weekends and the years between two sessions take no
    room (both charts use it); an instant maps to the first bar at or after it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.stamps = pd.DatetimeIndex(frame.index)
        self.positions = np.arange(len(frame), dtype=np.float64)

    def where(self, ts: dt.datetime) -> float:
        i = int(self.stamps.searchsorted(ts))
        return float(min(i, max(len(self.stamps) - 1, 0)))

    def day_starts(self, most: int = 12) -> tuple[list[float], list[str]]:
        """Tick positions and labels: the first bar of each session (at most `most` labels)."""
        if not len(self.stamps):
            return [], []
        days = pd.Series(self.stamps.date, index=np.arange(len(self.stamps)))
        firsts = days[~days.duplicated()]
        step = max(1, -(-len(firsts) // most))
        return [float(i) for i in firsts.index[::step]], [str(d) for d in firsts.to_numpy()[::step]]

    def all_day_starts(self) -> list[float]:
        days = pd.Series(self.stamps.date, index=np.arange(len(self.stamps)))
        return [float(i) for i in days[~days.duplicated()].index[1:]]


def headline(result: BacktestResult) -> list[tuple[str, str]]:
    """The figures a reader looks for first."""
    from .metrics import result_metrics

    m = result_metrics(result)

    def num(x: float) -> str:
        return "-" if math.isnan(x) else "inf" if math.isinf(x) else f"{x:,.2f}"

    return [
        ("net P&L", f"{m.net_pnl:+,.2f}"),
        ("trades", str(m.trades)),
        ("win rate", f"{m.win_rate * 100:.1f} %"),
        ("profit factor", num(m.profit_factor)),
        ("max drawdown", f"{m.max_drawdown:,.2f} ({m.max_drawdown_pct:.2f} %)"),
        ("Sharpe", num(m.sharpe)),
        ("sessions", str(result.sessions)),
    ]


def _period(axis: SessionAxis) -> str:
    if not len(axis.stamps):
        return ""
    first, last = axis.stamps[0].date(), axis.stamps[-1].date()
    return str(first) if first == last else f"{first} to {last}"


def write_html_report(
    result: BacktestResult,
    bars: pd.DataFrame,
    path: str | pathlib.Path,
    *,
    self_contained: bool = False,
) -> pathlib.Path:
    """An HTML page: title and headline figures, the chart (price with entries, exits and bracket
    levels; equity; drawdown) on a session axis, and the trade table. plotly.js comes from plotly's CDN
    (the page is ~100 KB; the figures and the table show without it); `self_contained` inlines it
    (~4.5 MB) for a page that opens offline."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    p = pathlib.Path(path)
    frame = _session_bars(bars)
    axis = SessionAxis(frame)
    when = [f"{t:%Y-%m-%d %H:%M}" for t in axis.stamps]
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.6, 0.25, 0.15],
        vertical_spacing=0.03,
        subplot_titles=(f"{result.symbol}", "equity", "drawdown"),
    )
    if len(frame) <= CANDLE_LIMIT:
        fig.add_trace(
            go.Candlestick(
                x=axis.positions,
                open=frame["open"],
                high=frame["high"],
                low=frame["low"],
                close=frame["close"],
                text=when,
                hoverinfo="text+y",
                name="price",
            ),
            row=1,
            col=1,
        )
    else:
        fig.add_trace(
            go.Scattergl(x=axis.positions, y=frame["close"], text=when, name="close", mode="lines"),
            row=1,
            col=1,
        )
    trades = result.trades
    for side, symbol, color, name in (
        ("buy", "triangle-up", "green", "long entry"),
        ("sell", "triangle-down", "red", "short entry"),
    ):
        sel = [t for t in trades if t.side == side]
        if sel:
            fig.add_trace(
                go.Scatter(
                    x=[axis.where(t.entry_time) for t in sel],
                    y=[t.entry_price for t in sel],
                    mode="markers",
                    marker=dict(symbol=symbol, size=11, color=color),
                    name=name,
                    text=[
                        f"{t.entry_time:%Y-%m-%d %H:%M} {name} {price_text(t.entry_price)}; box "
                        f"{_box_price(t.box_low)}-{_box_price(t.box_high)}, range {_box_price(t.box_range)}"
                        for t in sel
                    ],
                    hoverinfo="text",
                ),
                row=1,
                col=1,
            )
    if trades:
        fig.add_trace(
            go.Scatter(
                x=[axis.where(t.exit_time) for t in trades],
                y=[t.exit_price for t in trades],
                mode="markers",
                marker=dict(symbol="x", size=10, color="black"),
                name="exit",
                text=[
                    f"{t.exit_time:%Y-%m-%d %H:%M} {t.exit_reason} {price_text(t.exit_price)}: {t.net_pnl:+,.2f}"
                    for t in trades
                ],
                hoverinfo="text",
            ),
            row=1,
            col=1,
        )
        for attr, color, name in (
            ("stop_price", "red", "stop"),
            ("take_profit_price", "green", "take-profit"),
        ):
            xs: list[float | None] = []
            ys: list[float | None] = []
            for t in trades:
                xs += [axis.where(t.entry_time), axis.where(t.exit_time), None]
                ys += [getattr(t, attr), getattr(t, attr), None]
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line=dict(color=color, dash="dot", width=1),
                    name=name,
                    hoverinfo="skip",
                ),
                row=1,
                col=1,
            )
    times, eq, dd = _equity(result)
    x_eq = [0.0, *[axis.where(t) for t in times]]
    fig.add_trace(go.Scatter(x=x_eq, y=eq, mode="lines", line_shape="hv", name="equity"), row=2, col=1)
    fig.add_trace(
        go.Scatter(x=x_eq, y=dd, mode="lines", line_shape="hv", fill="tozeroy", name="drawdown"), row=3, col=1
    )
    m = dict(headline(result))
    title = f"{result.symbol} backtest {_period(axis)}: net P&L {m['net P&L']}, {m['trades']} trades"
    ticks, labels = axis.day_starts()
    # The page's <h1> carries the title; the chart starts right below it.
    fig.update_layout(height=900, margin=dict(t=40), xaxis_rangeslider_visible=False, hovermode="closest")
    for row in (1, 2, 3):
        fig.update_xaxes(tickvals=ticks, ticktext=labels, row=row, col=1)
    for x in axis.all_day_starts():  # a thin line where one session ends and the next begins
        fig.add_vline(x=x - 0.5, line=dict(color="#ccc", width=1))
    plot = fig.to_html(full_html=False, include_plotlyjs=True if self_contained else "cdn")
    page = _page(result, title, plot)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--report: cannot write {p}: {exc.strerror or exc}") from None
    return p


TRADE_TABLE_LIMIT = 1000


def _page(result: BacktestResult, title: str, plot: str) -> str:
    """The whole page: <title>, the headline figures, the chart, the trades."""
    esc = html.escape
    figures = "".join(
        f'<div class="figure"><div class="value">{esc(v)}</div><div class="name">{esc(k)}</div></div>'
        for k, v in headline(result)
    )
    shown = result.trades[:TRADE_TABLE_LIMIT]
    rows = []
    for n, t in enumerate(shown, start=1):
        pnl = t.net_pnl
        cls = "win" if pnl > 0 else "loss" if pnl < 0 else ""
        cells = (
            str(n),
            "long" if t.side == "buy" else "short",
            str(t.qty),
            f"{t.entry_time:%Y-%m-%d %H:%M}",
            price_text(t.entry_price),
            f"{t.exit_time:%Y-%m-%d %H:%M}",
            price_text(t.exit_price),
            t.exit_reason.replace("_", " "),
            price_text(t.stop_price),
            price_text(t.take_profit_price),
            f"{pnl:+,.2f}",
        )
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    more = (
        f"<p>{len(result.trades) - len(shown):,} more trades not shown (--trades-out writes them all).</p>"
        if len(result.trades) > len(shown)
        else ""
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "#",
            "side",
            "qty",
            "entry",
            "entry px",
            "exit",
            "exit px",
            "reason",
            "stop",
            "take-profit",
            "net P&amp;L",
        )
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"
    return _TEMPLATE.format(
        title=esc(title),
        figures=figures,
        plot=plot,
        table=table if result.trades else "<p>No trades.</p>",
    )


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; }}
.figures {{ display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }}
.figure {{ border: 1px solid #ddd; border-radius: 6px; padding: 0.5em 1em; min-width: 7em; }}
.figure .value {{ font-size: 1.3em; font-weight: 600; font-variant-numeric: tabular-nums; }}
.figure .name {{ color: #666; font-size: 0.85em; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.9em; }}
th, td {{ padding: 0.2em 0.7em; border-bottom: 1px solid #eee; text-align: right; }}
th:nth-child(2), td:nth-child(2), th:nth-child(8), td:nth-child(8) {{ text-align: left; }}
tr.win td:last-child {{ color: #1a7f37; }}
tr.loss td:last-child {{ color: #c62828; }}
</style>
</head>
<body>
<h1>{title}</h1>
<div class="figures">{figures}</div>
{plot}
<h2>Trades</h2>
{table}
</body>
</html>
"""


def write_png_report(result: BacktestResult, bars: pd.DataFrame, path: str | pathlib.Path) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = pathlib.Path(path)
    frame = _session_bars(bars)
    axis = SessionAxis(frame)  # bars by number: nights and weekends take no room
    where = axis.where

    fig, (ax1, ax2, ax3) = plt.subplots(
        3, 1, figsize=(14, 9), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 0.8]}
    )
    ax1.plot(axis.positions, frame["close"].to_numpy(), lw=0.7, color="#555", label="close")
    trades = result.trades
    for t in trades:
        x0, x1 = where(t.entry_time), where(t.exit_time)
        ax1.hlines([t.stop_price], x0, x1, colors="red", linestyles="dotted", lw=0.8)
        ax1.hlines([t.take_profit_price], x0, x1, colors="green", linestyles="dotted", lw=0.8)
    marks = (
        ([t for t in trades if t.side == "buy"], "entry", "^", "green", 40, "long entry"),
        ([t for t in trades if t.side == "sell"], "entry", "v", "red", 40, "short entry"),
        (trades, "exit", "x", "black", 30, "exit"),
    )
    for group, end, marker, color, size, label in marks:
        if group:
            ax1.scatter(
                [where(getattr(t, f"{end}_time")) for t in group],
                [getattr(t, f"{end}_price") for t in group],
                marker=marker,
                color=color,
                s=size,
                label=label,
                zorder=3,
            )
    m = dict(headline(result))
    ax1.set_title(
        f"{result.symbol} {_period(axis)}: net P&L {m['net P&L']}, {m['trades']} trades, "
        f"win rate {m['win rate']}, max drawdown {m['max drawdown']}"
    )
    for x in axis.all_day_starts():
        for ax in (ax1, ax2, ax3):
            ax.axvline(x - 0.5, color="#ddd", lw=0.6, zorder=0)
    ax1.legend(loc="upper left", fontsize=8)
    times, eq, dd = _equity(result)
    xe = [0.0, *[where(t) for t in times]]
    ax2.step(xe, eq, where="post", color="tab:blue")
    ax2.set_ylabel("equity")
    ax3.fill_between(xe, dd, 0, step="post", color="tab:red", alpha=0.4)
    ax3.set_ylabel("drawdown")
    if len(frame):
        ticks, labels = axis.day_starts()
        ax3.set_xticks(ticks, labels, rotation=30, fontsize=8)
    return save_png(fig, p)


def save_png(fig: Any, path: pathlib.Path) -> pathlib.Path:
    """Write a matplotlib figure as `--png` does (one line if the path is unwritable) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(str(path), format="png", dpi=100)
    except OSError as exc:
        raise UserError(f"--png: cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return path


def _portfolio_curves(result: PortfolioResult) -> tuple[list[dt.datetime], np.ndarray, np.ndarray]:
    """The account's equity after each exit (every symbol, in time order) and its drawdown."""
    order = {s: i for i, s in enumerate(result.symbols)}
    trades = sorted(result.trades, key=lambda t: (t.exit_time, order[t.symbol]))
    times = [t.exit_time for t in trades]
    eq = result.initial_equity + np.concatenate(([0.0], np.cumsum([t.net_pnl for t in trades])))
    return times, eq, eq - np.maximum.accumulate(eq)


def write_portfolio_html(result: PortfolioResult, path: str | pathlib.Path) -> pathlib.Path:
    """Several symbols: the account's equity and drawdown, and each symbol's cumulative net P&L
    (self-contained plotly page)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    p = pathlib.Path(path)
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.45, 0.2, 0.35],
        vertical_spacing=0.04,
        subplot_titles=("portfolio equity", "drawdown", "net P&L by symbol"),
    )
    times, eq, dd = _portfolio_curves(result)
    first = min((t.entry_time for t in result.trades), default=None)
    x = [first, *times]
    fig.add_trace(go.Scatter(x=x, y=eq, mode="lines", line_shape="hv", name="equity"), row=1, col=1)
    fig.add_trace(
        go.Scatter(x=x, y=dd, mode="lines", line_shape="hv", fill="tozeroy", name="drawdown"), row=2, col=1
    )
    for symbol in result.symbols:
        trades = result.results[symbol].trades
        fig.add_trace(
            go.Scatter(
                x=[t.exit_time for t in trades],
                y=np.cumsum([t.net_pnl for t in trades]),
                mode="lines",
                line_shape="hv",
                name=symbol,
            ),
            row=3,
            col=1,
        )
    fig.update_layout(
        height=900, title=f"breakout-bot backtest: {len(result.symbols)} symbols, {len(result.trades)} trades"
    )
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.write_html(str(p), include_plotlyjs=True, full_html=True)
    except OSError as exc:
        raise UserError(f"--report: cannot write {p}: {exc.strerror or exc}") from None
    return p


def write_portfolio_png(result: PortfolioResult, path: str | pathlib.Path) -> pathlib.Path:
    """The same as write_portfolio_html, as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = pathlib.Path(path)
    times, eq, dd = _portfolio_curves(result)
    fig, (ax_eq, ax_dd, ax_sym) = plt.subplots(
        3, 1, figsize=(12, 9), sharex=True, gridspec_kw={"height_ratios": [0.45, 0.2, 0.35]}
    )
    if times:
        ax_eq.step(times, eq[1:], where="post")
        ax_dd.fill_between(times, dd[1:], step="post", alpha=0.5)
    for symbol in result.symbols:
        trades = result.results[symbol].trades
        if trades:
            ax_sym.step(
                [t.exit_time for t in trades],
                np.cumsum([t.net_pnl for t in trades]),
                where="post",
                label=symbol,
            )
    ax_eq.set_title(f"portfolio equity: {len(result.symbols)} symbols, {len(result.trades)} trades")
    ax_dd.set_title("drawdown")
    ax_sym.set_title("net P&L by symbol")
    if any(result.results[s].trades for s in result.symbols):
        ax_sym.legend(loc="upper left", fontsize="small", ncol=min(6, len(result.symbols)))
    fig.tight_layout()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=100)
    except OSError as exc:
        raise UserError(f"--png: cannot write {p}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return p
