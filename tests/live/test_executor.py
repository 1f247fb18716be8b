"""The executor's flatten of several symbols at once: every close goes out at once, none waits for flat
(a wait for one symbol's fills once held back the next symbol's close past close - 4 min: issue 16)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from breakout_bot.core.events import CancelAll, CloseAll
from breakout_bot.core.model import OrderSnapshot, OrderStatus, OrderType
from breakout_bot.errors import OrderOutcomeUnknown
from breakout_bot.journal import Journal
from breakout_bot.live.executor import Executor
from breakout_bot.live.ledger import FillLedger
from breakout_bot.live.risk import RiskGate
from breakout_bot.live.shared_read import MAX_AGE_S, SharedRead
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

    def cancel_orders(self, symbol: str, open_orders: object = None) -> None:
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

    def cancel_orders(self, symbol: str, open_orders: object = None) -> None:
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

    def cancel_orders(self, symbol: str, open_orders: object = None) -> None:
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


class _Universe:
    """Many symbols at the flatten: `held` long 100 with a working take-profit (their stop held), the
    rest flat with nothing working. Records every request it would send."""

    def __init__(self, held: list[str], flat: list[str], fail_reads: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_reads = fail_reads
        self.positions = {s: Decimal(100) for s in held}
        self.orders = {
            s: [
                OrderSnapshot(
                    f"tp-{s}", f"leg-{s}", s, "sell", OrderType.LIMIT, OrderStatus.NEW, Decimal(100),
                    limit_price=Decimal("101.50"), order_class="bracket",
                )
            ]
            for s in held
        }  # fmt: skip
        self.flat = flat

    def list_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        self.calls.append(f"orders {symbol or 'all'}")
        if self.fail_reads:
            raise OrderOutcomeUnknown("GET /v2/orders: 503")
        return [o for s, os in self.orders.items() if symbol in (None, s) for o in os]

    def list_positions(self) -> dict[str, Decimal]:
        self.calls.append("positions all")
        return dict(self.positions)

    def get_position_qty(self, symbol: str) -> Decimal:
        self.calls.append(f"position {symbol}")
        return self.positions.get(symbol, Decimal(0))

    def replace_order(self, order_id: str, limit_price: Decimal, client_order_id: str) -> OrderSnapshot:
        self.calls.append(f"replace {order_id}")
        old = next(o for os in self.orders.values() for o in os if o.id == order_id)
        new = replace(old, id=f"x-{old.symbol}", client_order_id=client_order_id, limit_price=limit_price)
        self.orders[old.symbol] = [new]
        return new

    def cancel_orders(self, symbol: str, open_orders: object = None) -> None:
        self.calls.append(f"cancel {symbol} {'known' if open_orders is not None else 'read'}")
        self.orders.pop(symbol, None)

    def close_position(self, symbol: str) -> OrderSnapshot:
        self.calls.append(f"close {symbol}")
        return OrderSnapshot(
            f"c-{symbol}", "", symbol, "sell", OrderType.MARKET, OrderStatus.NEW, Decimal(100)
        )


def _flatten_in_one_batch(tmp_path: Path, broker: _Universe) -> list[str]:
    """The flatten of every symbol in one wake, as the machines ask for it (core/day.flatten)."""
    clock = SteppedClock(START)
    journal = Journal(tmp_path / f"past_trades-{len(broker.flat)}.json")
    journal.load()
    ledger = FillLedger(broker, journal)  # type: ignore[arg-type]
    gate = RiskGate(broker, clock, tmp_path / "halt")  # type: ignore[arg-type]
    executor = Executor(broker, clock, ledger, gate, lambda: True)  # type: ignore[arg-type]
    outcomes: list[str] = []
    with executor.batch():
        for symbol in broker.flat:
            outcomes += [type(f).__name__ for f in executor.execute(symbol, CancelAll(symbol), "rest")]
        for symbol in list(broker.positions):
            action = CloseAll(symbol, "flatten", Decimal("101.20"), Decimal("100.50"))
            outcomes += [type(f).__name__ for f in executor.execute(symbol, action, "rest")]
    return outcomes


def test_the_flatten_reads_once_for_every_symbol(tmp_path: Path) -> None:
    """Issue 22: at the flatten one read of the open orders and the positions serves every symbol, so
    its reads do not grow with the universe; each position still gets its marketable exit (issue 15:
    the take-profit replaced, the stop working until it fills) and a flat symbol costs no request."""
    for n in (3, 30):
        held = [f"H{i:02d}" for i in range(n)]
        broker = _Universe(held, [f"F{i:02d}" for i in range(3 * n)])
        outcomes = _flatten_in_one_batch(tmp_path, broker)
        assert outcomes == ["OrderUpdate"] * n  # every take-profit made marketable
        reads = [c for c in broker.calls if not c.startswith("replace")]
        assert reads == ["orders all", "positions all"]  # the orders first, then the positions; no close
        assert [c for c in broker.calls if c.startswith("replace")] == [f"replace tp-{s}" for s in held]


def test_a_symbol_that_wrote_reads_its_own_orders_again(tmp_path: Path) -> None:
    """An entry still filling is canceled before the close (core/day.close_actions): the close then
    reads that symbol's orders and position afresh, not the batch's read from before the cancel."""
    clock = SteppedClock(START)
    broker = _Universe(["AAPL", "MSFT"], [])
    journal = Journal(tmp_path / "past_trades.json")
    journal.load()
    executor = Executor(
        broker,  # type: ignore[arg-type]
        clock,
        FillLedger(broker, journal),  # type: ignore[arg-type]
        RiskGate(broker, clock, tmp_path / "halt"),  # type: ignore[arg-type]
        lambda: True,
    )
    with executor.batch():
        executor.execute("AAPL", CancelAll("AAPL"), "rest")
        first = executor.execute("AAPL", CloseAll("AAPL", "flatten", Decimal("101.20")), "rest")
        executor.execute("MSFT", CloseAll("MSFT", "flatten", Decimal("101.20"), Decimal("100.50")), "rest")
    assert broker.calls[:5] == [
        "orders all",
        "positions all",
        "cancel AAPL known",  # the batch's read named the orders to cancel
        "orders AAPL",  # the close after the cancel: AAPL's own reads
        "position AAPL",
    ]
    assert broker.calls[5] == "close AAPL" and [type(f).__name__ for f in first] == ["OrderUpdate"]
    assert broker.calls[-1] == "replace tp-MSFT"  # MSFT kept the batch's read: no read of its own
    assert "orders MSFT" not in broker.calls and "position MSFT" not in broker.calls


def test_a_failed_shared_read_is_not_sent_once_per_symbol(tmp_path: Path) -> None:
    broker = _Universe([f"H{i}" for i in range(5)], [f"F{i}" for i in range(5)], fail_reads=True)
    outcomes = _flatten_in_one_batch(tmp_path, broker)
    assert broker.calls == ["orders all"]  # one failed read, not ten
    assert outcomes == ["ReconcileNow"] * 5 + ["CloseFailed"] * 5  # each symbol retries on its own clock


def test_a_shared_read_older_than_its_limit_is_read_again() -> None:
    now = [0.0]
    broker = _Universe(["AAPL", "MSFT"], [])
    reads = SharedRead(broker, monotonic=lambda: now[0])  # type: ignore[arg-type]
    assert reads.open_orders("AAPL") != [] and broker.calls == ["orders AAPL"]  # outside a batch: its own
    with reads.batch():
        reads.open_orders("AAPL")
        now[0] += MAX_AGE_S / 2
        assert reads.position_qty("MSFT") == 100
        now[0] += MAX_AGE_S
        reads.open_orders("MSFT")
    assert broker.calls[1:] == ["orders all", "positions all", "orders all", "positions all"]
