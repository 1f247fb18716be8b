"""Benchmark: a universe of symbols in one bot, for one simulated session (issue 22).

The simulator (`breakout-bot sim`, stepped clock) and the bot (`breakout-bot run --sim-clock --days 1`)
run as two processes on loopback, so the bot's CPU and memory are its own (os.wait4's rusage of the
bot's process). Synthetic bars, one series per symbol (UAA, UAB, ...). Printed:

* REST requests per virtual minute, median and max (and which minute), over every minute of the run
  from the bot's first request (its preflight and first reconcile, before the open) to its last (after
  the flatten), and the first minute's and the flatten minute's counts: every request the bot sent, as
  the simulator logged it (`/sim/requests`), orders included. The target is <= 10 a minute at 100
  symbols in polling mode, and every minute well under Alpaca's 200.
* bar close -> order: on the stepped clock the bot asks for the minute's bars 2 s after the close
  (RunnerOptions.poll_delay) and virtual time stands still while it works, so the figure that varies
  is the wall time from the minute's bars request reaching the simulator to each entry's
  POST /v2/orders reaching it (both stamped on arrival, `wall` in `/sim/requests`): reading the page,
  stepping every machine, the risk gate, and the POSTs of the symbols served before it (in the order
  given). p50 and p99 across the session's entries.
* the bot's CPU seconds (user + system), its peak RSS, and its wall time.

    .venv/bin/python benchmarks/universe.py                     # 100 symbols, polling
    .venv/bin/python benchmarks/universe.py --symbols 20 --max-positions 5
    .venv/bin/python benchmarks/universe.py --bars stream
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

KEY, SECRET = "UNIVERSEKEY", "universesecret"
NEW_YORK = ZoneInfo("America/New_York")
DAY = dt.date(2024, 3, 4)  # a Monday, 09:30-16:00


def _http(url: str) -> Any:
    req = urllib.request.Request(url)
    req.add_header("APCA-API-KEY-ID", KEY)
    req.add_header("APCA-API-SECRET-KEY", SECRET)
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def start_sim(run_dir: Path, symbols: list[str], seed: int) -> tuple[subprocess.Popen[bytes], str]:
    out = open(run_dir / "sim.out", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "breakout_bot.sim", "--port", "0", "--speed", "0", "--key", KEY,
         "--secret", SECRET, "--symbols", ",".join(symbols), "--seed", str(seed), "--start", DAY.isoformat()],
        stdout=out,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = (run_dir / "sim.out").read_text(errors="replace")
        if text.startswith("listening on ") and "\n" in text:
            return proc, text.split("\n", 1)[0].split()[-1]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"simulator did not start: {(run_dir / 'sim.out').read_text()[:300]!r}")


def run_bot(run_dir: Path, url: str, symbols: list[str], flags: list[str]) -> tuple[int, float, Any]:
    """The bot's exit code, wall seconds and rusage (its own process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "BREAKOUT_"))}
    env.update(APCA_API_KEY_ID=KEY, APCA_API_SECRET_KEY=SECRET, APCA_API_BASE_URL=url,
               APCA_API_DATA_URL=url, APCA_API_STREAM_URL=url)  # fmt: skip
    t0 = time.perf_counter()
    with open(run_dir / "bot.out", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "breakout_bot", "run", "--symbols", ",".join(symbols), "--sim-clock",
             "--days", "1", "--journal", str(run_dir / "past_trades.json"), "--log-dir",
             str(run_dir / "logs"), *flags],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=run_dir,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _kinds(requests: list[dict[str, Any]], minute: int) -> list[tuple[str, int]]:
    """The commonest requests of one minute (a minute: whole minutes since the epoch, virtual time)."""
    kinds: dict[str, int] = {}
    for r in requests:
        if int(r["ts"] // 60) == minute:
            what = f"{r['method']} {'/'.join(r['path'].split('/')[:3])}"
            kinds[what] = kinds.get(what, 0) + 1
    return sorted(kinds.items(), key=lambda kv: -kv[1])[:4]


def _hm(minute: int) -> str:
    return dt.datetime.fromtimestamp(60 * minute, NEW_YORK).strftime("%H:%M")


def figures(requests: list[dict[str, Any]]) -> dict[str, Any]:
    open_ = dt.datetime.combine(DAY, dt.time(9, 30), NEW_YORK).timestamp()
    close = dt.datetime.combine(DAY, dt.time(16, 0), NEW_YORK).timestamp()
    flatten = dt.datetime.combine(DAY, dt.time(15, 55), NEW_YORK).timestamp()
    # Every minute of the run, from the bot's first request (its preflight and first reconcile, before
    # the open) to its last (after the flatten), empty minutes included: the limit holds in each.
    stamps = [int(r["ts"] // 60) for r in requests]
    first, last = min(stamps), max(stamps)
    counts = [0] * (last - first + 1)
    for m in stamps:
        counts[m - first] += 1
    worst = first + max(range(len(counts)), key=counts.__getitem__)
    flatten_minute = int(flatten // 60)
    totals: dict[str, int] = {}
    for r in requests:
        if open_ <= r["ts"] < close:
            what = f"{r['method']} {'/'.join(r['path'].split('/')[:4]) if 'activities' in r['path'] else '/'.join(r['path'].split('/')[:3])}"
            totals[what] = totals.get(what, 0) + 1
    bars = sorted(r["wall"] for r in requests if r["method"] == "GET" and r["path"] == "/v2/stocks/bars")
    latencies = []
    for r in requests:
        if r["method"] == "POST" and r["path"] == "/v2/orders":
            i = bisect.bisect_right(bars, r["wall"]) - 1
            if i >= 0:
                latencies.append((r["wall"] - bars[i]) * 1000)
    session_minutes = (close - open_) / 60
    return {
        "requests": len(requests),
        "minutes": len(counts),
        "span": (_hm(first), _hm(last)),
        "per_minute_median": statistics.median(counts),
        "per_minute_max": max(counts),
        "worst": (_hm(worst), _kinds(requests, worst)),
        "first_minute": (_hm(first), counts[0], _kinds(requests, first)),
        "flatten_minute": (
            counts[flatten_minute - first] if first <= flatten_minute <= last else 0,
            _kinds(requests, flatten_minute),
        ),
        "per_minute_by_kind": [
            (k, round(v / session_minutes, 2)) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])[:7]
        ],
        "entries": len(latencies),
        "latency_p50_ms": pct(latencies, 50) if latencies else float("nan"),
        "latency_p99_ms": pct(latencies, 99) if latencies else float("nan"),
        "single_symbol_paths": sorted(
            {
                r["path"]
                for r in requests
                if r["path"].startswith("/v2/stocks/") and r["path"] != "/v2/stocks/bars"
            }
        )[:5],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100, help="how many synthetic symbols (default 100)")
    ap.add_argument("--bars", choices=("poll", "stream"), default="poll")
    ap.add_argument("--max-positions", type=int, default=0)
    ap.add_argument(
        "--qty", type=int, default=10, help="shares per trade (default 10: buying power for many)"
    )
    ap.add_argument("--sdk", default=None)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    symbols = [f"U{letters[i // 26 % 26]}{letters[i % 26]}" for i in range(a.symbols)]
    flags = ["--bars", a.bars, "--qty", str(a.qty), "--max-positions", str(a.max_positions)]
    if a.sdk:
        flags += ["--sdk", a.sdk]
    with tempfile.TemporaryDirectory(prefix="bb-universe-") as tmp:
        run_dir = Path(tmp)
        sim, url = start_sim(run_dir, symbols, a.seed)
        try:
            code, wall, usage = run_bot(run_dir, url, symbols, flags)
            requests = _http(f"{url}/sim/requests")
        finally:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                sim.kill()
        if code != 0:
            print((run_dir / "bot.out").read_text()[-2000:])
    f = figures(requests)
    cpu = usage.ru_utime + usage.ru_stime
    print(
        f"universe: {a.symbols} symbols, --bars {a.bars}, --max-positions {a.max_positions}, one session ({DAY})"
    )
    print(f"  bot exit {code}; wall {wall:.1f} s; CPU {cpu:.1f} s ({cpu / wall:.0%} of a core); "
          f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB")  # fmt: skip
    print(f"  REST requests: {f['requests']} in all over {f['minutes']} minutes ({f['span'][0]}-{f['span'][1]}, "
          f"the first request to the last); per minute median {f['per_minute_median']:.0f}, "
          f"max {f['per_minute_max']} at {f['worst'][0]}: {f['worst'][1]} (Alpaca's limit 200)")  # fmt: skip
    print(f"  the first minute ({f['first_minute'][0]}: preflight, first reconcile): {f['first_minute'][1]} "
          f"{f['first_minute'][2]}; the flatten minute (15:55): {f['flatten_minute'][0]} "
          f"{f['flatten_minute'][1]}")  # fmt: skip
    if a.bars == "poll":
        print(
            f"  entries {f['entries']}: bars request -> entry POST (wall) p50 {f['latency_p50_ms']:.1f} ms, "
            f"p99 {f['latency_p99_ms']:.1f} ms (+ the 2 s poll delay after the close, virtual)"
        )
    else:
        print(f"  entries {f['entries']} (a streamed bar's push -> order: benchmarks/latency.py)")
    print(f"  a session minute's requests, on average: {f['per_minute_by_kind']}")
    if f["single_symbol_paths"]:
        print(f"  per-symbol data reads seen: {f['single_symbol_paths']}")
    return 0 if code == 0 and (a.bars == "stream" or f["per_minute_median"] <= 10) else 1


if __name__ == "__main__":
    raise SystemExit(main())
