"""Settings: CLI flags > process environment > .env file > defaults, validated with clear errors.

The .env file is read with ``dotenv_values`` (never loaded into ``os.environ``, so it cannot leak
into child processes or into libraries that read the environment behind our back). Values are taken
literally (no ``${VAR}`` interpolation: a secret containing ``$`` must survive). An empty value
counts as "not set", so a copied ``.env.example`` with ``APCA_API_KEY_ID=`` means "no keys".

Every problem is collected and reported at once, one line each, naming where the bad value came
from (``--qty``, ``BREAKOUT_QTY``, or ``BREAKOUT_QTY (.env line 3)``). Secret values never appear in
any message or repr.
"""

from __future__ import annotations

import argparse
import difflib
import io
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from breakout_bot.errors import ConfigError
from breakout_bot.redaction import Redactor, mask_key_id

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
LIVE_HOST = "api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
STREAM_URL = "https://stream.data.alpaca.markets"

_SYMBOL = re.compile(r"^[A-Z.\-]{1,10}$")
_INT = re.compile(r"^[+-]?\d+$")
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved, validated configuration. ``repr``/``str`` redact the keys."""

    key_id: str | None = None
    secret_key: str | None = None
    base_url: str = PAPER_URL
    data_url: str = DATA_URL
    stream_url: str = STREAM_URL
    feed: str = "iex"
    live: bool = False
    symbols: tuple[str, ...] = ()
    qty: int = 100
    lookback: int = 10
    min_range_pct: float = 0.3  # percent: 0.3 means 0.3 %
    no_entry_minutes: int = 20
    flatten_minutes: int = 5
    max_trades: int = 0  # per symbol per day; 0 = unlimited
    max_daily_loss: float = 0.0  # dollars; 0 = off
    risk_pct: float | None = None  # percent of equity risked per trade (sizes qty); None = fixed qty
    journal_path: Path = Path("past_trades.json")
    log_dir: Path = Path("logs")
    log_file: Path | None = None
    json_logs: bool = False
    bars_mode: str = "poll"
    speed: float = 60.0  # simulator: virtual seconds per wall second
    days: int = 1

    @property
    def has_keys(self) -> bool:
        return bool(self.key_id and self.secret_key)

    @property
    def mode(self) -> str:
        """One of "simulator" (no keys), "live" (keys + live URL) or "paper"."""
        if not self.has_keys:
            return "simulator"
        return "live" if is_live_url(self.base_url) else "paper"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log or terminal (for logging_setup's redaction)."""
        return tuple(s for s in (self.secret_key, self.key_id) if s)

    def redacted(self) -> dict[str, Any]:
        """All fields, keys redacted: safe to print (``breakout-bot check``) or log."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["key_id"] = mask_key_id(self.key_id)
        out["secret_key"] = "***" if self.secret_key else None
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({inner})"

    __str__ = __repr__


def is_live_url(base_url: str) -> bool:
    """True for Alpaca's live trading host (api.alpaca.markets), not paper-api or anything else."""
    host = (urlsplit(base_url.strip()).hostname or "").lower().rstrip(".")
    return host == LIVE_HOST


# --------------------------------------------------------------------------------------------------
# value parsers: take a str (env/.env/flag text) or an already-typed value (argparse); raise
# ValueError with "expected ..." text.


def _text(v: object) -> str:
    return v.strip() if isinstance(v, str) else str(v)


def _int_in(lo: int, hi: int | None, what: str) -> Callable[[object], int]:
    def parse(v: object) -> int:
        if isinstance(v, bool):
            raise ValueError(what)
        if isinstance(v, int):
            n = v
        elif isinstance(v, str) and _INT.match(v.strip()):
            n = int(v.strip())
        else:
            raise ValueError(what)
        if n < lo or (hi is not None and n > hi):
            raise ValueError(what)
        return n

    return parse


def _float_in(lo: float, hi: float | None, what: str, lo_open: bool = True) -> Callable[[object], float]:
    def parse(v: object) -> float:
        if isinstance(v, bool):
            raise ValueError(what)
        try:
            x = float(v) if isinstance(v, (int, float)) else float(_text(v))
        except ValueError:
            raise ValueError(what) from None
        if not math.isfinite(x) or x < lo or (lo_open and x == lo) or (hi is not None and x >= hi):
            raise ValueError(what)
        return x

    return parse


def _choice(*options: str) -> Callable[[object], str]:
    def parse(v: object) -> str:
        s = _text(v).lower()
        if s not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return s

    return parse


