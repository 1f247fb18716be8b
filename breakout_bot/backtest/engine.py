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
assert both give identical fills. The replay pauses the cycle collector (`_gc_paused`).
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

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
    Tick,
)
from ..core.model import NEW_YORK, Bar, Fill, Session
from ..core.params import Params
from .broker import BacktestBroker
from .inputs import BarArrays, SessionCalendar, numbers, prepare
from .results import BacktestResult, daily_pnl, trades_from_fills

log = logging.getLogger(__name__)

_MINUTE = dt.timedelta(minutes=1)
_ZERO = Decimal(0)
_INF = float("inf")
_NEG_INF = float("-inf")
_NO_SKIP = (_NEG_INF, _NEG_INF, _INF, _NEG_INF, _INF, _NEG_INF)


def run_backtest(
    bars: pd.DataFrame,
    symbol: str,
    params: Params,
    *,
    commission_per_share: float = 0.0,
    slippage_per_share: float = 0.0,
    calendar: Any | None = None,
    progress: Callable[[int, int], None] | None = None,
    initial_equity: float = 100_000.0,
    exact: bool = False,
) -> BacktestResult:
    """Replay `bars` (tz-aware DatetimeIndex of bar starts; open high low close [volume]) through
    `machine.step` with the simulated broker. See the module docstring for the event sequence."""
    if commission_per_share < 0 or slippage_per_share < 0:
        raise ValueError("commission and slippage must be >= 0")
    if params.lookback < 1 or params.qty < 1:
        raise ValueError("lookback and qty must be >= 1")
    with _gc_paused():
        return _Engine(
            prepare(bars),
            symbol,
            params,
            commission_per_share,
            slippage_per_share,
            SessionCalendar(calendar),
            progress,
            initial_equity,
            exact,
        ).run()


@contextmanager
def _gc_paused() -> Iterator[None]:
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


