"""The trading state machine: step(state, event) -> (state, actions). Pure: no I/O, no clock, no threads.

The same `step` drives live, paper, simulator and backtest runs. The runner turns the world into
events and executes the actions; it never decides strategy. The machine never does I/O.

The rules it keeps, for one symbol:

1. One trade at a time: an entry goes out only while searching, flat, with no entry working; a
   position that appears in any phase is a trade to manage.
2. Entries carry deterministic client order ids (`bb-SYMBOL-YYYYMMDD-N`, core/ids.py); N only grows
   within a session, and a restart takes it from the broker's orders, so no order is ever sent twice.
   An entry the broker has not acknowledged yet is waited for, never sent again next to itself; and
   waited for in bounded time: looked up, then given up on with its number reused (pending.py).
3. Every execution is recorded once (`RecordFill`), whichever source reports it first (execution ids).
4. Time only moves forward, and every time rule is `day.on_time`: no box before `lookback` closed
   session bars; no new entry in the last `no_entry_minutes`; at close - `flatten_minutes` (or at the
   close, when nothing arrived in between) cancel everything and close the position; then done until
   the next session.
5. A position without a working stop on its closing side is flattened as soon as the market is open.
6. After an exit the search re-arms with a new box from the bars ending with the exit bar, unless
   `max_trades` or `max_daily_loss` ends the day.
7. Only a successful read changes the position: a failed read is never "flat".
8. Only valid, regular-session bars newer than the last one enter the window; a bar whose minute
   ended more than `MAX_SIGNAL_AGE` (70 s) before now may complete the box but never sends an entry
   (the runner ticks the real time in before any backlog bar).
9. Open orders on the symbol that we did not send, and that do not protect the position, are canceled.
10. Total: every (phase, event) pair is handled (tests/core/test_machine.py walks the table).

Where the rules live: state.py (the memory), day.py (4), search.py (1, 6, 8), trade.py (1, 3, 5, 7),
reconcile.py (2, 5, 9), pending.py (2). Rule 7 also means a fill the broker's position read already
holds moves the position once, not twice (`reflected`, trade.py). The backtest engine's shortcut over bars that change nothing uses
`quiet_bars` and `absorb_quiet_bars` below, beside the rules they depend on.
"""

from __future__ import annotations

from collections.abc import Sequence

from .day import on_close_failed, on_time
from .events import (
    Action,
    BarClosed,
    CloseFailed,
    EntryNotFound,
    Event,
    OrderUpdate,
    PositionChanged,
    Reconciled,
    SubmitFailed,
    Tick,
)
from .model import Bar
from .pending import on_entry_not_found, on_entry_timer
from .reconcile import on_reconciled
from .search import on_bar
from .state import (
    ACTIVE_TRADE,
    DONE_FOR_THE_DAY,
    ORDER_SENT,
    SEARCHING,
    Phase,
    State,
    advance,
    evolve,
    initial_state,
)
from .trade import on_order_update, on_position, on_submit_failed

_INF = float("inf")


def step(state: State, event: Event) -> tuple[State, list[Action]]:
    """Advance the machine by one event. Total: every (phase, event) pair is handled."""
    # Most frequent first (a backtest sends millions).
    if isinstance(event, BarClosed):
        return on_bar(state, event.bar)
    if isinstance(event, OrderUpdate):
        return on_order_update(state, event)
    if isinstance(event, Tick):
        state, actions = on_time(advance(state, event.now))
        if state.phase is ORDER_SENT:
            return on_entry_timer(state, actions)
        return state, actions
    if isinstance(event, Reconciled):
        return on_reconciled(state, event)
    if isinstance(event, SubmitFailed):
        return on_submit_failed(state, event)
    if isinstance(event, PositionChanged):
        return on_position(state, event)
    if isinstance(event, CloseFailed):
        return on_close_failed(state, event)
    if isinstance(event, EntryNotFound):
        return on_entry_not_found(state, event)
    raise TypeError(f"unknown event {event!r}")


def quiet_bars(state: State, close_s: float) -> tuple[float, float, float, float] | None:
    """Which following bars would change nothing but the bar window and the clock (so that a replay may
    hand them over in one `absorb_quiet_bars` instead of a BarClosed and a Tick each).

    Returns (t_limit, box_in, close_low, close_high), or None when any bar may matter: a bar that follows
    without a gap, starts before `t_limit` (epoch seconds; `close_s` is the session's close on that
    axis), comes before the `box_in`-th bar from now (the one that completes the box) and closes within
    [close_low, close_high] is quiet for the machine. Mirrors `day.on_time`, `search.on_bar`,
    `search.maybe_form_box` and `search.check_breakout`; when in doubt it answers None (the backtest's
    tests hold the shortcut equal to stepping every event)."""
    if state.unprotected:
        return None
    phase = state.phase
    flatten_s = 0 if state.flattened else state.params.flatten_minutes * 60
    if phase is DONE_FOR_THE_DAY:
        return (_INF if state.flattened else close_s - flatten_s - 60), _INF, -_INF, _INF
    if phase is ACTIVE_TRADE:
        return close_s - flatten_s - 60, _INF, -_INF, _INF
    if phase is not SEARCHING:
        return None
    t_limit = close_s - max(flatten_s, state.params.no_entry_minutes * 60) - 60
    box = state.box
    if box is not None:
        return t_limit, _INF, box.low, box.high
    if state.box_not_before is not None:
        return None
    return t_limit, state.params.lookback - len(state.bars), -_INF, _INF


def absorb_quiet_bars(state: State, bars: Sequence[Bar]) -> State:
    """What BarClosed + Tick make of bars that `quiet_bars` calls quiet: the window takes them and the
    clock moves to the last one's end. `bars`: the last (at most `lookback`) of them, oldest first."""
    lookback = state.params.lookback
    end = bars[-1].end
    now = end if state.now is None or end > state.now else state.now
    window = tuple(bars) if len(bars) == lookback else (*state.bars, *bars)[-lookback:]
    return evolve(state, bars=window, now=now)


__all__ = ["Phase", "State", "absorb_quiet_bars", "initial_state", "quiet_bars", "step"]
