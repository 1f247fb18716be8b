"""The flags the commands share, and turning parsed flags into Settings.

The strategy's flags are generated from core/params.py (their defaults and meaning) and the settings'
specs (their flag names), so a default is written once and every command's help shows the same.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import fields
from datetime import date
from pathlib import Path

from ..config.settings import BY_NAME, DEFAULT_SDK, SDKS, Settings, load_settings
from ..core.params import DESCRIPTIONS, Params
from ..errors import ConfigError

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
}


def parse_date_flag(value: str, flag: str) -> date:
    """A YYYY-MM-DD flag value, or one clear line naming the flag."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{flag}: expected YYYY-MM-DD, got {value!r}") from None


def add_strategy_arguments(parser: argparse.ArgumentParser, defaults: Params | None = None) -> None:
    """The strategy and risk flags, one per Params field. Without `defaults` an absent flag is None, so
    that environment and .env values apply (run); with them, it takes them (backtest)."""
    g = parser.add_argument_group("strategy")
    shown = Params()
    for f in fields(Params):
        default = getattr(shown, f.name)
        help_text = DESCRIPTIONS[f.name] + ("" if default is None else f" (default {default:g})")
        g.add_argument(
            BY_NAME[f.name].flag,
            type=int if f.type == "int" else float,
            metavar=METAVARS[f.name],
            default=None if defaults is None else getattr(defaults, f.name),
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


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """load_settings for a command: flags from ``args``, ``--env-file`` if given (then it must exist)."""
    env_file = getattr(args, "env_file", None)
    return load_settings(
        overrides_from_args(args),
        env=env,
        dotenv_path=Path(env_file) if env_file else Path(".env"),
        dotenv_required=bool(env_file),
    )
