"""The read-only web dashboard (live/dashboard/): `run --dashboard [HOST:]PORT` beside a running bot, and
`breakout-bot dashboard --journal FILE`: past days from the journal, with each day's chart where the
`bars` cache has the day's bars.

Loopback (127.0.0.1) unless a host is given; any other interface needs a token
(`--dashboard-token` / `BREAKOUT_DASHBOARD_TOKEN`; `dashboard --token`), refused in one line otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from aiohttp import web

from ...config.settings import Settings
from ...core.model import Bar
from ...errors import ConfigError
from ...journal import RunTags, ledger_path
from ...live.dashboard.feed import BarsForDay, JournalDays, RunFeed
from ...live.dashboard.server import (
    DashboardServer,
    Hub,
    build_app,
    check_exposure,
    is_loopback,
    parse_address,
)
from ...market import cache
from ...market.bars import load_bars, regular_session
from ..args import add_journal_arguments, journal_from_args, settings_from_args
from .bars import DEFAULT_CACHE

DEFAULT_PORT = 8050


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """`run`'s flags."""
    parser.add_argument(
        "--dashboard",
        metavar="[HOST:]PORT",
        help="serve a read-only web page of the run at http://HOST:PORT/ (host 127.0.0.1 unless given; "
        "any other interface needs --dashboard-token; BREAKOUT_DASHBOARD)",
    )
    parser.add_argument(
        "--dashboard-token",
        metavar="TOKEN",
        help="the dashboard's token (prefer BREAKOUT_DASHBOARD_TOKEN in .env: a flag shows in `ps`); "
        "open the page once as /?token=TOKEN",
    )


def serve(
    host: str, port: int, token: str | None, *, mode: str, title: str, journal: JournalDays | None = None
) -> DashboardServer:
    """Start the dashboard's server (its own thread), after the exposure rule."""
    check_exposure(host, token)

    def make_app(hub: Hub) -> web.Application:
        return build_app(
            hub,
            mode=mode,
            token=token,
            loopback_only=is_loopback(host),
            days=journal.days if journal else None,
            day=journal.day if journal else None,
            title=title,
        )

    return DashboardServer(host, port, make_app).start()


def check_settings(settings: Settings) -> None:
    """`run`'s dashboard address and token, checked before the run starts (ConfigError: one line)."""
    if settings.dashboard:
        host, _ = parse_address(settings.dashboard)
        check_exposure(host, settings.dashboard_token)


def start_for_run(
    settings: Settings, journal_path: Path, tags: RunTags
) -> tuple[DashboardServer, RunFeed] | None:
    """The run's dashboard and its runner observer, or None without --dashboard."""
    if not settings.dashboard:
        return None
    host, port = parse_address(settings.dashboard)
    simulated = tags.mode == "simulator"
    title = f"breakout-bot · {', '.join(settings.symbols)}"
    server = serve(
        host,
        port,
        settings.dashboard_token,
        mode="run",
        title=title,
    )
    print(
        f"dashboard: {server.url}" + (" (open it with ?token=…)" if settings.dashboard_token else ""),
        flush=True,
    )
    feed = RunFeed(server, journal_path, simulated=simulated, account=(tags.mode, tags.account))
    return server, feed


def cached_bars(cache_dir: Path) -> BarsForDay:
    """bars_for(symbol, day): the regular session's bars from the `bars` cache, None where not cached."""

    def bars_for(symbol: str, day: dt.date) -> Sequence[Bar] | None:
        if not cache.is_cached(cache_dir, symbol, day):
            return None
        frame = regular_session(load_bars(cache_dir, symbol, start=day, end=day))
        columns = [frame[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close", "volume")]
        times = pd.DatetimeIndex(frame.index).to_pydatetime()
        return [Bar(t, *values) for t, *values in zip(times, *columns, strict=True)] or None

    return bars_for


def configure(parser: argparse.ArgumentParser) -> None:
    add_journal_arguments(parser)
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to serve on (default {DEFAULT_PORT}; 0: any free one)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface (default 127.0.0.1; others need a token)"
    )
    parser.add_argument(
        "--token", help="the page's token (default BREAKOUT_DASHBOARD_TOKEN); needed off loopback"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help=f"the `bars` cache holding the days' bars for the charts (default {DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--env-file", type=Path, metavar="PATH", help="read settings from PATH instead of ./.env"
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, trading=False)
    token = args.token or settings.dashboard_token
    journal_path = journal_from_args(args, settings)
    if not journal_path.exists() and not ledger_path(journal_path).exists():
        raise ConfigError(f"dashboard: no journal at {journal_path} (give --journal FILE)")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"dashboard --port {args.port}: expected a port, 0 to 65535")
    server = serve(
        args.host,
        args.port,
        token,
        mode="journal",
        title=f"breakout-bot · {journal_path.name}",
        journal=JournalDays(journal_path, cached_bars(args.cache_dir)),
    )
    print(f"dashboard of {journal_path}: {server.url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
