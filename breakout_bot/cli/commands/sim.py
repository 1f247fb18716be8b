"""`breakout-bot sim` (also `python -m breakout_bot.sim`): run the simulator standalone."""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
import signal
import sys

from ...core.model import NEW_YORK
from ...errors import UserError
from ...sim.app import SimServer
from ...sim.config import DEFAULT_KEY, DEFAULT_SECRET, SimConfig
from ..args import check_sessions, parse_date_flag
from ..stop_signals import StopRequest


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default 127.0.0.1, loopback; any other address needs your own --key and "
        "--secret, and the /sim/* control API then wants them too)",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 = any free port")
    parser.add_argument("--symbols", default="AAPL", help="comma-separated symbols (default AAPL)")
    parser.add_argument(
        "--start", help="first trading date YYYY-MM-DD (default: next session / first in --data)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=600.0,
        help="virtual seconds per wall second (default 600: a session in 40 s); 0 = frozen: the clock "
        "moves only when a client posts to /sim/clock (the fault suite, `run --sim-clock`)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic bars and ids")
    parser.add_argument("--data", help="CSV/Parquet one-minute bars instead of synthetic ones")
    parser.add_argument(
        "--key", default=DEFAULT_KEY, help=f"API key id clients must send (default {DEFAULT_KEY})"
    )
    parser.add_argument(
        "--secret", default=DEFAULT_SECRET, help=f"API secret clients must send (default {DEFAULT_SECRET})"
    )
    parser.add_argument("--partial-fills", action="store_true", help="fill market/limit orders in 2-3 pieces")
    parser.add_argument("--latency-ms", type=int, default=0, help="order latency and REST response delay")
    parser.add_argument(
        "--start-time",
        metavar="HH:MM",
        default="09:25",
        help="New York time the clock starts at (default 09:25)",
    )
    rules = parser.add_argument_group("Alpaca's account rules (docs/simulator.md)")
    rules.add_argument(
        "--cancel-latency-ms",
        type=int,
        default=300,
        help="a cancel is processed this many virtual ms after its 204 (default 300; >= 1000 shows pending_cancel)",
    )
    rules.add_argument(
        "--free-plan",
        action="store_true",
        help="no SIP subscription: recent SIP bars 403, the sip stream 409",
    )
    rules.add_argument(
        "--legacy-pdt",
        choices=("entries", "exits", "both"),
        help="refuse entries and/or exits with the pre-2026 pattern-day-trader 403 (40310100)",
    )
    rules.add_argument(
        "--no-wash-trade-check",
        action="store_true",
        help="accept a simple order opposite an open order of the symbol (Alpaca refuses it)",
    )
    rules.add_argument(
        "--wash-trade-status",
        type=int,
        choices=(403, 422),
        default=403,
        help="the wash-trade refusal's status: 403/40310000 (default) or 422/42210000",
    )
    rules.add_argument(
        "--stop-replaces-take-profit",
        action="store_true",
        help='when a bracket\'s stop fills, report its take-profit "replaced" (default "canceled")',
    )
    rules.add_argument(
        "--data-auth-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="wall seconds a data-stream client has to authenticate before 404 auth timeout (default 10)",
    )
    rules.add_argument(
        "--iex-missing-pct",
        type=float,
        default=5.0,
        help="feed=iex: share of minutes with no IEX print, hence no bar (default 5)",
    )


def build_config(args: argparse.Namespace) -> SimConfig:
    """Validate the flags into a SimConfig; bad input -> UserError (one line)."""
    symbols = tuple(s.strip().upper() for s in str(args.symbols).split(",") if s.strip())
    if not symbols or not all(s.replace(".", "").isalnum() for s in symbols):
        raise UserError(f"bad --symbols {args.symbols!r}: expected e.g. AAPL,MSFT")
    start = parse_date_flag(args.start, "--start") if args.start else None
    if not 0 <= args.port <= 65535:
        raise UserError(f"bad --port {args.port}: expected 0-65535")
    if args.speed < 0:
        raise UserError("bad --speed: must be >= 0")
    if args.latency_ms < 0:
        raise UserError("bad --latency-ms: must be >= 0")
    if args.cancel_latency_ms < 0:
        raise UserError("bad --cancel-latency-ms: must be >= 0")
    if args.data_auth_timeout <= 0:
        raise UserError("bad --data-auth-timeout: must be > 0")
    if not 0 <= args.iex_missing_pct < 100:
        raise UserError("bad --iex-missing-pct: expected 0 <= pct < 100")
    try:
        start_time = dt.time.fromisoformat(args.start_time)
    except ValueError:
        raise UserError(f"bad --start-time {args.start_time!r}: expected HH:MM") from None
    pdt = {"entries": {"entries"}, "exits": {"exits"}, "both": {"entries", "exits"}}.get(
        args.legacy_pdt or "", set()
    )
    data = pathlib.Path(args.data) if args.data else None
    config = SimConfig(
        symbols=symbols,
        start=start,
        speed=args.speed,
        seed=args.seed,
        data=data,
        key=args.key,
        secret=args.secret,
        host=args.host,
        port=args.port,
        partial_fills=args.partial_fills,
        latency_ms=args.latency_ms,
        start_time=start_time,
        cancel_latency_ms=args.cancel_latency_ms,
        free_plan=args.free_plan,
        legacy_pdt=frozenset(pdt),
        wash_trade_check=not args.no_wash_trade_check,
        wash_trade_status=args.wash_trade_status,
        take_profit_on_stop="replaced" if args.stop_replaces_take_profit else "canceled",
        iex_missing_pct=args.iex_missing_pct,
        data_auth_timeout_s=args.data_auth_timeout,
    )
    if not config.loopback and (config.key == DEFAULT_KEY or config.secret == DEFAULT_SECRET):
        raise UserError(
            f"--host {config.host} exposes the simulator (and its /sim/* control API) beyond this machine: "
            "choose your own --key and --secret"
        )
    return config


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    server = SimServer(cfg)  # --data goes through the one bar loader: DataError is its one line
    check_sessions(server.calendar, server.source.session_dates(), cfg.start, None, cfg.data)
    stop = StopRequest()
    # Before the server starts: a supervisor may send SIGTERM as soon as it reads "listening on". Ctrl-C
    # too sets the flag rather than raising: a raise can land anywhere (between the two start lines, or in
    # a finalizer, which drops it) and a flag cannot be lost. (A flag, not an Event: stop_signals.py.)
    old_term = signal.signal(signal.SIGTERM, stop.handler)
    # (Unless the process started with Ctrl-C ignored: a background job of a script.)
    ctrl_c_is_ours = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ctrl_c_is_ours:
        signal.signal(signal.SIGINT, stop.handler)
    try:
        try:
            url = server.start()
        except OSError as e:
            raise UserError(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}") from None
        print(f"listening on {url}", flush=True)
        start = server.clock.now().astimezone(NEW_YORK)
        pace = "frozen (POST /sim/clock moves it)" if cfg.speed == 0 else f"{cfg.speed:g}x"
        print(
            f"SIMULATED market: {', '.join(cfg.symbols)} from {start:%Y-%m-%d %H:%M} New York time, clock {pace}",
            file=sys.stderr,
            flush=True,
        )
        if not cfg.loopback:
            print(
                f"warning: listening on {cfg.host}, reachable from other machines; every request, /sim/* "
                "included, must carry the API key headers",
                file=sys.stderr,
                flush=True,
            )
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if ctrl_c_is_ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        server.stop()
    return 0
