"""The fast path: the breakout rules of machine.step compiled into one loop over flat arrays.

`fast_backtest` produces the same trades as the event path (`engine.run_backtest`, which replays bars
through the live `machine.step`), trade for trade (`Trade.key()`), orders of magnitude faster: it is
what parameter sweeps run. tests/backtest/test_kernel.py proves the identity on random and realistic
bars; when the two disagree, the machine (core/) is the ground truth. The kernel is the one
documented exception to "one home per rule" (docs/architecture.md): it mirrors core/strategy.py's box
and bracket, core/ticks.py's rounding and market/fills.py's fill rules, held to them by those tests.

Layout: the session bookkeeping (NYSE calendar, early closes, dropping bars outside the session) is
done once in Python by `prepare_bars`; the kernel sees contiguous arrays only:

    t            int64   bar start, epoch seconds (UTC)
    o, h, l, c   float64 prices
    bounds       int64   session s owns bars bounds[s] : bounds[s + 1]
    close_t      int64   session close, epoch seconds (early closes honoured)

and returns its trades as parallel arrays (`TradeArrays`), which `to_trades` turns into `Trade`s.

Exactness. Order prices are computed as the machine computes them: the box is float arithmetic in
the same order as core.strategy.compute_box, and tick rounding reproduces core.ticks.round_to_tick's
Decimal semantics (snap to 1e-6 with round-half-even on the float's exact binary value, then floor or
ceil to $0.01 at or above $1, $0.0001 below) in integer micro-dollars. The snap is exact: an
error-free product (Dekker's TwoProduct) gives price * 1e6 as p + e with no rounding, so even ties
(0.0078125 = 1/128) round like Python's round(x, 6). Valid for |price| < 1e9.

Compiled with numba when it is installed (`HAVE_NUMBA`); otherwise the very same functions run as
plain Python (correct, about 100x slower).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd

from ..core.model import NEW_YORK
from ..core.params import Params
from .trades import ExitReason, Trade

F = TypeVar("F", bound=Callable[..., Any])

try:  # pragma: no cover - exercised by whichever environment runs the tests
    import numba

    HAVE_NUMBA = True
    NUMBA_VERSION: str | None = numba.__version__

    def _jit(fn: F) -> F:
        return cast(F, numba.njit(cache=True, nogil=True)(fn))
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False
    NUMBA_VERSION = None

    def _jit(fn: F) -> F:
        return fn


# Exit reason codes of the kernel's output (index into EXIT_REASONS).
TAKE_PROFIT, STOP_LOSS, FLATTEN, END_OF_DATA = 0, 1, 2, 3
EXIT_REASONS: tuple[ExitReason, ...] = ("take_profit", "stop_loss", "flatten", "end_of_data")

MICRO = 1_000_000  # prices in the kernel's integer arithmetic are micro-dollars
_PENNY_U = 10_000
_SUB_DOLLAR_U = 100
_MIN_LEG_U = 10_000
_N_INT_COLS = 9
_N_FLOAT_COLS = 3
_SPLIT = 134217729.0  # 2**27 + 1: Dekker's splitter for doubles

# Phases (the machine's, collapsed: order_sent/order_submitted are one "entry pending").
_WAITING, _SEARCHING, _PENDING, _ACTIVE, _DONE = 0, 1, 2, 3, 4


# ------------------------------------------------------------------------------------- tick rounding


@_jit
def _snap(x: float, scale: float) -> int:
    """round(x, d) * 10**d as an exact integer, scale = 10**d (d = 4 or 6): Python's round, i.e.
    round-half-even on the float's exact binary value."""
    ax = abs(x)
    p = ax * scale
    # Error-free product: ax * scale == p + e exactly (scale needs no split: at most 20 significant bits).
    a_hi = _SPLIT * ax
    a_hi = a_hi - (a_hi - ax)
    a_lo = ax - a_hi
    e = (a_hi * scale - p) + a_lo * scale
    fl = math.floor(p)
    frac = p - fl  # exact: p < 2**52
    n = int(fl)
    # frac is a multiple of ulp(p), and so is 0.5 (p < 2**52): frac != 0.5 means |frac - 0.5| >= ulp(p)
    # while |e| <= ulp(p) / 2, so e can only decide a tie.
    above_half = frac > 0.5 or (frac == 0.5 and e > 0.0)
    if above_half or (frac == 0.5 and e == 0.0 and n % 2 == 1):  # an exact tie goes to even
        n += 1
    return -n if x < 0.0 else n


