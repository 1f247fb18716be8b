"""What the dashboard shows, as plain JSON-ready dicts: a run's status (`run_view`) or a past day
(`day_view`). Pure: no I/O, no clock; the words are the terminal panel's (`live/status.py`).

Per symbol: the phase in words, today's box, the position with its stop and take-profit, the working
orders as the bot knows them (its entry while it works, then the bracket's two legs), today's fills
and P&L, and the chart's data (minute bars, the box, entries and exits, the bracket's levels).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ...core.model import NEW_YORK, Bar, Box
from ...core.state import Phase, State
from ...journal import FillRecord
from ...roundtrips import FillLike, round_trips
from ..status import money, phase_words, status_fields

View = dict[str, Any]


def _iso(t: dt.datetime) -> str:
    """New York wall time, as the chart's axis shows it (plotly reads the naive ISO string as is)."""
    return t.astimezone(NEW_YORK).strftime("%Y-%m-%dT%H:%M:%S")


def _num(value: float | Decimal | None) -> float | None:
    return None if value is None else float(value)


def bars_view(bars: Iterable[Bar]) -> list[View]:
    return [{"t": _iso(b.t), "open": b.open, "high": b.high, "low": b.low, "close": b.close} for b in bars]


def box_view(box: Box | None) -> View | None:
    if box is None:
        return None
    return {
        "high": box.high,
        "low": box.low,
        "range": box.range,
        "floored": box.floored,
        "start": _iso(box.start),
        "end": _iso(box.end),
    }


def working_orders(state: State) -> list[View]:
    """The orders the bot has working at the broker, as its machine knows them."""
    entry = state.entry
    if entry is None:
        return []
    if state.phase in (Phase.ORDER_SENT, Phase.ORDER_SUBMITTED):
        status = "sent, no answer yet" if state.phase is Phase.ORDER_SENT else "accepted, working"
        return [
            {
                "order": "entry",
                "side": entry.side,
                "qty": entry.qty,
                "type": "market (bracket)",
                "price": None,
                "status": status,
            }
        ]
    if state.position_qty == 0 or state.flattened or state.closing or state.unprotected:
        return []
    exit_side = "sell" if state.position_qty > 0 else "buy"
    qty = int(abs(state.position_qty))
    return [
        {
            "order": "stop-loss",
            "side": exit_side,
            "qty": qty,
            "type": "stop",
            "price": float(entry.stop_price),
            "status": "held",
        },
        {
            "order": "take-profit",
            "side": exit_side,
            "qty": qty,
            "type": "limit",
            "price": float(entry.take_profit_price),
            "status": "working",
        },
    ]


def _fill_like(r: FillRecord) -> FillLike:
    return FillLike(r.symbol, r.side, Decimal(r.qty), Decimal(r.price), r.filled_at)


def fill_day(record: FillRecord) -> dt.date:
    """The New York date of a fill."""
    return record.filled_at.astimezone(NEW_YORK).date()


def fills_view(records: Iterable[FillRecord]) -> list[View]:
    return [
        {
            "time": _iso(r.filled_at),
            "side": r.side,
            "qty": float(Decimal(r.qty)),
            "price": float(Decimal(r.price)),
            "leg": r.leg.replace("_", "-"),
        }
        for r in sorted(records, key=lambda r: r.filled_at)
    ]


def trades_view(records: Iterable[FillRecord]) -> list[View]:
    """The round trips these fills make (average cost), with their realized P&L."""
    out = []
    for trip in round_trips(_fill_like(r) for r in records):
        exit_price = trip.exit_price
        out.append(
            {
                "direction": trip.direction,
                "qty": float(trip.qty),
                "opened": _iso(trip.opened),
                "closed": _iso(trip.closed) if trip.closed else None,
                "entry_price": float(trip.entry_price),
                "exit_price": _num(exit_price),
                "realized": float(trip.realized),
                "realized_text": money(trip.realized),
                "legs": list(trip.legs),
            }
        )
    return out


def symbol_view(state: State, chart_bars: Sequence[Bar], fills: Sequence[FillRecord]) -> View:
    """One symbol's panel: `state` as the machine has it, the session's bars seen so far, today's fills."""
    fields = status_fields(state)
    entry = state.entry
    in_trade = state.position_qty != 0 or state.phase in (Phase.ORDER_SENT, Phase.ORDER_SUBMITTED)
    shown_entry = entry if in_trade else None
    box = state.box or (shown_entry.box if shown_entry is not None else None)
    return {
        "symbol": state.symbol,
        "phase": state.phase.value,
        "phase_words": phase_words(state),
        "fields": fields,
        "box": box_view(box),
        "position": {
            "qty": float(state.position_qty),
            "avg_entry_price": _num(state.avg_entry_price),
            "text": fields["position"],
        },
        "stop": _num(shown_entry.stop_price) if shown_entry is not None else None,
        "take_profit": _num(shown_entry.take_profit_price) if shown_entry is not None else None,
        "working_orders": working_orders(state),
        "fills": fills_view(fills),
        "trades": trades_view(fills),
        "realized": state.realized_pnl_today,
        "realized_text": money(state.realized_pnl_today),
        "bars": bars_view(chart_bars),
    }


def run_view(
    now: dt.datetime,
    stream_up: bool,
    equity: Decimal | None,
    states: Sequence[State],
    chart_bars: Mapping[str, Sequence[Bar]],
    fills: Sequence[FillRecord],
    *,
    simulated: bool,
) -> View:
    """The whole page of a running bot. `fills`: the journal's, of any day; each symbol shows its
    session's (New York date)."""
    symbols = []
    for state in states:
        day = state.session.date if state.session is not None else now.astimezone(NEW_YORK).date()
        own = [f for f in fills if f.symbol == state.symbol and fill_day(f) == day]
        symbols.append(symbol_view(state, chart_bars.get(state.symbol, ()), own))
    return {
        "kind": "run",
        "now": _iso(now),
        "simulated": simulated,
        "stream_up": stream_up,
        "equity": _num(equity),
        "realized": sum(s.realized_pnl_today for s in states),
        "realized_text": money(sum(s.realized_pnl_today for s in states)),
        "symbols": symbols,
    }


def journal_days(records: Iterable[FillRecord]) -> list[str]:
    """The New York dates the journal has fills on, newest first."""
    return sorted({fill_day(r).isoformat() for r in records}, reverse=True)


def day_view(day: dt.date, records: Iterable[FillRecord], bars: dict[str, Sequence[Bar] | None]) -> View:
    """A past day from the journal: per symbol its fills, round trips and P&L, and its chart where the
    bars are cached (`bars[symbol]` None: not cached; the page says so)."""
    of_day = [r for r in records if fill_day(r) == day]
    symbols = []
    for symbol in sorted({r.symbol for r in of_day}):
        own = [r for r in of_day if r.symbol == symbol]
        trades = trades_view(own)
        realized = sum(t["realized"] for t in trades)
        symbol_bars = bars.get(symbol)
        symbols.append(
            {
                "symbol": symbol,
                "fills": fills_view(own),
                "trades": trades,
                "realized": realized,
                "realized_text": money(realized),
                "bars": bars_view(symbol_bars) if symbol_bars else [],
                "bars_cached": bool(symbol_bars),
            }
        )
    total = sum(s["realized"] for s in symbols)
    return {
        "kind": "day",
        "day": day.isoformat(),
        "realized": total,
        "realized_text": money(total),
        "symbols": symbols,
    }
