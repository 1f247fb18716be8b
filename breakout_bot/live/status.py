"""The terminal's view of a run: a live panel on a TTY, one line per change elsewhere (cron, CI, pipes).

What a trader wants to see, in words: the phase ("waiting for a breakout", "in trade", "done for
today: daily loss limit 500.00 reached"), the position with its entry price, the bracket's stop and
take-profit, the last bar, unrealized and realized P&L, the account's equity. Nothing is cut to fit
(the panel folds a long value onto a second line rather than end it with "…"), and lines written to a
pipe or a log are never wrapped: one event, one line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..core.model import NEW_YORK
from ..core.state import ORDER_SENT, ORDER_SUBMITTED, Phase, State

if TYPE_CHECKING:
    from .runner import RunnerStatus

# The panel's rows, top to bottom (the symbols are its columns).
FIELDS = (
    "phase",
    "position",
    "stop",
    "take-profit",
    "last bar",
    "box",
    "unrealized",
    "realized today",
    "entries",
)


def phase_words(state: State) -> str:
    """The phase as a trader says it."""
    phase = state.phase
    if phase is Phase.WAITING_FOR_OPEN:
        session = state.session
        if session is not None:
            return f"waiting for the open ({session.open.astimezone(NEW_YORK):%H:%M})"
        return "waiting for the open"
    if phase is Phase.SEARCHING:
        if state.box is None:
            return f"building the box ({len(state.bars)}/{state.params.lookback} bars)"
        return "waiting for a breakout"
    if phase is Phase.ORDER_SENT:
        return "entry sent"
    if phase is Phase.ORDER_SUBMITTED:
        return "entry working"
    if phase is Phase.ACTIVE_TRADE:
        return "in trade"
    reason = state.done_reason
    if state.position_qty != 0:
        return (
            f"done for today: closing {state.position_qty} ({reason})"
            if reason
            else "done for today: closing"
        )
    return f"done for today: {reason}" if reason else "done for today"


def money(value: float | Decimal) -> str:
    """Dollars with a sign and two decimals: +322.00, -47.50; nothing is +0.00 (a short marked at its
    entry is a negative zero, and -0.001 rounds to a zero: neither is a loss to show)."""
    text = f"{Decimal(str(value)):+,.2f}"
    return "+0.00" if text == "-0.00" else text


def _price(value: float | Decimal) -> str:
    return f"{Decimal(str(value)):,.2f}" if value >= 1 else f"{Decimal(str(value)):,.4f}"


def _unrealized(state: State) -> Decimal | None:
    if state.position_qty == 0 or state.avg_entry_price is None or not state.bars:
        return None
    last = Decimal(str(state.bars[-1].close))
    return (last - state.avg_entry_price) * state.position_qty


def status_fields(state: State) -> dict[str, str]:
    """One machine's values, by field name (empty when there is nothing to say)."""
    qty = state.position_qty
    if qty == 0:
        position = "flat"
    else:
        side = "long" if qty > 0 else "short"
        at = f" @ {_price(state.avg_entry_price)}" if state.avg_entry_price is not None else ""
        position = f"{side} {abs(qty)}{at}"
    entry = state.entry if (qty != 0 or state.phase in (Phase.ORDER_SENT, Phase.ORDER_SUBMITTED)) else None
    last = state.bars[-1] if state.bars else None
    box_ = state.box or (entry.box if entry is not None else None)  # in a trade: the box it broke
    unrealized = _unrealized(state)
    return {
        "phase": phase_words(state),
        "position": position,
        "stop": _price(entry.stop_price) if entry is not None else "",
        "take-profit": _price(entry.take_profit_price) if entry is not None else "",
        "last bar": f"{_price(last.close)} ({last.t.astimezone(NEW_YORK):%H:%M})" if last else "",
        "box": f"{_price(box_.low)} – {_price(box_.high)} (range {box_.range:.2f})" if box_ else "",
        "unrealized": money(unrealized) if unrealized is not None else "",
        "realized today": money(state.realized_pnl_today),
        "entries": str(state.entries_sent_today),
    }


def status_line(state: State) -> str:
    """One machine as one line (pipes, cron, journald): the phase, then what is set."""
    values = status_fields(state)
    details = " · ".join(f"{name} {values[name]}" for name in FIELDS[1:] if values[name])
    return f"{state.symbol}: {values['phase']} · {details}"


