"""The reports people look at (issue 17): the HTML page and the PNG, on the shipped SPY sample."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from shared_data import SAMPLE_SPY

from breakout_bot.backtest.charts import SessionAxis, headline, write_html_report, write_png_report
from breakout_bot.backtest.engine import run_backtest
from breakout_bot.backtest.metrics import format_report, price_text, result_metrics
from breakout_bot.backtest.results import BacktestResult
from breakout_bot.core.params import Params
from breakout_bot.market.bars import load_bars


@pytest.fixture(scope="module")
def spy() -> tuple[BacktestResult, pd.DataFrame]:
    bars = load_bars(SAMPLE_SPY, "SPY")
    return run_backtest(bars, "SPY", Params(), commission_per_share=0.005, slippage_per_share=0.01), bars


def test_html_report_has_a_title_figures_and_the_trades(spy, tmp_path: Path) -> None:
    result, bars = spy
    page = write_html_report(result, bars, tmp_path / "report.html").read_text()
    m = result_metrics(result)
    title = re.search(r"<title>(.*?)</title>", page)
    assert title and title.group(1) == (
        f"SPY backtest 2013-10-04 to 2023-08-03: net P&amp;L {m.net_pnl:+,.2f}, {m.trades} trades"
    )
    for name, value in headline(result):
        assert (
            f'<div class="value">{html.escape(value)}</div><div class="name">{html.escape(name)}</div>'
            in page
        )
    assert [k for k, _ in headline(result)][:6] == [
        "net P&L",
        "trades",
        "win rate",
        "profit factor",
        "max drawdown",
        "Sharpe",
    ]
    assert page.count("<tr class=") == len(result.trades) > 0
    # plotly.js from the CDN by default: the page stays small
    assert 'src="https://cdn.plot.ly/' in page and len(page) < 1_000_000
    # a session axis: the ticks are the sessions' first bars, not a ten-year date axis
    assert '"ticktext":["2013-10-04","2013-10-07"' in page and "2023-08-03" in page
    assert '"type":"date"' not in page and "rangebreaks" not in page


def test_html_report_can_be_self_contained(spy, tmp_path: Path) -> None:
    result, bars = spy
    page = write_html_report(result, bars, tmp_path / "offline.html", self_contained=True).read_text()
    assert 'src="https://cdn.plot.ly/' not in page and len(page) > 3_000_000


def test_the_session_axis_leaves_no_room_for_gaps(spy) -> None:
    _, bars = spy
    axis = SessionAxis(bars)
    assert list(axis.positions[:2]) == [0.0, 1.0] and axis.positions[-1] == len(bars) - 1
    ticks, labels = axis.day_starts()
    assert labels[-1] == "2023-08-03" and ticks[-1] - ticks[-2] == 390  # the next bar after ten years
    assert axis.all_day_starts() == [390.0 * i for i in range(1, 7)]


def test_png_title_carries_the_pnl(spy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.figure

    result, bars = spy
    titles: list[str] = []
    real = matplotlib.figure.Figure.savefig

    def spy_savefig(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        titles.append(self.axes[0].get_title())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy_savefig)
    path = write_png_report(result, bars, tmp_path / "report.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    m = result_metrics(result)
    assert titles == [
        f"SPY 2013-10-04 to 2023-08-03: net P&L {m.net_pnl:+,.2f}, {m.trades} trades, "
        f"win rate {m.win_rate * 100:.1f} %, max drawdown {m.max_drawdown:,.2f} ({m.max_drawdown_pct:.2f} %)"
    ]


def test_every_row_follows_from_its_prices_and_the_rows_add_up(spy) -> None:
    """Fill prices kept float noise while the table rounded them: rows did not add up."""
    result, _ = spy
    total = Decimal(0)
    for t in result.trades:
        shown_move = Decimal(price_text(t.exit_price)) - Decimal(price_text(t.entry_price))
        gross = shown_move * t.qty * (1 if t.side == "buy" else -1)
        assert Decimal(f"{t.gross_pnl:.2f}") == gross.quantize(Decimal("0.01"))
        total += Decimal(f"{t.net_pnl:.2f}")
    assert f"{total:,.2f}" == f"{result_metrics(result).net_pnl:,.2f}"
    report = format_report(result, max_rows=0)
    assert re.search(rf"net P&L\s+│\s+{re.escape(f'{total:,.2f}')}", report)
    assert any(len(price_text(t.entry_price).split(".")[1]) == 3 for t in result.trades)  # e.g. 450.075


@pytest.mark.parametrize(
    ("price", "text"),
    [
        (619.6, "619.60"),
        (620.935, "620.935"),
        (292.48000000000002, "292.48"),
        (0.1234, "0.1234"),
        (1.5, "1.50"),
    ],
)
def test_prices_show_the_decimals_they_have(price: float, text: str) -> None:
    assert price_text(price) == text
