"""The search: closed bars form the box, and a close beyond it sends the bracket entry.

Part of the machine (core/machine.py has the entry point and the rules it keeps).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .day import done, on_time
from .events import Action, Log, SubmitBracket
from .ids import client_order_id
from .model import NEW_YORK, Bar
from .state import ACTIVE_TRADE, ORDER_SENT, SEARCHING, State, evolve
from .strategy import (
    bracket_prices,
    bracket_skip_reason,
    breakout_signal,
    compute_box,
    is_valid_bar,
    position_size,
)
from .ticks import snap_noise

# A bar whose minute ended longer ago than this tells what the price was, not what it is: it still
# joins the window (and may complete the box), but its close never sends an entry. The guide acts on
# the latest bar only. A bar polled 2 s after its minute is 2 s old; one replayed after a stall, a
# dropped connection or a slow feed is minutes old (issue 16: a 15:37 bar traded at 15:46).
MAX_SIGNAL_AGE = timedelta(seconds=70)


def start_search(state: State, exit_time: datetime | None) -> State:
    return evolve(
        state,
        phase=SEARCHING,
        box=None,
        box_not_before=exit_time,
        entry=None,
        entry_sent_at=None,
        entry_lookup_at=None,
        avg_entry_price=None,
        closing=False,
    )


def resume_search(
    state: State, exit_time: datetime | None, actions: list[Action]
) -> tuple[State, list[Action]]:
    """Back to searching after an exit / a dead entry: the clock decides first (no searching inside the
    no-entry window), then the box forms at once when the exit bar has already closed."""
    new_state, more = on_time(start_search(state, exit_time))
    actions = [*actions, *more]
    if new_state.phase is SEARCHING and new_state.box is None:
        new_state, actions = maybe_form_box(new_state, actions)
    return new_state, actions


def on_bar(state: State, bar: Bar) -> tuple[State, list[Action]]:
    if not is_valid_bar(bar):
        return state, [Log("warning", f"{state.symbol}: ignoring invalid bar {bar}")]
    session = state.session
    if session is None or not (session.open <= bar.t < session.close):
        return state, []  # pre/post-market bars never enter a box
    if state.bars and bar.t <= state.bars[-1].t:
        return state, []  # a repeated or out-of-order bar (poll overlap, replay): already seen
    bars = (*state.bars, bar)[-state.params.lookback :]
    end = bar.end  # the clock moves to the bar's close (never back): `later`, inlined on the hot path
    now = state.now
    state = evolve(state, bars=bars, now=end if now is None or end > now else now)
    state, actions = on_time(state)
    if state.phase is not SEARCHING:
        return state, actions
    if state.box is None:
        return maybe_form_box(state, actions)
    return check_breakout(state, bar, actions)


def maybe_form_box(state: State, actions: list[Action]) -> tuple[State, list[Action]]:
    p = state.params
    if not state.bars:
        return state, actions
    if state.box_not_before is not None and state.bars[-1].end <= state.box_not_before:
        return state, actions  # the bar that contained the exit has not closed yet: it belongs in the box
    if len(state.bars) < p.lookback:
        return state, actions
    box = compute_box(state.bars[-p.lookback :], p.min_range_pct)
    note = f" (floored at {p.min_range_pct:.2f}%)" if box.floored else ""
    return evolve(state, box=box, box_not_before=None), [
        *actions,
        Log(
            "info",
            "{}: box {:.4f}-{:.4f} range {:.4f}{} from {} bars ending {:%H:%M}",
            (state.symbol, box.low, box.high, box.range, note, p.lookback, box.end.astimezone(NEW_YORK)),
        ),
    ]


def check_breakout(state: State, bar: Bar, actions: list[Action]) -> tuple[State, list[Action]]:
    box = state.box
    session = state.session
    assert box is not None and session is not None
    side = breakout_signal(box, bar.close)
    if side is None:
        return state, actions
    now = state.now  # real time when the runner ticked before the bar; never earlier than its end
    if now is not None and now - bar.end > MAX_SIGNAL_AGE:
        return state, [
            *actions,
            Log(
                "warning",
                "{}: stale signal: {:%H:%M} bar is {} min old; not trading it",
                (state.symbol, bar.t.astimezone(NEW_YORK), int((now - bar.t).total_seconds() // 60)),
            ),
        ]
    if state.position_qty != 0:  # defensive: one position per symbol, whatever the path that got here
        return evolve(state, phase=ACTIVE_TRADE), [
            *actions,
            Log("warning", f"{state.symbol}: holding {state.position_qty} while searching; not entering"),
        ]
    p = state.params
    if p.max_trades and state.trades_today >= p.max_trades:
        return done(state, f"max {p.max_trades} trades per day reached")
    if p.max_daily_loss and -state.realized_pnl_today >= p.max_daily_loss:
        return done(state, f"daily loss limit {p.max_daily_loss:.2f} reached")
    if side == "sell" and not state.can_short:
        return state, [
            *actions,
            Log("debug", f"{state.symbol}: short breakout at {bar.close} skipped: not easy to borrow today"),
        ]
    bracket = bracket_prices(box, side)
    skip = bracket_skip_reason(bracket, bar.close)
    if skip is not None:
        return state, [
            *actions,
            Log("info", f"{state.symbol}: {side} breakout at {bar.close} skipped: {skip}"),
        ]
    level = box.high if side == "buy" else box.low
    qty = position_size(p.qty, p.risk_pct, state.equity, level, bracket.stop_price)
    if qty < 1:
        return state, [
            *actions,
            Log("warning", f"{state.symbol}: {side} breakout skipped: {p.risk_pct}% of equity buys no share"),
        ]
    number = state.entries_sent_today + 1
    order = SubmitBracket(
        symbol=state.symbol,
        side=side,
        qty=qty,
        stop_price=bracket.stop_price,
        take_profit_price=bracket.take_profit_price,
        client_order_id=client_order_id(state.symbol, session.date, number),
        box=box,
        reference_price=snap_noise(bar.close),
        signal_end=bar.end,
    )
    sent = evolve(
        state,
        phase=ORDER_SENT,
        entry=order,
        entries_sent_today=number,
        entry_sent_at=now,
        entry_lookup_at=None,
    )
    return sent, [
        *actions,
        Log(
            "info",
            "{}: {} breakout: {:%H:%M} bar close {} {} {}; {} {} stop {} take-profit {}",
            (
                state.symbol,
                "long" if side == "buy" else "short",
                bar.t.astimezone(NEW_YORK),
                bar.close,
                ">" if side == "buy" else "<",
                level,
                side,
                qty,
                bracket.stop_price,
                bracket.take_profit_price,
            ),
        ),
        order,
    ]
