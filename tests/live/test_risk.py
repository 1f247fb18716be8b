"""The risk gate values an entry as Alpaca does (core/margin.py, the simulator's acceptance rule too), so
that an order the broker would refuse for buying power or shorting is never sent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakout_bot.broker.base import AccountInfo
from breakout_bot.core.events import SubmitBracket
from breakout_bot.core.margin import MARKET_BUY_COLLAR, SHORT_ASK_MARGIN, opening_order_value
from breakout_bot.live.risk import RiskGate
from breakout_bot.testkit.fakes import SteppedClock


class Account:
    def __init__(self, buying_power: float, equity: float = 100_000.0) -> None:
        self.info = AccountInfo(
            "ACTIVE", Decimal(str(equity)), Decimal(str(equity)), Decimal(str(buying_power)), False, True
        )

    def get_account(self) -> AccountInfo:
        return self.info


def gate(tmp_path: Path, buying_power: float, equity: float = 100_000.0) -> RiskGate:
    clock = SteppedClock(dt.datetime(2024, 3, 4, 15, 0, tzinfo=dt.timezone.utc))
    return RiskGate(Account(buying_power, equity), clock, tmp_path / "halt")  # type: ignore[arg-type]


def order(side: str, qty: int, price: str) -> SubmitBracket:
    return SubmitBracket(
        "AAPL", side, qty, Decimal("1"), Decimal("1"), "bb-AAPL-20240304-1", reference_price=Decimal(price)
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(("side", "margin"), [("buy", MARKET_BUY_COLLAR), ("sell", SHORT_ASK_MARGIN)])
def test_the_gate_applies_alpacas_collar(tmp_path: Path, side: str, margin: float) -> None:
    needed = 100 * 100.0 * (1 + margin)
    assert gate(tmp_path, needed - 1).refusal(order(side, 100, "100")) is not None
    assert gate(tmp_path, needed + 1).refusal(order(side, 100, "100")) is None
    assert gate(tmp_path, 10_001).refusal(order(side, 100, "100")) is not None  # the price alone would fit


def test_no_shorts_under_2000_of_equity(tmp_path: Path) -> None:
    reason = gate(tmp_path, 10_000, equity=1_999).refusal(order("sell", 10, "10"))
    assert reason is not None and "2,000" in reason
    assert gate(tmp_path, 10_000, equity=1_999).refusal(order("buy", 10, "10")) is None


@given(
    side=st.sampled_from(["buy", "sell"]),
    qty=st.integers(1, 500),
    price=st.decimals("1.00", "500.00", places=2),
    buying_power=st.floats(0, 300_000),
)
def test_the_gate_refuses_exactly_what_the_simulator_would(
    tmp_path_factory: pytest.TempPathFactory, side: str, qty: int, price: Decimal, buying_power: float
) -> None:
    """Same rule, both sides: the gate lets through an order only if the simulator's acceptance (at an
    ask equal to the signal close) would take it."""
    g = gate(tmp_path_factory.mktemp("g"), round(buying_power, 2))
    cost = opening_order_value(side, qty, float(price))
    allowed = g.refusal(order(side, qty, str(price))) is None
    assert allowed == (round(cost, 2) <= round(buying_power, 2))
