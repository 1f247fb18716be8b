"""The fill journal's durable append: latency at 1k, 10k and 100k records already journaled.

Each size: a journal file of N records (written directly, as a bot's years of fills would leave it) is
opened as the bot opens it at start (`load()`, `ensure_writable()`: for the sqlite ledger the one-off
migration and first export; "start" below); the first append is timed on its own, then `--appends` more (capped for sizes where one append takes long), each a
new execution id, as the runner thread calls it. The figures are that thread's wall time per append
(median, p99, max). `--json-export` also times how long until `past_trades.json` holds the last
record (the export, off the hot path).

    .venv/bin/python benchmarks/journal_append.py
    .venv/bin/python benchmarks/journal_append.py --sizes 1000 10000 100000 --appends 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from breakout_bot.journal import FillRecord, Journal


def record(i: int) -> FillRecord:
    return FillRecord(
        id=f"exec-{i:08d}",
        order_id=f"ord-{i // 2:08d}",
        client_order_id=f"AAPL-20240102-{i // 2}",
        symbol="AAPL",
        side="buy" if i % 2 == 0 else "sell",
        qty="100",
        price="187.15",
        timestamp="2024-01-02T14:41:00.123456Z",
        leg="entry" if i % 2 == 0 else "take_profit",
        source="stream",
        cum_qty="100",
        mode="paper",
        account="PA3ABCDEFGH",
        run="20240102T143000Z-a1b2c3",
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(size: int, appends: int, export: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bb-journal-") as tmp:
        path = Path(tmp) / "past_trades.json"
        path.write_text(json.dumps([record(i).to_dict() for i in range(size)], indent=2) + "\n")
        journal = Journal(path)
        t0 = time.perf_counter()
        journal.load()
        journal.ensure_writable()  # as the bot starts: for the ledger, the migration and first export
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        journal.append(record(size))
        first_s = time.perf_counter() - t0
        times: list[float] = []
        for i in range(size + 1, size + 1 + appends):
            t0 = time.perf_counter()
            assert journal.append(record(i))
            times.append(time.perf_counter() - t0)
        export_s = float("nan")
        if export:
            last = record(size + appends).id
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 60:
                try:
                    if json.loads(path.read_text())[-1]["id"] == last:
                        break
                except (ValueError, IndexError, KeyError):
                    pass
                time.sleep(0.01)
            export_s = time.perf_counter() - t0
        close = getattr(journal, "close", None)
        if close is not None:
            close()
        return {
            "start_ms": load_s * 1000,
            "first_ms": first_s * 1000,
            "median_ms": statistics.median(times) * 1000,
            "p99_ms": percentile(times, 0.99) * 1000,
            "max_ms": max(times) * 1000,
            "n": len(times),
            "export_s": export_s,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--appends", type=int, default=200, help="appends timed per size (default 200)")
    parser.add_argument(
        "--budget", type=float, default=20.0, help="seconds of appends per size at most (slow journals)"
    )
    parser.add_argument("--json-export", action="store_true", help="also time the JSON export's lag")
    args = parser.parse_args(argv)
    print(
        f"{'records':>8} {'start':>9} {'1st append':>11} {'median':>9} {'p99':>9} {'max':>9} {'n':>5}  export"
    )
    for size in args.sizes:
        probe = measure(size, 3, False)
        n = max(3, min(args.appends, int(args.budget * 1000 / max(probe["median_ms"], 0.01))))
        m = measure(size, n, args.json_export)
        export = f"{m['export_s']:.2f} s" if args.json_export else "-"
        print(
            f"{size:>8} {m['start_ms']:>7.1f}ms {m['first_ms']:>9.1f}ms {m['median_ms']:>7.2f}ms "
            f"{m['p99_ms']:>7.2f}ms {m['max_ms']:>7.2f}ms {m['n']:>5}  {export}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
