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
from breakout_bot.core.params import Params
from breakout_bot.core.state import ACTIVE_TRADE, ORDER_SENT, State, evolve, initial_state
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


class CountingAccount(Account):
    reads = 0

    def get_account(self) -> AccountInfo:
        self.reads += 1
        return self.info


def entry(symbol: str, qty: int = 100, price: str = "100") -> SubmitBracket:
    return SubmitBracket(
        symbol,
        "buy",
        qty,
        Decimal("1"),
        Decimal("1"),
        f"bb-{symbol}-20240304-1",
        reference_price=Decimal(price),
    )  # type: ignore[arg-type]


def test_entries_let_through_reserve_buying_power_without_a_read_each(tmp_path: Path) -> None:
    """Alpaca reduces buying power by working opening orders: the third 100 x 100 buy (10,400 with the
    collar) does not fit in 25,000 once two were sent, and the account was read once."""
    account = CountingAccount(25_000)
    clock = SteppedClock(dt.datetime(2024, 3, 4, 15, 0, tzinfo=dt.timezone.utc))
    g = RiskGate(account, clock, tmp_path / "halt")  # type: ignore[arg-type]
    for symbol in ("A", "B"):
        assert g.refusal(entry(symbol)) is None
        g.reserve(entry(symbol))
    reason = g.refusal(entry("C"))
    assert reason is not None and "20800.00 of it reserved" in reason
    assert g.refusal(entry("C", qty=40)) is None  # 4,160 fits in the 4,200 left
    assert account.reads == 1
    g.invalidate()  # a fill: the next read's buying power holds the working orders itself
    assert g.refusal(entry("C")) is None and account.reads == 2


def committed_states(held: dict[str, float], entering: str) -> list[State]:
    """Machines: `held` symbols in a trade (with their realized P&L today), `entering` just sent its entry."""
    out = []
    for symbol, pnl in held.items():
        out.append(evolve(initial_state(symbol, Params()), phase=ACTIVE_TRADE, position_qty=Decimal(100),
                          realized_pnl_today=pnl))  # fmt: skip
    out.append(evolve(initial_state(entering, Params()), phase=ORDER_SENT))
    out.append(initial_state("IDLE", Params()))
    return out


@pytest.mark.parametrize(("max_positions", "refused"), [(0, False), (2, True), (3, False)])
def test_max_positions_counts_the_other_symbols_committed(
    tmp_path: Path, max_positions: int, refused: bool
) -> None:
    states = committed_states({"A": 0.0, "B": 0.0}, "C")
    clock = SteppedClock(dt.datetime(2024, 3, 4, 15, 0, tzinfo=dt.timezone.utc))
    g = RiskGate(
        Account(1e6), clock, tmp_path / "halt", None, Params(max_positions=max_positions), lambda: states
    )  # type: ignore[arg-type]
    reason = g.refusal(entry("C"))
    assert (reason is not None) == refused
    if refused:
        assert reason == "max positions 2 reached (A, B)"


def test_the_daily_loss_limit_holds_across_the_symbols(tmp_path: Path) -> None:
    """-60 and -50 today: neither symbol reached 100 alone, the portfolio has."""
    states = committed_states({"A": -60.0, "B": -50.0}, "C")
    clock = SteppedClock(dt.datetime(2024, 3, 4, 15, 0, tzinfo=dt.timezone.utc))
    params = Params(max_daily_loss=100.0)
    g = RiskGate(Account(1e6), clock, tmp_path / "halt", None, params, lambda: states)  # type: ignore[arg-type]
    reason = g.refusal(entry("C"))
    assert reason is not None and "portfolio daily loss limit 100.00" in reason
    states = committed_states({"A": -60.0, "B": 20.0}, "C")
    assert g.refusal(entry("C")) is None
