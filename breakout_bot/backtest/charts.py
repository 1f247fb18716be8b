"""Backtest charts: an interactive, self-contained plotly HTML page and a matplotlib PNG.

Both show the price with each trade's entry/exit and bracket levels, the equity curve after each
trade and the drawdown. Neither needs the network (plotly.js is inlined) nor a browser (PNG via
matplotlib's Agg backend).
"""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..core.model import NEW_YORK
from ..errors import UserError

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


def write_html_report(result: BacktestResult, bars: pd.DataFrame, path: str | pathlib.Path) -> pathlib.Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    p = pathlib.Path(path)
    frame = _session_bars(bars)
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
                x=frame.index,
                open=frame["open"],
                high=frame["high"],
                low=frame["low"],
                close=frame["close"],
                name="price",
            ),
            row=1,
            col=1,
        )
    else:
        fig.add_trace(go.Scattergl(x=frame.index, y=frame["close"], name="close", mode="lines"), row=1, col=1)
    trades = result.trades
    for side, symbol, color, name in (
        ("buy", "triangle-up", "green", "long entry"),
        ("sell", "triangle-down", "red", "short entry"),
    ):
        sel = [t for t in trades if t.side == side]
        if sel:
            fig.add_trace(
                go.Scatter(
                    x=[t.entry_time for t in sel],
                    y=[t.entry_price for t in sel],
                    mode="markers",
                    marker=dict(symbol=symbol, size=11, color=color),
                    name=name,
                    text=[
                        f"box {_box_price(t.box_low)}-{_box_price(t.box_high)}, range {_box_price(t.box_range)}"
                        for t in sel
                    ],
                ),
                row=1,
                col=1,
            )
    if trades:
        fig.add_trace(
            go.Scatter(
                x=[t.exit_time for t in trades],
                y=[t.exit_price for t in trades],
                mode="markers",
                marker=dict(symbol="x", size=10, color="black"),
                name="exit",
                text=[f"{t.exit_reason}: {t.net_pnl:+,.2f}" for t in trades],
            ),
            row=1,
            col=1,
        )
        for attr, color, name in (
            ("stop_price", "red", "stop"),
            ("take_profit_price", "green", "take-profit"),
        ):
            xs: list[object] = []
            ys: list[float | None] = []
            for t in trades:
                xs += [t.entry_time, t.exit_time, None]
                ys += [getattr(t, attr), getattr(t, attr), None]
            fig.add_trace(
                go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, dash="dot", width=1), name=name),
                row=1,
                col=1,
            )
    times, eq, dd = _equity(result)
    start = frame.index[0] if len(frame) else (times[0] if times else None)
    x_eq = [start, *times]
    fig.add_trace(go.Scatter(x=x_eq, y=eq, mode="lines", line_shape="hv", name="equity"), row=2, col=1)
    fig.add_trace(
        go.Scatter(x=x_eq, y=dd, mode="lines", line_shape="hv", fill="tozeroy", name="drawdown"), row=3, col=1
    )
    fig.update_layout(
        height=900,
        title=f"breakout-bot backtest: {result.symbol}, {len(trades)} trades",
        xaxis_rangeslider_visible=False,
        hovermode="x unified",
    )
    fig.update_xaxes(rangebreaks=[dict(bounds=["sat", "mon"]), dict(bounds=[16, 9.5], pattern="hour")])
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.write_html(str(p), include_plotlyjs=True, full_html=True)
    except OSError as exc:
        raise UserError(f"--report: cannot write {p}: {exc.strerror or exc}") from None
    return p


def write_png_report(result: BacktestResult, bars: pd.DataFrame, path: str | pathlib.Path) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = pathlib.Path(path)
    frame = _session_bars(bars)
    # Plot against the bar number, so nights and weekends take no room.
    pos = pd.Series(np.arange(len(frame)), index=frame.index)

    stamps = pd.DatetimeIndex(frame.index)

    def where(ts: dt.datetime) -> float:
        i = int(stamps.searchsorted(ts))
        return float(min(i, max(len(frame) - 1, 0)))

    fig, (ax1, ax2, ax3) = plt.subplots(
        3, 1, figsize=(14, 9), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 0.8]}
    )
    ax1.plot(pos.to_numpy(), frame["close"].to_numpy(), lw=0.7, color="#555", label="close")
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
    ax1.set_title(f"{result.symbol}: {len(trades)} trades")
    ax1.legend(loc="upper left", fontsize=8)
    times, eq, dd = _equity(result)
    xe = [0.0, *[where(t) for t in times]]
    ax2.step(xe, eq, where="post", color="tab:blue")
    ax2.set_ylabel("equity")
    ax3.fill_between(xe, dd, 0, step="post", color="tab:red", alpha=0.4)
    ax3.set_ylabel("drawdown")
    if len(frame):
        days = pd.Series(stamps.date, index=np.arange(len(frame)))
        firsts = days[~days.duplicated()]
        step = max(1, len(firsts) // 10)
        ax3.set_xticks(
            firsts.index[::step].to_numpy(),
            [str(d) for d in firsts.to_numpy()[::step]],
            rotation=30,
            fontsize=8,
        )
    fig.tight_layout()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(str(p), format="png", dpi=100)
    except OSError as exc:
        raise UserError(f"--png: cannot write {p}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return p


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
