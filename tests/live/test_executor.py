"""The executor's flatten of several symbols at once: every close goes out at once, none waits for flat
(a wait for one symbol's fills once held back the next symbol's close past close - 4 min: issue 16)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from breakout_bot.core.events import CloseAll
from breakout_bot.core.model import OrderSnapshot, OrderStatus, OrderType
from breakout_bot.journal import Journal
from breakout_bot.live.executor import Executor
from breakout_bot.live.ledger import FillLedger
from breakout_bot.live.risk import RiskGate
from breakout_bot.testkit.fakes import SteppedClock

START = dt.datetime(2024, 3, 5, 20, 55, tzinfo=dt.timezone.utc)  # 15:55 New York


class _Closing:
    """Two positions without working orders; a close fills in pieces, so they stay held for a while."""

    def __init__(self, clock: SteppedClock) -> None:
        self.clock = clock
        self.calls: list[str] = []
        self.closed_at: dict[str, dt.datetime] = {}

    def close_position(self, symbol: str) -> OrderSnapshot:
        self.calls.append(f"close {symbol}")
        self.closed_at.setdefault(symbol, self.clock.now())
        return OrderSnapshot(
            f"c-{symbol}", "", symbol, "sell", OrderType.MARKET, OrderStatus.NEW, Decimal(100)
        )

    def get_position_qty(self, symbol: str) -> Decimal:
        return Decimal(100)

    def list_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        return []

    def cancel_orders(self, symbol: str) -> None:
        self.calls.append(f"cancel {symbol}")


def test_closes_of_several_symbols_all_go_out_at_once(tmp_path: Path) -> None:
    clock = SteppedClock(START)
    broker = _Closing(clock)
    journal = Journal(tmp_path / "past_trades.json")
    journal.load()
    ledger = FillLedger(broker, journal)  # type: ignore[arg-type]
    gate = RiskGate(broker, clock, tmp_path / "halt")  # type: ignore[arg-type]
    executor = Executor(broker, clock, ledger, gate, lambda: True)  # type: ignore[arg-type]
    for symbol in ("MSFT", "GOOG"):
        executor.execute(symbol, CloseAll(symbol, "flatten"), "rest")
    assert [c for c in broker.calls if c.startswith("close")] == ["close MSFT", "close GOOG"]
    assert broker.closed_at == {"MSFT": START, "GOOG": START}  # both out at 15:55:00
    assert clock.now() == START  # no wait for flat inside the action: the fills arrive on the stream
