"""The terminal's view of a run: a live panel on a TTY, one line per change elsewhere (cron, CI, pipes)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..core.model import NEW_YORK
from ..core.state import ORDER_SENT, ORDER_SUBMITTED, State

if TYPE_CHECKING:
    from .runner import RunnerStatus

COLUMNS = ("symbol", "phase", "last_bar", "box", "position", "realized", "entries")


def status_line(state: State) -> dict[str, str]:
    """One machine's row of the panel."""
    box = state.box
    last = state.bars[-1] if state.bars else None
    return {
        "symbol": state.symbol,
        "phase": state.phase.value,
        "last_bar": f"{last.t.astimezone(NEW_YORK):%H:%M} c={last.close}" if last else "-",
        "box": f"{box.low:.2f}-{box.high:.2f} r={box.range:.2f}" if box else "-",
        "position": str(state.position_qty),
        "realized": f"{state.realized_pnl_today:.2f}",
        "entries": str(state.entries_sent_today),
    }


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
            if state.flattened or state.closing:  # the legs are canceled and a market close works
                guard = "its close sent (legs canceled)"
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
    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self._stream = stream or sys.stdout
        self._console = Console(file=self._stream)
        use_live = self._stream.isatty() if live is None else live
        self._live: Live | None = Live(console=self._console, auto_refresh=False) if use_live else None
        self._last_phases: dict[str, str] = {}
        self._last: RunnerStatus | None = None

    def __enter__(self) -> StatusDisplay:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def __call__(self, status: RunnerStatus) -> None:
        """A runner observer: the panel (or the changed phases) after a step."""
        self._last = status
        rows = [status_line(s) for s in status.states]
        stream = "stream up" if status.stream_up else "stream DOWN"
        footer = f"{status.now.astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S} ET · {stream}"
        if self._live is not None:
            table = Table(title="breakout-bot", caption=footer)
            for column in COLUMNS:
                table.add_column(column.replace("_", " "))
            for row in rows:
                table.add_row(*(row.get(c, "") for c in COLUMNS))
            self._live.update(table, refresh=True)
            return
        for row in rows:
            phase = row.get("phase", "")
            if self._last_phases.get(row["symbol"]) != phase:
                self._last_phases[row["symbol"]] = phase
                details = "  ".join(f"{c}={row.get(c, '')}" for c in COLUMNS[2:])
                print(f"{footer}  {row['symbol']}: {phase}  {details}", file=self._stream, flush=True)

    def left_open(self) -> str:
        """What stays open at the broker, as of the last step this display saw (`left_open`)."""
        return left_open(self._last.states if self._last is not None else ())

    def print(self, text: str) -> None:
        # soft_wrap: one line stays one line in a log collector (journald, a pipe), whatever the width.
        self._console.print(text, highlight=False, soft_wrap=True)
