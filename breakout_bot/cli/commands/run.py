"""`breakout-bot run`: trade the breakout strategy on Alpaca (paper/live) or, with no keys, on the simulator."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import faulthandler
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ... import __version__
from ...broker.base import AccountInfo, Broker, MarketData
from ...broker.sdks import sdk_binding
from ...config.settings import DEFAULT_SDK, LOOPBACK_HOSTS, Settings, simulated_path
from ...core.model import NEW_YORK
from ...core.params import PARAM_NAMES, Params
from ...errors import (
    BotError,
    BrokerAuthError,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    ConfigError,
    FeedNotPermitted,
    JournalError,
    UserError,
)
from ...journal import Journal, RunTags, new_run_id
from ...live.clock import Clock, SimulatorClock, WallClock
from ...live.halt import halt_on, halt_path
from ...live.notify import Notifications
from ...live.runner import Runner, RunnerOptions
from ...live.status import DayResults, StatusDisplay, money
from ...logging_setup import setup_logging, use_log_time
from ..args import (
    add_connection_arguments,
    add_strategy_arguments,
    add_symbol_argument,
    check_sessions,
    parse_date_flag,
    settings_from_args,
    simulated_log_file,
)
from ..stop_signals import Terminated, raise_if_lost, signals_stop_the_run, stop_caught
from .dashboard import add_run_arguments as add_dashboard_arguments
from .dashboard import check_settings as check_dashboard
from .dashboard import start_for_run as start_dashboard

if TYPE_CHECKING:
    from ...broker.alpaca.broker import AlpacaBroker
    from ...sim import SimServer

log = logging.getLogger("breakout_bot.run")


def configure(parser: argparse.ArgumentParser) -> None:
    add_symbol_argument(parser, required=False)
    parser.add_argument(
        "--symbols", dest="symbols_csv", metavar="A,B", help="several symbols, comma-separated"
    )
    add_strategy_arguments(parser)
    add_connection_arguments(parser)
    parser.add_argument(
        "--bars",
        choices=("poll", "stream"),
        help="poll v2 bars once a minute (default, as the guide) or take them from the market-data websocket",
    )
    parser.add_argument(
        "--notify",
        action="append",
        metavar="URL",
        help="send what the bot does to an apprise URL (tgram://, discord://, ntfy://, mailto://, json://…); "
        "repeat for several (BREAKOUT_NOTIFY: comma-separated); needs the notify extra",
    )
    add_dashboard_arguments(parser)
    parser.add_argument(
        "--once",
        action="store_true",
        help="trade today's session, then exit; on a day the market is closed (or after the close) exit "
        "at once (for cron and systemd timers)",
    )
    parser.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="sessions to trade before exiting (default: forever with keys, 1 on the simulator)",
    )
    sim = parser.add_argument_group("simulator (used when no Alpaca keys are configured)")
    sim.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="virtual seconds per wall second (default 0: as fast as possible, the clock jumps ahead "
        "whenever the bot waits; 60 = a minute a second)",
    )
    sim.add_argument("--start", metavar="YYYY-MM-DD", help="simulated start date (default: next session)")
    sim.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="replay these one-minute bars (CSV/Parquet) instead of synthetic ones",
    )
    sim.add_argument("--seed", type=int, default=7, help="synthetic data seed (default 7)")
    sim.add_argument("--partial-fills", action="store_true", help="simulate partial fills")
    sim.add_argument(
        "--sim-report",
        type=Path,
        metavar="FILE",
        help="after a simulated run, write the simulator's own list of executions to FILE (JSON)",
    )
    sim.add_argument(
        "--sim-clock",
        action="store_true",
        help="keys point at a separately started `breakout-bot sim` on loopback: follow its virtual clock",
    )


def _symbols(args: argparse.Namespace) -> list[str]:
    raw: list[str] = []
    for item in (args.symbols or []) + ([args.symbols_csv] if args.symbols_csv else []):
        raw.extend(part for part in item.split(",") if part.strip())
    return raw


def run(args: argparse.Namespace) -> int:
    symbols = _symbols(args)
    if not symbols:
        raise ConfigError("--symbol is required (e.g. --symbol AAPL)")
    args.symbols = [",".join(symbols)]
    if args.days is not None and args.days < 1:
        raise ConfigError(f"--days: expected a whole number >= 1, got {args.days}")
    if args.speed is not None and args.speed < 0:
        raise ConfigError(f"--speed: expected a number >= 0, got {args.speed}")
    settings = settings_from_args(args)
    sdk_binding(settings.sdk)  # the chosen SDK is installed, or one line says how, before anything starts
    check_dashboard(settings)  # a dashboard off loopback without a token: refused before anything starts
    if settings.mode == "simulator":
        settings = _kept_apart(settings, args)
    log_path = setup_logging(
        settings.log_dir, settings.log_file, settings.json_logs, args.verbose, settings.secrets
    )
    _stacks_on_sigusr1()
    with signals_stop_the_run():
        return _logged_run(args, settings, log_path)


def _stacks_on_sigusr1() -> None:
    """`kill -USR1 PID` prints every thread's stack to stderr (the terminal, or systemd's journal):
    for a bot that seems stuck. faulthandler writes from the C signal handler, so it answers even while
    the main thread is blocked in C code, where a Python handler (SIGTERM's) waits its turn."""
    if not hasattr(signal, "SIGUSR1"):  # not POSIX
        return
    # A stderr without a file descriptor (the command run in-process, e.g. by tests): no dump.
    with contextlib.suppress(AttributeError, OSError, ValueError):
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)


