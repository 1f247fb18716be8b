"""Backtest throughput: the event path (machine.step + simulated broker), the compiled kernel, and
(optionally) peer frameworks on the same bars.

    python benchmarks/backtest_throughput.py                 # 1,000,000 synthetic bars, ours only
    python benchmarks/backtest_throughput.py --spy           # + the real SPY file, tiled
    python benchmarks/backtest_throughput.py --peers /tmp/peers/bin/python   # + backtesting.py,
                                                             #   backtrader, vectorbt (own venv)

Peers live in their own venv (they pin other pandas/numpy versions); see benchmarks/README.md.
Their runner (benchmarks/peers_runner.py) gets the bars as Parquet and runs them slice by slice on
request, each slice timed between two runs of ours on the same slice (paired timing), returning its
trades as JSON; agreement = share of our trades (entry time, side, exit time) a peer reproduces.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from breakout_bot.backtest import kernel
from breakout_bot.backtest.engine import run_backtest
from breakout_bot.core.params import Params
from breakout_bot.market.bars import load_bars
from breakout_bot.market.calendar import xnys
from breakout_bot.market.synthetic import synthetic_bars

HERE = Path(__file__).resolve().parent
SPY = Path("/work/shared/data/minute/lean_spy_1min.csv")
NY = "America/New_York"
VECTORIZED = {"vectorbt"}


def synthetic(n_bars: int, seed: int) -> pd.DataFrame:
    days = math.ceil(n_bars / 385) + 5  # a few early closes (210 bars) on the way
    return synthetic_bars("BENCH", seed, days, start=dt.date(2010, 1, 4))


def tiled_spy(n_bars: int, path: Path) -> pd.DataFrame:
    """The real SPY sessions, repeated onto consecutive full-length XNYS sessions."""
    return tiled_real(n_bars, [path])


def tiled_real(n_bars: int, paths: list[Path]) -> pd.DataFrame:
    """Every full (390-bar) regular session of the real files, in turn, repeated onto consecutive
    full-length XNYS sessions. Each day starts flat, so the joins between symbols change nothing."""
    days = []
    for path in paths:
        real = load_bars(path)[["open", "high", "low", "close", "volume"]]
        minute = real.index.hour * 60 + real.index.minute
        real = real[(minute >= 9 * 60 + 30) & (minute < 16 * 60)]  # the files have extended hours too
        days += [g for _, g in real.groupby(real.index.date) if len(g) == 390]
    if not days:
        raise SystemExit("no full regular session in the real files")
    cal = xnys()
    session = cal.session_on_or_after(dt.date(2000, 1, 3))
    frames, total, i = [], 0, 0
    while total < n_bars:
        while session.minutes != 390:
            session = cal.session_after(session.date)
        day = days[i % len(days)]
        idx = pd.to_datetime(int(session.open) + np.arange(390) * 60, unit="s", utc=True).tz_convert(NY)
        frames.append(pd.DataFrame(day.to_numpy(), columns=day.columns, index=idx))
        total += 390
        i += 1
        session = cal.session_after(session.date)
    frame = pd.concat(frames)
    frame.index.name = "timestamp"
    return frame


def timed(fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def trade_id(entry: object, side: str, exit_: object) -> tuple[int, str, int]:
    return (int(pd.Timestamp(entry).timestamp()), side, int(pd.Timestamp(exit_).timestamp()))


def bench(name: str, bars: pd.DataFrame, params: Params, args: argparse.Namespace) -> dict[str, object]:
    n = len(bars)
    print(f"\n== {name}: {n:,} bars, {len(set(bars.index.date)):,} sessions; {params}")
    row: dict[str, object] = {"data": name, "bars": n}
    compile_s = kernel.warm_up()
    row["kernel_compile_s"] = compile_s
    prep_s, prepared = timed(lambda: kernel.prepare_bars(bars))
    run_s, arrays = timed(lambda: kernel.run_kernel(prepared, params), repeat=5)
    conv_s, fast = timed(lambda: kernel.to_trades(arrays, prepared, "BENCH", params.qty))
    row.update(kernel_bars_per_s=n / run_s, kernel_prepare_s=prep_s, kernel_run_s=run_s, trades=len(fast))
    print(
        f"kernel        {n / run_s / 1e6:10.1f} M bars/s   run {run_s * 1e3:8.1f} ms  (compile/cache load "
        f"{compile_s:.2f} s, session prep {prep_s:.2f} s, {len(fast):,} Trade objects {conv_s:.2f} s)"
    )
    grid = [Params(lookback=lb, min_range_pct=r) for lb in range(5, 21, 2) for r in (0.1, 0.2, 0.3, 0.5)]
    sweep_s, _ = timed(lambda: kernel.sweep_stats(prepared, grid))
    row["sweep_bars_per_s"] = n * len(grid) / sweep_s
    print(
        f"kernel sweep  {n * len(grid) / sweep_s / 1e6:10.1f} M bars/s   ({len(grid)} parameter sets, one core)"
    )
    if not args.skip_event:
        # Warm-up on the first sessions (imports, the XNYS calendar build), as the peers get.
        warm_s, _ = timed(lambda: run_backtest(bars.iloc[: 390 * 3], "BENCH", params))
        row["event_warmup_s"] = warm_s
        ev_s, result = timed(lambda: run_backtest(bars, "BENCH", params))
        row.update(event_bars_per_s=n / ev_s, event_run_s=ev_s)
        same = [t.key() for t in result.trades] == [t.key() for t in fast]
        row["event_equals_kernel"] = same
        print(
            f"event path    {n / ev_s / 1e3:10.1f} k bars/s   run {ev_s:8.2f} s   "
            f"({result.events:,} machine.step calls; warm-up {warm_s:.2f} s); "
            f"trades identical to the kernel: {same}"
        )
        print(f"kernel / event path: {ev_s / run_s:,.0f}x")
    if args.peers:
        row["peers"] = run_peers(bars, params, fast, args, row)
    return row


def session_slices(frame: pd.DataFrame, rounds: int) -> list[tuple[int, int]]:
    """`rounds` consecutive row ranges of about equal size, each of whole sessions."""
    starts = np.flatnonzero(np.r_[True, frame.index.date[1:] != frame.index.date[:-1]])
    cuts = sorted({int(starts[min(len(starts) - 1, round(k * len(starts) / rounds))]) for k in range(rounds)})
    return list(zip(cuts, [*cuts[1:], len(frame)], strict=True))


def run_peers(bars: pd.DataFrame, params: Params, ours: list, args, row) -> dict:  # type: ignore[no-untyped-def]
    """Each event-driven peer on the first --peer-bars bars in --rounds slices of whole sessions; each
    slice is timed in the peer's process between two runs of our event path on the same slice
    (paired: the machine's speed drifts by up to 2x within minutes, and a pair shares the moment).
    Reported: the peer's bars/s over all slices, and the median (range) of the per-slice ratios."""
    n = min(len(bars), args.peer_bars)
    sub = bars.iloc[:n]
    # cut at a session boundary so that every framework sees whole days
    last_day = sub.index[-1].date()
    if n < len(bars) and bars.index[n].date() == last_day:
        sub = sub[sub.index.date < last_day]
    n = len(sub)
    slices = session_slices(sub, args.rounds)
    our_ids = {trade_id(t.entry_time, t.side, t.exit_time) for t in ours if t.exit_time <= sub.index[-1]}
    prepared = kernel.prepare_bars(sub)
    k_s, _ = timed(lambda: kernel.run_kernel(prepared, params), repeat=5)

    def ours_on(a: int, b: int) -> float:
        return timed(lambda: run_backtest(sub.iloc[a:b], "BENCH", params))[0]

    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.parquet"
        frame = sub.copy()
        frame["session_close"] = prepared_closes(sub)
        frame.to_parquet(data)
        cmd = [args.peers, str(HERE / "peers_runner.py"), str(data), "--timeout", str(args.peer_timeout)]
        cmd += ["--lookback", str(params.lookback), "--min-range-pct", str(params.min_range_pct)]
        cmd += ["--qty", str(params.qty), "--no-entry-minutes", str(params.no_entry_minutes)]
        cmd += ["--flatten-minutes", str(params.flatten_minutes), "--only", *args.peer_names]
        print(f"peers on the first {n:,} bars in {len(slices)} paired slices ({args.peers}) ...", flush=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        pipe = subprocess.PIPE
        with (
            open(Path(tmp) / "stderr.txt", "w+") as log,  # the peers' progress bars and warnings
            subprocess.Popen(cmd, stdin=pipe, stdout=pipe, stderr=log, text=True, env=env) as proc,
        ):
            assert proc.stdin is not None and proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                log.seek(0)
                print(f"peers runner failed ({proc.wait()}): {log.read().strip()[-800:]}")
                return {}
            ready = json.loads(line)["ready"]
            ours_on(*slices[0])  # our warm-up, as the peers had theirs
            for name, state in ready.items():
                if "error" in state:
                    print(f"  {name:12s} skipped: {state['error']}")
                    results[name] = {"error": state["error"]}
                    continue
                # A vectorized peer pays a fixed cost per call: it gets the bars whole, as one pair.
                parts = [(0, n)] if name in VECTORIZED else slices
                results[name] = _paired(name, proc, parts, ours_on, our_ids, n, k_s, state["warmup_s"])
            with contextlib.suppress(BrokenPipeError):  # a runner that died leaves our last request unsent
                proc.stdin.close()
    return results


def _paired(name, proc, slices, ours_on, our_ids, n, k_s, warmup_s) -> dict[str, object]:  # type: ignore[no-untyped-def]
    peer_total, ours_total, ratios, ids = 0.0, 0.0, [], set()
    for a, b in slices:
        before = ours_on(a, b)
        try:
            proc.stdin.write(json.dumps({"peer": name, "start": a, "stop": b}) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # the runner has died: its stdout says so (EOF) just below
        line = proc.stdout.readline()
        answer = json.loads(line) if line else {"error": f"peers runner exited ({proc.wait()})"}
        if "error" in answer:
            print(f"  {name:12s} skipped: {answer['error']}")
            return {"error": answer["error"]}
        ours_s = (before + ours_on(a, b)) / 2
        peer_total += answer["seconds"]
        ours_total += ours_s
        ratios.append(answer["seconds"] / ours_s)
        ids |= {(int(x), side, int(y)) for x, side, y in answer["trades"]}
    agree = len(ids & our_ids) / max(len(our_ids), 1)
    rate = n / peer_total
    print(
        f"  {name:12s} {rate / 1e3:10.1f} k bars/s  ({peer_total:.2f} s after a {warmup_s:.2f} s warm-up, "
        f"{len(ids):,} trades, agreement with ours {agree * 100:.1f}% of {len(our_ids):,}); event path "
        f"{statistics.median(ratios):,.1f}x faster (median of {len(ratios)} paired slices, "
        f"{min(ratios):,.1f}-{max(ratios):,.1f}x; {peer_total / ours_total:,.1f}x in all); "
        f"kernel {peer_total / k_s:,.0f}x faster"
    )
    return {
        "bars_per_s": rate,
        "trades": len(ids),
        "agreement": agree,
        "seconds": peer_total,
        "event_speedup": statistics.median(ratios),
        "event_speedups": ratios,
        "event_speedup_all": peer_total / ours_total,
        "kernel_speedup": peer_total / k_s,
    }


def prepared_closes(frame: pd.DataFrame) -> np.ndarray:
    cal = xnys()
    days = frame.index.date
    closes = {d: cal.session(d).close for d in set(days)}  # type: ignore[union-attr]
    return np.array([closes[d] for d in days], dtype=np.int64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--spy", action="store_true", help=f"also the real SPY file tiled ({SPY})")
    ap.add_argument(
        "--real",
        action="store_true",
        help=f"also every real file in {SPY.parent} (22 sessions, 5 symbols) tiled",
    )
    ap.add_argument(
        "--skip-event",
        action="store_true",
        help="do not time the event path on all the bars (the peers' paired slices still run it)",
    )
    ap.add_argument("--peers", metavar="PYTHON", help="python of the peers venv (e.g. /tmp/peers/bin/python)")
    ap.add_argument("--peer-bars", type=int, default=200_000, help="bars the peers run on (default 200,000)")
    ap.add_argument(
        "--rounds", type=int, default=5, help="paired slices the peers' bars are timed in (default 5)"
    )
    ap.add_argument(
        "--peer-timeout", type=int, default=600, help="seconds per peer slice before it is skipped"
    )
    ap.add_argument("--peer-names", nargs="+", default=["backtesting", "backtrader", "vectorbt"])
    ap.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args()
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"numba {kernel.NUMBA_VERSION or 'not installed (pure Python kernel)'}, {os.cpu_count()} cores"
    )
    params = Params()
    t0 = time.perf_counter()
    bars = synthetic(args.bars, args.seed)
    print(f"built {len(bars):,} synthetic bars in {time.perf_counter() - t0:.1f} s")
    rows = [bench("synthetic", bars, params, args)]
    if args.spy:
        if SPY.is_file():
            rows.append(bench("SPY tiled", tiled_spy(args.bars, SPY), params, args))
        else:
            print(f"(no {SPY}: real-data run skipped)")
    if args.real:
        files = sorted(SPY.parent.glob("*.csv"))
        if files:
            rows.append(bench("real tiled", tiled_real(args.bars, files), params, args))
        else:
            print(f"(no {SPY.parent}: real-data run skipped)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
