"""A trade's P&L in whole numbers (backtest/trades.py) is the Decimal arithmetic's, to the bit (but
for the sign of a zero)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import example, given
from hypothesis import strategies as st

from breakout_bot.backtest.trades import Trade

CENT = Decimal("0.01")
AT = dt.datetime(2024, 3, 5, 10, 0, tzinfo=dt.timezone.utc)


def decimal_gross(side: str, qty: int, entry: float, exit_: float) -> float:
    """The definition: the prices as the report shows them (4 decimals), the move times the shares,
    to the cent, half up."""
    move = Decimal(f"{exit_:.4f}") - Decimal(f"{entry:.4f}")
    # + 0.0: a short closed at its entry price made 0.00, where the Decimal product is a negative zero
    # (which a report printed as -0.00).
    return float((move * qty * (1 if side == "buy" else -1)).quantize(CENT, rounding=ROUND_HALF_UP)) + 0.0


def decimal_net(gross: float, commission: float) -> float:
    fee = Decimal(repr(commission)).quantize(CENT, rounding=ROUND_HALF_UP)
    return float((Decimal(repr(gross)) - fee).quantize(CENT, rounding=ROUND_HALF_UP)) + 0.0


prices = st.one_of(
    st.floats(min_value=0.0001, max_value=100_000, allow_nan=False),
    st.integers(min_value=1, max_value=10**9).map(lambda n: n / 10_000),  # prices on a tick
    st.integers(min_value=1, max_value=10**7).map(lambda n: n / 10_000 + 0.00005),  # halfway ties
)


@given(
    side=st.sampled_from(["buy", "sell"]),
    qty=st.integers(min_value=1, max_value=1_000_000),
    entry=prices,
    exit_=prices,
    commission=st.one_of(st.just(0.0), st.floats(min_value=0, max_value=10_000, allow_nan=False)),
)
@example(side="buy", qty=1, entry=100.0, exit_=100.00005, commission=0.005)  # a half cent each way
@example(side="sell", qty=3, entry=10.00015, exit_=10.0, commission=0.015)
def test_the_whole_number_pnl_is_the_decimal_one(
    side: str, qty: int, entry: float, exit_: float, commission: float
) -> None:
    trade = Trade("SYN", side, qty, AT, entry, AT, exit_, "flatten", 0.0, 0.0, 0.0, 0.0, 0.0, commission)  # type: ignore[arg-type]
    gross = decimal_gross(side, qty, entry, exit_)
    assert repr(trade.gross_pnl) == repr(gross)
    assert repr(trade.net_pnl) == repr(decimal_net(gross, commission))
