"""The flags the commands share, and turning parsed flags into Settings.

The strategy's flags are generated from core/params.py (their defaults and meaning) and the settings'
specs (their flag names), so a default is written once and every command's help shows the same.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.settings import BY_NAME, DEFAULT_SDK, SDKS, Settings, load_settings, simulated_path
from ..core.params import DESCRIPTIONS, Params
from ..errors import ConfigError
from ..logging_setup import LOG_NAME

if TYPE_CHECKING:
    from ..market.calendar import MarketCalendar

# Placeholder names of the strategy's values in --help.
METAVARS = {
    "qty": "N",
    "lookback": "BARS",
    "min_range_pct": "PCT",
    "no_entry_minutes": "MIN",
    "flatten_minutes": "MIN",
    "max_trades": "N",
    "max_daily_loss": "USD",
    "risk_pct": "PCT",
    "max_positions": "N",
}


def parse_date_flag(value: str, flag: str) -> date:
    """A YYYY-MM-DD flag value, or one clear line naming the flag."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{flag}: expected YYYY-MM-DD, got {value!r}") from None


def check_sessions(
    calendar: MarketCalendar,
    data_dates: Sequence[date] | None,
    start: date | None,
    days: int | None,
    data: Path | None = None,
) -> None:
    """A simulated run's dates must exist: `start` in the calendar window, and with a bar file a day it
    has bars for, and `days` of its sessions from there: nothing is traded silently on a day without
    bars. (With synthetic bars a `start` on a day NYSE is closed is a closed day, as for a real bot:
    it says "market closed today" and trades the next session, or with --once exits.)"""
    if data_dates is None:  # synthetic bars: every session has some
        if start is not None and not calendar.first_date <= start <= calendar.last_date:
            raise ConfigError(
                f"--start {start}: outside the NYSE calendar ({calendar.first_date} to {calendar.last_date})"
            )
        return
    name = data.name if data is not None else "the data"
    span = f"{len(data_dates)} sessions, {data_dates[0]} to {data_dates[-1]}" if data_dates else "no sessions"
    if start is not None and start not in data_dates:
        later = [d for d in data_dates if d > start]
        hint = f"; its next session with bars is {later[0]}" if later else ""
        raise ConfigError(f"--start {start}: {name} has no bars that day ({span}){hint}")
    left = [d for d in data_dates if start is None or d >= start]
    if days is not None and days > len(left):
        raise ConfigError(
            f"--days {days}: {name} has {len(left)} session(s) from {left[0] if left else start} ({span})"
        )


def add_strategy_arguments(parser: argparse.ArgumentParser) -> None:
    """The strategy and risk flags, one per Params field. An absent flag is None, so that environment
    and .env values apply (run and backtest alike: a backtest rehearses the configured bot)."""
    g = parser.add_argument_group("strategy")
    shown = Params()
    for f in fields(Params):
        default = getattr(shown, f.name)
        help_text = DESCRIPTIONS[f.name] + ("" if default is None else f" (default {default:g})")
        g.add_argument(
            BY_NAME[f.name].flag,
            type=int if f.type == "int" else float,
            metavar=METAVARS[f.name],
            default=None,
            help=help_text.replace("%", "%%"),
        )


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Broker, files and logging flags."""
    g = parser.add_argument_group("connection and files")
    g.add_argument("--feed", choices=("iex", "sip"), help="market data feed (default iex)")
    g.add_argument(
        "--sdk",
        choices=SDKS,
        help=f"the Alpaca SDK under the bot (default {DEFAULT_SDK}; alpaca-py needs "
        "pip install -e '.[alpaca-py]'; README: which to choose)",
    )
    g.add_argument(
        "--live",
        action="store_true",
        default=None,
        help="trade real money on api.alpaca.markets (asks to confirm)",
    )
    g.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation (with --live)")
    g.add_argument("--env-file", type=Path, metavar="PATH", help="read settings from PATH instead of ./.env")
    g.add_argument("--journal", type=Path, metavar="PATH", help="fill journal (default past_trades.json)")
    g.add_argument("--log-dir", type=Path, metavar="DIR", help="log directory (default logs)")
    g.add_argument("--log-file", type=Path, metavar="PATH", help="log file (default DIR/breakout-bot.log)")
    g.add_argument(
        "--json-logs",
        action="store_true",
        default=None,
        help="write the log file as one JSON object per line",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="debug detail in the log file")


def add_symbol_argument(
    parser: argparse.ArgumentParser,
    required: bool = False,
    help: str = "ticker symbol; repeat or comma-separate for several",
) -> None:
    """``--symbol AAPL`` (repeatable, or comma-separated), into ``args.symbols``."""
    parser.add_argument(
        "-s", "--symbol", dest="symbols", action="append", required=required, metavar="SYMBOL", help=help
    )


# argparse dest → Settings field, where they differ; any dest equal to a field name maps to itself
_DEST_TO_FIELD = {"journal": "journal_path", "symbol": "symbols", "bars": "bars_mode"}
# dests that steer loading rather than being settings
_NOT_SETTINGS = {"env_file", "yes", "verbose"}


def overrides_from_args(args: argparse.Namespace) -> dict[str, object | None]:
    """Settings overrides from parsed args: every dest naming a Settings field (or aliased above)."""
    out: dict[str, object | None] = {}
    for dest, value in vars(args).items():
        if dest in _NOT_SETTINGS:
            continue
        name = _DEST_TO_FIELD.get(dest, dest)
        if name in BY_NAME and value is not None:
            out[name] = value
    return out


def settings_from_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None, *, trading: bool = True
) -> Settings:
    """load_settings for a command: flags from ``args``, ``--env-file`` if given (then it must exist).
    ``trading=False``: a command that sends no order (a live URL needs no --live)."""
    env_file = getattr(args, "env_file", None)
    settings = load_settings(
        overrides_from_args(args),
        env=env,
        dotenv_path=Path(env_file) if env_file else Path(".env"),
        dotenv_required=bool(env_file),
        trading=trading,
    )
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return settings


def add_journal_arguments(parser: argparse.ArgumentParser) -> None:
    """--journal (alias --file) and --simulated, for the commands that read a journal."""
    parser.add_argument(
        "--journal",
        "--file",
        dest="journal",
        type=Path,
        metavar="PATH",
        help="the journal to read (default: BREAKOUT_JOURNAL, else past_trades.json)",
    )
    parser.add_argument(
        "--simulated",
        action="store_true",
        help="the simulated runs' journal (simulated/past_trades.json beside the configured one)",
    )


def journal_from_args(args: argparse.Namespace, settings: Settings) -> Path:
    """The journal to read: --journal as given, else the configured one (simulated/ with --simulated)."""
    if args.simulated and args.journal is None:
        return simulated_path(settings.journal_path)
    return settings.journal_path


def simulated_log_file(args: argparse.Namespace, settings: Settings) -> Path | None:
    """A simulated run's log file: in simulated/ beside the configured one, unless --log-dir or
    --log-file was given on the command line (then the configured log file; None: the log dir's own)."""
    if args.log_dir is None and args.log_file is None:
        return simulated_path(settings.log_file or settings.log_dir / LOG_NAME)
    return settings.log_file
