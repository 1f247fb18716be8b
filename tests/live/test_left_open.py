"""What a stopped run says it leaves at the broker (`left_open`, the SIGTERM / Ctrl-C line)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from breakout_bot.core.events import SubmitBracket
from breakout_bot.core.state import Phase, State, evolve, initial_state
from breakout_bot.live.status import left_open

DAY_END = datetime(2024, 3, 5, 9, 30, tzinfo=timezone.utc)


def read(symbol: str, **changes: object) -> State:
    """A machine that has reconciled with the broker (it knows the next open)."""
    return evolve(initial_state(symbol), next_open=DAY_END, **changes)


ENTRY = SubmitBracket("AAPL", "buy", 100, Decimal("107.96"), Decimal("108.74"), "bb-AAPL-20240304-2")
TAIL = "; run again to manage it, or `breakout-bot flatten`"


def test_a_position_with_its_bracket() -> None:
    state = read("AAPL", phase=Phase.ACTIVE_TRADE, position_qty=Decimal(100), entry=ENTRY)
    assert left_open([state]) == (
        "AAPL long 100 still open at the broker, stop 107.96 / take-profit 108.74" + TAIL
    )


def test_an_unprotected_short_and_a_working_entry_in_one_line() -> None:
    short = read("MSFT", phase=Phase.ACTIVE_TRADE, position_qty=Decimal(-50), unprotected=True)
    working = read("AAPL", phase=Phase.ORDER_SUBMITTED, entry=ENTRY)
    assert left_open([short, working]) == (
        "MSFT short 50 still open at the broker, with NO working stop; "
        "AAPL entry bb-AAPL-20240304-2 (buy 100) working or filled at the broker, "
        "with stop 107.96 / take-profit 108.74" + TAIL
    )


def test_a_position_adopted_after_a_restart_names_no_prices_it_does_not_know() -> None:
    state = read("AAPL", phase=Phase.ACTIVE_TRADE, position_qty=Decimal(100))
    assert (
        left_open([state])
        == "AAPL long 100 still open at the broker, its bracket's legs working there" + TAIL
    )


def test_nothing_open() -> None:
    assert left_open([read("AAPL"), read("MSFT", phase=Phase.SEARCHING)]) == "nothing left open at the broker"


def test_before_the_first_reconcile_it_knows_nothing_and_says_so() -> None:
    line = "stopped before reading the broker: whatever is open there stays as it was" + TAIL
    assert left_open([]) == line and left_open([initial_state("AAPL")]) == line
    mixed = left_open([initial_state("AAPL"), read("MSFT", position_qty=Decimal(5))])
    assert mixed.startswith("AAPL not read from the broker yet (what it holds stays as it was); MSFT long 5")


def test_a_position_being_flattened_says_its_legs_are_gone() -> None:
    state = read(
        "AAPL",
        phase=Phase.DONE_FOR_THE_DAY,
        position_qty=Decimal(100),
        entry=ENTRY,
        flattened=True,
    )
    assert left_open([state]) == "AAPL long 100 still open at the broker, its close sent" + TAIL