@_jit
def snap_micro(x: float) -> int:
    """Decimal(repr(round(x, 6))) in micro-dollars (the strategy's noise snap)."""
    return _snap(x, 1e6)


@_jit
def fill_price_u8(x: float) -> int:
    """core.ticks.fill_price(x) == Decimal(repr(round(x, 4))) in units of 1e-8 dollars."""
    return _snap(x, 1e4) * 10_000


@_jit
def _tick_micro(u: int) -> int:
    return _PENNY_U if u >= MICRO else _SUB_DOLLAR_U


@_jit
def _quantize(u: int, tick: int, up: bool) -> int:
    q = u // tick  # floor division (Python semantics, also for negatives)
    if up and q * tick != u:
        q += 1
    return q * tick


@_jit
def round_tick_micro(price: float, up: bool) -> int:
    """core.ticks.round_to_tick(price, "up" if up else "down") in micro-dollars."""
    snapped = snap_micro(price)
    rounded = _quantize(snapped, _tick_micro(snapped), up)
    # Rounding can cross $1 (0.99995 -> 1.0000): re-quantize on the tick of the result, as the strategy.
    return _quantize(rounded, _tick_micro(rounded), up)


@_jit
def skip_bracket(is_long: bool, stop_u: int, tp_u: int, last_price: float) -> bool:
    """strategy.bracket_skip_reason(...) is not None, in micro-dollars."""
    price = snap_micro(last_price)
    if stop_u <= 0 or tp_u <= 0:
        return True
    # Alpaca's minimum leg distance is a flat $0.01 at every price level (strategy.MIN_LEG_DISTANCE).
    if is_long:
        return tp_u < price + _MIN_LEG_U or stop_u > price - _MIN_LEG_U
    return tp_u > price - _MIN_LEG_U or stop_u < price + _MIN_LEG_U


# ------------------------------------------------------------------------------------- the kernel


@_jit
def _record(
    out_i: np.ndarray,
    out_f: np.ndarray,
    n: int,
    side: int,
    entry_bar: int,
    exit_bar: int,
    reason: int,
    exit_time: int,
    stop_u: int,
    tp_u: int,
    entry_u8: int,
    exit_u8: int,
    box_high: float,
    box_low: float,
    box_range: float,
) -> None:
    out_i[n, 0] = side
    out_i[n, 1] = entry_bar
    out_i[n, 2] = exit_bar
    out_i[n, 3] = reason
    out_i[n, 4] = exit_time
    out_i[n, 5] = stop_u
    out_i[n, 6] = tp_u
    out_i[n, 7] = entry_u8
    out_i[n, 8] = exit_u8
    out_f[n, 0] = box_high
    out_f[n, 1] = box_low
    out_f[n, 2] = box_range


