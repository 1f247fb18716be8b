"""A sweep over a universe, as whole commands: in one process, in two forked processes, and on a Dask
local cluster of two workers (the `cluster` extra).

    python benchmarks/sweep_cluster.py                     # 50 symbols x 2 years x 100 points
    python benchmarks/sweep_cluster.py --symbols 10 --rounds 1

The bars: `--symbols` synthetic symbols (the simulator's seeded generator) over two calendar years,
one Parquet file each, in a folder read with --universe (built once into --data-dir, default a
temporary folder). The grid: lookback 5..14 x min_range 0.1..1.0 (100 points). Each way runs as
`breakout-bot backtest --data DIR --universe FILE --sweep ... --sweep-out CSV`, in rounds (one of
each way per round, so the machine's drift falls on all of them alike); the CSVs must be the same,
byte for byte. Reported per way: the median wall time of the command, its CPU time (its processes,
children included; a Dask worker's CPU is not its child's when --scheduler is used, here it is) and
the sweep's own time as the command prints it ("in X s": the tasks, without loading and start-up).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from breakout_bot.market.synthetic import synthetic_bars

BOT = str(Path(sys.executable).with_name("breakout-bot"))
GRID = ["lookback=5:14", "min_range=0.1:1.0:0.1"]
WAYS = {
    "in-process, 1 core": ["--sweep-jobs", "1"],
    "2 forked processes": ["--sweep-jobs", "2"],
    "Dask, 2 local workers": ["--workers", "2"],
}


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def build(folder: Path, symbols: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"S{i:03d}" for i in range(symbols)]
    start = dt.date(2023, 1, 3)
    for name in names:
        path = folder / f"{name}.parquet"
        if not path.exists():
            bars = synthetic_bars(name, 11, 502, start=start)  # 2023 and 2024: 502 sessions
            bars.reset_index().to_parquet(path, index=False)
    universe = folder / "universe.txt"
    universe.write_text("\n".join(names) + "\n")
    return universe


def run(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall s, CPU s (user + system of the command and its children), the sweep's own seconds, stdout."""
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[-6:])} failed ({proc.returncode}): {proc.stderr[-800:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    match = re.search(r"bars \(\d+ sessions\) in ([\d.]+) s", proc.stdout)
    return wall, cpu, float(match.group(1)) if match else float("nan"), proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--data-dir", type=Path, help="keep the generated bars here (default: a temporary folder)"
    )
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data_dir or Path(tmp) / "bars"
        t0 = time.perf_counter()
        universe = build(folder, args.symbols)
        print(
            f"{args.symbols} symbols x 2 years of synthetic bars in {folder} ({time.perf_counter() - t0:.0f} s)"
        )
        base = [BOT, "backtest", "--data", str(folder), "--universe", str(universe), "--sweep", *GRID]
        figures: dict[str, list[tuple[float, float, float]]] = {w: [] for w in WAYS}
        outputs: dict[str, bytes] = {}
        for r in range(args.rounds):
            for way, flags in WAYS.items():
                csv = Path(tmp) / f"{len(outputs)}-{r}.csv"
                wall, cpu, sweep_s, stdout = run([*base, *flags, "--sweep-out", str(csv)])
                figures[way].append((wall, cpu, sweep_s))
                outputs[way] = csv.read_bytes()
                first = stdout.splitlines()[0]
                print(
                    f"  round {r + 1}, {way}: {wall:.1f} s wall, {cpu:.1f} s CPU; {first} ({load()})",
                    flush=True,
                )
        same = len(set(outputs.values())) == 1
        print(
            f"\n{args.symbols} symbols x 2 years x 100 points; the CSVs are identical byte for byte: {same}"
        )
        for way, rows in figures.items():
            walls, cpus, sweeps = zip(*rows, strict=True)
            print(
                f"  {way:24s} command {statistics.median(walls):6.1f} s (range {min(walls):.1f}-{max(walls):.1f}), "
                f"CPU {statistics.median(cpus):6.1f} s, sweep alone {statistics.median(sweeps):6.1f} s"
            )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
