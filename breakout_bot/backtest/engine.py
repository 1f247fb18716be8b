"""The event-path backtest: the live `machine.step` replayed over bars with the in-process broker.

Per NYSE session (holidays and early closes from XNYS):

1. `Reconciled(now=open - 1 min, session, next_open, position_qty=0, equity)`, as the live runner
   sends at start; equity = the initial equity plus the net P&L so far (sizes trades with risk_pct).
2. For each regular-session bar k, in time order (missing minutes are simply absent):
   0. if the bar starts later than the previous one ended (the open, or a gap), `Tick(bar.t)`:
      the clock moved, as the live runner's minute ticks would say (this is how the flatten fires
      inside a data gap);
   1. pending market orders (entry, or a close) fill at bar k's open (adverse slippage), as
      `OrderUpdate("fill")` stamped bar.t with a deterministic execution id; a filled entry
      activates its bracket legs;
   2. active legs are checked against bar k (the entry bar too): stop first when both are touched;
      a leg fills at its price, or at the open when the bar opened beyond it (broker.py);
   3. `BarClosed(bar)`; 4. `Tick(bar.end)`.
   The machine's actions run at once: SubmitBracket -> a pending market entry (acknowledged `new`),
   CancelAll -> working orders canceled, CloseAll -> a market close at the next bar's open (so the
   close - 5 min flatten fills at the open of the 15:55 bar, 12:55 on early-close days), RecordFill
   -> collected; SleepUntil / Log are only logged (debug).
3. After the session's last bar: `Tick(close - flatten_minutes)` if the data ended before it (the
   flatten then fires without a bar), and a close still pending fills at the last bar's close (no
   slippage) stamped at the later of that bar's end and the order; `Tick(close)`; orders still open
   expire (day orders). A position the machine left open (only possible with flatten_minutes = 0)
   is closed at the last bar's close, exit_reason "end_of_data": a backtest never holds overnight.

Speed: `machine.step` costs ~10-40 us per event, so stepping every bar tops out near 25-40k bars/s.
Most bars change nothing but the machine's bar window and clock (searching inside the box, in a
trade whose legs the bar did not touch, done for the day). By default (`exact=False`) the engine
recognises exactly those bars (`plan`, from the machine's own `quiet_bars` and the broker's leg
bounds, says which; `next_to_process` finds the first bar that matters with one scan) and hands the
machine its updated window and clock (`machine.absorb_quiet_bars`) before that bar; every decision is
still made by `machine.step`. `exact=True` steps every event; tests
assert both give identical fills. The replay pauses the cycle collector (`gc_paused`).

Sessions are independent (each starts flat; a new day's `Reconciled` resets the machine's day; order
ids name their session), so without `Params.risk_pct` (whose sizes compound the P&L of the days
before) a replay may be cut into runs of whole sessions, replayed apart (`jobs`: forked processes on
this machine's cores; backtest/portfolio.py: symbols and years, on a Dask cluster too) and put back
together (`assemble`) into the result of one replay, fill for fill.

`Replay.steps` is a generator that yields, before each step that could touch other symbols (a fill at
a bar's open, a decision at its close, the flatten, the close), that step's moment as an integer key:
several symbols' replays merged by key (backtest/portfolio.py) advance bar by bar in one
deterministic order, which is where a portfolio-level gate sits between their decisions.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core import machine
from ..core.events import (
    BarClosed,
    CancelAll,
    CancelOrder,
    CloseAll,
    Event,
    Log,
    Reconciled,
    RecordFill,
    SleepUntil,
    SubmitBracket,
    SubmitFailed,
    Tick,
)
from ..core.model import NEW_YORK, Bar, Fill, Session
from ..core.params import Params
from .broker import BacktestBroker
from .inputs import BarArrays, SessionCalendar, prepare
from .results import BacktestResult, daily_pnl, trades_from_fills
from .trades import Trade

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_MINUTE = dt.timedelta(minutes=1)
_ZERO = Decimal(0)
_INF = float("inf")
_NEG_INF = float("-inf")
_NO_SKIP = (_NEG_INF, _NEG_INF, _INF, _NEG_INF, _INF, _NEG_INF)


# The moment of a step, as the replays' generators yield it: 2 x epoch seconds, + 1 for a bar's close.
# A bar's fills (at its open) come before every symbol's decision on it (at its close).
def _key(epoch: float, close_phase: int = 0) -> int:
    return int(epoch) * 2 + close_phase


def run_backtest(
    bars: pd.DataFrame | BarArrays,
    symbol: str,
    params: Params,
    *,
    commission_per_share: float = 0.0,
    slippage_per_share: float = 0.0,
    calendar: Any | None = None,
    progress: Callable[[int, int], None] | None = None,
    initial_equity: float = 100_000.0,
    exact: bool = False,
    jobs: int = 1,
) -> BacktestResult:
    """Replay `bars` (tz-aware DatetimeIndex of bar starts; open high low close [volume]) through
    `machine.step` with the simulated broker. See the module docstring for the event sequence.

    `jobs` > 1 replays runs of whole sessions in that many processes (forked: they share the bars) and
    gives the same result, fill for fill; with `params.risk_pct` (sizes compound) it replays in one."""
    replay = ReplayInput.of(
        bars,
        symbol,
        params,
        commission_per_share=commission_per_share,
        slippage_per_share=slippage_per_share,
        calendar=calendar,
        initial_equity=initial_equity,
        exact=exact,
    )
    runs = replay.runs(jobs) if params.risk_pct is None else [(0, len(replay.sessions))]
    if len(runs) > 1:
        from .parallel import ForkExecutor

        parts = ForkExecutor(jobs).map(replay_run, [(0, run) for run in runs], {0: replay})
        if progress is not None:
            progress(replay.total_bars, replay.total_bars)
    else:
        parts = [Replay(replay).run(0, len(replay.sessions), progress)]
    return replay.assemble(parts)


def replay_run(replay: ReplayInput, run: tuple[int, int]) -> ReplayPart:
    """One run of whole sessions (sessions[a:b]) from a fresh machine: a task for any executor."""
    return Replay(replay).run(*run)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The replay allocates millions of short-lived acyclic objects (states, orders, events; tests
    assert a run leaves no cyclic garbage), so refcounting frees them all; the cycle collector
    would only rescan the whole heap again and again (~8 % of a run). Like timeit, pause it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


SessionSpan = tuple[dt.date, float, float, int, int]  # day, open, close (epoch s), bars [a, b)


@dataclass
class ReplayInput:
    """What every replay of one symbol's bars shares: the bars as flat arrays, the sessions they fall
    in, the strategy and the costs. Built once; replays (in this process or forked) only read it."""

    symbol: str
    params: Params
    commission: float
    slippage: float
    initial_equity: float
    exact: bool
    calendar: SessionCalendar
    epochs: np.ndarray  # int64 bar starts, epoch seconds
    o: np.ndarray
    h: np.ndarray
    lo: np.ndarray
    c: np.ndarray
    v: np.ndarray
    sessions: list[SessionSpan]
    warnings: list[str] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)  # bars that do not start where the previous one ended

    @classmethod
    def of(
        cls,
        bars: pd.DataFrame | BarArrays,
        symbol: str,
        params: Params,
        *,
        commission_per_share: float = 0.0,
        slippage_per_share: float = 0.0,
        calendar: Any | None = None,
        initial_equity: float = 100_000.0,
        exact: bool = False,
    ) -> ReplayInput:
        if commission_per_share < 0 or slippage_per_share < 0:
            raise ValueError("commission and slippage must be >= 0")
        if params.lookback < 1 or params.qty < 1:
            raise ValueError("lookback and qty must be >= 1")
        frame = bars if isinstance(bars, BarArrays) else prepare(bars)
        cal = calendar if isinstance(calendar, SessionCalendar) else SessionCalendar(calendar)
        warnings: list[str] = []
        o, h, lo, c, v, ns = frame.o, frame.h, frame.lo, frame.c, frame.v, frame.ns
        with np.errstate(invalid="ignore"):
            valid = (
                np.isfinite(o)
                & np.isfinite(h)
                & np.isfinite(lo)
                & np.isfinite(c)
                & (lo > 0)
                & (lo <= np.minimum(o, c))
                & (h >= np.maximum(o, c))
            )
        if not valid.all():
            # The machine would ignore such a bar, and the broker cannot fill on it: as if missing.
            warnings.append(f"{int((~valid).sum())} bars with missing or inconsistent prices ignored")
            ns = ns[valid]
            o, h, lo, c, v = o[valid], h[valid], lo[valid], c[valid], v[valid]
        epochs = np.ascontiguousarray(ns // 1_000_000_000, dtype=np.int64)
        # Sessions: the bars that start inside each regular session of the calendar days the bars span
        # (sorted bars: one contiguous slice each; bars outside a session are never visited).
        sessions: list[SessionSpan] = []
        if len(epochs):
            day = dt.datetime.fromtimestamp(int(epochs[0]), NEW_YORK).date()
            last_day = dt.datetime.fromtimestamp(int(epochs[-1]), NEW_YORK).date()
            one_day = dt.timedelta(days=1)
            while day <= last_day:
                s = cal.session(day)
                if s is not None:
                    # Whole seconds to search for: a float key would convert every bar to a float.
                    bounds = np.array([math.ceil(s[0]), math.ceil(s[1])], dtype=np.int64)
                    a, b = (int(i) for i in np.searchsorted(epochs, bounds, side="left"))
                    if b > a:
                        sessions.append((day, s[0], s[1], a, b))
                day += one_day
        as_float = np.ascontiguousarray
        return cls(
            symbol,
            params,
            commission_per_share,
            slippage_per_share,
            initial_equity,
            exact,
            cal,
            epochs,
            as_float(o, dtype=np.float64),
            as_float(h, dtype=np.float64),
            as_float(lo, dtype=np.float64),
            as_float(c, dtype=np.float64),
            as_float(v, dtype=np.float64),
            sessions,
            warnings,
            (np.flatnonzero(np.diff(epochs) != 60) + 1).tolist(),
        )

    @property
    def total_bars(self) -> int:
        return sum(s[4] - s[3] for s in self.sessions)

    def runs(self, jobs: int, min_bars: int = 50_000) -> list[tuple[int, int]]:
        """The sessions cut into at most `jobs` runs of about equal bars (each at least `min_bars`)."""
        n = len(self.sessions)
        parts = max(1, min(jobs, n, self.total_bars // max(min_bars, 1)))
        if parts == 1:
            return [(0, n)]
        ends = np.cumsum([s[4] - s[3] for s in self.sessions])
        cuts = [0]
        for j in range(1, parts):
            cut = int(np.searchsorted(ends, ends[-1] * j / parts, side="left")) + 1
            if cuts[-1] < cut < n:
                cuts.append(cut)
        cuts.append(n)
        return list(pairwise(cuts))

    def assemble(self, parts: Sequence[ReplayPart]) -> BacktestResult:
        """The result of replaying every session in order, from the parts replayed apart (in order)."""
        trades = [t for part in parts for t in part.trades]
        days = [d for part in parts for d in part.days]
        dates, pnl = daily_pnl(trades, days)
        return BacktestResult(
            symbol=self.symbol,
            params=self.params,
            trades=trades,
            fills=[f for part in parts for f in part.fills],
            days=dates,
            day_pnl=pnl,
            bars_processed=sum(part.bars for part in parts),
            sessions=len(days),
            skipped=[s for part in parts for s in part.skipped],
            session_minutes=sum(part.session_minutes for part in parts),
            initial_equity=self.initial_equity,
            commission_per_share=self.commission,
            slippage_per_share=self.slippage,
            warnings=[*self.warnings, *(w for part in parts for w in part.warnings)],
            events=sum(part.events for part in parts),
        )


@dataclass
class ReplayPart:
    """What a run of sessions produced; `ReplayInput.assemble` joins the parts of a replay.

    Parts travel between processes (forked replays, Dask workers) pickled as columns of plain values
    (`__reduce__`): ~5x cheaper both ways than pickling every Trade, Fill, datetime and Decimal."""

    trades: list[Trade]
    fills: list[Fill]
    days: list[dt.date]
    skipped: list[str]
    warnings: list[str]
    events: int
    bars: int
    session_minutes: int

    def __reduce__(self) -> tuple[Any, ...]:
        if not all(_in_new_york(t.entry_time) and _in_new_york(t.exit_time) for t in self.trades) or not all(
            _in_new_york(f.timestamp) for f in self.fills
        ):
            return (ReplayPart, tuple(getattr(self, name) for name in _PART_FIELDS))
        trades = [
            (t.symbol, t.side, t.qty, t.entry_time.timestamp(), t.entry_price, t.exit_time.timestamp(),
             t.exit_price, t.exit_reason, t.stop_price, t.take_profit_price, t.box_high, t.box_low,
             t.box_range, t.commission)
            for t in self.trades
        ]  # fmt: skip
        fills = [
            (f.execution_id, f.order_id, f.client_order_id, f.symbol, f.side, str(f.qty), str(f.price),
             f.timestamp.timestamp(), f.leg, None if f.cum_qty is None else str(f.cum_qty))
            for f in self.fills
        ]  # fmt: skip
        days = [d.toordinal() for d in self.days]
        rest = (self.skipped, self.warnings, self.events, self.bars, self.session_minutes)
        return (_rebuild_part, (trades, fills, days, *rest))


_PART_FIELDS = ("trades", "fills", "days", "skipped", "warnings", "events", "bars", "session_minutes")


def _in_new_york(when: dt.datetime) -> bool:
    return when.tzinfo is NEW_YORK


def _rebuild_part(
    trades: list[tuple[Any, ...]],
    fills: list[tuple[Any, ...]],
    days: list[int],
    skipped: list[str],
    warnings: list[str],
    events: int,
    bars: int,
    session_minutes: int,
) -> ReplayPart:
    at = dt.datetime.fromtimestamp
    ny = NEW_YORK
    decimals: dict[str, Decimal] = {}  # a replay's quantities repeat: one Decimal per distinct text

    def number(text: str) -> Decimal:
        value = decimals.get(text)
        if value is None:
            value = decimals[text] = Decimal(text)
        return value

    return ReplayPart(
        [
            Trade(sym, side, qty, at(t0, ny), p0, at(t1, ny), p1, why, stop, take, bh, bl, br, fee)
            for sym, side, qty, t0, p0, t1, p1, why, stop, take, bh, bl, br, fee in trades
        ],
        [
            Fill(
                eid,
                oid,
                cid,
                sym,
                side,
                number(qty),
                Decimal(price),
                at(ts, ny),
                leg,
                None if cum is None else number(cum),
            )
            for eid, oid, cid, sym, side, qty, price, ts, leg, cum in fills
        ],
        [dt.date.fromordinal(d) for d in days],
        skipped,
        warnings,
        events,
        bars,
        session_minutes,
    )


class Equity:
    """The account's equity before a session: the initial equity plus the net P&L of every fill so far
    (exact, as a backtest is flat between sessions). Sizes the day's trades when Params.risk_pct is
    set, as the live runner's account reads do (they also move within the day; this does not). Several
    symbols' replays share one account: each registers its fills."""

    def __init__(self, initial: float, commission: float) -> None:
        self.value = initial
        self.commission = commission
        self._books: list[list[Fill]] = []
        self._counted: list[int] = []

    def track(self, fills: list[Fill]) -> None:
        self._books.append(fills)
        self._counted.append(0)

    def at_open(self) -> float:
        commission = self.commission
        for i, fills in enumerate(self._books):
            for fill in fills[self._counted[i] :]:
                qty = float(fill.qty)
                value = qty * float(fill.price)
                self.value += (value if fill.side == "sell" else -value) - commission * qty
            self._counted[i] = len(fills)
        return self.value


