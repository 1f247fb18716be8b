"""The machine's clock rules: the open, the no-entry window, the flatten, done for the day.

Part of the machine (core/machine.py has the entry point and the rules it keeps). Every time rule of
the strategy lives in `on_time`, which every handler consults after moving the clock.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from .events import Action, CancelAll, CloseAll, CloseFailed, Log, ProtectPosition, SleepUntil, WakeAt
from .state import (
    ACTIVE_TRADE,
    DONE_FOR_THE_DAY,
    EXPOSED,
    ORDER_SENT,
    ORDER_SUBMITTED,
    SEARCHING,
    WAITING_FOR_OPEN,
    State,
    evolve,
    market_open,
)
from .ticks import round_to_tick, snap_noise


def done(state: State, reason: str) -> tuple[State, list[Action]]:
    actions: list[Action] = [Log("info", f"{state.symbol}: done for the day ({reason})")]
    if state.next_open is not None:
        actions.append(SleepUntil(state.next_open, "next session"))
    return evolve(state, phase=DONE_FOR_THE_DAY, box=None, done_reason=reason), actions


ENTRY_WORKING = (ORDER_SENT, ORDER_SUBMITTED)
MAX_CLOSE_RETRY_S = 30.0  # a close that keeps failing is retried at most this far apart
PROMPT_CLOSE_RETRIES = 5  # the first retries keep the executor's delay (a second while cancels finish)
PROTECTIVE_STOP_PCT = 2.0  # a stop of our own, without the trade's stop: this far from the last close


def close_position(state: State, reason: str) -> CloseAll:
    """The action that gets the position closed, with what the executor needs to price a marketable
    exit (the latest close, the trade's stop)."""
    last = snap_noise(state.bars[-1].close) if state.bars else None
    entry = state.entry
    stop = entry.stop_price if entry is not None and entry.stop_price > 0 else None
    return CloseAll(state.symbol, reason, last, stop)


def entry_filling(state: State) -> bool:
    """A position from an entry filled only in part: the rest of it may still be filling."""
    entry = state.entry
    return entry is not None and state.position_qty != 0 and abs(state.position_qty) < entry.qty


def close_actions(state: State, reason: str) -> list[Action]:
    """The close, after canceling an entry still filling (its later fills would open the position
    again behind the close)."""
    cancel: list[Action] = [CancelAll(state.symbol)] if entry_filling(state) else []
    return [*cancel, close_position(state, reason)]


def flatten(state: State, reason: str) -> tuple[State, list[Action]]:
    """Cancel the working entry, or close the position (the executor keeps its stop working until the
    exit fills where it can), and be done for the day."""
    actions: list[Action] = [Log("info", f"{state.symbol}: flatten ({reason})")]
    if state.position_qty == 0:
        actions.append(CancelAll(state.symbol))
    if state.position_qty != 0 or state.phase in ENTRY_WORKING:
        # A working entry may have filled in part without our hearing of it yet: close whatever the
        # broker holds (the executor reads the position first, so a flat account costs one read).
        actions.extend(close_actions(state, reason))
    new_state, done_actions = done(evolve(state, flattened=True, unprotected=False), reason)
    return new_state, actions + done_actions


def retry_close(state: State, reason: str) -> tuple[State, list[Action]]:
    """Send the close again now (a retry fell due, or what held the shares is gone)."""
    state = evolve(state, close_retry_at=None)
    return state, [close_position(state, reason)]


def on_close_failed(state: State, event: CloseFailed) -> tuple[State, list[Action]]:
    """The close did not go through: try again soon (a second at first, backing off to 30 s), and when
    the broker refused it outright with nothing protecting the position, send a stop of our own."""
    if event.symbol != state.symbol or state.position_qty == 0 or state.now is None:
        return state, []
    failures = state.close_failures + 1
    delay = min(MAX_CLOSE_RETRY_S, event.retry_after * 2 ** max(0, failures - PROMPT_CLOSE_RETRIES))
    when = state.now + timedelta(seconds=delay)
    symbol, qty = state.symbol, state.position_qty
    actions: list[Action] = []
    protect_note = ""
    if event.refused and event.unprotected:
        stop = _protective_stop(state)
        if stop is not None:
            actions.append(
                ProtectPosition(symbol, "sell" if qty > 0 else "buy", abs(qty), stop, event.reason)
            )
            protect_note = f"sending a stop at {stop}; "
        else:
            protect_note = "no price known for a stop; "
    actions.insert(
        0,
        Log(
            "warning",
            f"{symbol}: close of {qty} not accepted ({event.reason}); {protect_note}retrying in {delay:g}s",
        ),
    )
    actions.append(WakeAt(symbol, when, "close retry"))
    return evolve(state, close_retry_at=when, close_failures=failures), actions


def _protective_stop(state: State) -> Decimal | None:
    """The trade's stop, or a stop PROTECTIVE_STOP_PCT % beyond the latest close."""
    entry = state.entry
    if entry is not None and entry.stop_price > 0:
        return entry.stop_price
    if not state.bars:
        return None
    last = state.bars[-1].close
    long = state.position_qty > 0
    factor = 1 - PROTECTIVE_STOP_PCT / 100 if long else 1 + PROTECTIVE_STOP_PCT / 100
    return round_to_tick(last * factor, "down" if long else "up")


def on_time(state: State) -> tuple[State, list[Action]]:
    """Clock-driven transitions: open, no-entry window, flatten window."""
    p = state.params
    session = state.session
    now = state.now
    if session is None or now is None:
        return state, []
    if state.close_retry_at is not None and now >= state.close_retry_at and state.position_qty != 0:
        return retry_close(state, "retrying the close")
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
    state = evolve(state, unprotected=False, closing=True)
    return state, [
        Log("warning", f"{state.symbol}: position {state.position_qty} has no working stop; flattening"),
        *close_actions(state, "unprotected position"),
    ]
