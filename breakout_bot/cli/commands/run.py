"""`breakout-bot run`: trade the breakout strategy on Alpaca (paper/live) or, with no keys, on the simulator."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ... import __version__
from ...broker.base import Broker, MarketData
from ...config.settings import Settings
from ...core.params import PARAM_NAMES, Params
from ...errors import (
    BotError,
    BrokerAuthError,
    BrokerError,
    BrokerNotFound,
    BrokerUnavailable,
    ConfigError,
    UserError,
)
from ...journal import Journal
from ...live.clock import Clock, SimulatorClock, WallClock
from ...live.runner import Runner, RunnerOptions
from ...live.status import StatusDisplay
from ...logging_setup import setup_logging
from ..args import (
    add_connection_arguments,
    add_strategy_arguments,
    add_symbol_argument,
    parse_date_flag,
    settings_from_args,
)

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
    parser.add_argument("--once", action="store_true", help="trade one session, then exit (same as --days 1)")
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
        help="virtual seconds per wall second; 0 = as fast as possible (default 0)",
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


class Terminated(BaseException):
    """SIGTERM (`systemctl stop`, a supervisor, `kill`): stop as Ctrl-C does. A BaseException like
    KeyboardInterrupt, so that no `except Exception` on the way swallows it."""


@contextmanager
def sigterm_stops_the_run() -> Iterator[None]:
    """While inside: SIGTERM raises Terminated in the main thread (once; a second one while the run
    winds down is ignored, so that the cleanup finishes)."""
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a test driving run() from a thread): no handler
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    log_path = setup_logging(
        settings.log_dir, settings.log_file, settings.json_logs, args.verbose, settings.secrets
    )
    with sigterm_stops_the_run():
        return _logged_run(args, settings, log_path)


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
    display = StatusDisplay()
    reason = "internal error"
    try:
        code = _run_mode(args, settings, log_path, display)
        reason = "finished" if code == 0 else f"exit {code}"
        return code
    except Terminated:
        reason = "SIGTERM"
        _say_what_stays_open(display)
        return 0
    except KeyboardInterrupt:
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
    journal = Journal(settings.journal_path)
    journal.load()  # a corrupt journal stops us here, moved aside, before any order
    journal.ensure_writable()
    params = settings.params
    if settings.mode == "simulator":
        return _run_simulated(args, settings, params, journal, display, log_path)
    if settings.mode == "live":
        _confirm_live(args, settings)
    from ...broker.alpaca.factory import broker_from_settings
    from ...broker.throttle import RequestThrottle

    clock: Clock = _remote_sim_clock(settings.base_url) if args.sim_clock else WallClock()
    broker = broker_from_settings(settings, throttle=RequestThrottle(now=clock.monotonic, sleep=clock.sleep))
    display.print(
        f"breakout-bot · {settings.mode.upper()} trading {', '.join(settings.symbols)} · log {log_path}"
    )
    days = 1 if args.once else args.days
    return _trade(broker, broker.market_data, clock, journal, settings, params, display, days)


def _remote_sim_clock(base_url: str) -> Clock:
    import requests

    from ...live.clock import RemoteSimulatorClock

    if urlsplit(base_url).hostname not in ("127.0.0.1", "localhost", "::1"):
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


def _trade(
    broker: Broker,
    data: MarketData,
    clock: Clock,
    journal: Journal,
    settings: Settings,
    params: Params,
    display: StatusDisplay,
    days: int | None,
) -> int:
    try:
        _preflight(broker, settings)
        runner = Runner(
            broker,
            data,
            clock,
            journal,
            settings.symbols,
            params,
            RunnerOptions(days=days, bars_stream=settings.bars_mode == "stream"),
            observers=[display],
        )
        with display:
            return runner.run()
    finally:
        broker.close()


def _preflight(broker: Broker, settings: Settings) -> None:
    """Refuse to start on an account or asset that cannot run the strategy: one clear line each."""
    try:
        account = broker.get_account()
    except BrokerAuthError:
        raise
    except BrokerError as exc:
        raise BrokerUnavailable(f"cannot read the account at {settings.base_url}: {exc}") from None
    if account.trading_blocked or account.status.upper() != "ACTIVE":
        raise UserError(
            f"account is not able to trade (status {account.status}, blocked={account.trading_blocked})"
        )
    for symbol in settings.symbols:
        try:
            asset = broker.get_asset(symbol)
        except BrokerNotFound:
            raise UserError(f"unknown symbol {symbol}: the broker has no such asset") from None
        except BrokerError as exc:
            raise BrokerUnavailable(f"cannot read asset {symbol}: {exc}") from None
        if asset.status != "active" or not asset.tradable:
            raise UserError(f"{symbol} is not tradable at Alpaca (status {asset.status})")
        if not asset.shortable:
            raise UserError(
                f"{symbol} is not shortable at Alpaca; the strategy sells short on a downside breakout"
            )


def _run_simulated(
    args: argparse.Namespace,
    settings: Settings,
    params: Params,
    journal: Journal,
    display: StatusDisplay,
    log_path: Path,
) -> int:
    start = parse_date_flag(args.start, "--start") if args.start else None
    if args.data is not None and not args.data.exists():
        raise ConfigError(f"--data: no such file {args.data}")
    speed = 0.0 if args.speed is None else args.speed
    with simulated_session(
        settings.symbols,
        start=start,
        speed=speed,
        seed=args.seed,
        data=args.data,
        partial_fills=args.partial_fills,
        feed=settings.feed,
    ) as (broker, clock, server):
        display.print(
            "[bold yellow]SIMULATED[/] · no Alpaca keys configured: trading the built-in simulator "
            f"at {server.base_url} · {', '.join(settings.symbols)} · log {log_path}"
        )
        days = 1 if args.once else (args.days or settings.days or 1)
        first_new = len(journal)
        code = _trade(broker, broker.market_data, clock, journal, settings, params, display, days)
        _print_summary(display, journal, settings, first_new)
        if args.sim_report is not None:
            _write_sim_report(args.sim_report, server)
        return code


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
) -> Iterator[tuple[AlpacaBroker, SimulatorClock, SimServer]]:
    """The built-in simulator on loopback plus an AlpacaBroker on its virtual clock (fresh random keys).
    Used by `run` without keys and by the bot's integration tests."""
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
    )
    server = SimServer(config)
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


def _print_summary(display: StatusDisplay, journal: Journal, settings: Settings, first_new: int) -> None:
    """What this simulated run did: its own fills (not the journal's history) and the final positions."""
    fills = [r for r in journal.records()[first_new:] if r.symbol in settings.symbols]
    cash = Decimal(0)
    for record in fills:
        value = Decimal(record.qty) * Decimal(record.price)
        cash += value if record.side == "sell" else -value
    display.print(
        f"simulated run finished: {len(fills)} new fills recorded in {settings.journal_path}; "
        f"realized P&L {cash:+.2f} (when flat)"
    )