def start_line(settings: Settings) -> str:
    params = " ".join(f"{name}={getattr(settings.params, name)}" for name in PARAM_NAMES)
    return (
        f"breakout-bot {__version__} starting: mode {settings.mode}, symbols {','.join(settings.symbols)}, "
        f"bars {settings.bars_mode}, feed {settings.feed}, {params}, journal {settings.journal_path}, "
        f"pid {os.getpid()}"
    )


def _logged_run(args: argparse.Namespace, settings: Settings, log_path: Path) -> int:
    """The run between its start line and its stop line (the reason it stopped): SIGTERM exits 0,
    Ctrl-C 130, both after one line saying what stays open at the broker and how it is protected
    (nothing is canceled or closed: the brackets keep working there)."""
    log.info("%s", start_line(settings))
    display = StatusDisplay(simulated=settings.mode == "simulator")
    reason = "internal error"
    try:
        code = _run_mode(args, settings, log_path, display)
        reason = "finished" if code == 0 else f"exit {code}"
        return code
    except Terminated:
        stop_caught()
        reason = "SIGTERM"
        _say_what_stays_open(display)
        return 0
    except KeyboardInterrupt:
        stop_caught()
        reason = "interrupted (Ctrl-C)"
        _say_what_stays_open(display)
        print("interrupted", file=sys.stderr)
        return 130
    except BotError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        log.info("breakout-bot stopped: %s", reason)


def _say_what_stays_open(display: StatusDisplay) -> None:
    line = display.left_open()
    log.warning("%s", line, extra={"console": False})
    display.print(line)


def _run_mode(args: argparse.Namespace, settings: Settings, log_path: Path, display: StatusDisplay) -> int:
    apart = settings.mode == "simulator" and args.journal is None
    journal = Journal(settings.journal_path)
    # One bot per journal: a second one is refused here, before it reads or sends anything.
    journal.claim(f"pid {os.getpid()}, started {dt.datetime.now(NEW_YORK):%Y-%m-%d %H:%M} New York time")
    try:
        journal.load()  # a corrupt journal stops us here, moved aside, before any order
        journal.ensure_writable()
        params = settings.params
        if settings.mode == "simulator":
            return _run_simulated(args, settings, params, journal, display, log_path, apart)
        if settings.mode == "live":
            _confirm_live(args, settings)
        from ...broker.alpaca.factory import broker_from_settings
        from ...broker.throttle import RequestThrottle

        clock: Clock = _remote_sim_clock(settings.base_url) if args.sim_clock else WallClock()
        broker = broker_from_settings(
            settings, throttle=RequestThrottle(now=clock.monotonic, sleep=clock.sleep)
        )
        display.print(
            f"breakout-bot · {settings.mode.upper()} trading {', '.join(settings.symbols)} · log {log_path}"
        )
        days = 1 if args.once else args.days
        mode = "simulator" if _is_loopback(settings.base_url) else settings.mode
        outcome = _trade(
            broker, broker.market_data, clock, journal, settings, params, display, days, args.once, mode
        )
        _print_summary(display, journal, outcome, apart=False)
        return outcome.code
    finally:
        journal.release()


