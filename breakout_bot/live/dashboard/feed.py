"""What feeds the dashboard: a runner observer (a live bot) and a journal reader (past days).

`RunFeed` is called on the runner's thread after every step (`Runner.observe`): it keeps the
session's minute bars as the machines saw them (their window holds the last `lookback` only) and hands
the status to the server's loop with `call_soon_threadsafe`; it never blocks, never does I/O, never
raises into the runner. The page's JSON is made on the server's loop, coalesced (a burst of steps
makes one update, at most five a second) and with the journal's fills re-read (in a worker thread) only when a symbol's
fills may have changed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ...core.model import Bar
from ...core.state import State
from ...journal import FillRecord, JournalError, read_journal
from . import view
from .server import DashboardServer, dumps

if TYPE_CHECKING:
    from ..runner import RunnerStatus

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.2  # seconds between two updates: a page need not change faster than a reader reads
MAX_BARS = 2_000  # a session's minute bars are 390 (960 with extended hours): room for a long day


def _fill_signature(states: Sequence[State]) -> tuple[object, ...]:
    """Changes whenever a symbol's fills may have: its position, trades, entries or realized P&L."""
    return tuple(
        (s.symbol, s.position_qty, s.trades_today, s.entries_sent_today, s.realized_pnl_today, s.phase)
        for s in states
    )


class RunFeed:
    """A runner observer feeding a `DashboardServer` (see the module's docstring)."""

    def __init__(
        self,
        server: DashboardServer,
        journal_path: Path,
        *,
        simulated: bool,
        account: tuple[str, str] | None = None,
    ) -> None:
        self._server = server
        self._journal_path = journal_path
        self._account = account  # (mode, account): the run's; the journal may hold other accounts' fills
        self._simulated = simulated
        self._bars: dict[str, tuple[Bar, ...]] = {}
        self._session: dict[str, dt.date | None] = {}
        # On the server's loop only:
        self._latest: tuple[RunnerStatus, dict[str, tuple[Bar, ...]]] | None = None
        self._rendering: asyncio.Task[None] | None = None
        self._fills: list[FillRecord] = []
        self._signature: tuple[object, ...] | None = None

    def __call__(self, status: RunnerStatus) -> None:
        try:
            for state in status.states:
                self._track_bars(state)
            self._server.call(self._arrived, status, dict(self._bars))
        except Exception:
            log.exception("dashboard: could not take the runner's status")

    def _track_bars(self, state: State) -> None:
        session = state.session.date if state.session is not None else None
        if self._session.get(state.symbol) != session:
            self._session[state.symbol] = session
            self._bars[state.symbol] = ()
        seen = self._bars.get(state.symbol, ())
        last = seen[-1].t if seen else None
        new = tuple(b for b in state.bars if last is None or b.t > last)
        if new:
            self._bars[state.symbol] = (seen + new)[-MAX_BARS:]

    # ---- on the server's loop

    def _arrived(self, status: RunnerStatus, bars: dict[str, tuple[Bar, ...]]) -> None:
        self._latest = (status, bars)
        if self._rendering is None:
            self._rendering = asyncio.ensure_future(self._render())

    async def _render(self) -> None:
        try:
            while self._latest is not None:
                status, bars = self._latest
                self._latest = None
                signature = _fill_signature(status.states)
                if signature != self._signature:
                    self._signature = signature
                    self._fills = await asyncio.get_running_loop().run_in_executor(None, self._read_fills)
                page = view.run_view(
                    status.now,
                    status.stream_up,
                    status.equity,
                    status.states,
                    bars,
                    self._fills,
                    simulated=self._simulated,
                )
                self._server.hub.publish(dumps(page))
                await asyncio.sleep(MIN_INTERVAL)  # steps meanwhile make one update, not one each
        except Exception:
            log.exception("dashboard: could not make the page")
        finally:
            self._rendering = None

    def _read_fills(self) -> list[FillRecord]:
        try:
            records = read_journal(self._journal_path)
        except JournalError as exc:
            log.warning("dashboard: %s", exc)
            return self._fills
        if self._account is None:
            return records
        return [r for r in records if (r.mode, r.account) == self._account]


BarsForDay = Callable[[str, dt.date], "Sequence[Bar] | None"]


class JournalDays:
    """Past days from a journal (read through `read_journal`, re-read on every request so a running
    bot's new fills show) with the bars `bars_for(symbol, day)` finds (None: not cached)."""

    def __init__(self, journal_path: Path, bars_for: BarsForDay) -> None:
        self._journal_path = journal_path
        self._bars_for = bars_for

    async def days(self) -> list[str]:
        records = await asyncio.get_running_loop().run_in_executor(None, read_journal, self._journal_path)
        return view.journal_days(records)

    async def day(self, text: str) -> view.View | None:
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            return None
        return await asyncio.get_running_loop().run_in_executor(None, self._day_view, day)

    def _day_view(self, day: dt.date) -> view.View | None:
        records = read_journal(self._journal_path)
        symbols = {r.symbol for r in records if view.fill_day(r) == day}
        if not symbols:
            return None
        return view.day_view(day, records, {s: self._bars_for(s, day) for s in symbols})