def footer(status: RunnerStatus, simulated: bool) -> str:
    clock = f"{status.now.astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S} New York" + (
        " (simulated)" if simulated else ""
    )
    stream = "trade stream up" if status.stream_up else "trade stream DOWN: entries wait"
    equity = f" · equity {status.equity:,.2f}" if status.equity is not None else ""
    return f"{clock} · {stream}{equity}"


NOT_READ = "stopped before reading the broker: whatever is open there stays as it was"
TAIL = "; run again to manage it, or `breakout-bot flatten`"


def left_open(states: Iterable[State]) -> str:
    """One line: what a stopped run leaves at the broker and how it is protected (the bracket's legs
    stay there, working), as the machines last knew it. A machine that never heard the broker (no
    reconcile yet) knows nothing, and says so."""
    parts = []
    states = list(states)
    if not states or all(state.next_open is None for state in states):
        return NOT_READ + TAIL
    for state in states:
        if state.next_open is None:
            parts.append(f"{state.symbol} not read from the broker yet (what it holds stays as it was)")
            continue
        entry = state.entry
        legs = (
            f"stop {entry.stop_price} / take-profit {entry.take_profit_price}"
            if entry is not None and entry.stop_price and entry.take_profit_price
            else "its bracket's legs working there"
        )
        if state.position_qty != 0:
            side = "long" if state.position_qty > 0 else "short"
            if state.flattened or state.closing:  # the exit works (a replaced take-profit or a close)
                guard = "its close sent"
            elif state.unprotected:
                guard = "with NO working stop"
            else:
                guard = legs
            parts.append(f"{state.symbol} {side} {abs(state.position_qty)} still open at the broker, {guard}")
        elif state.phase in (ORDER_SENT, ORDER_SUBMITTED) and entry is not None:
            parts.append(
                f"{state.symbol} entry {entry.client_order_id} ({entry.side} {entry.qty}) working or filled "
                f"at the broker, with {legs}"
            )
    if not parts:
        return "nothing left open at the broker"
    return "; ".join(parts) + TAIL


class StatusDisplay:
    def __init__(
        self, stream: TextIO | None = None, live: bool | None = None, simulated: bool = False
    ) -> None:
        self._stream = stream or sys.stdout
        self._console = Console(file=self._stream)
        use_live = self._stream.isatty() if live is None else live
        self._live: Live | None = Live(console=self._console, auto_refresh=False) if use_live else None
        self._last_lines: dict[str, str] = {}
        self.simulated = simulated
        self._last: RunnerStatus | None = None

    def __enter__(self) -> StatusDisplay:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def __call__(self, status: RunnerStatus) -> None:
        """A runner observer: the panel (or a line per symbol whose phase changed) after a step."""
        self._last = status
        if self._live is not None:
            self._live.update(self.panel(status), refresh=True)
            return
        when = f"{status.now.astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S} New York"
        for state in status.states:
            phase = phase_words(state)
            if self._last_lines.get(state.symbol) != phase:
                self._last_lines[state.symbol] = phase
                # print, not rich: a console that is not a terminal would wrap at 80 columns.
                print(f"{when} · {status_line(state)}", file=self._stream, flush=True)

    def panel(self, status: RunnerStatus) -> Table:
        title = "breakout-bot · SIMULATED" if self.simulated else "breakout-bot"
        table = Table(title=title, caption=footer(status, self.simulated), box=box.SIMPLE_HEAD)
        table.add_column("", style="bold", no_wrap=True)
        for state in status.states:
            table.add_column(state.symbol, overflow="fold")
        rows = [status_fields(s) for s in status.states]
        for name in FIELDS:
            table.add_row(name, *(row[name] for row in rows))
        return table

    def left_open(self) -> str:
        """What stays open at the broker, as of the last step this display saw (`left_open`)."""
        return left_open(self._last.states if self._last is not None else ())

    def print(self, text: str) -> None:
        """A line of the run's own (banner, summary): never wrapped by us, on a terminal or not."""
        self._console.print(text, highlight=False, soft_wrap=True)


@dataclass
class DayResults:
    """A runner observer keeping each session's realized P&L per symbol, as the panel showed it last
    (the machines' realized P&L of the day: from the broker's fills, so a restart counts the whole day)."""

    realized: dict[date, dict[str, float]] = field(default_factory=dict)
    last_seen: datetime | None = None

    def __call__(self, status: RunnerStatus) -> None:
        self.last_seen = status.now
        for state in status.states:
            if state.session is not None:
                self.realized.setdefault(state.session.date, {})[state.symbol] = state.realized_pnl_today

    def total(self) -> float:
        return sum(sum(day.values()) for day in self.realized.values())