@_jit
def _kernel(
    t: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    bounds: np.ndarray,
    close_t: np.ndarray,
    lookback: int,
    min_range_pct: float,
    qty: int,
    no_entry_s: int,
    flatten_s: int,
    max_trades: int,
    max_daily_loss: float,
    slip_u8: int,
    out_i: np.ndarray,
    out_f: np.ndarray,
) -> int:
    """Run every session; write trade n into out_i[n] / out_f[n]; return the number of trades.

    out_i columns: side (+1 long, -1 short), entry bar, exit bar, exit reason, exit time (epoch s),
                   stop (1e-6 $), take-profit (1e-6 $), entry price (1e-8 $), exit price (1e-8 $)
    out_f columns: box high, box low, box range
    Fill prices are integers so that they are the simulated broker's Decimals exactly.
    """
    n_trades = 0
    n_sessions = bounds.shape[0] - 1
    for s in range(n_sessions):
        b0 = bounds[s]
        b1 = bounds[s + 1]
        if b1 <= b0:
            continue
        close = close_t[s]
        flat_at = close - flatten_s  # the machine flattens once now >= close - flatten_minutes
        no_entry_at = close - no_entry_s  # ... and stops searching once now >= close - no_entry_minutes
        phase = _WAITING
        flattened = False
        has_box = False
        box_high = 0.0
        box_low = 0.0
        box_range = 0.0
        box_after = -1  # the next box waits for a bar ending after this (the exit bar's start)
        trades_today = 0
        realized = 0.0  # as the machine sums it: float(Decimal P&L) per exit
        pending_exit = False
        side = 0
        stop_u = 0
        tp_u = 0
        stop_px = 0.0
        tp_px = 0.0
        entry_u8 = 0
        entry_bar = 0
        e_high = 0.0
        e_low = 0.0
        e_range = 0.0
        prev_end = -1
        for k in range(b0, b1):
            ok = o[k]
            tk = t[k]
            # (0) the open, or a gap: the clock moves to the bar's start before anything fills
            #     (engine: Tick(bar.t)); this is how the flatten fires inside a data gap.
            if tk > prev_end:
                if tk >= flat_at and not flattened:
                    flattened = True  # CancelAll (a pending entry dies) + CloseAll (fills at this open)
                    if phase == _ACTIVE:
                        pending_exit = True
                    phase = _DONE
                elif phase == _WAITING:
                    phase = _DONE if tk >= no_entry_at else _SEARCHING
                elif phase == _SEARCHING and tk >= no_entry_at:
                    phase = _DONE
            prev_end = tk + 60
            # (1) market orders pending from the previous bar fill at this bar's open (slippage adverse)
            if phase == _PENDING:
                entry_u8 = fill_price_u8(ok) + side * slip_u8
                entry_bar = k
                phase = _ACTIVE
                trades_today += 1
            exit_u8 = 0
            reason = -1
            if pending_exit:
                exit_u8 = fill_price_u8(ok) - side * slip_u8
                reason = FLATTEN
                pending_exit = False
            elif phase == _ACTIVE:
                # (2) the bracket legs, the entry bar included; the stop first when both are touched.
                # A triggered stop is a market order (pays the slippage); a take-profit is a limit.
                if side > 0:
                    if lo[k] <= stop_px:
                        exit_u8 = (fill_price_u8(ok) if ok <= stop_px else stop_u * 100) - slip_u8
                        reason = STOP_LOSS
                    elif h[k] >= tp_px:
                        exit_u8 = fill_price_u8(ok) if ok >= tp_px else tp_u * 100
                        reason = TAKE_PROFIT
                else:
                    if h[k] >= stop_px:
                        exit_u8 = (fill_price_u8(ok) if ok >= stop_px else stop_u * 100) + slip_u8
                        reason = STOP_LOSS
                    elif lo[k] <= tp_px:
                        exit_u8 = fill_price_u8(ok) if ok <= tp_px else tp_u * 100
                        reason = TAKE_PROFIT
            if reason >= 0:
                _record(
                    out_i, out_f, n_trades, side, entry_bar, k, reason, t[k], stop_u, tp_u,
                    entry_u8, exit_u8, e_high, e_low, e_range,
                )  # fmt: skip
                n_trades += 1
                realized += float((exit_u8 - entry_u8) * qty * side) / 1e8
                if phase == _ACTIVE:  # a leg closed the position: re-arm unless a daily limit says stop
                    trades_hit = max_trades > 0 and trades_today >= max_trades
                    if trades_hit or (max_daily_loss > 0.0 and -realized >= max_daily_loss):
                        phase = _DONE
                    else:
                        phase = _SEARCHING
                        has_box = False
                        box_after = t[k]
            # (3) the bar closes: now = its end
            now = t[k] + 60
            if now >= close or (now >= flat_at and not flattened):
                # close - flatten_minutes (or the close itself, when no bar fell in the flatten window):
                # cancel the legs, close the position at the next bar's open; done for the day.
                if not flattened and phase == _ACTIVE:
                    pending_exit = True
                flattened = True
                phase = _DONE
                continue
            if phase == _WAITING:
                phase = _DONE if now >= no_entry_at else _SEARCHING
                has_box = False
            elif phase == _SEARCHING and now >= no_entry_at:
                phase = _DONE
            if phase != _SEARCHING:
                continue
            if not has_box:
                # The box: the last `lookback` session bars, once the exit bar (if any) has closed.
                if now <= box_after or k - b0 + 1 < lookback:
                    continue
                hi = h[k]
                lw = lo[k]
                for j in range(k - lookback + 1, k):
                    if h[j] > hi:
                        hi = h[j]
                    if lo[j] < lw:
                        lw = lo[j]
                raw = hi - lw
                floor = c[k] * min_range_pct / 100.0
                box_high = hi
                box_low = lw
                box_range = floor if raw < floor else raw
                has_box = True
                box_after = -1
                continue
            # (4) the search: the frozen box against this bar's close
            ck = c[k]
            if ck > box_high:
                new_side = 1
            elif ck < box_low:
                new_side = -1
            else:
                continue
            if max_trades > 0 and trades_today >= max_trades:
                phase = _DONE
                continue
            if max_daily_loss > 0.0 and -realized >= max_daily_loss:
                phase = _DONE
                continue
            if new_side > 0:
                s_u = round_tick_micro(box_high - box_range, False)
                t_u = round_tick_micro(box_high + box_range, False)
            else:
                s_u = round_tick_micro(box_low + box_range, True)
                t_u = round_tick_micro(box_low - box_range, True)
            if skip_bracket(new_side > 0, s_u, t_u, ck):
                continue  # the box stays frozen: the search goes on
            side = new_side
            stop_u = s_u
            tp_u = t_u
            stop_px = s_u / 1e6
            tp_px = t_u / 1e6
            e_high = box_high
            e_low = box_low
            e_range = box_range
            phase = _PENDING  # a market bracket: fills at the next bar's open
        # The session's bars ran out. A close still pending fills at the last bar's close (no slippage),
        # stamped at the bar's end. If the data ended before close - flatten_minutes, the clock still
        # gets there (engine: Tick(close - flatten)): a pending entry is canceled, a position is closed
        # at the last bar's close, stamped then.
        last = b1 - 1
        exit_time = -1
        if pending_exit:
            exit_time = t[last] + 60
        elif not flattened and phase == _ACTIVE:
            exit_time = flat_at
        if exit_time >= 0:
            _record(
                out_i, out_f, n_trades, side, entry_bar, last, FLATTEN, exit_time, stop_u, tp_u,
                entry_u8, fill_price_u8(c[last]), e_high, e_low, e_range,
            )  # fmt: skip
            n_trades += 1
    return n_trades


