"""Settings: CLI flags > process environment > .env file > defaults, validated with clear errors.

The .env file is read by envfile.py (never loaded into ``os.environ``). An empty value counts as "not
set", so a copied ``.env.example`` with ``APCA_API_KEY_ID=`` means "no keys". Every problem is
collected and reported at once, one line each, naming where the bad value came from (``--qty``,
``BREAKOUT_QTY``, or ``BREAKOUT_QTY (.env line 3)``). Secret values never appear in any message or repr.

The strategy's parameters are a nested `Params` (core/params.py: one source of their defaults); each
setting's environment variable, flag and parser are its `Spec` below (the CLI's flags use the same).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..core.params import PARAM_NAMES, Params
from ..errors import ConfigError
from ..redaction import Redactor, mask_key_id, url_scheme, url_secrets
from .envfile import read_dotenv, typo_problems
from .values import boolean, choice, float_in, int_in, key, notify_urls, path, symbols, text, url

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
LIVE_HOST = "api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
STREAM_URL = "https://stream.data.alpaca.markets"
# The SDKs that can carry the Alpaca adapter (broker/sdks.py knows how to load each); the first is the default.
SDKS = ("alpaca-trade-api", "alpaca-py")
DEFAULT_SDK = SDKS[0]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # a trading URL here is a simulator, not Alpaca
SIMULATED_DIR = "simulated"


def simulated_path(path: Path) -> Path:
    """Where a simulated run keeps what it would otherwise write at `path` (journal, kill switch, log):
    a `simulated/` folder beside it, so simulated fills never mix with paper or live ones."""
    return path.parent / SIMULATED_DIR / path.name


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved, validated configuration. ``repr``/``str`` redact the keys."""

    key_id: str | None = None
    secret_key: str | None = None
    base_url: str = PAPER_URL
    data_url: str = DATA_URL
    stream_url: str = STREAM_URL
    feed: str = "iex"
    sdk: str = DEFAULT_SDK
    live: bool = False
    symbols: tuple[str, ...] = ()
    params: Params = field(default_factory=Params)  # the strategy's (core/params.py holds the defaults)
    journal_path: Path = Path("past_trades.json")
    log_dir: Path = Path("logs")
    log_file: Path | None = None
    json_logs: bool = False
    bars_mode: str = "poll"
    speed: float = 0.0  # simulator: virtual seconds per wall second; 0 = as fast as possible
    days: int = 1
    notify: tuple[str, ...] = ()  # apprise URLs (issue 21); they hold tokens: secrets
    dashboard: str | None = None  # [HOST:]PORT of `run --dashboard` (issue 21)
    dashboard_token: str | None = None  # needed off loopback: a secret
    warnings: tuple[str, ...] = ()  # what was ignored (unknown BREAKOUT_ variables): the CLI prints them

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
        keys = (self.secret_key, self.key_id, self.dashboard_token)
        return (*(s for s in keys if s), *url_secrets(self.notify))

    def redacted(self) -> dict[str, Any]:
        """All fields, keys redacted: safe to print (``breakout-bot check``) or log."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["key_id"] = mask_key_id(self.key_id)
        out["secret_key"] = "***" if self.secret_key else None
        out["notify"] = tuple(url_scheme(u) for u in self.notify)
        out["dashboard_token"] = "***" if self.dashboard_token else None
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({inner})"

    __str__ = __repr__


def is_live_url(base_url: str) -> bool:
    """True for Alpaca's live trading host (api.alpaca.markets), not paper-api or anything else."""
    host = (urlsplit(base_url.strip()).hostname or "").lower().rstrip(".")
    return host == LIVE_HOST


@dataclass(frozen=True)
class Spec:
    name: str  # Settings field and override key
    env: str | None  # None: flag only (e.g. --live must never come from a file)
    flag: str
    parse: Callable[[object], object]
    secret: bool = False


