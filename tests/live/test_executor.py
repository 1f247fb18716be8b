"""The executor's flatten of several symbols at once: every close goes out at once, none waits for flat
(a wait for one symbol's fills once held back the next symbol's close past close - 4 min: issue 16)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from breakout_bot.core.events import CloseAll
from breakout_bot.core.model import OrderSnapshot, OrderStatus, OrderType
from breakout_bot.errors import OrderOutcomeUnknown
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


class _Bracketed:
    """Long 100 with its bracket: the take-profit working, the stop held. The first replace lands at the
    broker but its answer is lost (a reset after the PATCH)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.take = OrderSnapshot(
            "tp-1", "leg-tp", "AAPL", "sell", OrderType.LIMIT, OrderStatus.NEW, Decimal(100),
            limit_price=Decimal("101.50"), order_class="bracket",
        )  # fmt: skip
        self.exit: OrderSnapshot | None = None

    def get_position_qty(self, symbol: str) -> Decimal:
        return Decimal(100)

    def list_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        return [self.exit] if self.exit is not None else [self.take]

    def replace_order(self, order_id: str, limit_price: Decimal, client_order_id: str) -> OrderSnapshot:
        self.calls.append(f"replace {order_id}")
        self.exit = replace(self.take, id="tp-2", client_order_id=client_order_id, limit_price=limit_price)
        raise OrderOutcomeUnknown("PATCH /v2/orders/tp-1: connection reset")

    def cancel_orders(self, symbol: str) -> None:
        self.calls.append("cancel")

    def close_position(self, symbol: str) -> OrderSnapshot:
        self.calls.append("close")
        raise AssertionError("a second exit while the first may be working")


def test_a_replace_whose_answer_is_lost_is_not_followed_by_a_close(tmp_path: Path) -> None:
    """The PATCH landed but its answer was lost: canceling and closing now would sell the shares twice
    (the fault suite's flatten window found it). The close is retried after reading the orders again,
    and then waits for the marketable exit that is working."""
    clock = SteppedClock(START)
    broker = _Bracketed()
    journal = Journal(tmp_path / "past_trades.json")
    journal.load()
    ledger = FillLedger(broker, journal)  # type: ignore[arg-type]
    gate = RiskGate(broker, clock, tmp_path / "halt")  # type: ignore[arg-type]
    executor = Executor(broker, clock, ledger, gate, lambda: True)  # type: ignore[arg-type]
    action = CloseAll("AAPL", "flatten", Decimal("101.20"), Decimal("100.50"))
    first = executor.execute("AAPL", action, "rest")
    assert [type(f).__name__ for f in first] == ["CloseFailed"] and broker.calls == ["replace tp-1"]
    assert executor.execute("AAPL", action, "rest") == []  # our exit is working: wait for its fill
    assert broker.calls == ["replace tp-1"]  # no cancel, no close, no second replace


class _CloseFillingNow:
    """Long 100 with our market close working; it fills right after the executor's first read."""

    def __init__(self) -> None:
        self.position = Decimal(100)
        self.close = OrderSnapshot("c-1", "", "AAPL", "sell", OrderType.MARKET, OrderStatus.NEW, Decimal(100))
        self.reads = 0

    def _read(self) -> None:
        self.reads += 1
        if self.reads == 2:  # between the executor's two reads
            self.position, self.close = Decimal(0), replace(self.close, status=OrderStatus.FILLED)

    def get_position_qty(self, symbol: str) -> Decimal:
        self._read()
        return self.position

    def list_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        self._read()
        return [self.close] if self.close.is_open else []

    def close_position(self, symbol: str) -> OrderSnapshot:
        raise AssertionError("a second close: it would sell the shares again")

    def cancel_orders(self, symbol: str) -> None:
        raise AssertionError("nothing to cancel")


def test_a_close_filling_between_the_reads_is_not_sent_again(tmp_path: Path) -> None:
    clock = SteppedClock(START)
    broker = _CloseFillingNow()
    journal = Journal(tmp_path / "past_trades.json")
    journal.load()
    ledger = FillLedger(broker, journal)  # type: ignore[arg-type]
    gate = RiskGate(broker, clock, tmp_path / "halt")  # type: ignore[arg-type]
    executor = Executor(broker, clock, ledger, gate, lambda: True)  # type: ignore[arg-type]
    executor.execute("AAPL", CloseAll("AAPL", "still not flat after flatten"), "rest")