def _bool(v: object) -> bool:
    if isinstance(v, bool):
        return v
    s = _text(v).lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError("expected true or false (1/0, yes/no)")


def _url(*schemes: str) -> Callable[[object], str]:
    def parse(v: object) -> str:
        s = _text(v).rstrip("/")
        # The Alpaca dashboard shows the endpoint with /v2, but the client appends /v2 itself.
        if s.endswith("/v2"):
            s = s[: -len("/v2")]
        parts = urlsplit(s)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"expected a URL starting with {' or '.join(f'{x}://' for x in schemes)}")
        return s

    return parse


def _symbols(v: object) -> tuple[str, ...]:
    items: list[str] = []
    raw = [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else [v]
    for chunk in raw:
        items.extend(p for p in re.split(r"[,\s]+", _text(chunk)) if p)
    out: list[str] = []
    for sym in items:
        s = sym.upper()
        if not _SYMBOL.match(s):
            raise ValueError(f"expected ticker symbols (1-10 of A-Z . -), got {sym!r}")
        if s not in out:
            out.append(s)
    return tuple(out)


def _key(v: object) -> str:
    s = _text(v)
    if any(c.isspace() for c in s) or not s.isprintable():
        raise ValueError("contains whitespace or control characters (check for a paste error)")
    return s


def _path(v: object) -> Path:
    s = _text(v)
    if not s:
        raise ValueError("expected a file or directory path")
    return Path(s).expanduser()


# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    name: str  # Settings field and override key
    env: str | None  # None: flag only (e.g. --live must never come from a file)
    flag: str
    parse: Callable[[object], object]
    secret: bool = False


_SPECS: tuple[_Spec, ...] = (
    _Spec("key_id", "APCA_API_KEY_ID", "--key-id", _key, secret=True),
    _Spec("secret_key", "APCA_API_SECRET_KEY", "--secret-key", _key, secret=True),
    _Spec("base_url", "APCA_API_BASE_URL", "--base-url", _url("https", "http")),
    _Spec("data_url", "APCA_API_DATA_URL", "--data-url", _url("https", "http")),
    _Spec("stream_url", "APCA_API_STREAM_URL", "--stream-url", _url("https", "http", "wss", "ws")),
    _Spec("feed", "BREAKOUT_FEED", "--feed", _choice("iex", "sip")),
    _Spec("live", None, "--live", _bool),
    _Spec("symbols", "BREAKOUT_SYMBOLS", "--symbol", _symbols),
    _Spec("qty", "BREAKOUT_QTY", "--qty", _int_in(1, None, "expected a positive whole number")),
    _Spec("lookback", "BREAKOUT_LOOKBACK", "--lookback", _int_in(2, 390, "expected a whole number 2..390")),
    _Spec(
        "min_range_pct",
        "BREAKOUT_MIN_RANGE_PCT",
        "--min-range-pct",
        _float_in(0, 20, "expected a percentage above 0 and below 20 (0.3 means 0.3 %)"),
    ),
    _Spec(
        "no_entry_minutes",
        "BREAKOUT_NO_ENTRY_MINUTES",
        "--no-entry-minutes",
        _int_in(1, 390, "expected whole minutes 1..390"),
    ),
    _Spec(
        "flatten_minutes",
        "BREAKOUT_FLATTEN_MINUTES",
        "--flatten-minutes",
        _int_in(1, 390, "expected whole minutes 1..390"),
    ),
    _Spec(
        "max_trades", "BREAKOUT_MAX_TRADES", "--max-trades", _int_in(0, None, "expected a whole number >= 0")
    ),
    _Spec(
        "max_daily_loss",
        "BREAKOUT_MAX_DAILY_LOSS",
        "--max-daily-loss",
        _float_in(0, None, "expected dollars >= 0 (0 = off)", lo_open=False),
    ),
    _Spec(
        "risk_pct",
        "BREAKOUT_RISK_PCT",
        "--risk-pct",
        _float_in(0, 100, "expected a percentage above 0 and below 100"),
    ),
    _Spec("journal_path", "BREAKOUT_JOURNAL", "--journal", _path),
    _Spec("log_dir", "BREAKOUT_LOG_DIR", "--log-dir", _path),
    _Spec("log_file", "BREAKOUT_LOG_FILE", "--log-file", _path),
    _Spec("json_logs", "BREAKOUT_JSON_LOGS", "--json-logs", _bool),
    _Spec("bars_mode", "BREAKOUT_BARS_MODE", "--bars", _choice("poll", "stream")),
    _Spec("speed", "BREAKOUT_SPEED", "--speed", _float_in(0, None, "expected a number above 0")),
    _Spec("days", "BREAKOUT_DAYS", "--days", _int_in(1, None, "expected a whole number >= 1")),
)
_BY_NAME = {s.name: s for s in _SPECS}
ENV_VARS: tuple[str, ...] = tuple(s.env for s in _SPECS if s.env)


def _read_dotenv(path: Path, required: bool) -> tuple[dict[str, str], dict[str, int], list[str]]:
    """Values, key → line number, problems. Missing file: fine unless ``required`` (--env-file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, {}, ([f"--env-file: {path} does not exist"] if required else [])
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a readable UTF-8 file"
        return {}, {}, [f"{path}: cannot read: {reason}"]
    problems: list[str] = []
    lines: dict[str, int] = {}
    # python-dotenv only *warns* about lines it cannot parse and drops them; a dropped line could be
    # the one setting a risk limit, so we run its parser ourselves and make that an error (also a
    # bare "KEY" with no "=", which it silently accepts). The line text is never shown: it may hold
    # a secret.
    for binding in parse_stream(io.StringIO(text)):
        raw_text = binding.original.string
        # a binding's text starts with the blank lines before it: report the line of the statement
        line = binding.original.line + raw_text[: len(raw_text) - len(raw_text.lstrip())].count("\n")
        if binding.error or (binding.key is not None and binding.value is None):
            problems.append(f"{path} line {line}: cannot parse (expected KEY=VALUE, a # comment or blank)")
        elif binding.key is not None:
            lines[binding.key] = line
    if problems:
        return {}, {}, problems
    raw = dotenv_values(stream=io.StringIO(text), interpolate=False)
    values = {k: v for k, v in raw.items() if v is not None}
    return values, lines, []


def _typo_problems(names: Sequence[str], where: Callable[[str], str]) -> list[str]:
    # An unknown BREAKOUT_ variable close to a known one is almost surely a typo that would silently
    # disable a setting (BREAKOUT_MAX_DAILY_LOS); anything else is left alone.
    prefix = "BREAKOUT_"
    known = [e[len(prefix) :] for e in ENV_VARS if e.startswith(prefix)]
    out = []
    for name in names:
        if not name.startswith(prefix) or name in ENV_VARS:
            continue
        if name == "BREAKOUT_LIVE":
            out.append(f"{where(name)}: live trading is enabled only by the --live flag, never by a variable")
            continue
        close = difflib.get_close_matches(name[len(prefix) :], known, n=1, cutoff=0.66)
        if close:
            out.append(f"{where(name)}: unknown variable (did you mean {prefix}{close[0]}?)")
    return out


def load_settings(
    overrides: Mapping[str, object | None] | None = None,
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = Path(".env"),
    *,
    dotenv_required: bool = False,
) -> Settings:
    """Resolve settings. ``overrides``: CLI values by Settings field name (None = not given).

    ``env`` defaults to ``os.environ``; ``dotenv_path=None`` skips the .env file. Raises ConfigError
    listing every problem, one per line.
    """
    overrides = dict(overrides or {})
    env = os.environ if env is None else env
    problems: list[str] = []

    unknown = sorted(k for k in overrides if k not in _BY_NAME)
    if unknown:  # a programming error in a command module, but say it clearly
        problems.extend(f"unknown setting {k!r}" for k in unknown)

    dot: dict[str, str] = {}
    dot_lines: dict[str, int] = {}
    if dotenv_path is not None:
        dot, dot_lines, dot_problems = _read_dotenv(dotenv_path, dotenv_required)
        problems.extend(dot_problems)

    # Key values are never printed, but a key pasted into the wrong variable would be echoed as that
    # variable's bad value: every raw key value seen in any source is redacted from every message.
    redact = Redactor(
        str(src.get(name) or "")
        for spec in _SPECS
        if spec.secret
        for src, name in ((overrides, spec.name), (env, spec.env or ""), (dot, spec.env or ""))
    )

    def dot_label(var: str) -> str:
        return f"{var} ({dotenv_path} line {dot_lines.get(var, '?')})"

    problems.extend(_typo_problems(sorted(env), lambda n: n))
    problems.extend(_typo_problems(sorted(dot), dot_label))

    values: dict[str, object] = {}
    explicit: set[str] = set()  # fields set by some source (not defaulted)
    failed: set[str] = set()  # fields whose value was invalid: cross-checks on them are skipped
    for spec in _SPECS:
        raw: object | None = None
        label = ""
        if overrides.get(spec.name) is not None:
            raw, label = overrides[spec.name], spec.flag
        elif spec.env and env.get(spec.env, "").strip():
            raw, label = env[spec.env], spec.env
        elif spec.env and dot.get(spec.env, "").strip():
            raw, label = dot[spec.env], dot_label(spec.env)
        if raw is None:
            continue
        try:
            values[spec.name] = spec.parse(raw)
            explicit.add(spec.name)
        except ValueError as exc:
            shown = "" if spec.secret else f", got {_shorten(redact(str(raw)))!r}"
            problems.append(f"{label}: {exc}{shown}")
            failed.add(spec.name)

    defaults = Settings()
    merged = {f.name: values.get(f.name, getattr(defaults, f.name)) for f in fields(Settings)}

    # cross-field rules (only when the fields involved parsed cleanly)
    if bool(merged["key_id"]) != bool(merged["secret_key"]):
        have, missing = (
            ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")
            if merged["key_id"]
            else ("APCA_API_SECRET_KEY", "APCA_API_KEY_ID")
        )
        problems.append(f"{have} is set but {missing} is not: set both (paper/live) or neither (simulator)")
    if {"no_entry_minutes", "flatten_minutes"}.isdisjoint(failed):
        flatten, no_entry = merged["flatten_minutes"], merged["no_entry_minutes"]
        assert isinstance(flatten, int) and isinstance(no_entry, int)
        if flatten >= no_entry:
            problems.append(
                f"flatten minutes ({flatten}) must be less than no-entry minutes ({no_entry}): "
                "the bot stops entering before it flattens"
            )
    live = bool(merged["live"])
    base_url = str(merged["base_url"])
    if live and "base_url" not in explicit:
        merged["base_url"] = base_url = LIVE_URL  # --live alone means Alpaca's live endpoint
    if live and not is_live_url(base_url):
        problems.append(f"--live given but the trading URL is {base_url}, not {LIVE_URL}")
    if not live and is_live_url(base_url):
        problems.append(
            f"APCA_API_BASE_URL is the live endpoint {base_url}: refusing to trade live without --live"
        )
    if live and not (merged["key_id"] or merged["secret_key"]):
        problems.append("--live needs APCA_API_KEY_ID and APCA_API_SECRET_KEY (live keys)")

    if problems:
        raise ConfigError("\n".join(redact(p) for p in problems))
    return Settings(**merged)  # type: ignore[arg-type]


def _shorten(raw: object) -> str:
    s = raw if isinstance(raw, str) else str(raw)
    return s if len(s) <= 60 else s[:57] + "..."


# --------------------------------------------------------------------------------------------------
# argparse helpers shared by the command modules


def parse_date_flag(value: str, flag: str) -> date:
    """A YYYY-MM-DD flag value, or one clear line naming the flag."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{flag}: expected YYYY-MM-DD, got {value!r}") from None


