"""The replay's line-up and verdict (backtest/lineup.py): pure, property-tested."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from breakout_bot.backtest.lineup import (
    Box,
    Decision,
    Incident,
    LiveFill,
    Row,
    line_up,
    live_decisions,
    rehearsal_decisions,
    verdict,
)
from breakout_bot.backtest.trades import Trade
from breakout_bot.core.model import NEW_YORK

OPEN = dt.datetime(2024, 3, 5, 9, 40, tzinfo=NEW_YORK)
REASONS = ("take_profit", "stop_loss", "flatten")


@st.composite
def decisions(draw: st.DrawFn, max_size: int = 6) -> list[Decision]:
    """A day's decisions: distinct signal minutes in order, prices in cents, 100 shares or fewer."""
    minutes = sorted(draw(st.sets(st.integers(0, 300), max_size=max_size)))
    out = []
    for m in minutes:
        side = draw(st.sampled_from(("buy", "sell")))
        cents = draw(st.integers(2_000, 40_000))
        move = draw(st.integers(-300, 300))
        bar = OPEN + dt.timedelta(minutes=m)
        high = Decimal(cents) / 100
        out.append(
            Decision(
                side=side,
                qty=Decimal(draw(st.integers(1, 100))),
                entry_time=bar + dt.timedelta(minutes=1),
                entry_price=high,
                signal_bar=bar,
                box=Box(high, high - Decimal("0.50"), Decimal("0.50")),
                exit_reason=draw(st.sampled_from(REASONS)),
                exit_time=bar + dt.timedelta(minutes=2),
                exit_price=high + Decimal(move) / 100,
                exit_fills=1,
            )
        )
    return out


@given(decisions())
def test_a_day_against_itself_is_exact(day: list[Decision]) -> None:
    rows = line_up(day, day)
    v = verdict(rows)
    assert v.matched == v.exact == v.total == len(day)
    assert v.divergence is None and v.slippage == 0 and v.live_pnl == v.rehearsal_pnl
    assert all(r.entry_slippage == 0 and r.entry_slippage_bps == 0 for r in rows)


@given(decisions(), decisions())
def test_every_decision_is_in_exactly_one_row_in_time_order(
    live: list[Decision], rehearsal: list[Decision]
) -> None:
    rows = line_up(live, rehearsal)
    assert [r.live for r in rows if r.live is not None] == live
    assert [r.rehearsal for r in rows if r.rehearsal is not None] == rehearsal
    assert max(len(live), len(rehearsal)) <= len(rows) <= len(live) + len(rehearsal)
    assert all(r.live is not None or r.rehearsal is not None for r in rows)
    times = [r.time for r in rows]
    assert times == sorted(times)
    paired = [r for r in rows if r.live is not None and r.rehearsal is not None]
    assert all(
        r.live.signal_bar == r.rehearsal.signal_bar and r.live.side == r.rehearsal.side for r in paired
    )  # type: ignore[union-attr]


@given(decisions(), st.data())
def test_slippage_is_what_the_live_fills_cost_beyond_the_rehearsal(
    day: list[Decision], data: st.DataObject
) -> None:
    """Prices worse by k cents on entry and j on exit: the same decisions, slippage (k + j) cents a
    share, and live P&L + slippage = rehearsal P&L, to the cent."""
    live = []
    for d in day:
        k, j = data.draw(st.integers(-20, 20)), data.draw(st.integers(-20, 20))
        sign = 1 if d.side == "buy" else -1
        assert d.exit_price is not None
        live.append(
            replace(
                d,
                entry_price=d.entry_price + sign * Decimal(k) / 100,
                exit_price=d.exit_price - sign * Decimal(j) / 100,
            )
        )
        expected = Decimal(k) / 100
        row = Row(live[-1], d)
        assert row.entry_slippage == expected and row.exit_slippage == Decimal(j) / 100
        assert row.slippage_dollars == (Decimal(k + j) / 100 * d.qty).quantize(Decimal("0.01"))
        assert row.exact == (k == 0 and j == 0)
    v = verdict(line_up(live, day))
    assert v.matched == v.total == len(day)
    assert v.live_pnl + v.slippage == v.rehearsal_pnl
    if v.exact < v.total:
        assert v.divergence is not None and v.divergence.why == "unexplained"