# Integer summaries of a run (or of a stretch of it), in 1e-8 dollars except the counts: exact, so
# that stretches combine in any grouping to the same figures (`combine_summaries`). A sweep split by
# year, by symbol or across processes and machines therefore gives the figures of one whole run.
SUMMARY_COLUMNS = (
    "trades", "wins", "gross_profit", "gross_loss", "net", "max_prefix", "min_prefix", "max_drawdown",
)  # fmt: skip
_S_TRADES, _S_WINS, _S_GP, _S_GL, _S_NET, _S_MAX, _S_MIN, _S_DD = range(8)
N_SUMMARY = len(SUMMARY_COLUMNS)


@_jit
def _summarize(
    out_i: np.ndarray,
    n: int,
    qty: int,
    commission_u8: int,
    bounds: np.ndarray,
    segment_of_session: np.ndarray,
    summaries: np.ndarray,
    session_net: np.ndarray,
) -> None:
    """Add the n trades of out_i to their segments' summaries (rows of `summaries`; the segment of a
    trade is its session's, -1 = counted nowhere) and their net P&L to `session_net`. Net of commission:
    per share, on both fills. A summary's equity starts at 0 (its peak too), so max_prefix >= 0 >= min_prefix."""
    s = 0
    fee = 2 * qty * commission_u8
    for i in range(n):
        entry_bar = out_i[i, 1]
        while bounds[s + 1] <= entry_bar:
            s += 1
        pnl = (out_i[i, 8] - out_i[i, 7]) * qty * out_i[i, 0] - fee
        session_net[s] += pnl
        g = segment_of_session[s]
        if g < 0:
            continue
        row = summaries[g]
        row[_S_TRADES] += 1
        if pnl > 0:
            row[_S_WINS] += 1
            row[_S_GP] += pnl
        else:
            row[_S_GL] -= pnl
        equity = row[_S_NET] + pnl
        row[_S_NET] = equity
        if equity > row[_S_MAX]:
            row[_S_MAX] = equity
        if equity < row[_S_MIN]:
            row[_S_MIN] = equity
        if row[_S_MAX] - equity > row[_S_DD]:
            row[_S_DD] = row[_S_MAX] - equity


