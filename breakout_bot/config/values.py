"""The configuration's value parsers: each takes a str (environment, .env or flag text) or an already
typed value (argparse) and returns the value, or raises ValueError with an "expected ..." text."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

_SYMBOL = re.compile(r"^[A-Z.\-]{1,10}$")
_INT = re.compile(r"^[+-]?\d+$")
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


def text(v: object) -> str:
    return v.strip() if isinstance(v, str) else str(v)


def int_in(lo: int, hi: int | None, what: str) -> Callable[[object], int]:
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


def float_in(lo: float, hi: float | None, what: str, lo_open: bool = True) -> Callable[[object], float]:
    def parse(v: object) -> float:
        if isinstance(v, bool):
            raise ValueError(what)
        try:
            x = float(v) if isinstance(v, (int, float)) else float(text(v))
        except ValueError:
            raise ValueError(what) from None
        if not math.isfinite(x) or x < lo or (lo_open and x == lo) or (hi is not None and x >= hi):
            raise ValueError(what)
        return x

    return parse


def choice(*options: str) -> Callable[[object], str]:
    def parse(v: object) -> str:
        s = text(v).lower()
        if s not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return s

    return parse


def boolean(v: object) -> bool:
    if isinstance(v, bool):
        return v
    s = text(v).lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError("expected true or false (1/0, yes/no)")


def url(*schemes: str) -> Callable[[object], str]:
    def parse(v: object) -> str:
        s = text(v).rstrip("/")
        # The Alpaca dashboard shows the endpoint with /v2, but the client appends /v2 itself.
        if s.endswith("/v2"):
            s = s[: -len("/v2")]
        parts = urlsplit(s)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"expected a URL starting with {' or '.join(f'{x}://' for x in schemes)}")
        return s

    return parse


def symbols(v: object) -> tuple[str, ...]:
    items: list[str] = []
    raw = [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else [v]
    for chunk in raw:
        items.extend(p for p in re.split(r"[,\s]+", text(chunk)) if p)
    out: list[str] = []
    for sym in items:
        s = sym.upper()
        if not _SYMBOL.match(s):
            raise ValueError(f"expected ticker symbols (1-10 of A-Z . -), got {sym!r}")
        if s not in out:
            out.append(s)
    return tuple(out)


def key(v: object) -> str:
    s = text(v)
    if any(c.isspace() for c in s) or not s.isprintable():
        raise ValueError("contains whitespace or control characters (check for a paste error)")
    return s


def path(v: object) -> Path:
    s = text(v)
    if not s:
        raise ValueError("expected a file or directory path")
    return Path(s).expanduser()


def notify_urls(v: object) -> tuple[str, ...]:
    """apprise URLs: repeated flags or a comma-separated list (BREAKOUT_NOTIFY), each scheme://..."""
    raw = [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else [v]
    out: list[str] = []
    for chunk in raw:
        for item in (p.strip() for p in text(chunk).split(",")):
            if not item:
                continue
            if "://" not in item:
                raise ValueError("expected apprise URLs (scheme://…, e.g. tgram://, ntfy://, json://)")
            if item not in out:
                out.append(item)
    return tuple(out)
