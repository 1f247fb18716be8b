"""Query-string values of the REST routes, refused the way Alpaca refuses them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ..core.model import NEW_YORK
from .errors import ApiError, invalid


def query_time(text: str | None, refuse: Callable[[str], ApiError] = invalid) -> float | None:
    """RFC3339, or YYYY-MM-DD (New York midnight); None when absent. Naive times are UTC."""
    if not text:
        return None
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(0, 0), NEW_YORK).timestamp()
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise refuse(text) from None
    return (d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).timestamp()


def query_int(text: str | None, default: int, name: str, lo: int, hi: int) -> int:
    if text in (None, ""):
        return default
    try:
        v = int(str(text))
    except ValueError:
        raise invalid(f"invalid {name}") from None
    return max(lo, min(hi, v))


def query_bool(text: str | None) -> bool:
    return str(text).lower() in ("1", "true", "yes")


def query_symbols(text: str | None) -> list[str]:
    return [s.strip().upper() for s in (text or "").split(",") if s.strip()]
