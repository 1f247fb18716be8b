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

Issue 16's faults (what an independent crash-and-partition test found): the bot talks to the simulator
through a TCP proxy on loopback owned by the suite (breakout_bot.testkit.proxy), which resets every
connection, resets the next order POST before it arrives or after its answer, or black-holes
connections (open, carrying nothing); the bot is suspended (SIGSTOP) while the simulator's clock moves
on, then resumed (SIGCONT), at random and once shortly before the no-entry cutoff; it gets SIGTERM in a
trade (exit 0, one line saying what stays open, the bracket left at the broker); a burst of the suite's
own requests on the bot's key brings the account to Alpaca's 200/min limit, so the bot meets real 429s;
one fault lands in the flatten window (close - 6 min .. close - 4.5 min). Runs differ in profile: one
symbol or several, bars polled or streamed (`--bars stream`), partial fills from the start. Two more
invariants: no entry decided on a bar more than ~70 s old, never in order_sent for more than minutes.

    .venv/bin/python benchmarks/faults.py --runs 20 --seed 1 --jobs 2
    .venv/bin/python benchmarks/faults.py --runs 20 --seed 1 --jobs 2 --sdk alpaca-py   # the other SDK

Prints a table (runs, faults by kind, violations by kind) and exits 1 on any violation, printing the
per-run log directories (simulator and bot output, journals, the bot's log files) for post-mortems.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as ny_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from breakout_bot.config.settings import SDKS
from breakout_bot.errors import JournalError
from breakout_bot.journal import read_journal
from breakout_bot.testkit.faultcheck import INVARIANTS, Violation, check_day, check_protected_at
from breakout_bot.testkit.proxy import FaultyProxy

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


# ---- issue 16: stalls, partitions, SIGTERM, several symbols, the bar stream, a real 429 storm
PARTITION_FAULTS = {
    "stall": 3,  # SIGSTOP, the simulator's clock moves 20 s - 10 min, SIGCONT
    "reset_all": 2,  # the proxy resets every open connection (REST pool, both websockets)
    "reset_before_post": 2,  # the next POST /v2/orders is reset before it reaches the simulator
    "reset_after_post": 2,  # ... or after the simulator answered it (the order exists, the answer is lost)
    "blackhole": 1,  # connections stay open and carry nothing for 0.5-3 wall s, then are reset
    "sigterm": 2,  # in a trade: exit 0, the line saying what stays open, the bracket still at the broker
    "rate_storm": 1,  # the suite's own requests on the bot's key bring the account to the 200/min limit
}
FAULT_WEIGHTS.update(PARTITION_FAULTS)
# Once per run (each with its probability), at a chosen moment of the session.
SCHEDULED = {"stall_cutoff": 0.5, "flatten_window": 0.6}
STALL_CUTOFF = (ny_time(15, 28), ny_time(15, 39, 40))  # suspended in here ...
STALL_CUTOFF_RESUME = (ny_time(15, 40, 5), ny_time(15, 49))  # ... resumed in here, after the 15:40 cutoff
STALL_END = ny_time(15, 52)  # random stalls end by then: the 15:55 flatten stays possible
FLATTEN_WINDOW = (ny_time(15, 54), ny_time(15, 55, 20))  # the flatten-window fault lands in here
FLATTEN_WINDOW_LATEST = ny_time(15, 55, 30)  # and a stall there ends by then ("flat by close - 4 min")
FLATTEN_FAULTS = ("kill", "http_5xx_close", "http_429", "drop_trading", "reset_all", "blackhole", "stall")
EXTRA_SYMBOLS = ("MSFT", "GOOG")
BURN_MARK = "faultburn"  # in the paths of the suite's own requests (the rate check leaves them out)
OPEN_LINES = ("still open at the broker", "working or filled at the broker", "nothing left open", "as it was")
SUITE_CHECKS = ("sigterm",)  # judged by the suite itself, beside faultcheck's invariants


@dataclass(frozen=True)
class Profile:
    symbols: tuple[str, ...]
    bars: str  # poll | stream
    partial_fills: bool


def _profile(rng: random.Random) -> Profile:
    extra = tuple(rng.sample(EXTRA_SYMBOLS, rng.randint(1, 2))) if rng.random() < 0.3 else ()
    return Profile((SYMBOL, *extra), "stream" if rng.random() < 0.3 else "poll", rng.random() < 0.25)


def _between(rng: random.Random, lo: ny_time, hi: ny_time) -> ny_time:
    a, b = (t.hour * 3600 + t.minute * 60 + t.second for t in (lo, hi))
    x = rng.randint(a, b)
    return ny_time(x // 3600, x // 60 % 60, x % 60)


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
    profile: Profile | None = None
    sigterms: list[datetime] = field(default_factory=list)  # when a SIGTERM'd bot had exited
    pauses: list[tuple[datetime, datetime]] = field(default_factory=list)  # the clock moved, the bot stopped
    proxy: dict[str, int] = field(default_factory=dict)  # what the proxy's armed faults actually hit


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
    def __init__(
        self,
        run_dir: Path,
        seed: int,
        start: date,
        symbols: tuple[str, ...] = (SYMBOL,),
        partial_fills: bool = False,
    ) -> None:
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
                ",".join(symbols),
                "--seed",
                str(seed),
                "--start",
                start.isoformat(),
                *(["--partial-fills"] if partial_fills else []),
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
        self,
        run_dir: Path,
        url: str,
        sim_url: str | None = None,
        symbols: tuple[str, ...] = (SYMBOL,),
        bars: str = "poll",
        sdk: str | None = None,
        flags: list[str] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.url = url  # where the bot connects (the suite's proxy in front of the simulator)
        self.sim_url = sim_url or url  # the simulator itself, for the suite's own reads
        self.symbols = symbols
        self.bars = bars
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
                    "--symbols",
                    ",".join(self.symbols),
                    "--bars",
                    self.bars,
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

    def dump_stacks(self) -> None:
        """For the post-mortem of a bot that does not end: SIGUSR1 makes it print every thread's stack
        (faulthandler, from the C handler: it answers even when the main thread is blocked in C) into
        its bot-N.out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def up(self) -> bool:
        """This incarnation is past its start-up: its banner is out, so its SIGTERM handler is in place
        (before it Python is still importing, and a SIGTERM ends it as Python's default does, before
        it has read or sent anything)."""
        path = self.run_dir / f"bot-{self.n}.out"
        return path.exists() and " trading " in path.read_text(errors="replace")

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
    sent just before kill -9 can still be served after it: seen as a false "talked first"). The
    simulator logs a request when it answers, after any injected latency (up to 300 ms): the count must
    hold still for longer than that (seed 165600008: a 0.1 s look counted the killed bot's last one)."""
    last = int(_http(f"{url}/sim/state")["requests"])
    for _ in range(10):
        time.sleep(0.4)
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
        sent_before = _settled_request_count(bot.sim_url)
        bot.start()
        rc = bot.wait(60)
        if _http(f"{bot.sim_url}/sim/state")["requests"] != sent_before:
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


def _journal_raw(path: Path) -> bytes:
    """What the journal holds: the sqlite ledger with past_trades.json (its export, which lags it
    after a kill -9 until the next start), as one JSON list; the file's bytes if it cannot be read."""
    try:
        return json.dumps([r.to_dict() for r in read_journal(path)]).encode()
    except JournalError:
        return path.read_bytes() if path.exists() else b""


# ---- issue 16's faults: stalls, the proxy's partitions, SIGTERM, the rate storm, the flatten window


def _seconds_until(now: datetime, t: ny_time) -> float:
    return (now.replace(hour=t.hour, minute=t.minute, second=t.second, microsecond=0) - now).total_seconds()


def _suspend(bot: _Bot, sim: _Sim, seconds: float, result: RunResult) -> None:
    """A stalled process: SIGSTOP the bot, move the simulator's clock on by `seconds`, SIGCONT. Held
    0.3 wall s, longer than the bot's remote clock trusts a reading (live/clock.py), as a real stall
    is longer than a clock read; the pause is kept (the bot cannot act inside it)."""
    assert bot.proc is not None
    bot.proc.send_signal(signal.SIGSTOP)
    try:
        before = sim.now_ny()
        if seconds > 0:
            _http(f"{sim.url}/sim/clock", {"advance_seconds": round(seconds, 3)})
        result.pauses.append((before, sim.now_ny()))
        time.sleep(0.3)
    finally:
        bot.proc.send_signal(signal.SIGCONT)


def _held(sim: _Sim, symbols: tuple[str, ...]) -> bool:
    """Does the bot hold a position? (The control API: the suite's reads stay out of the bot's quota.)"""
    positions = _http(f"{sim.url}/sim/state")["positions"]
    return any(float(positions.get(symbol) or 0) for symbol in symbols)


def _sigterm_in_trade(bot: _Bot, sim: _Sim, result: RunResult) -> bool:
    """SIGTERM while a position is open: exit 0 within 30 s and one line saying what stays open; the
    moment is kept, and after the session every position held then must have had a working stop
    (the bracket left in place; faultcheck.check_protected_at)."""
    if not _held(sim, bot.symbols):
        return False
    assert bot.proc is not None
    bot.proc.send_signal(signal.SIGTERM)
    rc = bot.wait(30)
    if rc is None:
        seen = _proc_signals(bot.proc.pid)
        bot.dump_stacks()
        bot.kill()
        result.violations.append(Violation("sigterm", f"still running 30 s after SIGTERM ({seen})"))
    elif rc != 0:
        result.violations.append(Violation("sigterm", f"exit {rc} after SIGTERM: {bot.tail()}"))
    out = (bot.run_dir / f"bot-{bot.n}.out").read_text(errors="replace")
    line = next((x for x in out.splitlines() if any(m in x for m in OPEN_LINES)), "")
    stops = re.findall(r"breakout-bot stopped: (.*)", _bot_log(bot.run_dir))
    if rc == 0 and not line and stops[-1:] == ["finished"]:
        # The signal came as the run ended on its own: the position read a moment before was closed
        # by the flatten, the stop line says `finished`, and there was nothing open to report.
        pass
    elif not line:
        result.violations.append(Violation("sigterm", "no line saying what stays open at the broker"))
    elif "its close sent" not in line and "NO working stop" not in line:
        result.sigterms.append(sim.now_ny())  # (when the bot itself was closing, its stop is gone)
    result.restarts += 1
    bot.start()
    return True


def _proc_signals(pid: int) -> str:
    """For a post-mortem: the process state and its signal masks (Linux /proc)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"no /proc entry: {exc}"
    keep = ("State:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigIgn:", "SigCgt:", "Threads:")
    return " ".join(" ".join(x.split()) for x in lines if x.startswith(keep))


def _rate_storm(rng: random.Random, sim: _Sim) -> None:
    """Another client on the bot's key (the suite) takes 170-200 of the minute's 200 requests at once,
    on a path the bot never uses: the bot meets the simulator's real quota 429s, not injected ones."""
    path = f"/v2/{BURN_MARK}" if rng.random() < 0.6 else f"/v2/stocks/{BURN_MARK}/bars"
    host, port = sim.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)  # loopback only
    try:
        for _ in range(rng.randint(170, 200)):
            conn.request("GET", path, headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
            conn.getresponse().read()
    finally:
        conn.close()


def _partition_fault(
    kind: str, rng: random.Random, bot: _Bot, sim: _Sim, proxy: FaultyProxy, result: RunResult, now: datetime
) -> str:
    """Inject one of issue 16's faults; returns the kind to count ("" when it did not apply now)."""
    if kind == "stall":
        seconds = min(rng.uniform(20, 600), _seconds_until(now, STALL_END))
        if seconds <= 0:
            return ""
        _suspend(bot, sim, seconds, result)
    elif kind == "stall_cutoff":
        if now.time() > STALL_CUTOFF[1]:
            return ""  # the moment passed between two looks at the clock
        _suspend(bot, sim, max(30.0, _seconds_until(now, _between(rng, *STALL_CUTOFF_RESUME))), result)
    elif kind == "flatten_window":
        sub = rng.choice(FLATTEN_FAULTS)
        if sub == "kill":
            _restart_after_kill(rng, "kill", bot, result)
        elif sub == "http_5xx_close":
            sim.fault({"http_status": 503, "count": 2, "paths": "/v2/positions"})
        elif sub == "http_429":
            sim.fault({"http_status": 429, "count": 3, "paths": ""})
        elif sub == "drop_trading":
            sim.fault({"drop_streams": "trading"})
        elif sub == "reset_all":
            proxy.reset_all()
        elif sub == "blackhole":
            proxy.blackhole(1.0)
        else:  # a short stall that still ends by close - 4.5 min
            seconds = min(rng.uniform(5, 30), _seconds_until(now, FLATTEN_WINDOW_LATEST))
            _suspend(bot, sim, max(0.0, seconds), result)
        return f"flatten_window:{sub}"
    elif kind == "reset_all":
        proxy.reset_all()
    elif kind in ("reset_before_post", "reset_after_post"):
        proxy.reset_next(b"POST /v2/orders", after=kind == "reset_after_post")  # armed: the next entry
    elif kind == "blackhole":
        proxy.blackhole(rng.uniform(0.5, 3.0))
    elif kind == "sigterm":
        if now.time() >= ny_time(15, 50) or time.monotonic() - bot.started < 2.0 or not bot.up():
            return ""
        if not _sigterm_in_trade(bot, sim, result):
            return ""
    elif kind == "rate_storm":
        _rate_storm(rng, sim)
    return kind


def _wait_for(seconds: float, sim: _Sim, scheduled: dict[str, ny_time]) -> str:
    """Sleep `seconds` (wall) in small steps, watching the virtual clock: the scheduled fault that falls
    due meanwhile ("" for none). Virtual time runs minutes per wall second, so the steps are short."""
    deadline = time.monotonic() + seconds
    while True:
        if scheduled:
            now = sim.now_ny().time()
            due = next((kind for kind, at in scheduled.items() if now >= at), "")
            if due:
                del scheduled[due]
                return due
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        time.sleep(min(left, 0.05 if scheduled else left))


def _note(run_dir: Path, kind: str, now: datetime, bot: _Bot) -> None:
    """The run's fault log (faults.log): wall time, the simulator's time, the incarnation, the fault."""
    stamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
    with open(run_dir / "faults.log", "a") as log:
        log.write(f"{stamp} {now:%H:%M:%S} ET bot-{bot.n} {kind}\n")


def _bot_log(run_dir: Path) -> str:
    """Every incarnation's log, oldest first (daily rotation adds dated files beside the current one)."""
    files = [*sorted((run_dir / "logs").glob("breakout-bot.log.*")), run_dir / "logs" / "breakout-bot.log"]
    return "".join(f.read_text(errors="replace") for f in files if f.exists())


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
    extra = random.Random(seed * 1_000_003 + 16)  # issue 16's choices, apart from the fault sequence
    profile = result.profile = _profile(extra)
    sim = _Sim(run_dir, rng.randrange(1, 10**6), session, profile.symbols, profile.partial_fills)
    proxy = FaultyProxy(int(sim.url.rsplit(":", 1)[1])).start()
    bot = _Bot(run_dir, proxy.url, sim.url, profile.symbols, profile.bars, sdk, alpaca_rule_run_flags(seed))
    scheduled = {
        kind: _between(extra, *(STALL_CUTOFF if kind == "stall_cutoff" else FLATTEN_WINDOW))
        for kind, chance in SCHEDULED.items()
        if extra.random() < chance
    }
    close = datetime.combine(session, datetime.min.time(), NEW_YORK).replace(hour=16)
    timed: dict[str, int] = {}  # fault to switch off -> ticks left
    try:
        bot.start()
        while True:
            if time.monotonic() - t0 > wall_limit:
                result.violations.append(
                    Violation("hang", f"bot still running after {wall_limit:.0f} s wall")
                )
                bot.dump_stacks()
                break
            rc = bot.poll()
            if rc == 4 and result.supervisor_restarts < 3:
                # Broker unreachable after bounded retries (e.g. a 429 burst at start-up): exit 4, and
                # systemd's Restart=on-failure (deploy/README.md) starts it again. So do we, 30 s later
                # (RestartSec=30: the account's request quota slides meanwhile).
                result.supervisor_restarts += 1
                _http(f"{sim.url}/sim/clock", {"advance_seconds": 30})
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
            due = _wait_for(rng.uniform(0.2, 2.0) / intensity, sim, scheduled)
            for name in list(timed):
                timed[name] -= 1
                if timed[name] <= 0:
                    del timed[name]
                    sim.fault(FAULT_OFF[name])
            if bot.poll() is not None:
                continue
            now = sim.now_ny()
            kind = due or _pick(rng)
            if kind in PARTITION_FAULTS or kind in SCHEDULED:
                if kind == "sigterm" and result.restarts >= max_restarts:
                    continue
                counted = _partition_fault(kind, rng, bot, sim, proxy, result, now)
                if counted:
                    result.faults[counted] += 1
                    _note(run_dir, counted, now, bot)
                continue
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
                # Time passing without the bot noticing is a stall: a running process reads the clock.
                _suspend(bot, sim, seconds, result)
            result.faults[kind] += 1
            _note(run_dir, kind, now, bot)
        bot.kill()
        proxy.stop()
        sim.fault({"clear": True, "partial_fills": False})
        end = close + timedelta(minutes=5)
        if sim.now_ny() < end:
            _http(f"{sim.url}/sim/clock", {"advance_to": end.isoformat()})
        # A rate storm late in the session still fills the minute's quota: let it slide before reading.
        _http(f"{sim.url}/sim/clock", {"advance_seconds": 61})
        fills = _http(f"{sim.url}/sim/fills")
        orders = _http(f"{sim.url}/v2/orders?status=all&nested=true&limit=500&direction=asc")
        requests_log = _http(f"{sim.url}/sim/requests")
        positions = _http(f"{sim.url}/v2/positions")
        journal_raw = _journal_raw(bot.journal)
        for name, data in (("fills", fills), ("orders", orders), ("requests", requests_log)):
            (run_dir / f"sim-{name}.json").write_text(json.dumps(data, indent=1))
        result.fills = len(fills)
        bot_log = _bot_log(run_dir)
        found: list[Violation] = []
        for symbol in profile.symbols:
            start = datetime.combine(session, datetime.min.time(), NEW_YORK).isoformat()
            # The bars the bot traded on: its feed's (IEX has its own gaps and prices; issue 15).
            feed = bot.flags[bot.flags.index("--feed") + 1] if "--feed" in bot.flags else "iex"
            query = urllib.parse.urlencode(
                {"timeframe": "1Min", "start": start, "end": end.isoformat(), "limit": 10000, "feed": feed}
            )
            bars = _http(f"{sim.url}/v2/stocks/{symbol}/bars?{query}").get("bars") or []
            found += check_day(
                symbol=symbol,
                close=close,
                fills=fills,
                orders=orders,
                requests=requests_log,
                positions=positions,
                journal_raw=journal_raw,
                end=end,
                bars=bars,
                bot_log=bot_log,
                pauses=result.pauses,
                foreign_mark=BURN_MARK,
            )
            found += check_protected_at(orders, fills, symbol, result.sigterms)
        result.violations += list(dict.fromkeys(found))  # the rate check is the account's, not per symbol
        stats = proxy.stats
        result.proxy = {"reset_before_post": stats.resets_before, "reset_after_post": stats.resets_after}
        (run_dir / "violations.txt").write_text("".join(f"{v}\n" for v in result.violations))
        (run_dir / "faults.json").write_text(json.dumps(dict(result.faults)))
    finally:
        bot.kill()
        proxy.stop()
        sim.stop()
        result.wall = time.monotonic() - t0
    return result


def _print_profiles(results: list[RunResult]) -> None:
    """Issue 16's run profiles, and what the proxy's armed resets actually hit."""
    profiles = [r.profile for r in results if r.profile is not None]
    several = sum(1 for p in profiles if len(p.symbols) > 1)
    stream = sum(1 for p in profiles if p.bars == "stream")
    partial = sum(1 for p in profiles if p.partial_fills)
    hits: Counter[str] = Counter()
    for r in results:
        hits.update(r.proxy)
    print(
        f"profiles: {several} run(s) with several symbols, {stream} with --bars stream, {partial} with "
        f"partial fills from the open; order POSTs reset before arriving {hits['reset_before_post']}, "
        f"after their answer {hits['reset_after_post']}"
    )


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
    for kind in sorted(set(faults) - set(FAULT_WEIGHTS)):  # the scheduled ones (issue 16)
        print(f"{kind:<22}{faults[kind]:>10}")
    print(f"{'total':<22}{sum(faults.values()):>10}")
    _print_profiles(results)
    print(f"\n{'violation':<22}{'count':>10}")
    checks = [*INVARIANTS, *SUITE_CHECKS]
    for kind in [*checks, *sorted(set(violations) - set(checks))]:  # every invariant, even at 0
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
