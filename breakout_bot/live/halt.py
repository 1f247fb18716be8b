"""The kill switch's memory: `breakout-bot flatten` writes it, every bot process obeys it until the next day."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

HALT_NAME = "breakout-bot.halt"


def halt_path(journal_path: Path) -> Path:
    """Next to the journal, so that every bot sharing the journal shares the switch."""
    return journal_path.parent / HALT_NAME


def engage(path: Path, day: dt.date, reason: str) -> None:
    payload = json.dumps({"date": day.isoformat(), "reason": reason}).encode()
    fd, tmp = tempfile.mkstemp(prefix=".halt-", dir=path.parent or Path("."))
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def halted_on(path: Path, day: dt.date) -> str | None:
    """The reason trading is halted on `day`, or None. An unreadable switch counts as engaged."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return f"kill switch file {path} is unreadable: remove it to trade"
    if data.get("date") == day.isoformat():
        return str(data.get("reason") or "kill switch engaged")
    return None
