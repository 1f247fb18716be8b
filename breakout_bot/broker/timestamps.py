"""Alpaca's timestamps as tz-aware datetimes: one parser for every adapter (and the fault checker,
which reads the simulator's JSON)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgpack

UTC = timezone.utc


def parse_time(value: object) -> datetime:
    """An Alpaca timestamp (RFC 3339 string with up to ns precision, msgpack Timestamp, epoch ns int,
    or datetime) as a tz-aware datetime. Naive inputs are taken as UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, msgpack.Timestamp):
        return datetime.fromtimestamp(value.seconds, UTC) + timedelta(microseconds=value.nanoseconds // 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value // 1_000_000_000, UTC) + timedelta(
            microseconds=(value % 1_000_000_000) // 1000
        )
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # Fractional seconds to exactly 6 digits (Alpaca sends nanoseconds; Python 3.10 takes only 3 or
        # 6): the digits right after the dot, not those of a UTC offset after them.
        if "." in text:
            head, _, rest = text.partition(".")
            i = 0
            while i < len(rest) and rest[i].isdigit():
                i += 1
            text = f"{head}.{(rest[:i] + '000000')[:6]}{rest[i:]}"
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a timestamp: {value!r}")


def parse_optional_time(value: object) -> datetime | None:
    """parse_time, with None or "" (a field Alpaca leaves empty) as None."""
    return None if value in (None, "") else parse_time(value)