class _Engine:
    def __init__(
        self,
        frame: BarArrays,
        symbol: str,
        params: Params,
        commission: float,
        slippage: float,
        calendar: SessionCalendar,
        progress: Callable[[int, int], None] | None,
        initial_equity: float,
        exact: bool,
    ) -> None:
        self.symbol = symbol
        self.params = params
        self.commission = commission
        self.slippage = slippage
        self.cal = calendar
        self.progress = progress
        self.initial_equity = initial_equity
        self.exact = exact
        self.broker = BacktestBroker(symbol, slippage_per_share=slippage)
        self.state = machine.initial_state(symbol, params)
        self.fills: list[Fill] = []
        self.entries: dict[str, SubmitBracket] = {}
        self.skipped: list[str] = []
        self.warnings: list[str] = []
        self.events = 0
        self._equity = initial_equity
        self._fills_in_equity = 0  # fills already counted in _equity
        self._debug = log.isEnabledFor(logging.DEBUG)
        self.flatten_s = params.flatten_minutes * 60

        o, h, lo, c, v, idx = frame.o, frame.h, frame.lo, frame.c, frame.v, frame.index
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
            self.warnings.append(f"{int((~valid).sum())} bars with missing or inconsistent prices ignored")
            idx = idx[valid]
            o, h, lo, c, v = o[valid], h[valid], lo[valid], c[valid], v[valid]
        epochs = idx.asi8 // 1_000_000_000
        local_days = idx.tz_localize(None).asi8 // (86_400 * 1_000_000_000)
        # The scan reads every close (and the highs and lows in a trade): lists. The other columns are
        # read for a bar the machine sees (a third of them): memoryviews, a Python number per read,
        # cheaper than building (and freeing) a list of them all.
        self.c: list[float] = c.tolist()
        self.h: list[float] = h.tolist()
        self.lo: list[float] = lo.tolist()
        self.t = numbers(epochs, int)
        self.o = numbers(o, float)
        self.v = numbers(v, float)
        # Indices of the bars that do not start where the previous one ended (gaps, new days).
        self._gaps: list[int] = (np.flatnonzero(np.diff(epochs) != 60) + 1).tolist()
        # Sessions: the bars of each local day that start inside its regular session (the index is
        # sorted, so each day is one contiguous slice; bars outside the session are never visited).
        self.sessions: list[tuple[dt.date, float, float, int, int]] = []
        # Day boundaries: where the (sorted) day number changes (np.unique would hash every bar).
        edges = (np.flatnonzero(np.diff(local_days)) + 1).tolist()
        bounds = [0, *edges, len(local_days)] if len(local_days) else []
        for d_lo, d_hi in pairwise(bounds):
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(local_days[d_lo]))
            s = self.cal.session(day)
            if s is None:
                continue
            part = epochs[d_lo:d_hi]
            a = d_lo + int(np.searchsorted(part, s[0], side="left"))
            b = d_lo + int(np.searchsorted(part, s[1], side="left"))
            if b > a:
                self.sessions.append((day, s[0], s[1], a, b))
        # The current session's open, as epoch seconds and as a datetime (set by run()): a bar's start
        # is open_dt + its offset, ~10x cheaper than datetime.fromtimestamp(t, NEW_YORK) and the same
        # (no DST change falls inside a regular session).
        self._open_s = 0
        self._open_dt = dt.datetime.fromtimestamp(0, NEW_YORK)
        self._offsets: dict[int, dt.timedelta] = {}

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
                    self.entries[action.client_order_id] = action
                    queue += broker.submit_bracket(action, self._now())
                elif kind is CancelAll:
                    assert isinstance(action, CancelAll)
                    queue += broker.cancel_orders(action.symbol, self._now())
                elif kind is CloseAll:
                    assert isinstance(action, CloseAll)
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
    def run(self) -> BacktestResult:
        p = self.params
        total = sum(s[4] - s[3] for s in self.sessions)
        done = 0
        session_minutes = 0
        t, o, h, lo, c = self.t, self.o, self.h, self.lo, self.c
        broker = self.broker
        exact = self.exact
        bar_at = self.bar
        lookback = p.lookback
        absorb = machine.absorb_quiet_bars
        for day, s_open, s_close, a, b in self.sessions:
            session_minutes += int((s_close - s_open) // 60)
            open_dt = dt.datetime.fromtimestamp(s_open, NEW_YORK)
            self._open_s = int(s_open)  # whole seconds, as the bars' starts: offsets stay exact
            self._open_dt = dt.datetime.fromtimestamp(self._open_s, NEW_YORK)
            close_dt = dt.datetime.fromtimestamp(s_close, NEW_YORK)
            session = Session(day, open_dt, close_dt)
            next_open = dt.datetime.fromtimestamp(self.cal.next_open(day, s_open), NEW_YORK)
            self.dispatch(
                [
                    Reconciled(
                        now=open_dt - _MINUTE,
                        session=session,
                        next_open=next_open,
                        position_qty=_ZERO,
                        equity=self._equity_at_open(),
                    )
                ]
            )
            prev_end = s_open - 60
            lag_start = -1
            k = a
            while k < b:
                tk = t[k]
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
                    bar = self.bar(k)
                    self.dispatch([BarClosed(bar)])
                    if exact or self.state.now != bar.end:
                        # In fast mode the Tick is sent only when BarClosed did not already bring the
                        # machine to bar.end: at the same `now`, _on_time has nothing left to do.
                        self.dispatch([Tick(bar.end)])
                    if not exact:
                        plan = self.plan(k, s_close)
                # Bars k+1 .. nxt-1 change nothing but the window and clock: deferred to one catch_up.
                nxt = k + 1 if plan is _NO_SKIP else self.next_to_process(k + 1, b, plan)
                if nxt > k + 1 and lag_start < 0:
                    lag_start = k + 1
                prev_end = t[nxt - 1] + 60
                k = nxt
            if lag_start >= 0:
                self.state = absorb(self.state, [bar_at(j) for j in range(max(lag_start, b - lookback), b)])
            self._end_session(b - 1, s_close, close_dt)
            done += b - a
            if self.progress is not None:
                self.progress(done, total)
        trades = trades_from_fills(
            self.fills, self.broker.orders, self.entries, self.symbol, self.commission, self.warnings
        )
        return BacktestResult(
            symbol=self.symbol,
            params=p,
            trades=trades,
            fills=self.fills,
            daily=daily_pnl(trades, [s[0] for s in self.sessions], self.initial_equity),
            bars_processed=done,
            sessions=len(self.sessions),
            skipped=self.skipped,
            session_minutes=session_minutes,
            initial_equity=self.initial_equity,
            commission_per_share=self.commission,
            slippage_per_share=self.slippage,
            warnings=self.warnings,
            events=self.events,
        )

    def _equity_at_open(self) -> float:
        """The account's equity before a session: the initial equity plus the net P&L of every fill so far
        (exact, as a backtest is flat between sessions). Sizes the day's trades when Params.risk_pct is
        set, as the live runner's account reads do (they also move within the day; this does not)."""
        commission = self.commission
        for fill in self.fills[self._fills_in_equity :]:
            qty = float(fill.qty)
            value = qty * float(fill.price)
            self._equity += (value if fill.side == "sell" else -value) - commission * qty
        self._fills_in_equity = len(self.fills)
        return self._equity

    def _end_session(self, last: int, s_close: float, close_dt: dt.datetime) -> None:
        broker = self.broker
        last_end = dt.datetime.fromtimestamp(self.t[last] + 60, NEW_YORK)
        flat_dt = dt.datetime.fromtimestamp(s_close - self.flatten_s, NEW_YORK)
        if self._now() < flat_dt:
            self.dispatch([Tick(flat_dt)])  # the data ended early: the clock still reaches the flatten
        if broker.pending:
            self.dispatch(broker.fill_closes_at(self.c[last], last_end))
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