def add_strategy_arguments(parser: argparse.ArgumentParser) -> None:
    """Strategy and risk flags. Defaults are None so that env/.env values apply when a flag is absent."""
    g = parser.add_argument_group("strategy")
    g.add_argument("--qty", type=int, metavar="N", help="shares per trade (default 100)")
    g.add_argument("--lookback", type=int, metavar="BARS", help="bars in the box (default 10)")
    g.add_argument(
        "--min-range-pct",
        type=float,
        metavar="PCT",
        help="minimum box range in percent of price (default 0.3)",
    )
    g.add_argument(
        "--no-entry-minutes",
        type=int,
        metavar="MIN",
        help="no new entry this close to the close (default 20)",
    )
    g.add_argument(
        "--flatten-minutes",
        type=int,
        metavar="MIN",
        help="flatten everything this close to the close (default 5)",
    )
    g.add_argument(
        "--max-trades", type=int, metavar="N", help="entries per symbol per day (default 0 = unlimited)"
    )
    g.add_argument(
        "--max-daily-loss",
        type=float,
        metavar="USD",
        help="stop trading for the day after this loss (0 = off)",
    )
    g.add_argument("--risk-pct", type=float, metavar="PCT", help="size each trade to risk PCT %% of equity")


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Broker, files and logging flags."""
    g = parser.add_argument_group("connection and files")
    g.add_argument("--feed", choices=("iex", "sip"), help="market data feed (default iex)")
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
        if name in _BY_NAME and value is not None:
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
