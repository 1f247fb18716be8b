"""backtesting.py as a whole command, for backtest_command.py: read the bars file, run the breakout rule
(peers_runner.Rule), print the stats, write the trades. Runs in the peers' venv; never imports
breakout_bot.

    peer_command.py BARS.parquet [--trades TRADES.json] [--lookback 10 --min-range-pct 0.3 ...]

BARS has timestamp (tz-aware bar starts), open high low close volume, session_open and session_close
(epoch s). backtesting.py never shows a strategy the first row of its data (`next()` starts at the
second), so the file starts with one bar before the first session, which the rule ignores like every
bar outside a session (as breakout-bot ignores it): both then see the same bars.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_runner import Rule


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bars")
    ap.add_argument("--trades", help="also write the trades (entry epoch, side, exit epoch) as JSON")
    ap.add_argument("--lookback", type=int, default=10)
    ap.add_argument("--min-range-pct", type=float, default=0.3)
    ap.add_argument("--qty", type=int, default=100)
    ap.add_argument("--no-entry-minutes", type=int, default=20)
    ap.add_argument("--flatten-minutes", type=int, default=5)
    a = ap.parse_args()

    from backtesting import Backtest, Strategy

    df = pd.read_parquet(a.bars)
    index = pd.DatetimeIndex(df["timestamp"])
    data = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]].copy()
    data["SessionOpen"] = df["session_open"].to_numpy()
    data["SessionClose"] = df["session_close"].to_numpy()
    data["T"] = index.as_unit("s").asi8.astype(np.int64)
    data.index = index.tz_convert("America/New_York").tz_localize(None)

    class Breakout(Strategy):
        def init(self) -> None:
            self.rule = Rule(a.lookback, a.min_range_pct, a.no_entry_minutes, a.flatten_minutes)
            self.n_closed = 0

        def next(self) -> None:
            d = self.data
            t = int(d.T[-1])
            if not d.SessionOpen[-1] <= t < d.SessionClose[-1]:
                return  # outside the regular session
            closed = len(self._broker.closed_trades)  # the public closed_trades copies them all, per bar
            exited = closed > self.n_closed
            self.n_closed = closed
            act = self.rule.on_bar(
                t, float(d.High[-1]), float(d.Low[-1]), float(d.Close[-1]), int(d.SessionClose[-1]), exited,
                bool(self.position),
            )  # fmt: skip
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
    print(stats)
    if not a.trades:
        return 0
    ny = "America/New_York"
    trades = stats._trades
    rows = [
        [
            int(pd.Timestamp(e).tz_localize(ny).timestamp()),
            "buy" if size > 0 else "sell",
            int(pd.Timestamp(x).tz_localize(ny).timestamp()),
        ]
        for e, x, size in zip(trades["EntryTime"], trades["ExitTime"], trades["Size"], strict=True)
    ]
    Path(a.trades).write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
