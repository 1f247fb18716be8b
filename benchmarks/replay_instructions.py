"""Instructions executed by one event-path replay, counted by valgrind's callgrind.

Wall time on this shared machine drifts by up to 2x within minutes; an instruction count is repeatable
to ~0.1 %, so it is the figure to compare two versions of the event path by (fewer instructions is
not always less time, but the two moved together for every change recorded in benchmarks/README.md).

    python benchmarks/replay_instructions.py              # 40,000 synthetic bars, seed 7: ~40 s
    python benchmarks/replay_instructions.py --bars 100000

Needs valgrind (Debian: `apt-get install valgrind`). Only the replay is counted: the interpreter,
imports, bar synthesis and a warm-up run happen with instrumentation off, which `callgrind_control`
switches on just before the replay; the process exits right after it (no teardown in the count).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def inner(n_bars: int, seed: int) -> None:
    from backtest_throughput import synthetic  # this directory's: the throughput benchmark's bars

    from breakout_bot.backtest.engine import run_backtest
    from breakout_bot.core.params import Params

    bars = synthetic(n_bars, seed).iloc[:n_bars]
    params = Params()
    run_backtest(bars.iloc[: 390 * 3], "BENCH", params)  # imports, calendar, first-call caches
    print("ready", flush=True)
    time.sleep(3)  # the outer process switches instrumentation on meanwhile
    result = run_backtest(bars, "BENCH", params)
    print(f"replayed {len(bars):,} bars, {len(result.trades):,} trades, {result.events:,} events", flush=True)
    os._exit(0)


def outer(n_bars: int, seed: int) -> int:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        cmd += [sys.executable, __file__, "--inner", "--bars", str(n_bars), "--seed", str(seed)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "ready":
                subprocess.run(
                    ["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, check=True
                )
            else:
                print(line.rstrip())
        if proc.wait() != 0:
            print(f"valgrind exited with {proc.returncode}")
            return 1
        totals = [ln for ln in out.read_text().splitlines() if ln.startswith(("summary:", "totals:"))]
        if not totals:
            print("no totals in the callgrind output")
            return 1
        print(f"{int(totals[0].split()[1]) / 1e6:,.1f} M instructions")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=40_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args.bars, args.seed)
        return 0
    return outer(args.bars, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