def _kept_apart(settings: Settings, args: argparse.Namespace) -> Settings:
    """A simulated run's journal, kill switch and log live in a `simulated/` folder beside the configured
    ones, so simulated fills never mix with paper or live fills (or a real account's kill switch with a
    simulated run); --journal, --log-dir and --log-file given on the command line are taken as they are."""
    journal = settings.journal_path if args.journal is not None else simulated_path(settings.journal_path)
    log_file = simulated_log_file(args, settings)
    if args.journal is None:
        try:
            journal.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create {journal.parent}: {exc.strerror or exc}") from None
    return replace(settings, journal_path=journal, log_file=log_file)


def _is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in LOOPBACK_HOSTS


def _remote_sim_clock(base_url: str) -> Clock:
    import requests

    from ...live.clock import RemoteSimulatorClock

    if not _is_loopback(base_url):
        raise ConfigError("--sim-clock: APCA_API_BASE_URL must be a simulator on loopback (127.0.0.1)")

    def get(url: str, _body: dict[str, Any] | None) -> dict[str, Any]:
        return dict(requests.get(url, timeout=10).json())

    def post(url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        return dict(requests.post(url, json=body, timeout=30).json())

    try:
        return RemoteSimulatorClock(base_url, get, post)
    except requests.RequestException as exc:
        raise BrokerUnavailable(
            f"--sim-clock: simulator at {base_url} unreachable ({type(exc).__name__})"
        ) from None


def _confirm_live(args: argparse.Namespace, settings: Settings) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError("live trading needs confirmation: run in a terminal, or pass --yes")
    print(
        f"LIVE trading with real money: {', '.join(settings.symbols)}, {settings.params.qty} shares per trade."
    )
    answer = input("Type LIVE to continue: ")
    if answer.strip() != "LIVE":
        raise UserError("live trading not confirmed; nothing was sent", exit_code=1)


@dataclass(frozen=True)
class RunOutcome:
    code: int
    tags: RunTags | None  # None: the run stopped before it traded (preflight refused)
    days: DayResults
    nothing_today: str | None = None


def _trade(
    broker: Broker,
    data: MarketData,
    clock: Clock,
    journal: Journal,
    settings: Settings,
    params: Params,
    display: StatusDisplay,
    days: int | None,
    today_only: bool,
    mode: str,
    world: Mapping[str, Any] | None = None,
) -> RunOutcome:
    notices = Notifications.start(settings.notify, settings.secrets) if settings.notify else None
    stopped = "stopped by an error"
    dashboard = None
    try:
        account = _preflight(broker, settings)
        _preflight_feed(data, settings)
        # The run id is wall time (when it ran), also for a simulated run in its virtual time.
        tags = RunTags(
            mode, account.account_number or "unknown", new_run_id(dt.datetime.now(dt.timezone.utc))
        )
        log_start(tags, settings.symbols, settings.feed, params, journal.path, world)
        _announce_kill_switch(display, journal, clock, mode)
        results = DayResults()
        dashboard = start_dashboard(settings, journal.path, tags)
        runner = Runner(
            broker,
            data,
            clock,
            journal,
            settings.symbols,
            params,
            RunnerOptions(days=days, bars_stream=settings.bars_mode == "stream", today_only=today_only),
            observers=[
                display,
                results,
                *([notices.observer] if notices else []),
                *([dashboard[1]] if dashboard else []),
            ],
            tags=tags,
            check_stop=raise_if_lost,
        )
        with display:
            code = runner.run()
        stopped = f"finished (exit {code})"
        if runner.nothing_today is not None:
            display.print(runner.nothing_today)
        return RunOutcome(code, tags, results, runner.nothing_today)
    except BrokerAuthError:
        stopped = "the broker refused the API keys"
        raise
    except Terminated:
        stopped = "stopped by SIGTERM"
        raise
    except KeyboardInterrupt:
        stopped = "interrupted (Ctrl-C)"
        raise
    finally:
        broker.close()
        if notices is not None:
            notices.close(stopped)
        if dashboard is not None:
            dashboard[0].close()


def log_start(
    tags: RunTags,
    symbols: Sequence[str],
    feed: str,
    params: Params,
    journal: Path,
    world: Mapping[str, Any] | None = None,
) -> None:
    """The run's start line: what a later reader (`breakout-bot replay`) needs to line this run's fills
    up with a backtest (its records carry the same run id): the feed the bot decided on, the parameters
    and, for a simulated run, what the simulator's bars came from (`world`: seed, data file, partial
    fills), so that the same bars can be made again."""
    simulator = f"simulator {json.dumps(dict(world), sort_keys=True)}, " if world is not None else ""
    log.info(
        "run %s started: mode %s, account %s, symbols %s, journal %s, breakout-bot %s, feed %s, %sparams %s",
        tags.run,
        tags.mode,
        tags.account,
        ",".join(symbols),
        journal,
        __version__,
        feed,
        simulator,
        json.dumps(asdict(params), sort_keys=True),
        extra={"console": False},
    )


def _announce_kill_switch(display: StatusDisplay, journal: Journal, clock: Clock, mode: str) -> None:
    today = clock.now().astimezone(NEW_YORK).date()
    halt = halt_on(halt_path(journal.path), today, mode)
    if halt is not None:
        display.print(
            f"[bold red]kill switch engaged today[/] ({halt.reason}): no entries until tomorrow; "
            "`breakout-bot flatten --clear` lifts it"
        )


def _preflight(broker: Broker, settings: Settings) -> AccountInfo:
    """Refuse to start on an account or asset that cannot run the strategy: one clear line each.
    Returns the account (its number tags the run's journal records)."""
    try:
        account = broker.get_account()
    except BrokerAuthError:
        raise
    except BrokerRejected as exc:  # a 403: the keys are fine, the account may not do this
        raise UserError(
            f"Alpaca refused to serve the account ({exc}): check its status at https://app.alpaca.markets",
            exit_code=1,
        ) from None
    except BrokerError as exc:
        raise BrokerUnavailable(f"cannot read the account at {settings.base_url}: {exc}") from None
    if account.trading_blocked or account.status.upper() != "ACTIVE":
        raise UserError(
            f"account is not able to trade (status {account.status}, blocked={account.trading_blocked})"
        )
    try:
        assets = broker.get_assets(settings.symbols)  # one read for a universe (Broker.get_assets)
    except BrokerError as exc:
        raise BrokerUnavailable(f"cannot read the assets: {exc}") from None
    for symbol in settings.symbols:
        asset = assets.get(symbol)
        if asset is None:
            raise UserError(f"unknown symbol {symbol}: the broker has no such asset")
        if asset.status != "active" or not asset.tradable:
            raise UserError(f"{symbol} is not tradable at Alpaca (status {asset.status})")
        if not asset.shortable:
            raise UserError(
                f"{symbol} is not shortable at Alpaca; the strategy sells short on a downside breakout"
            )
    return account


def _preflight_feed(data: MarketData, settings: Settings) -> None:
    """`--feed sip` on a plan without SIP: one clear line now, rather than a session without bars."""
    if settings.feed != "sip" or not settings.symbols:
        return
    try:
        data.get_latest_bar(settings.symbols[0])
    except FeedNotPermitted as exc:
        raise FeedNotPermitted(
            f"--feed sip: your Alpaca data plan does not include recent SIP data ({exc}); "
            "use --feed iex (free plans)",
            status=exc.status,
            code=exc.code,
        ) from None
    except BrokerError as exc:
        log.warning("data feed %s: latest bar unreadable (%s)", settings.feed, exc)


def _run_simulated(
    args: argparse.Namespace,
    settings: Settings,
    params: Params,
    journal: Journal,
    display: StatusDisplay,
    log_path: Path,
    apart: bool,
) -> int:
    start = parse_date_flag(args.start, "--start") if args.start else None
    speed = settings.speed  # --speed > BREAKOUT_SPEED > .env > 0 (as fast as possible)
    days = 1 if args.once else (args.days or settings.days or 1)
    with simulated_session(
        settings.symbols,
        start=start,
        speed=speed,
        seed=args.seed,
        data=args.data,
        partial_fills=args.partial_fills,
        feed=settings.feed,
        sdk=settings.sdk,
        days=days,
    ) as (broker, clock, server):
        display.print(
            "[bold yellow]SIMULATED[/] · no Alpaca keys configured: trading the built-in simulator "
            f"at {server.base_url} · {', '.join(settings.symbols)} · fills to {journal.path} · log {log_path}"
        )
        # Log lines in simulated time: a line and the bar it talks about show the same minute.
        virtual = server.clock
        previous = use_log_time(lambda _created: dt.datetime.fromtimestamp(virtual.glance(), NEW_YORK))
        try:
            outcome = _trade(
                broker,
                broker.market_data,
                clock,
                journal,
                settings,
                params,
                display,
                days,
                args.once,
                "simulator",
                world={
                    "seed": args.seed,
                    "data": None if args.data is None else str(Path(args.data).resolve()),
                    "partial_fills": bool(args.partial_fills),
                },
            )
        finally:
            use_log_time(previous)
        _print_summary(display, journal, outcome, apart=apart)
        if args.sim_report is not None:
            _write_sim_report(args.sim_report, server)
        return outcome.code


@contextmanager
def simulated_session(
    symbols: Sequence[str],
    *,
    start: dt.date | None = None,
    speed: float = 0.0,
    seed: int = 7,
    data: Path | None = None,
    partial_fills: bool = False,
    feed: str = "iex",
    sdk: str = DEFAULT_SDK,
    days: int | None = None,
    world: Mapping[str, Any] | None = None,
) -> Iterator[tuple[AlpacaBroker, SimulatorClock, SimServer]]:
    """The built-in simulator on loopback plus an AlpacaBroker (over `sdk`) on its virtual clock (fresh
    random keys). Used by `run` without keys, by the bot's integration tests and the benchmarks (`world`:
    more SimConfig fields, e.g. a start time or a denser tape). With `days`, the sessions to trade must
    exist (in the calendar, and in the data file when there is one): ConfigError otherwise."""
    from ...broker.alpaca.broker import AlpacaBroker
    from ...broker.throttle import RequestThrottle
    from ...sim import SimConfig, SimServer

    key, secret = f"SIM{secrets.token_hex(8).upper()}", secrets.token_hex(20)
    config = SimConfig(
        symbols=tuple(symbols),
        start=start,
        speed=speed,
        seed=seed,
        data=data,
        key=key,
        secret=secret,
        partial_fills=partial_fills,
        **dict(world or {}),
    )
    server = SimServer(config)  # reads --data (DataError: the loader's one line)
    check_sessions(server.calendar, server.source.session_dates(), start, days, data)
    base_url = server.start()
    try:
        clock = SimulatorClock(server.clock)
        broker = AlpacaBroker(
            key,
            secret,
            base_url=base_url,
            data_url=base_url,
            data_stream_url=base_url,
            feed=feed,
            throttle=RequestThrottle(now=clock.monotonic, sleep=clock.sleep),
            clock=clock.monotonic,
            sleep=clock.sleep,
            sdk=sdk,
        )
        try:
            yield broker, clock, server
        finally:
            broker.close()
    finally:
        server.stop()


def _write_sim_report(path: Path, server: SimServer) -> None:
    """What the simulator itself recorded: every execution (FILL activity shape), for cross-checks."""
    import json

    fills = [
        {
            "execution_id": e.execution_id,
            "order_id": e.order_id,
            "symbol": e.symbol,
            "side": e.side,
            "qty": str(e.qty),
            "price": str(e.price),
        }
        for e in server.exchange.executions
    ]
    path.write_text(json.dumps({"fills": fills}, indent=1))


def _print_summary(display: StatusDisplay, journal: Journal, outcome: RunOutcome, *, apart: bool) -> None:
    """What this run did: the fills it recorded (by its run id, not the journal's history) and each
    session's realized P&L as the panel showed it (the broker's fills of the day: a restart mid-day
    reports the whole day, not this run's cash flows)."""
    if outcome.tags is None or outcome.nothing_today is not None:
        return
    run_id = outcome.tags.run
    fills = sum(1 for r in journal.records() if r.run == run_id)
    days = outcome.days.realized
    if not days:
        pnl = "no session traded"
    elif len(days) == 1:
        ((day, by_symbol),) = days.items()
        parts = ", ".join(f"{sym} {money(v)}" for sym, v in sorted(by_symbol.items()))
        pnl = f"realized P&L {day} {money(sum(by_symbol.values()))}" + (
            f" ({parts})" if len(by_symbol) > 1 else ""
        )
    else:
        each = ", ".join(f"{day} {money(sum(v.values()))}" for day, v in sorted(days.items()))
        pnl = f"realized P&L {money(outcome.days.total())} over {len(days)} sessions ({each})"
    kind = "simulated run" if outcome.tags.mode == "simulator" else "run"
    display.print(f"{kind} {run_id} finished: {fills} fills recorded in {journal.path}; {pnl}")
    if apart:
        display.print(
            "simulated fills are kept apart from paper and live ones: `breakout-bot trades --simulated` lists them"
        )