# A portfolio's say on an entry before it reaches the simulated broker: (symbol, order) -> why not, or
# None (backtest/portfolio.py; the live bot's is live/risk.py, both on core/portfolio.py).
EntryGate = Callable[[str, SubmitBracket], str | None]


class Replay:
    """One symbol's machine and simulated broker over sessions of a ReplayInput."""

    def __init__(self, replay: ReplayInput, equity: Equity | None = None) -> None:
        self.input = replay
        symbol, params = replay.symbol, replay.params
        self.symbol = symbol
        self.params = params
        self.commission = replay.commission
        self.exact = replay.exact
        self.cal = replay.calendar
        self.broker = BacktestBroker(symbol, slippage_per_share=replay.slippage)
        self.state = machine.initial_state(symbol, params)
        self.fills: list[Fill] = []
        self.entries: dict[str, SubmitBracket] = {}
        self.gate: EntryGate | None = None
        self.trades: list[Trade] = []
        self.skipped: list[str] = []
        self.warnings: list[str] = []
        self.days: list[dt.date] = []
        self.events = 0
        self.bars_done = 0
        self.session_minutes = 0
        self.equity = equity or Equity(replay.initial_equity, replay.commission)
        self.equity.track(self.fills)
        self._debug = log.isEnabledFor(logging.DEBUG)
        self.flatten_s = params.flatten_minutes * 60
        # The current session's bars (lists: a read is cheaper than a numpy element's), set per session.
        self.t: list[int] = []
        self.o: Sequence[float] = []
        self.h: list[float] = []
        self.lo: list[float] = []
        self.c: list[float] = []
        self.v: Sequence[float] = []
        self._gaps: list[int] = []  # bars that do not start where the previous one ended
        # The current session's open, as epoch seconds and as a datetime (set per session): a bar's start
        # is open_dt + its offset, ~10x cheaper than datetime.fromtimestamp(t, NEW_YORK) and the same
        # (no DST change falls inside a regular session).
        self._open_s = 0
        self._open_dt = dt.datetime.fromtimestamp(0, NEW_YORK)
        self._offsets: dict[int, dt.timedelta] = {}
        self._first_fill = 0  # the current session's first fill

    def run(self, first: int, stop: int, progress: Callable[[int, int], None] | None = None) -> ReplayPart:
        """Replay sessions[first:stop] to the end: the part they make."""
        with gc_paused():
            for _ in self.steps(first, stop, progress):
                pass
        return self.part()

    def part(self) -> ReplayPart:
        return ReplayPart(
            self.trades,
            self.fills,
            self.days,
            self.skipped,
            self.warnings,
            self.events,
            self.bars_done,
            self.session_minutes,
        )

    # ------------------------------------------------------------------ helpers
    def bar(self, k: int) -> Bar:
        """Bar k of the current session (built on demand: most bars never reach the machine)."""
        offset = self.t[k] - self._open_s
        delta = self._offsets.get(offset)
        if delta is None:
            delta = self._offsets[offset] = dt.timedelta(seconds=offset)
        return Bar(self._open_dt + delta, self.o[k], self.h[k], self.lo[k], self.c[k], self.v[k])

    def dispatch(self, events: Iterable[Event]) -> None:
        """Step the machine through `events` and everything its actions cause, in order."""
        queue = list(events)
        broker = self.broker
        step = machine.step
        i = 0
        while i < len(queue):
            event = queue[i]
            i += 1
            self.state, actions = step(self.state, event)
            self.events += 1
            for action in actions:
                kind = type(action)
                if kind is Log:
                    assert isinstance(action, Log)
                    if action.level != "info" or " skipped: " in action.text:
                        self._note(action)
                    if self._debug:
                        log.debug("%s %s", action.level, action.message)
                elif kind is RecordFill:
                    assert isinstance(action, RecordFill)
                    self.fills.append(action.fill)
                elif kind is SubmitBracket:
                    assert isinstance(action, SubmitBracket)
                    if self.gate is not None and (refused := self.gate(self.symbol, action)) is not None:
                        # As live: the entry is not sent and the machine searches again (its warning
                        # line is the report's).
                        queue.append(SubmitFailed(action.client_order_id, refused))
                        continue
                    self.entries[action.client_order_id] = action
                    queue += broker.submit_bracket(action, self._now())
                elif kind is CancelAll:
                    assert isinstance(action, CancelAll)
                    queue += broker.cancel_orders(action.symbol, self._now())
                elif kind is CloseAll:
                    # Live, the executor either turns the take-profit into the exit (the stop working
                    # until it fills) or cancels the legs and closes; here the close fills at the next
                    # bar's open, so both are: the legs canceled now, a market close at that open.
                    assert isinstance(action, CloseAll)
                    queue += broker.cancel_orders(action.symbol, self._now())
                    queue += broker.close_position(action.symbol, self._now())
                elif kind is SleepUntil:
                    if self._debug:
                        assert isinstance(action, SleepUntil)
                        log.debug("sleep until %s (%s)", action.when, action.reason)
                elif kind is CancelOrder:  # a stray order: the engine's Reconciled lists none
                    raise RuntimeError(f"a backtest has no stray orders to cancel: {action}")

    def _note(self, action: Log) -> None:
        """A skipped breakout or a warning the report lists."""
        if " skipped: " in action.text:
            self.skipped.append(f"{self._now():%Y-%m-%d %H:%M} {action.message}")
        elif action.level in ("warning", "error"):
            self.warnings.append(action.message)

    def _now(self) -> dt.datetime:
        now = self.state.now
        assert now is not None
        return now

    def plan(self, k0: int, s_close: float) -> tuple[float, float, float, float, float, float]:
        """Which of the next bars change nothing but the machine's bar window and clock, given the
        state after bar k0: (t_limit, k_limit, c_lo, c_hi, l_min, h_max) such that a bar k following
        without a gap, starting before t_limit, k < k_limit, with c_lo <= close <= c_hi, low > l_min
        and high < h_max, would make BarClosed + Tick only append it and move the clock, and make
        the broker fill nothing: the machine's `quiet_bars` and the broker's leg bounds. When in
        doubt it skips nothing (tests hold the fast path equal to exact)."""
        broker = self.broker
        if broker.pending:
            return _NO_SKIP
        quiet = machine.quiet_bars(self.state, s_close)
        if quiet is None:
            return _NO_SKIP
        t_limit, box_in, c_lo, c_hi = quiet
        return t_limit, k0 + box_in, c_lo, c_hi, broker.leg_low, broker.leg_high

    def next_to_process(self, start: int, stop: int, plan: tuple[float, ...]) -> int:
        """The first bar in start..stop-1 that `plan` does not let the engine defer (stop if none):
        a gap before it, t >= t_limit, k >= k_limit, its close outside [c_lo, c_hi], or its range
        reaching a leg (low <= l_min or high >= h_max)."""
        t_limit, k_limit, c_lo, c_hi, l_min, h_max = plan
        end = bisect_left(self._gaps, start)
        end = self._gaps[end] if end < len(self._gaps) else stop
        end = min(end, stop, bisect_left(self.t, t_limit, start, stop))
        if k_limit < end:
            end = max(start, int(k_limit))
        if c_lo == _NEG_INF and c_hi == _INF and l_min == _NEG_INF and h_max == _INF:
            return end
        c, lo, h = self.c, self.lo, self.h
        if l_min == _NEG_INF and h_max == _INF:  # searching inside a box: only the close matters
            for k in range(start, end):
                close = c[k]
                if close < c_lo or close > c_hi:
                    return k
            return end
        for k in range(start, end):
            close = c[k]
            if close < c_lo or close > c_hi or lo[k] <= l_min or h[k] >= h_max:
                return k
        return end

    # ------------------------------------------------------------------ the run
    def steps(
        self, first: int, stop: int, progress: Callable[[int, int], None] | None = None
    ) -> Iterator[int]:
        """Replay sessions[first:stop], yielding the key (`_key`) of each step that could touch other
        symbols just before taking it. Run it to the end (`run`), or merge it with other symbols'."""
        spans = self.input.sessions[first:stop]
        total = sum(s[4] - s[3] for s in spans)
        done = 0
        exact = self.exact
        lookback = self.params.lookback
        absorb = machine.absorb_quiet_bars
        broker = self.broker
        data = self.input
        for day, s_open, s_close, a, b in spans:
            # This session's bars, as lists indexed 0..n-1 (the session's bars only: a long replay never
            # holds a Python float per bar of its data).
            # (open and volume, read only for bars the machine sees: memoryviews, no list)
            t = self.t = data.epochs[a:b].tolist()
            o = self.o = data.o[a:b].data
            self.h = data.h[a:b].tolist()
            self.lo = data.lo[a:b].tolist()
            c = self.c = data.c[a:b].tolist()
            self.v = data.v[a:b].data
            gaps = data.gaps
            self._gaps = [g - a for g in gaps[bisect_left(gaps, a + 1) : bisect_left(gaps, b)]]
            h, lo = self.h, self.lo
            n = b - a
            bar_at = self.bar
            self.days.append(day)
            self.session_minutes += int((s_close - s_open) // 60)
            self._first_fill = len(self.fills)
            broker.start_session(day)
            open_dt = dt.datetime.fromtimestamp(s_open, NEW_YORK)
            self._open_s = int(s_open)  # whole seconds, as the bars' starts: offsets stay exact
            self._open_dt = dt.datetime.fromtimestamp(self._open_s, NEW_YORK)
            close_dt = dt.datetime.fromtimestamp(s_close, NEW_YORK)
            session = Session(day, open_dt, close_dt)
            next_open = dt.datetime.fromtimestamp(self.cal.next_open(day, s_open), NEW_YORK)
            yield _key(s_open - 60)
            self.dispatch(
                [
                    Reconciled(
                        now=open_dt - _MINUTE,
                        session=session,
                        next_open=next_open,
                        position_qty=_ZERO,
                        equity=self.equity.at_open(),
                    )
                ]
            )
            prev_end = s_open - 60
            lag_start = -1
            k = 0
            while k < n:
                tk = t[k]
                yield tk * 2
                if lag_start >= 0:
                    # Bars lag_start..k-1 closed without changing anything but the machine's window
                    # and clock: exactly what BarClosed + Tick would have made of each of them.
                    self.state = absorb(
                        self.state, [bar_at(j) for j in range(max(lag_start, k - lookback), k)]
                    )
                    lag_start = -1
                if tk > prev_end:  # the open, or a gap: the clock moved without a bar
                    self.dispatch([Tick(dt.datetime.fromtimestamp(tk, NEW_YORK))])
                plan = _NO_SKIP
                if broker.busy and (updates := broker.on_bar(tk, o[k], h[k], lo[k])):
                    self.dispatch(updates)
                    if not exact:
                        # E.g. the entry filled and the bar left its legs alone: its BarClosed
                        # may change nothing but the window and clock; then defer it too.
                        plan = self.plan(k - 1, s_close)
                        t_limit, k_limit, c_lo, c_hi = plan[:4]
                        if tk < t_limit and k < k_limit and c_lo <= c[k] <= c_hi:
                            lag_start = k
                        else:
                            plan = _NO_SKIP
                if lag_start < 0:
                    yield tk * 2 + 1
                    bar = bar_at(k)
                    self.dispatch([BarClosed(bar)])
                    if exact or self.state.now != bar.end:
                        # In fast mode the Tick is sent only when BarClosed did not already bring the
                        # machine to bar.end: at the same `now`, _on_time has nothing left to do.
                        self.dispatch([Tick(bar.end)])
                    if not exact:
                        plan = self.plan(k, s_close)
                # Bars k+1 .. nxt-1 change nothing but the window and clock: deferred to one catch_up.
                nxt = k + 1 if plan is _NO_SKIP else self.next_to_process(k + 1, n, plan)
                if nxt > k + 1 and lag_start < 0:
                    lag_start = k + 1
                prev_end = t[nxt - 1] + 60
                k = nxt
            if lag_start >= 0:
                self.state = absorb(self.state, [bar_at(j) for j in range(max(lag_start, n - lookback), n)])
            yield from self._end_session(n - 1, s_close, close_dt)
            self._session_trades()
            done += n
            self.bars_done += n
            if progress is not None:
                progress(done, total)

    def _session_trades(self) -> None:
        """The session's round trips, from its fills (trades never outlive their session); then its
        orders are forgotten."""
        broker = self.broker
        self.trades += trades_from_fills(
            self.fills[self._first_fill :],
            broker.orders,
            self.entries,
            self.symbol,
            self.commission,
            self.warnings,
        )
        self.entries.clear()
        broker.forget_closed()

    def _end_session(self, last: int, s_close: float, close_dt: dt.datetime) -> Iterator[int]:
        broker = self.broker
        last_end = dt.datetime.fromtimestamp(self.t[last] + 60, NEW_YORK)
        flat_s = s_close - self.flatten_s
        flat_dt = dt.datetime.fromtimestamp(flat_s, NEW_YORK)
        if self._now() < flat_dt:
            yield _key(flat_s)
            self.dispatch([Tick(flat_dt)])  # the data ended early: the clock still reaches the flatten
        if broker.pending:
            self.dispatch(broker.fill_closes_at(self.c[last], last_end))
        yield _key(s_close)
        if self._now() < close_dt:
            self.dispatch([Tick(close_dt)])
        if broker.position != 0:
            # Only when the machine did not flatten (flatten_minutes = 0): never hold overnight.
            expired = broker.expire_day_orders(close_dt)
            self.dispatch(expired)
            self.dispatch(broker.close_position(self.symbol, close_dt, kind="end_of_data"))
            self.dispatch(broker.fill_closes_at(self.c[last], last_end))
            self.warnings.append(
                f"{close_dt:%Y-%m-%d}: position still open at the close; closed at the last bar"
            )
        self.dispatch(broker.expire_day_orders(close_dt))