SPECS: tuple[Spec, ...] = (
    Spec("key_id", "APCA_API_KEY_ID", "--key-id", key, secret=True),
    Spec("secret_key", "APCA_API_SECRET_KEY", "--secret-key", key, secret=True),
    Spec("base_url", "APCA_API_BASE_URL", "--base-url", url("https", "http")),
    Spec("data_url", "APCA_API_DATA_URL", "--data-url", url("https", "http")),
    Spec("stream_url", "APCA_API_STREAM_URL", "--stream-url", url("https", "http", "wss", "ws")),
    Spec("feed", "BREAKOUT_FEED", "--feed", choice("iex", "sip")),
    Spec("sdk", "BREAKOUT_SDK", "--sdk", choice(*SDKS)),
    Spec("live", None, "--live", boolean),
    Spec("symbols", "BREAKOUT_SYMBOLS", "--symbol", symbols),
    Spec("qty", "BREAKOUT_QTY", "--qty", int_in(1, None, "expected a positive whole number")),
    Spec("lookback", "BREAKOUT_LOOKBACK", "--lookback", int_in(2, 390, "expected a whole number 2..390")),
    Spec(
        "min_range_pct",
        "BREAKOUT_MIN_RANGE_PCT",
        "--min-range-pct",
        float_in(0, 20, "expected a percentage above 0 and below 20 (0.3 means 0.3 %)"),
    ),
    Spec(
        "no_entry_minutes",
        "BREAKOUT_NO_ENTRY_MINUTES",
        "--no-entry-minutes",
        int_in(1, 390, "expected whole minutes 1..390"),
    ),
    Spec(
        "flatten_minutes",
        "BREAKOUT_FLATTEN_MINUTES",
        "--flatten-minutes",
        int_in(1, 390, "expected whole minutes 1..390"),
    ),
    Spec(
        "max_trades", "BREAKOUT_MAX_TRADES", "--max-trades", int_in(0, None, "expected a whole number >= 0")
    ),
    Spec(
        "max_daily_loss",
        "BREAKOUT_MAX_DAILY_LOSS",
        "--max-daily-loss",
        float_in(0, None, "expected dollars >= 0 (0 = off)", lo_open=False),
    ),
    Spec(
        "risk_pct",
        "BREAKOUT_RISK_PCT",
        "--risk-pct",
        float_in(0, 100, "expected a percentage above 0 and below 100"),
    ),
    Spec(
        "max_positions",
        "BREAKOUT_MAX_POSITIONS",
        "--max-positions",
        int_in(0, None, "expected a whole number >= 0 (0 = no limit)"),
    ),
    Spec("journal_path", "BREAKOUT_JOURNAL", "--journal", path),
    Spec("log_dir", "BREAKOUT_LOG_DIR", "--log-dir", path),
    Spec("log_file", "BREAKOUT_LOG_FILE", "--log-file", path),
    Spec("json_logs", "BREAKOUT_JSON_LOGS", "--json-logs", boolean),
    Spec("bars_mode", "BREAKOUT_BARS_MODE", "--bars", choice("poll", "stream")),
    Spec(
        "speed",
        "BREAKOUT_SPEED",
        "--speed",
        float_in(0, None, "expected a number >= 0 (0 = as fast as possible)", lo_open=False),
    ),
    Spec("days", "BREAKOUT_DAYS", "--days", int_in(1, None, "expected a whole number >= 1")),
    Spec("notify", "BREAKOUT_NOTIFY", "--notify", notify_urls, secret=True),
    Spec("dashboard", "BREAKOUT_DASHBOARD", "--dashboard", text),
    Spec("dashboard_token", "BREAKOUT_DASHBOARD_TOKEN", "--dashboard-token", key, secret=True),
)
BY_NAME = {s.name: s for s in SPECS}
ENV_VARS: tuple[str, ...] = tuple(s.env for s in SPECS if s.env)
# BREAKOUT_ variables that are not settings: read where they are used, known so they draw no warning.
OTHER_ENV_VARS: tuple[str, ...] = ("BREAKOUT_CACHE_DIR",)  # market/calendar.py: the schedule's cache


def load_settings(
    overrides: Mapping[str, object | None] | None = None,
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = Path(".env"),
    *,
    dotenv_required: bool = False,
    trading: bool = True,
) -> Settings:
    """Resolve settings. ``overrides``: CLI values by Settings field name (None = not given).

    ``env`` defaults to ``os.environ``; ``dotenv_path=None`` skips the .env file. Raises ConfigError
    listing every problem, one per line. ``trading=False`` is for commands that send no order (check,
    trades): the live URL is accepted without --live, since nothing can trade.
    """
    overrides = dict(overrides or {})
    env = os.environ if env is None else env
    problems: list[str] = []

    unknown = sorted(k for k in overrides if k not in BY_NAME)
    if unknown:  # a programming error in a command module, but say it clearly
        problems.extend(f"unknown setting {k!r}" for k in unknown)

    dot: dict[str, str] = {}
    dot_lines: dict[str, int] = {}
    if dotenv_path is not None:
        dot, dot_lines, dot_problems = read_dotenv(dotenv_path, dotenv_required)
        problems.extend(dot_problems)

    # Key values are never printed, but a key pasted into the wrong variable would be echoed as that
    # variable's bad value: every raw key value seen in any source is redacted from every message.
    redact = Redactor(
        str(src.get(name) or "")
        for spec in SPECS
        if spec.secret
        for src, name in ((overrides, spec.name), (env, spec.env or ""), (dot, spec.env or ""))
    )

    def dot_label(var: str) -> str:
        return f"{var} ({dotenv_path} line {dot_lines.get(var, '?')})"

    warnings: list[str] = []
    known = ENV_VARS + OTHER_ENV_VARS
    problems.extend(typo_problems(sorted(env), lambda n: n, known, warnings))
    problems.extend(typo_problems(sorted(dot), dot_label, known, warnings))

    values: dict[str, object] = {}
    explicit: set[str] = set()  # fields set by some source (not defaulted)
    failed: set[str] = set()  # fields whose value was invalid: cross-checks on them are skipped
    for spec in SPECS:
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
    merged = {
        f.name: values.get(f.name, getattr(defaults, f.name))
        for f in fields(Settings)
        if f.name not in ("params", "warnings")
    }
    merged.update({name: values.get(name, getattr(defaults.params, name)) for name in PARAM_NAMES})

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
    if trading and not live and is_live_url(base_url):
        problems.append(
            f"APCA_API_BASE_URL is the live endpoint {base_url}: refusing to trade live without --live"
        )
    if live and not (merged["key_id"] or merged["secret_key"]):
        problems.append("--live needs APCA_API_KEY_ID and APCA_API_SECRET_KEY (live keys)")

    if problems:
        raise ConfigError("\n".join(redact(p) for p in problems))
    params = Params(**{name: merged.pop(name) for name in PARAM_NAMES})  # type: ignore[arg-type]
    return Settings(**merged, params=params, warnings=tuple(redact(w) for w in warnings))  # type: ignore[arg-type]


def _shorten(raw: object) -> str:
    s = raw if isinstance(raw, str) else str(raw)
    return s if len(s) <= 60 else s[:57] + "..."
