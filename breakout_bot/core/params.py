"""The strategy's parameters: one home for their defaults and their meaning.

`Params()` holds the defaults; `DESCRIPTIONS` says what each field means, in words. Settings
(config/settings.py) nest a Params, and the command line's flags and their help are generated from
these two (cli/args.py), so a default is written once.
"""

from __future__ import annotations

from dataclasses import fields

from .valuetype import value_type


@value_type
class Params:
    lookback: int = 10
    min_range_pct: float = 0.3
    qty: int = 100
    no_entry_minutes: int = 20
    flatten_minutes: int = 5
    max_trades: int = 0  # per day; 0 = unlimited (the guide re-arms after every exit)
    max_daily_loss: float = 0.0  # dollars of realized loss that stop the day; 0 = off
    risk_pct: float | None = None  # size each trade to lose this % of equity at the stop; None = qty
    max_positions: int = 0  # symbols holding a position (or entering) at once, across a run; 0 = no limit


DESCRIPTIONS: dict[str, str] = {
    "qty": "shares per trade",
    "lookback": "bars in the box",
    "min_range_pct": "minimum box range, in percent of the box's last close",
    "no_entry_minutes": "no new entry this close to the close",
    "flatten_minutes": "flatten everything this close to the close",
    "max_trades": "entries per symbol per day (0 = unlimited)",
    "max_daily_loss": "stop trading for the day after this realized loss in dollars, per symbol and across"
    " all the symbols of a run (0 = off)",
    "risk_pct": "size each trade to lose this percent of equity at its stop (default: a fixed qty)",
    "max_positions": "at most this many symbols holding a position or entering at once; a breakout beyond"
    " it is skipped (0 = no limit)",
}

PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Params))
assert set(DESCRIPTIONS) == set(PARAM_NAMES), "every parameter is described"
