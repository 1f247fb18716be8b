"""What a backtest returns: the trades (built from the fills), the fills, the daily P&L, and what it skipped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ..core.events import SubmitBracket
from ..core.model import NEW_YORK, Fill
from ..core.params import Params
from .broker import BacktestOrder
from .trades import ExitReason, Trade

if TYPE_CHECKING:
    import pandas as pd

EXIT_REASONS: dict[str, ExitReason] = {
    "take_profit": "take_profit",
    "stop_loss": "stop_loss",
    "flatten": "flatten",
    "end_of_data": "end_of_data",
}


@dataclass
class BacktestResult:
    symbol: str
    params: Params
    trades: list[Trade]
    fills: list[Fill]
    days: list[dt.date]  # the sessions replayed, in order
    day_pnl: list[float]  # the net P&L of each of them
    bars_processed: int
    sessions: int
    skipped: list[str]  # breakouts not traded, and why
    session_minutes: int = 0  # regular-session minutes of the sessions that had bars
    initial_equity: float = 100_000.0
    commission_per_share: float = 0.0
    slippage_per_share: float = 0.0
    warnings: list[str] = field(default_factory=list)
    events: int = 0  # machine.step calls

    @cached_property
    def daily(self) -> pd.DataFrame:
        """Columns date, pnl (net), equity: a frame for those who want one (the command's report reads
        the lists: no pandas)."""
        return daily_frame(self.days, self.day_pnl, self.initial_equity)


def trades_from_fills(
    fills: list[Fill],
    orders: Mapping[str, BacktestOrder],
    entries: Mapping[str, SubmitBracket],
    symbol: str,
    commission: float,
    warnings: list[str],
) -> list[Trade]:
    """Round trips from the fills in order: an entry fill, then the exit that closes it (its reason by the
    order's kind); the bracket's prices and box from the entry the machine sent."""
    trades: list[Trade] = []
    entry: Fill | None = None
    for fill in fills:
        kind = orders[fill.order_id].kind
        if kind == "entry":
            entry = fill
            continue
        if entry is None:
            warnings.append(f"exit fill {fill.execution_id} without an entry")
            continue
        request = entries.get(entry.client_order_id)
        box = request.box if request is not None else None
        reason = EXIT_REASONS.get(kind, "flatten")
        qty = int(entry.qty)
        trades.append(
            Trade(
                symbol=symbol,
                side=entry.side,
                qty=qty,
                entry_time=entry.timestamp,
                entry_price=float(entry.price),
                exit_time=fill.timestamp,
                exit_price=float(fill.price),
                exit_reason=reason,
                stop_price=float(request.stop_price) if request else float("nan"),
                take_profit_price=float(request.take_profit_price) if request else float("nan"),
                box_high=box.high if box else float("nan"),
                box_low=box.low if box else float("nan"),
                box_range=box.range if box else float("nan"),
                commission=round(commission * (float(entry.qty) + float(fill.qty)), 10),
            )
        )
        entry = None
    return trades


def daily_pnl(trades: list[Trade], days: list[dt.date]) -> tuple[list[dt.date], list[float]]:
    """Each day's net P&L (the days given, and any a trade exited on), in date order."""
    pnl: dict[dt.date, float] = dict.fromkeys(days, 0.0)
    for tr in trades:
        day = tr.exit_time.astimezone(NEW_YORK).date()
        pnl[day] = pnl.get(day, 0.0) + tr.net_pnl
    dates = sorted(pnl)
    return dates, [pnl[d] for d in dates]


def daily_frame(dates: Sequence[dt.date], pnl: Sequence[float], initial_equity: float) -> pd.DataFrame:
    """Days, their net P&L and the equity after each, as one frame (columns date, pnl, equity)."""
    import pandas as pd

    values = np.array(pnl, dtype=np.float64)
    return pd.DataFrame({"date": list(dates), "pnl": values, "equity": initial_equity + np.cumsum(values)})
