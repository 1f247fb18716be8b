"""The whole `breakout-bot backtest` command against backtesting.py's, as processes, side by side.

    python benchmarks/backtest_command.py --peers /tmp/peers/bin/python           # 200k and 1M bars
    python benchmarks/backtest_command.py --peers /tmp/peers/bin/python --bars 200000 --rounds 7

What a user feels: each side is one process from start to exit (imports, reading the bars file,
the calendar, the replay, the report, writing the trades). Both read the same Parquet file (its
`session_open`/`session_close` columns serve the peer; breakout-bot reads the calendar itself) and
print their report. Per data set: one untimed warm-up of each (file cache, the calendar cache), which
also writes their trades: they must be the same trades (entry time, side, exit time); then
`--rounds` rounds of ours, the
peer, ours again: a round's ratio is the peer's wall time over the mean of the two of ours around it
(paired timing: this shared machine's speed drifts by up to 2x within minutes). Peak RSS per process
from wait4 (the largest of the process and its children, e.g. our forked second replay). Also timed:
ours with `--jobs 1` (one core), `breakout-bot --help` and `breakout-bot backtest --help`.
The machine's load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from breakout_bot.market.calendar import xnys

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from backtest_throughput import SPY, synthetic, tiled_real  # noqa: E402

BOT = str(Path(sys.executable).with_name("breakout-bot"))
# A user's Python writes .pyc files on a first run and reads them on the next: the warm-ups do that here
# too, also where PYTHONDONTWRITEBYTECODE is set (containers, CI images: with it every timed run of an
# editable install compiled its modules from source).
AS_A_USER = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def with_sessions(frame: pd.DataFrame) -> pd.DataFrame:
    """The bars as a file's rows: a timestamp column, the session's open and close (epoch s) per bar,
    and one bar one minute before the first session (backtesting.py skips its data's first row)."""
    cal = xnys()
    first = frame.iloc[:1].copy()
    first.index = first.index - pd.Timedelta(minutes=1)
    frame = pd.concat([first, frame])
    days = frame.index.date
    sessions = {d: cal.session(d) for d in set(days)}
    out = frame.copy()
    out["session_open"] = np.array([sessions[d].open for d in days], dtype=np.int64)  # type: ignore[union-attr]
    out["session_close"] = np.array([sessions[d].close for d in days], dtype=np.int64)  # type: ignore[union-attr]
    out.index.name = "timestamp"
    return out.reset_index()


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, children included) and peak RSS (MiB: the largest of
    the process and its children) of one process. GNU time starts it: a child forked from this big
    Python process would inherit its peak RSS as a starting value (Linux carries it over an exec)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S %M", "-o", report.name, *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
            env=AS_A_USER,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(
                f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {proc.stderr.decode()[-800:]}"
            )
        user, system, peak_kib = report.read().split()[-3:]
    return wall, float(user) + float(system), int(peak_kib) / 1024


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def our_trades(path: Path) -> set[tuple[int, str, int]]:
    frame = pd.read_csv(path)
    return {
        (int(pd.Timestamp(r.entry_time).timestamp()), str(r.side), int(pd.Timestamp(r.exit_time).timestamp()))
        for r in frame.itertuples()
    }


