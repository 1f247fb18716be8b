"""The machine's clock rules: the open, the no-entry window, the flatten, done for the day.

Part of the machine (core/machine.py has the entry point and the rules it keeps). Every time rule of
the strategy lives in `on_time`, which every handler consults after moving the clock.
"""

from __future__ import annotations

from .events import Action, CancelAll, CloseAll, Log, SleepUntil
from .state import (
    ACTIVE_TRADE,
    DONE_FOR_THE_DAY,
    EXPOSED,
    SEARCHING,
    WAITING_FOR_OPEN,
    State,
    evolve,
    market_open,
)


def done(state: State, reason: str) -> tuple[State, list[Action]]:
    actions: list[Action] = [Log("info", f"{state.symbol}: done for the day ({reason})")]
    if state.next_open is not None:
        actions.append(SleepUntil(state.next_open, "next session"))
    return evolve(state, phase=DONE_FOR_THE_DAY, box=None, done_reason=reason), actions


def flatten(state: State, reason: str) -> tuple[State, list[Action]]:
    actions: list[Action] = [
        Log("info", f"{state.symbol}: flatten ({reason})"),
        CancelAll(state.symbol),
        CloseAll(state.symbol, reason),
    ]
    new_state, done_actions = done(evolve(state, flattened=True, unprotected=False), reason)
    return new_state, actions + done_actions


def on_time(state: State) -> tuple[State, list[Action]]:
    """Clock-driven transitions: open, no-entry window, flatten window."""
    p = state.params
    session = state.session
    now = state.now
    if session is None or now is None:
        return state, []
    minutes_left = (session.close - now).total_seconds() / 60.0
    if now >= session.close:
        exposed = state.position_qty != 0 or state.phase in EXPOSED
        if exposed and not state.flattened:
            # The flatten window was skipped (no tick/bar between close - flatten_minutes and the close):
            # still cancel and close rather than go to sleep holding a position or a working entry.
            return flatten(state, "session closed before the flatten")
        if state.phase is not DONE_FOR_THE_DAY:
            return done(state, "session closed")
        return state, []
    if minutes_left <= p.flatten_minutes and not state.flattened:
        return flatten(state, f"{p.flatten_minutes} minutes before the close")
    if state.phase is WAITING_FOR_OPEN and now >= session.open:
        if state.position_qty != 0:
            return evolve(state, phase=ACTIVE_TRADE), [
                Log("info", f"{state.symbol}: market open holding {state.position_qty}; managing it")
            ]
        if minutes_left <= p.no_entry_minutes:
            return done(state, "too close to the close to trade")
        return evolve(state, phase=SEARCHING, box=None, box_not_before=None), [
            Log("info", f"{state.symbol}: market open, searching")
        ]
    if state.phase is SEARCHING and minutes_left <= p.no_entry_minutes:
        return done(state, f"no new entry in the last {p.no_entry_minutes} minutes")
    if state.unprotected and market_open(state) and state.position_qty != 0:
        return protect(state)
    return state, []


def protect(state: State) -> tuple[State, list[Action]]:
    """A position without a working stop: the guide's bracket is gone, so flatten rather than hope."""
    return evolve(state, unprotected=False, closing=True), [
        Log("warning", f"{state.symbol}: position {state.position_qty} has no working stop; flattening"),
        CancelAll(state.symbol),
        CloseAll(state.symbol, "unprotected position"),
    ]
