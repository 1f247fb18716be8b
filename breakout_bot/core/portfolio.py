"""Portfolio rules: what the symbols of one run share besides the account (issue 22).

Each symbol's machine keeps its own rules (its box, its trades, its daily limits); these rules look
across the machines, and both shells apply them before an entry reaches a broker: the live bot's risk
gate (live/risk.py) and the backtest's portfolio gate (backtest/portfolio.py).

* `max_positions`: at most this many symbols committed at once, a symbol being committed while it
  holds a position or has an entry in flight (sent, working or filled: `EXPOSED`). A breakout beyond
  it is skipped (the machine searches again) with a log line.
* `max_daily_loss`: besides ending one symbol's day (core/search.py), the realized loss of all the
  symbols together stops new entries for the day.
* The order in which several symbols' breakouts on the same bar are served: the order the symbols
  were given (the command line, the universe file), in the live runner's minute poll and in the
  backtest's merge alike. So with `max_positions` the first symbols given win a contested slot.
"""

from __future__ import annotations

from collections.abc import Iterable

from .params import Params
from .state import EXPOSED, State


def committed(states: Iterable[State]) -> list[str]:
    """The symbols holding a position or with an entry in flight, in the order given."""
    return [s.symbol for s in states if s.position_qty != 0 or s.phase in EXPOSED]


def portfolio_refusal(symbol: str, states: Iterable[State], params: Params) -> str | None:
    """Why `symbol`'s entry must not go out for the portfolio's sake, or None. `states` are every
    symbol's machine (this one's included: it has just decided to enter)."""
    limit = portfolio_limit(symbol, states, params)
    return None if limit is None else limit[1]


MAX_POSITIONS = "max positions"
PORTFOLIO_DAILY_LOSS = "portfolio daily loss"


def portfolio_limit(symbol: str, states: Iterable[State], params: Params) -> tuple[str, str] | None:
    """The portfolio's limit `symbol`'s entry meets, as (MAX_POSITIONS or PORTFOLIO_DAILY_LOSS, why), or
    None (`portfolio_refusal`'s rule, with the limit named)."""
    states = list(states)
    if params.max_positions:
        others = [s for s in committed(states) if s != symbol]
        if len(others) >= params.max_positions:
            held = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            return MAX_POSITIONS, f"max positions {params.max_positions} reached ({held})"
    if params.max_daily_loss:
        realized = sum(s.realized_pnl_today for s in states)
        if -realized >= params.max_daily_loss:
            return (
                PORTFOLIO_DAILY_LOSS,
                f"portfolio daily loss limit {params.max_daily_loss:.2f} reached ({realized:.2f} today)",
            )
    return None
