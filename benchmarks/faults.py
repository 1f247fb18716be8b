"""Randomized crash/fault suite: the bot as a real subprocess against a separately started simulator.

Each run starts `python -m breakout_bot.sim` (stepped clock, a random synthetic seed and session),
starts `breakout-bot run --sim-clock --days 1` against it, and injects faults at random wall instants
(seeded RNG) while watching the simulator's virtual time: kill -9 + restart (sometimes with a corrupt
or half-written journal while the bot is down), trading/data websocket drops, 429 and 5xx bursts
(also "after": the order arrived but the response failed), latency, partial fills, rejected orders,
clock jumps, and Alpaca's account rules (issue 15, `ALPACA_RULE_FAULTS`): legacy pattern-day-trader
refusals, a plan that loses SIP data (runs on --feed sip), slow cancels, another client taking the data
stream's one connection (406; runs on --bars stream), the price moving before an order. After the
session the simulator's own records are checked (breakout_bot.testkit.faultcheck).

    .venv/bin/python benchmarks/faults.py --runs 20 --seed 1 --jobs 2
    .venv/bin/python benchmarks/faults.py --runs 20 --seed 1 --jobs 2 --sdk alpaca-py   # the other SDK

Prints a table (runs, faults by kind, violations by kind) and exits 1 on any violation, printing the
per-run log directories (simulator and bot output, journals, the bot's log files) for post-mortems.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from breakout_bot.config.settings import SDKS
from breakout_bot.testkit.faultcheck import INVARIANTS, Violation, check_day

NEW_YORK = ZoneInfo("America/New_York")
KEY, SECRET = "FAULTKEY", "faultsecret"
SYMBOL = "AAPL"
# Full (non-holiday, 16:00 close) sessions.
SESSIONS = [
    date(2024, 3, 4) + timedelta(days=d) for d in (0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18)
]
FAULT_WEIGHTS = {
    "kill": 3,
    "corrupt_journal": 1,
    "stale_temp_journal": 1,
    "drop_trading": 3,
    "drop_data": 1,
    "http_429": 2,
    "http_5xx": 2,
    "order_5xx_after": 2,
    "latency": 1,
    "partial_fills": 1,
    "reject_order": 2,
    "clock_jump": 2,
}
JUMP_LIMIT = (15, 30)  # no clock jumps after this New York time (they would skip the close itself)

# ---------------------------------------------------------------- Alpaca's account rules (issue 15)
# Kept apart from the faults above (one dict, one injector, one set of run flags) so that other work
# extending the suite merges cleanly.
ALPACA_RULE_FAULTS = {
    "pdt_refusal": 1,  # the legacy pattern-day-trader refusal of entries and exits, for a while
    "sip_refusal": 1,  # the plan loses its SIP subscription, for a while (matters on --feed sip runs)
    "slow_cancels": 2,  # cancels take 1-8 virtual s (pending_cancel), for a while
    "data_406": 1,  # another client takes the data stream's one connection (matters on --bars stream)
    "price_drift": 2,  # the price moves 0.3-3 % just before the next order
}
FAULT_WEIGHTS.update(ALPACA_RULE_FAULTS)
# What ends a timed fault (the faults above: latency and partial fills; issue 15's switches).
FAULT_OFF: dict[str, dict[str, Any]] = {
    "latency": {"latency_ms": 0},
    "partial_fills": {"partial_fills": False},
    "pdt_refusal": {"legacy_pdt": False},
    "sip_refusal": {"free_plan": False},
    "slow_cancels": {"cancel_latency_ms": 300},
    "data_406": {"data_connection_limit": False},
}


def alpaca_rule_run_flags(seed: int) -> list[str]:
    """Per run (its own seeded RNG, so the fault sequence of a seed is not shifted): the feed and the bar
    mode the bot runs with, so that the SIP and 406 rules meet a bot they can hurt."""
    rng = random.Random(f"{seed}/alpaca-rules")
    flags = []
    if rng.random() < 0.3:
        flags += ["--feed", "sip"]
    if rng.random() < 0.5:
        flags += ["--bars", "stream"]
    return flags


def inject_alpaca_rule(kind: str, sim: _Sim, rng: random.Random, timed: dict[str, int]) -> None:
    if kind == "pdt_refusal":
        sim.fault({"legacy_pdt": "both"})
        timed[kind] = rng.randint(1, 4)
    elif kind == "sip_refusal":
        sim.fault({"free_plan": True})
        timed[kind] = rng.randint(1, 4)
    elif kind == "slow_cancels":
        sim.fault({"cancel_latency_ms": rng.randint(1_000, 8_000)})
        timed[kind] = rng.randint(2, 8)
    elif kind == "data_406":
        sim.fault({"data_connection_limit": True})
        timed[kind] = rng.randint(1, 3)
    elif kind == "price_drift":
        sim.fault({"price_drift_pct": round(rng.choice([-1, 1]) * rng.uniform(0.3, 3.0), 2)})


@dataclass
class RunResult:
    seed: int
    run_dir: Path
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    wall: float = 0.0
    restarts: int = 0
    supervisor_restarts: int = 0  # exit 4 (broker unavailable) -> restarted, as systemd would
    sip_restarts: int = 0  # exit 2 (--feed sip refused while the plan lacked SIP) -> restarted after it
    fills: int = 0


def _http(url: str, body: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("APCA-API-KEY-ID", KEY)
    req.add_header("APCA-API-SECRET-KEY", SECRET)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # loopback only
        return json.loads(resp.read())


class _Sim:
    def __init__(self, run_dir: Path, seed: int, start: date) -> None:
        self.out = open(run_dir / "sim.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "breakout_bot.sim",
                "--port",
                "0",
                "--speed",
                "0",
                "--key",
                KEY,
                "--secret",
                SECRET,
                "--symbols",
                SYMBOL,
                "--seed",
                str(seed),
                "--start",
                start.isoformat(),
            ],
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        self.url = ""
        while time.monotonic() < deadline:
            text = (run_dir / "sim.out").read_text(errors="replace")
            if text.startswith("listening on ") and "\n" in text:
                self.url = text.split("\n", 1)[0].split()[-1]
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"simulator did not start: {text[:300]!r}")

    def now_ny(self) -> datetime:
        state = _http(f"{self.url}/sim/state")
        return datetime.fromisoformat(state["now"].replace("Z", "+00:00")).astimezone(NEW_YORK)

    def fault(self, body: dict[str, Any]) -> None:
        _http(f"{self.url}/sim/faults", body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()


class _Bot:
    def __init__(
        self, run_dir: Path, url: str, sdk: str | None = None, flags: list[str] | None = None
    ) -> None:
        self.run_dir = run_dir
        self.url = url
        self.sdk = sdk  # None: the bot's own choice (BREAKOUT_SDK, else the default)
        self.flags = flags or []  # run flags of issue 15's rules (--feed sip, --bars stream)
        self.journal = run_dir / "past_trades.json"
        self.n = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        self.n += 1
        self.started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
        env.update(
            APCA_API_KEY_ID=KEY,
            APCA_API_SECRET_KEY=SECRET,
            APCA_API_BASE_URL=self.url,
            APCA_API_DATA_URL=self.url,
            APCA_API_STREAM_URL=self.url,
        )
        with open(self.run_dir / f"bot-{self.n}.out", "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "breakout_bot",
                    "run",
                    "--symbol",
                    SYMBOL,
                    "--sim-clock",
                    "--days",
                    "1",
                    "--journal",
                    str(self.journal),
                    "--log-dir",
                    str(self.run_dir / "logs"),
                    *(["--sdk", self.sdk] if self.sdk else []),
                    *self.flags,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.run_dir,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def tail(self) -> str:
        text = (self.run_dir / f"bot-{self.n}.out").read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-3:])


def _pick(rng: random.Random) -> str:
    kinds = list(FAULT_WEIGHTS)
    return rng.choices(kinds, weights=[FAULT_WEIGHTS[k] for k in kinds])[0]


def _corrupt(rng: random.Random, raw: bytes) -> bytes:
    choice = rng.randrange(3)
    if choice == 0 and len(raw) > 4:
        return raw[: rng.randrange(1, len(raw) - 1)]  # half-written (a writer without atomic rename)
    if choice == 1:
        return raw.rstrip()[:-1] + b',{"id": 7}]' if raw.strip() else b'[{"id": 7}]'
    return b"\x00garbage{" + raw[:10]


def _settled_request_count(url: str) -> int:
    """The simulator's request count once the killed bot's in-flight requests have landed (a request
    sent just before kill -9 can still be served after it: seen as a false "talked first")."""
    last = int(_http(f"{url}/sim/state")["requests"])
    for _ in range(20):
        time.sleep(0.1)
        now = int(_http(f"{url}/sim/state")["requests"])
        if now == last:
            return now
        last = now
    return last


def _restart_after_kill(rng: random.Random, kind: str, bot: _Bot, result: RunResult) -> None:
    """kill -9, then (per kind) damage the journal while the bot is down, then start it again."""
    bot.kill()
    time.sleep(rng.uniform(0.0, 0.5))
    if kind == "corrupt_journal":
        original = bot.journal.read_bytes() if bot.journal.exists() else b""
        bot.journal.write_bytes(_corrupt(rng, original))
        sent_before = _settled_request_count(bot.url)
        bot.start()
        rc = bot.wait(60)
        if _http(f"{bot.url}/sim/state")["requests"] != sent_before:
            result.violations.append(Violation("corrupt_journal", "the bot talked to the broker first"))
        aside = list(bot.run_dir.glob("past_trades.json.corrupt-*"))
        if rc != 5:
            bot.kill()
            result.violations.append(Violation("corrupt_journal", f"exit {rc} (expected 5): {bot.tail()}"))
        elif bot.journal.exists() or not aside:
            result.violations.append(Violation("corrupt_journal", "the corrupt journal was not moved aside"))
        # The operator's fix: put the good journal back (here: the content before the damage).
        bot.journal.write_bytes(original)
        for path in aside:
            path.rename(path.with_name(path.name + ".seen"))
    elif kind == "stale_temp_journal":
        raw = bot.journal.read_bytes() if bot.journal.exists() else b"[]"
        (bot.run_dir / f".past_trades.json.{rng.randrange(10**6)}.tmp").write_bytes(raw[: len(raw) // 2])
    result.restarts += 1
    bot.start()


def run_one(
    seed: int,
    base_dir: Path,
    *,
    wall_limit: float = 150.0,
    intensity: float = 1.0,
    max_restarts: int = 5,
    sdk: str | None = None,
) -> RunResult:
    """One simulated session with faults (the bot on `sdk`, None = its default); returns the faults
    injected and the violations found."""
    rng = random.Random(seed)
    run_dir = base_dir / f"run-{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    result = RunResult(seed, run_dir)
    t0 = time.monotonic()
    session = rng.choice(SESSIONS)
    sim = _Sim(run_dir, rng.randrange(1, 10**6), session)
    bot = _Bot(run_dir, sim.url, sdk, alpaca_rule_run_flags(seed))
    close = datetime.combine(session, datetime.min.time(), NEW_YORK).replace(hour=16)
    timed: dict[str, int] = {}  # fault to switch off -> ticks left
    try:
        bot.start()
        while True:
            if time.monotonic() - t0 > wall_limit:
                result.violations.append(
                    Violation("hang", f"bot still running after {wall_limit:.0f} s wall")
                )
                break
            rc = bot.poll()
            if rc == 4 and result.supervisor_restarts < 3:
                # Broker unreachable after bounded retries (e.g. a 429 burst at start-up): exit 4, and
                # systemd's Restart=on-failure (deploy/README.md) starts it again. So do we.
                result.supervisor_restarts += 1
                bot.start()
                continue
            if rc == 2 and "--feed" in bot.flags and "--feed iex" in bot.tail() and result.sip_restarts < 5:
                # Restarted while the plan lacked SIP: `--feed sip` is refused at start with one line and
                # exit 2 (by design); the operator restarts it once the plan is back. So do we.
                sim.fault(FAULT_OFF["sip_refusal"])
                timed.pop("sip_refusal", None)
                result.sip_restarts += 1
                bot.start()
                continue
            if rc is not None:
                if rc != 0:
                    result.violations.append(Violation("bot_exit", f"exit {rc}: {bot.tail()}"))
                break
            time.sleep(rng.uniform(0.2, 2.0) / intensity)
            for name in list(timed):
                timed[name] -= 1
                if timed[name] <= 0:
                    del timed[name]
                    sim.fault(FAULT_OFF[name])
            if bot.poll() is not None:
                continue
            now = sim.now_ny()
            kind = _pick(rng)
            if kind in ("kill", "corrupt_journal", "stale_temp_journal"):
                if result.restarts >= max_restarts or time.monotonic() - bot.started < 2.0:
                    continue  # let each incarnation get past its start-up reconcile
                _restart_after_kill(rng, kind, bot, result)
            elif kind == "drop_trading":
                sim.fault({"drop_streams": "trading"})
            elif kind == "drop_data":
                sim.fault({"drop_streams": "data"})
            elif kind == "http_429":
                paths = rng.choice(
                    ["", "/v2/orders", "/v2/positions", "/v2/account", "/v2/stocks", "/v2/clock"]
                )
                sim.fault({"http_status": 429, "count": rng.randint(1, 5), "paths": paths})
            elif kind == "http_5xx":
                paths = rng.choice(["", "/v2/orders", "/v2/positions", "/v2/account", "/v2/stocks"])
                status = rng.choice([500, 502, 503, 504])
                sim.fault({"http_status": status, "count": rng.randint(1, 3), "paths": paths})
            elif kind == "order_5xx_after":
                status = rng.choice([500, 503, 504])
                sim.fault({"http_status": status, "count": 1, "paths": "/v2/orders", "after": True})
            elif kind == "latency":
                sim.fault({"latency_ms": rng.randint(20, 300)})
                timed["latency"] = rng.randint(1, 4)
            elif kind == "partial_fills":
                sim.fault({"partial_fills": True})
                timed["partial_fills"] = rng.randint(2, 8)
            elif kind == "reject_order":
                sim.fault({"reject_next_orders": 1})
            elif kind in ALPACA_RULE_FAULTS:
                inject_alpaca_rule(kind, sim, rng, timed)
            elif kind == "clock_jump":
                limit = now.replace(hour=JUMP_LIMIT[0], minute=JUMP_LIMIT[1], second=0, microsecond=0)
                seconds = min(rng.uniform(5, 600), (limit - now).total_seconds())
                if seconds <= 0:
                    continue
                _http(f"{sim.url}/sim/clock", {"advance_seconds": round(seconds, 3)})
            result.faults[kind] += 1
        bot.kill()
        sim.fault({"clear": True, "partial_fills": False})
        end = close + timedelta(minutes=5)
        if sim.now_ny() < end:
            _http(f"{sim.url}/sim/clock", {"advance_to": end.isoformat()})
        fills = _http(f"{sim.url}/sim/fills")
        orders = _http(f"{sim.url}/v2/orders?status=all&nested=true&limit=500&direction=asc")
        requests_log = _http(f"{sim.url}/sim/requests")
        positions = _http(f"{sim.url}/v2/positions")
        journal_raw = bot.journal.read_bytes() if bot.journal.exists() else b""
        for name, data in (("fills", fills), ("orders", orders), ("requests", requests_log)):
            (run_dir / f"sim-{name}.json").write_text(json.dumps(data, indent=1))
        result.fills = len(fills)
        result.violations += check_day(
            symbol=SYMBOL,
            close=close,
            fills=fills,
            orders=orders,
            requests=requests_log,
            positions=positions,
            journal_raw=journal_raw,
            end=end,
        )
        (run_dir / "violations.txt").write_text("".join(f"{v}\n" for v in result.violations))
        (run_dir / "faults.json").write_text(json.dumps(dict(result.faults)))
    finally:
        bot.kill()
        sim.stop()
        result.wall = time.monotonic() - t0
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--intensity", type=float, default=1.0, help="fault rate multiplier")
    parser.add_argument("--keep", action="store_true", help="keep the log dirs of passing runs too")
    parser.add_argument(
        "--sdk", choices=SDKS, help="the bot's SDK (default: BREAKOUT_SDK, else the bot's default)"
    )
    parser.add_argument(
        "--only", type=int, nargs="+", metavar="RUN_SEED", help="replay these runs (seeds as printed per run)"
    )
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="breakout-faults-"))
    seeds = args.only or [args.seed * 100_000 + i for i in range(args.runs)]
    t0 = time.monotonic()
    results: list[RunResult] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for r in pool.map(lambda s: run_one(s, base, intensity=args.intensity, sdk=args.sdk), seeds):
            results.append(r)
            mark = "ok" if not r.violations else "FAIL " + "; ".join(str(v) for v in r.violations[:3])
            print(
                f"run seed={r.seed} faults={sum(r.faults.values())} restarts={r.restarts} "
                f"exit4-restarts={r.supervisor_restarts} fills={r.fills} wall={r.wall:.1f}s {mark}",
                flush=True,
            )
            if not r.violations and not args.keep:
                shutil.rmtree(r.run_dir, ignore_errors=True)
    faults: Counter[str] = Counter()
    violations: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
        violations.update(v.kind for v in r.violations)
    print(
        f"\nsdk: {args.sdk or os.environ.get('BREAKOUT_SDK') or 'default'}   runs: {len(results)}   "
        f"wall: {time.monotonic() - t0:.0f} s   "
        f"fills: {sum(r.fills for r in results)}   restarts: {sum(r.restarts for r in results)}"
    )
    print(f"{'fault':<22}{'injected':>10}")
    for kind in FAULT_WEIGHTS:
        print(f"{kind:<22}{faults[kind]:>10}")
    print(f"{'total':<22}{sum(faults.values()):>10}")
    print(f"\n{'violation':<22}{'count':>10}")
    for kind in [*INVARIANTS, *sorted(set(violations) - set(INVARIANTS))]:  # every invariant, even at 0
        print(f"{kind:<22}{violations[kind]:>10}")
    failed = [r for r in results if r.violations]
    if failed:
        print(f"\n{len(failed)} run(s) violated an invariant; logs under {base}")
        for r in failed:
            print(f"  {r.run_dir}")
        return 1
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