@given(decisions(max_size=5).filter(bool), st.data())
def test_a_decision_the_bot_did_not_take_is_the_first_divergence_and_its_incident_named(
    day: list[Decision], data: st.DataObject
) -> None:
    n = data.draw(st.integers(0, len(day) - 1))
    live = day[:n] + day[n + 1 :]
    missing = day[n]
    assert missing.signal_bar is not None
    refused = Incident(
        missing.signal_bar + dt.timedelta(seconds=61), "rejected order", "entry bb-1 refused: x"
    )
    elsewhere = Incident(OPEN - dt.timedelta(hours=3), "stale bar", "stale signal: earlier")
    v = verdict(line_up(live, day), [elsewhere, refused])
    assert v.divergence is not None and v.divergence.row == n
    assert "the bot did not trade it" in v.divergence.what
    assert v.divergence.why.startswith("rejected order at ") and "refused" in v.divergence.why
    assert v.matched == v.exact == len(day) - 1 and v.total == len(day)
    unexplained = verdict(line_up(live, day))
    assert unexplained.divergence is not None and unexplained.divergence.why == "unexplained"


def _fill(leg: str, side: str, qty: int, price: str, minute: int, second: int = 10) -> LiveFill:
    return LiveFill(
        leg, side, Decimal(qty), Decimal(price), OPEN + dt.timedelta(minutes=minute, seconds=second)
    )


@given(
    st.lists(st.integers(1, 60), min_size=1, max_size=4),
    st.sampled_from(("buy", "sell")),
    st.sampled_from(REASONS),
)
def test_fills_become_one_decision_per_round_trip(pieces: list[int], side: str, reason: str) -> None:
    """An entry in pieces at one price is one decision at that price; pieces at other prices, their
    average; the exit's leg is the exit reason."""
    other = "sell" if side == "buy" else "buy"
    total = sum(pieces)
    fills = [_fill("entry", side, q, "100.10", 1, 10 + i) for i, q in enumerate(pieces)]
    fills += [_fill(reason, other, total, "100.50", 5)]
    fills += [_fill("entry", other, 7, "101", 9), _fill("entry", other, 3, "102", 9, 20)]
    fills += [_fill("stop_loss", side, 10, "101.5", 12)]
    first, second = live_decisions(fills)
    assert (first.side, first.qty, first.entry_price, first.entry_fills) == (
        side,
        total,
        Decimal("100.10"),
        len(pieces),
    )
    assert (first.exit_reason, first.exit_price) == (reason, Decimal("100.50"))
    assert second.entry_price == Decimal("101.3") and second.qty == 10 and second.entry_fills == 2
    assert second.exit_reason == "stop_loss"


def test_a_partial_fill_and_a_manual_flatten_are_named_from_the_fills() -> None:
    bar = OPEN
    rehearsal = Decision(
        "buy", Decimal(100), bar + dt.timedelta(minutes=1), Decimal("10.00"), 1, bar, None, "take_profit",
        bar + dt.timedelta(minutes=30), Decimal("10.50"), 1,
    )  # fmt: skip
    pieces = replace(rehearsal, entry_price=Decimal("10.0133"), entry_fills=3)
    v = verdict(line_up([pieces], [rehearsal]))
    assert v.matched == 1 and v.exact == 0 and v.divergence is not None
    assert v.divergence.why.startswith("partial fill: the entry filled in 3 pieces")
    short = replace(rehearsal, qty=Decimal(40))
    v = verdict(line_up([short], [rehearsal]))
    assert v.matched == 0 and v.divergence is not None
    assert v.divergence.why == "partial fill: the entry filled 40 of 100 shares"
    flattened = replace(rehearsal, exit_reason="flatten", exit_time=bar + dt.timedelta(minutes=8))
    v = verdict(line_up([flattened], [rehearsal]))
    assert v.divergence is not None and v.divergence.why.startswith("manual flatten: the bot closed at 09:48")
    v = verdict(line_up([replace(rehearsal, entry_price=Decimal("10.01"))], [rehearsal]), feed="iex")
    assert v.divergence is not None and v.divergence.why.startswith("IEX vs consolidated prices")


def test_the_rehearsal_side_takes_its_signal_bar_and_box_from_the_trade() -> None:
    t = Trade(
        symbol="AAPL", side="sell", qty=100, entry_time=OPEN + dt.timedelta(minutes=3), entry_price=99.9,
        exit_time=OPEN + dt.timedelta(minutes=9), exit_price=99.4, exit_reason="take_profit", stop_price=100.5,
        take_profit_price=99.4, box_high=100.5, box_low=100.0, box_range=0.5,
    )  # fmt: skip
    bars = [OPEN + dt.timedelta(minutes=m) for m in (0, 1, 3, 4)]  # a gap: no 09:42 bar
    (d,) = rehearsal_decisions([t], bars)
    assert d.signal_bar == OPEN + dt.timedelta(minutes=1)
    assert d.box == Box(Decimal("100.5"), Decimal("100"), Decimal("0.5"))
    assert d.pnl == Decimal("50.00") and d.entry_price == Decimal("99.9")
