"""The executor's flatten of several symbols at once: every close goes out before any wait for flat."""

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
FILL_AFTER = dt.timedelta(seconds=40)  # a close filling in pieces: flat 40 s after it was sent


class _Closing:
    """Two positions; a close leaves its position flat FILL_AFTER after it went out."""

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
        self.calls.append(f"position {symbol}")
        sent = self.closed_at.get(symbol)
        return Decimal(0) if sent is not None and self.clock.now() >= sent + FILL_AFTER else Decimal(100)

    def get_order(self, order_id: str) -> OrderSnapshot:
        return OrderSnapshot(
            order_id, "", "", "sell", OrderType.MARKET, OrderStatus.PARTIALLY_FILLED, Decimal(100)
        )


def _executor(tmp_path: Path) -> tuple[Executor, _Closing, SteppedClock]:
    clock = SteppedClock(START)
    broker = _Closing(clock)
    journal = Journal(tmp_path / "past_trades.json")
    journal.load()
    ledger = FillLedger(broker, journal)  # type: ignore[arg-type]
    gate = RiskGate(broker, clock, tmp_path / "halt")  # type: ignore[arg-type]
    return Executor(broker, clock, ledger, gate, lambda: True), broker, clock  # type: ignore[arg-type]


def test_closes_deferred_together_are_all_sent_before_any_wait(tmp_path: Path) -> None:
    executor, broker, clock = _executor(tmp_path)
    executor.defer_close_waits()
    for symbol in ("MSFT", "GOOG"):
        assert executor.execute(symbol, CloseAll(symbol, "flatten"), "rest") == []
    assert broker.calls == ["close MSFT", "close GOOG"]  # both out at 15:55:00
    executor.finish_closes()
    assert broker.closed_at == {"MSFT": START, "GOOG": START}
    assert clock.now() - START <= FILL_AFTER + dt.timedelta(seconds=5)  # both flat ~15:55:40
