"""Peers on the breakout rule: backtesting.py, backtrader, vectorbt. Runs in the peers' own venv
(python -m venv /tmp/peers && /tmp/peers/bin/pip install backtesting backtrader vectorbt pyarrow);
never imports breakout_bot. Called by backtest_throughput.py:

    peers_runner.py BARS.parquet --lookback 10 --min-range-pct 0.3 ... --only backtesting backtrader

BARS has open high low close volume, a tz-aware index of bar starts and session_close (epoch s).
It warms every peer up on the first three sessions, prints one JSON line
{"ready": {peer: {"warmup_s": s} | {"error": ...}}}, then answers each request line read from stdin,
{"peer": name, "start": i, "stop": j} (rows i..j-1 of BARS), with one JSON line
{"seconds": s, "trades": [[entry_epoch, side, exit_epoch], ...]} or {"error": ...}, until stdin
closes. The caller times its own engine between these requests: paired timings, which this shared
machine's speed drift (up to 2x within minutes) would otherwise swamp.

The rule (DESIGN.md, "The strategy, precisely") is written once (class Rule) in per-bar form and driven
by each event-driven framework's own orders: a market bracket entry at the next open, its stop and
take-profit legs, the close - 5 min flatten. vectorbt has no path-dependent frozen box in its
vectorized API: it gets the closest vectorized form (rolling box of the previous `lookback` bars,
entries at the next open, stops as fractions of the entry price, exits at close - 5 min).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
import traceback
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd


def _tick(price: Decimal) -> Decimal:
    return Decimal("0.01") if price >= 1 else Decimal("0.0001")


def round_to_tick(price: float, up: bool) -> float:
    snapped = Decimal(repr(round(price, 6)))
    rounding = ROUND_CEILING if up else ROUND_FLOOR
    r = snapped.quantize(_tick(snapped), rounding=rounding)
    return float(r.quantize(_tick(r), rounding=rounding))


class Rule:
    """The machine's breakout rule, per closed bar. on_bar returns None, ("enter", side, stop, tp) or
    ("close",)."""

    def __init__(self, lookback: int, min_range_pct: float, no_entry_min: int, flatten_min: int) -> None:
        self.lookback = lookback
        self.pct = min_range_pct
        self.no_entry = no_entry_min * 60
        self.flatten = flatten_min * 60
        self.session = None
        self.highs: list[float] = []
        self.lows: list[float] = []

    def on_bar(self, t: int, h: float, lo: float, c: float, close_t: int, exited: bool, in_pos: bool):
        if close_t != self.session:
            self.session = close_t
            self.highs, self.lows = [], []
            self.phase = "search"
            self.box = None
            self.flattened = False
        self.highs.append(h)
        self.lows.append(lo)
        if len(self.highs) > self.lookback:
            del self.highs[0], self.lows[0]
        if exited and self.phase == "trade":
            self.phase, self.box = "search", None
        left = close_t - (t + 60)
        if (left <= self.flatten or left <= 0) and not self.flattened:
            self.flattened = True
            was = self.phase
            self.phase = "done"
            if was == "trade" and in_pos:
                return ("close",)
            return None
        if self.phase != "search":
            return None
        if left <= self.no_entry:
            self.phase = "done"
            return None
        if self.box is None:
            if len(self.highs) >= self.lookback:
                hi, lw = max(self.highs), min(self.lows)
                raw, floor = hi - lw, c * self.pct / 100.0
                self.box = (hi, lw, floor if raw < floor else raw)
            return None
        hi, lw, rng = self.box
        if c > hi:
            side, stop, tp = "buy", round_to_tick(hi - rng, False), round_to_tick(hi + rng, False)
            price = float(Decimal(repr(round(c, 6))))
            if stop <= 0 or tp <= 0 or tp < price + 0.01 - 1e-9 or stop > price - 0.01 + 1e-9:
                return None
        elif c < lw:
            side, stop, tp = "sell", round_to_tick(lw + rng, True), round_to_tick(lw - rng, True)
            price = float(Decimal(repr(round(c, 6))))
            if stop <= 0 or tp <= 0 or tp > price - 0.01 + 1e-9 or stop < price + 0.01 - 1e-9:
                return None
        else:
            return None
        self.phase = "trade"
        return ("enter", side, stop, tp)


def run_backtesting(df: pd.DataFrame, a: argparse.Namespace) -> list:
    from backtesting import Backtest, Strategy

    data = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]].copy()
    data["SessionClose"] = df["session_close"].to_numpy()
    data["T"] = (df.index.as_unit("s").asi8).astype(np.int64)
    data.index = df.index.tz_localize(None)

    class Breakout(Strategy):
        def init(self) -> None:
            self.rule = Rule(a.lookback, a.min_range_pct, a.no_entry_minutes, a.flatten_minutes)
            self.n_closed = 0

        def next(self) -> None:
            d = self.data
            # The public `closed_trades` copies every closed trade into a new tuple on each call: O(trades)
            # per bar, which made this strategy (not backtesting.py) slower the longer the run.
            closed = len(self._broker.closed_trades)
            exited = closed > self.n_closed
            self.n_closed = closed
            act = self.rule.on_bar(
                int(d.T[-1]),
                float(d.High[-1]),
                float(d.Low[-1]),
                float(d.Close[-1]),
                int(d.SessionClose[-1]),
                exited,
                bool(self.position),
            )
            if act is None:
                return
            if act[0] == "close":
                self.position.close()
            elif act[1] == "buy":
                self.buy(size=a.qty, sl=act[2], tp=act[3])
            else:
                self.sell(size=a.qty, sl=act[2], tp=act[3])

    bt = Backtest(data, Breakout, cash=1e12, commission=0.0, trade_on_close=False, finalize_trades=True)
    stats = bt.run()
    tr = stats._trades
    ny = "America/New_York"
    out = []
    for e, x, size in zip(tr["EntryTime"], tr["ExitTime"], tr["Size"], strict=True):
        out.append(
            [
                int(pd.Timestamp(e).tz_localize(ny).timestamp()),
                "buy" if size > 0 else "sell",
                int(pd.Timestamp(x).tz_localize(ny).timestamp()),
            ]
        )
    return out


def run_backtrader(df: pd.DataFrame, a: argparse.Namespace) -> list:
    import backtrader as bt

    ny = "America/New_York"
    data = df[["open", "high", "low", "close", "volume"]].copy()
    data.index = df.index.tz_localize(None)
    closes = df["session_close"].to_numpy()
    epochs = df.index.as_unit("s").asi8
    trades: list = []

    class Breakout(bt.Strategy):
        def __init__(self) -> None:
            self.rule = Rule(a.lookback, a.min_range_pct, a.no_entry_minutes, a.flatten_minutes)
            self.i = -1
            self.exited = False
            self.orders: list = []

        def notify_trade(self, trade) -> None:
            if trade.isclosed:
                self.exited = True
                opened = bt.num2date(trade.dtopen)
                closed = bt.num2date(trade.dtclose)
                side = "buy" if trade.long else "sell"
                trades.append(
                    [
                        int(pd.Timestamp(opened).tz_localize(ny).timestamp()),
                        side,
                        int(pd.Timestamp(closed).tz_localize(ny).timestamp()),
                    ]
                )

        def next(self) -> None:
            self.i += 1
            i = self.i
            exited, self.exited = self.exited, False
            d = self.data
            act = self.rule.on_bar(
                int(epochs[i]), d.high[0], d.low[0], d.close[0], int(closes[i]), exited, bool(self.position)
            )
            if act is None:
                return
            if act[0] == "close":
                for o in self.orders:
                    if o.alive():
                        self.cancel(o)
                self.close()
            elif act[1] == "buy":
                self.orders = self.buy_bracket(
                    size=a.qty, exectype=bt.Order.Market, stopprice=act[2], limitprice=act[3]
                )
            else:
                self.orders = self.sell_bracket(
                    size=a.qty, exectype=bt.Order.Market, stopprice=act[2], limitprice=act[3]
                )

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=data))
    cerebro.addstrategy(Breakout)
    cerebro.broker.setcash(1e12)
    cerebro.run()
    return trades


def run_vectorbt(df: pd.DataFrame, a: argparse.Namespace) -> list:
    import vectorbt as vbt

    ny = "America/New_York"
    o, h, lo, c = (df[k] for k in ("open", "high", "low", "close"))
    day = pd.Series(df.index.date, index=df.index)
    box_hi = h.groupby(day).transform(lambda s: s.rolling(a.lookback).max().shift(1))
    box_lo = lo.groupby(day).transform(lambda s: s.rolling(a.lookback).min().shift(1))
    rng = np.maximum(box_hi - box_lo, c * a.min_range_pct / 100.0)
    left = df["session_close"].to_numpy() - (df.index.as_unit("s").asi8 + 60)
    may_enter = left > a.no_entry_minutes * 60
    long_sig = (c > box_hi) & may_enter
    short_sig = (c < box_lo) & may_enter
    flat = pd.Series(left <= a.flatten_minutes * 60, index=df.index)
    # orders at the next bar's open: shift the signals, trade at the open
    entries = long_sig.shift(1, fill_value=False)
    short_entries = short_sig.shift(1, fill_value=False)
    exits = flat.shift(1, fill_value=False)
    ref = c.shift(1)
    sl = ((rng / ref).shift(1)).where(entries | short_entries).fillna(np.inf)
    pf = vbt.Portfolio.from_signals(
        c,
        entries=entries,
        exits=exits,
        short_entries=short_entries,
        short_exits=exits,
        price=o,
        open=o,
        high=h,
        low=lo,
        sl_stop=sl,
        tp_stop=sl,
        size=a.qty,
        init_cash=1e12,
        freq="1min",
        upon_opposite_entry="ignore",
    )
    rec = pf.trades.records_readable
    out = []
    for e, x, d in zip(rec["Entry Timestamp"], rec["Exit Timestamp"], rec["Direction"], strict=True):
        out.append(
            [
                int(pd.Timestamp(e).tz_convert(ny).timestamp()),
                "buy" if d == "Long" else "sell",
                int(pd.Timestamp(x).tz_convert(ny).timestamp()),
            ]
        )
    return out


PEERS = {"backtesting": run_backtesting, "backtrader": run_backtrader, "vectorbt": run_vectorbt}


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _run(name: str, df: pd.DataFrame, a: argparse.Namespace) -> dict:
    """One peer on `df`, timed; an error (not installed, timeout, failure) as {"error": ...}."""
    signal.alarm(a.timeout)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the protocol only
            t0 = time.perf_counter()
            trades = PEERS[name](df, a)
            return {"seconds": time.perf_counter() - t0, "trades": trades}
    except ImportError as exc:
        return {"error": f"not installed ({exc.name})"}
    except _Timeout:
        return {"error": f"took longer than {a.timeout} s"}
    except Exception as exc:  # a peer's failure must not hide the others
        return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}
    finally:
        signal.alarm(0)


def _say(message: dict) -> None:
    print(json.dumps(message), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bars")
    ap.add_argument("--lookback", type=int, default=10)
    ap.add_argument("--min-range-pct", type=float, default=0.3)
    ap.add_argument("--qty", type=int, default=100)
    ap.add_argument("--no-entry-minutes", type=int, default=20)
    ap.add_argument("--flatten-minutes", type=int, default=5)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--only", nargs="+", default=list(PEERS))
    a = ap.parse_args()
    df = pd.read_parquet(a.bars)
    signal.signal(signal.SIGALRM, _alarm)
    # Every peer warms up on the first sessions first (imports, numba compiles, caches), reported
    # apart: the timed runs measure bars/s, not start-up (as for ours).
    ready = {}
    for name in a.only:
        warm = _run(name, df.iloc[: 390 * 3], a)
        ready[name] = {"error": warm["error"]} if "error" in warm else {"warmup_s": warm["seconds"]}
    _say({"ready": ready})
    for line in sys.stdin:
        request = json.loads(line)
        _say(_run(request["peer"], df.iloc[request["start"] : request["stop"]], a))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