@_jit
def _sweep(
    t: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    bounds: np.ndarray,
    close_t: np.ndarray,
    grid_i: np.ndarray,
    grid_f: np.ndarray,
    slip_u8: int,
    commission_u8: int,
    segment_of_session: np.ndarray,
    n_segments: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per parameter set: a summary (SUMMARY_COLUMNS) per segment, and the net P&L of every session.
    grid_i columns: lookback, qty, no_entry_s, flatten_s, max_trades; grid_f: min_range_pct, max_daily_loss."""
    n_sets = grid_i.shape[0]
    n_sessions = bounds.shape[0] - 1
    summaries = np.zeros((n_sets, n_segments, N_SUMMARY), dtype=np.int64)
    session_net = np.zeros((n_sets, n_sessions), dtype=np.int64)
    cap = t.shape[0] // 2 + bounds.shape[0] + 1
    out_i = np.zeros((cap, _N_INT_COLS), dtype=np.int64)
    out_f = np.zeros((cap, _N_FLOAT_COLS))
    for g in range(n_sets):
        n = _kernel(
            t, o, h, lo, c, bounds, close_t,
            grid_i[g, 0], grid_f[g, 0], grid_i[g, 1], grid_i[g, 2], grid_i[g, 3], grid_i[g, 4],
            grid_f[g, 1], slip_u8, out_i, out_f,
        )  # fmt: skip
        _summarize(
            out_i, n, grid_i[g, 1], commission_u8, bounds, segment_of_session, summaries[g], session_net[g]
        )
    return summaries, session_net


def combine_summaries(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The summary of a stretch followed by another (SUMMARY_COLUMNS on the last axis; any leading axes):
    exact integer arithmetic, so the grouping never changes a figure. The drawdown of the two is the
    larger of each one's and of the first one's peak over the second one's trough."""
    out = first + second
    out[..., _S_MAX] = np.maximum(first[..., _S_MAX], first[..., _S_NET] + second[..., _S_MAX])
    out[..., _S_MIN] = np.minimum(first[..., _S_MIN], first[..., _S_NET] + second[..., _S_MIN])
    out[..., _S_DD] = np.maximum(
        np.maximum(first[..., _S_DD], second[..., _S_DD]),
        first[..., _S_MAX] - first[..., _S_NET] - second[..., _S_MIN],
    )
    return out


# ------------------------------------------------------------------------------------- Python side


@dataclass(frozen=True)
class PreparedBars:
    """Session-split contiguous arrays: build once, run many parameter sets over them."""

    t: np.ndarray
    o: np.ndarray
    h: np.ndarray
    lo: np.ndarray
    c: np.ndarray
    bounds: np.ndarray
    close_t: np.ndarray
    tz: Any

    def __len__(self) -> int:
        return int(self.t.shape[0])


def prepare_bars(bars: pd.DataFrame) -> PreparedBars:
    """Keep the bars that start inside their XNYS regular session (open <= t < close, early closes
    honoured) and are valid OHLC (strategy.is_valid_bar); sort; split by session.

    `bars`: indexed by tz-aware bar start (naive = New York time), columns open high low close."""
    from ..market.calendar import xnys

    if not isinstance(bars.index, pd.DatetimeIndex):
        raise ValueError("bars must be indexed by a DatetimeIndex of bar starts")
    idx = bars.index
    if idx.tz is None:
        idx = idx.tz_localize(NEW_YORK)
    tz = idx.tz
    order = np.argsort(idx.asi8, kind="stable")
    epoch = np.asarray(idx.as_unit("s").asi8, dtype=np.int64)[order]
    cols = [
        np.ascontiguousarray(bars[k].to_numpy(dtype=np.float64)[order])
        for k in ("open", "high", "low", "close")
    ]
    o, h, lo, c = cols
    if len(epoch) > 1:
        keep = np.ones(len(epoch), dtype=bool)
        keep[:-1] = epoch[1:] != epoch[:-1]  # duplicates: the last one wins
        epoch, o, h, lo, c = epoch[keep], o[keep], h[keep], lo[keep], c[keep]
    # Local calendar day of each bar, then that day's session.
    local = pd.DatetimeIndex(pd.to_datetime(epoch, unit="s", utc=True)).tz_convert(NEW_YORK).tz_localize(None)
    day_num = np.asarray(local.as_unit("s").asi8, dtype=np.int64) // 86_400
    days, inverse = np.unique(day_num, return_inverse=True)
    cal = xnys()
    s_open = np.full(len(days), -1, dtype=np.int64)
    s_close = np.full(len(days), -1, dtype=np.int64)
    for i, d in enumerate(days):
        session = cal.session(pd.Timestamp(int(d) * 86_400, unit="s").date())
        if session is not None:
            s_open[i] = int(session.open)
            s_close[i] = int(session.close)
    with np.errstate(invalid="ignore"):
        valid = (
            np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
            & (o > 0) & (h > 0) & (lo > 0) & (c > 0)
            & (lo <= np.minimum(o, c)) & (h >= np.maximum(o, c))
        )  # fmt: skip
    bar_open = s_open[inverse]
    bar_close = s_close[inverse]
    keep = (bar_open >= 0) & (epoch >= bar_open) & (epoch < bar_close) & valid
    epoch, o, h, lo, c = epoch[keep], o[keep], h[keep], lo[keep], c[keep]
    sess = inverse[keep]
    change = np.flatnonzero(np.diff(sess)) + 1
    bounds = (
        np.concatenate(([0], change, [len(epoch)])).astype(np.int64) if len(epoch) else np.zeros(1, np.int64)
    )
    close_t = s_close[sess[bounds[:-1]]] if len(epoch) else np.zeros(0, np.int64)
    return PreparedBars(
        t=np.ascontiguousarray(epoch),
        o=np.ascontiguousarray(o),
        h=np.ascontiguousarray(h),
        lo=np.ascontiguousarray(lo),
        c=np.ascontiguousarray(c),
        bounds=np.ascontiguousarray(bounds),
        close_t=np.ascontiguousarray(close_t, dtype=np.int64),
        tz=tz,
    )


@dataclass(frozen=True)
class TradeArrays:
    """The kernel's raw output (n rows); see _kernel for the columns."""

    ints: np.ndarray
    floats: np.ndarray

    def __len__(self) -> int:
        return int(self.ints.shape[0])


def _check_params(params: Params) -> None:
    if getattr(params, "risk_pct", None) is not None:
        raise ValueError("the fast kernel trades a fixed qty: risk_pct sizing needs the event path")
    if params.lookback < 1:
        raise ValueError("lookback must be >= 1")
    if params.qty < 1:
        raise ValueError("qty must be >= 1")


def slippage_u8(slippage_per_share: float) -> int:
    """The broker's Decimal(repr(slippage)) in units of 1e-8 dollars (it must be a multiple of them)."""
    return _per_share_u8(slippage_per_share, "slippage_per_share")


def commission_u8(commission_per_share: float) -> int:
    """The commission per share in units of 1e-8 dollars (the sweep's exact figures need a multiple)."""
    return _per_share_u8(commission_per_share, "commission_per_share")


def _per_share_u8(value: float, name: str) -> int:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be >= 0")
    exact = Decimal(repr(float(value))) * 10**8
    if exact != exact.to_integral_value():
        raise ValueError(f"{name} must be a multiple of $0.00000001")
    return int(exact)


def _minutes_to_seconds(minutes: float) -> int:
    return round(minutes * 60)


def run_kernel(prepared: PreparedBars, params: Params, *, slippage_per_share: float = 0.0) -> TradeArrays:
    """The compiled loop over prepared bars: trades as arrays (no Python objects)."""
    _check_params(params)
    cap = len(prepared) // 2 + len(prepared.bounds) + 1
    out_i = np.zeros((cap, _N_INT_COLS), dtype=np.int64)
    out_f = np.zeros((cap, _N_FLOAT_COLS), dtype=np.float64)
    n = _kernel(
        prepared.t, prepared.o, prepared.h, prepared.lo, prepared.c, prepared.bounds, prepared.close_t,
        int(params.lookback), float(params.min_range_pct), int(params.qty),
        _minutes_to_seconds(params.no_entry_minutes), _minutes_to_seconds(params.flatten_minutes),
        int(params.max_trades), float(params.max_daily_loss), slippage_u8(slippage_per_share), out_i, out_f,
    )  # fmt: skip
    return TradeArrays(out_i[:n].copy(), out_f[:n].copy())


def to_trades(
    arrays: TradeArrays, prepared: PreparedBars, symbol: str, qty: int, commission_per_share: float = 0.0
) -> list[Trade]:
    """Kernel rows -> Trade objects (times in the bars' time zone)."""
    n = len(arrays)
    if n == 0:
        return []
    ints, floats = arrays.ints, arrays.floats
    entry_times = pd.to_datetime(prepared.t[ints[:, 1]], unit="s", utc=True).tz_convert(prepared.tz)
    exit_times = pd.to_datetime(ints[:, 4], unit="s", utc=True).tz_convert(prepared.tz)
    entry_dt: list[datetime] = list(entry_times.to_pydatetime())
    exit_dt: list[datetime] = list(exit_times.to_pydatetime())
    commission = round(commission_per_share * (2 * qty), 10)  # as the engine: per share, both fills
    trades: list[Trade] = []
    for i in range(n):
        row = ints[i].tolist()
        trades.append(
            Trade(
                symbol=symbol,
                side="buy" if row[0] > 0 else "sell",
                qty=qty,
                entry_time=entry_dt[i],
                entry_price=row[7] / 1e8,
                exit_time=exit_dt[i],
                exit_price=row[8] / 1e8,
                exit_reason=EXIT_REASONS[row[3]],
                stop_price=row[5] / 1e6,
                take_profit_price=row[6] / 1e6,
                box_high=float(floats[i, 0]),
                box_low=float(floats[i, 1]),
                box_range=float(floats[i, 2]),
                commission=commission,
            )
        )
    return trades


def fast_backtest(
    bars: pd.DataFrame | PreparedBars,
    symbol: str,
    params: Params,
    *,
    commission_per_share: float = 0.0,
    slippage_per_share: float = 0.0,
) -> list[Trade]:
    """The event path's trades (same rules, same fills), from the compiled kernel.

    `bars` is a frame as market.bars loads it (tz-aware bar starts, open high low close), or the
    PreparedBars of one (prepare once when running many parameter sets)."""
    prepared = bars if isinstance(bars, PreparedBars) else prepare_bars(bars)
    arrays = run_kernel(prepared, params, slippage_per_share=slippage_per_share)
    return to_trades(arrays, prepared, symbol, params.qty, commission_per_share)


STAT_COLUMNS = ("trades", "wins", "net_pnl", "gross_profit", "gross_loss", "max_drawdown")


def parameter_arrays(param_sets: list[Params]) -> tuple[np.ndarray, np.ndarray]:
    """The grid as the kernel reads it: ints (lookback, qty, no_entry_s, flatten_s, max_trades) and
    floats (min_range_pct, max_daily_loss), one row per set."""
    for p in param_sets:
        _check_params(p)
    grid_i = np.array(
        [
            [
                p.lookback,
                p.qty,
                _minutes_to_seconds(p.no_entry_minutes),
                _minutes_to_seconds(p.flatten_minutes),
                p.max_trades,
            ]
            for p in param_sets
        ],
        dtype=np.int64,
    ).reshape(len(param_sets), 5)
    grid_f = np.array([[p.min_range_pct, p.max_daily_loss] for p in param_sets], dtype=np.float64).reshape(
        len(param_sets), 2
    )
    return grid_i, grid_f


def sweep_segments(
    prepared: PreparedBars,
    param_sets: list[Params],
    segment_of_session: np.ndarray,
    n_segments: int,
    *,
    commission_per_share: float = 0.0,
    slippage_per_share: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Every parameter set in one compiled call: its summary (SUMMARY_COLUMNS, int64, 1e-8 $) per
    segment, shape (sets, n_segments, 8), and each session's net P&L, shape (sets, sessions).
    `segment_of_session[s]` is session s's segment (-1: in none)."""
    grid_i, grid_f = parameter_arrays(param_sets)
    segments = np.ascontiguousarray(segment_of_session, dtype=np.int64)
    if segments.shape != (len(prepared.bounds) - 1,):
        raise ValueError("segment_of_session needs one entry per session")
    if len(segments) and (segments.max() >= n_segments or segments.min() < -1):
        raise ValueError("segment_of_session names a segment out of range")
    return (
        _sweep(
            prepared.t, prepared.o, prepared.h, prepared.lo, prepared.c, prepared.bounds, prepared.close_t,
            grid_i, grid_f, slippage_u8(slippage_per_share), commission_u8(commission_per_share),
            segments, int(n_segments),
        )
    )  # fmt: skip


def summary_stats(summaries: np.ndarray) -> np.ndarray:
    """Summaries (..., SUMMARY_COLUMNS) as STAT_COLUMNS floats (dollars)."""
    out = np.empty((*summaries.shape[:-1], len(STAT_COLUMNS)))
    out[..., 0] = summaries[..., _S_TRADES]
    out[..., 1] = summaries[..., _S_WINS]
    out[..., 2] = summaries[..., _S_NET] / 1e8
    out[..., 3] = summaries[..., _S_GP] / 1e8
    out[..., 4] = summaries[..., _S_GL] / 1e8
    out[..., 5] = summaries[..., _S_DD] / 1e8
    return out


def sweep_stats(
    prepared: PreparedBars,
    param_sets: list[Params],
    *,
    commission_per_share: float = 0.0,
    slippage_per_share: float = 0.0,
) -> np.ndarray:
    """Stats (STAT_COLUMNS, net of commission) for each parameter set over all the bars, in one compiled call."""
    summaries, _ = sweep_segments(
        prepared,
        param_sets,
        np.zeros(len(prepared.bounds) - 1, dtype=np.int64),
        1,
        commission_per_share=commission_per_share,
        slippage_per_share=slippage_per_share,
    )
    return summary_stats(summaries[:, 0, :])


def compiled() -> bool:
    """Whether this process has the kernel compiled (or loaded from numba's cache) already; always
    True without numba (plain Python needs no compiling)."""
    if not HAVE_NUMBA:
        return True
    return bool(getattr(_kernel, "signatures", None)) and bool(getattr(_sweep, "signatures", None))


def warm_up() -> float:
    """Compile the kernel (or load it from numba's cache) on a tiny input; return the seconds it took."""
    import time

    start = time.perf_counter()
    t = np.arange(0, 20 * 60, 60, dtype=np.int64)
    px = np.linspace(10.0, 11.0, 20)
    prepared = PreparedBars(
        t,
        px,
        px + 0.05,
        px - 0.05,
        px,
        np.array([0, 20], dtype=np.int64),
        np.array([20 * 60], np.int64),
        "UTC",
    )
    run_kernel(prepared, Params(lookback=3, no_entry_minutes=1, flatten_minutes=1))
    sweep_stats(prepared, [Params(lookback=3)], commission_per_share=0.005)
    return time.perf_counter() - start


__all__ = [
    "EXIT_REASONS",
    "HAVE_NUMBA",
    "NUMBA_VERSION",
    "N_SUMMARY",
    "STAT_COLUMNS",
    "SUMMARY_COLUMNS",
    "PreparedBars",
    "TradeArrays",
    "combine_summaries",
    "commission_u8",
    "compiled",
    "fast_backtest",
    "parameter_arrays",
    "prepare_bars",
    "round_tick_micro",
    "run_kernel",
    "skip_bracket",
    "slippage_u8",
    "snap_micro",
    "summary_stats",
    "sweep_segments",
    "sweep_stats",
    "to_trades",
    "warm_up",
]