def bench(name: str, frame: pd.DataFrame, args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    data = tmp / f"{name}.parquet"
    with_sessions(frame).to_parquet(data, index=False)
    ours_csv, peer_json = tmp / f"{name}-ours.csv", tmp / f"{name}-peer.json"
    ours = [BOT, "backtest", "--symbol", "BENCH", "--data", str(data)]
    one_core = [*ours, "--jobs", "1"]
    peer = [args.peers, str(HERE / "peer_command.py"), str(data)]
    print(f"\n== {name}: {len(frame):,} bars, {len(set(frame.index.date)):,} sessions ({load()})", flush=True)
    timed([*ours, "--trades-out", str(ours_csv)])  # warm-ups (OS file cache, the calendar cache, .pyc)
    timed([*peer, "--trades", str(peer_json)])  # ... and the trades to compare
    rows = []
    for r in range(args.rounds):
        a = timed(ours)
        p = timed(peer)
        b = timed(ours)
        c = timed(one_core)
        mean = (a[0] + b[0]) / 2
        rows.append({"ours": mean, "peer": p[0], "ratio": p[0] / mean, "one_core": c[0],
                     "ours_cpu": (a[1] + b[1]) / 2, "ours_rss": max(a[2], b[2]), "peer_rss": p[2],
                     "one_core_rss": c[2]})  # fmt: skip
        print(
            f"  round {r + 1}: ours {a[0]:.2f}/{b[0]:.2f} s (cpu {a[1]:.2f} s, {max(a[2], b[2]):.0f} MiB), "
            f"one core {c[0]:.2f} s ({c[2]:.0f} MiB), backtesting.py {p[0]:.2f} s ({p[2]:.0f} MiB): "
            f"{p[0] / mean:.2f}x  ({load()})",
            flush=True,
        )
    mine, theirs = our_trades(ours_csv), {tuple(t) for t in json.loads(peer_json.read_text())}
    same = mine == theirs
    ratios = [r["ratio"] for r in rows]
    summary = {
        "data": name,
        "bars": len(frame),
        "ours_s": statistics.median(r["ours"] for r in rows),
        "one_core_s": statistics.median(r["one_core"] for r in rows),
        "peer_s": statistics.median(r["peer"] for r in rows),
        "ratio_median": statistics.median(ratios),
        "ratio_range": (min(ratios), max(ratios)),
        "ours_rss_mib": max(r["ours_rss"] for r in rows),
        "one_core_rss_mib": max(r["one_core_rss"] for r in rows),
        "peer_rss_mib": max(r["peer_rss"] for r in rows),
        "trades": len(mine),
        "identical_trades": same,
        "only_ours": len(mine - theirs),
        "only_peer": len(theirs - mine),
    }
    print(
        f"  {name}: ours {summary['ours_s']:.2f} s (one core {summary['one_core_s']:.2f} s), backtesting.py "
        f"{summary['peer_s']:.2f} s: {summary['ratio_median']:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x); "
        f"peak RSS ours {summary['ours_rss_mib']:.0f} MiB (one core {summary['one_core_rss_mib']:.0f}), "
        f"peer {summary['peer_rss_mib']:.0f} MiB; {len(mine):,} trades, identical: {same}"
        + ("" if same else f" (only ours {len(mine - theirs)}, only the peer's {len(theirs - mine)})")
    )
    return summary


def help_times(rounds: int) -> dict[str, float]:
    out = {}
    for cmd in (["--help"], ["backtest", "--help"]):
        timed([BOT, *cmd])
        walls = [timed([BOT, *cmd])[0] for _ in range(rounds)]
        out[" ".join(cmd)] = statistics.median(walls)
        print(f"breakout-bot {' '.join(cmd)}: median {statistics.median(walls):.3f} s "
              f"(min {min(walls):.3f}, max {max(walls):.3f}; {load()})")  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", required=True, metavar="PYTHON", help="python of the peers venv (backtesting)")
    ap.add_argument("--bars", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", nargs="+", choices=("synthetic", "real"), default=["synthetic", "real"])
    ap.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {load()}")
    results: dict[str, object] = {"help": help_times(10)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.bars:
            if "synthetic" in args.data:
                rows.append(bench(f"synthetic-{n // 1000}k", synthetic(n, 7), args, Path(tmp)))
            if "real" in args.data:
                files = sorted(SPY.parent.glob("*.csv"))
                if files:
                    rows.append(bench(f"real-{n // 1000}k", tiled_real(n, files), args, Path(tmp)))
                else:
                    print(f"(no {SPY.parent}: real-data run skipped)")
    results["runs"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
