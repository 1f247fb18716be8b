"""The kill switch's memory: `breakout-bot flatten` writes it, every bot process obeys it until the next day.

The file records the day, the reason and the mode it was engaged for (paper or live). A simulated run
ignores a switch engaged for a real account (it trades no real account); files written before the mode
was recorded count as real. `flatten --clear` removes the file (`clear`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

HALT_NAME = "breakout-bot.halt"
SIMULATOR = "simulator"


@dataclass(frozen=True)
class Halt:
    """An engaged kill switch: why, and for which mode (None: an old file, counts as real)."""

    reason: str
    mode: str | None = None


def halt_path(journal_path: Path) -> Path:
    """Next to the journal, so that every bot sharing the journal shares the switch."""
    return journal_path.parent / HALT_NAME


def engage(path: Path, day: dt.date, reason: str, mode: str | None = None) -> None:
    payload = json.dumps({"date": day.isoformat(), "reason": reason, "mode": mode}).encode()
    fd, tmp = tempfile.mkstemp(prefix=".halt-", dir=path.parent or Path("."))
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def clear(path: Path) -> bool:
    """Lift the switch; False when it was not engaged."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def halt_on(path: Path, day: dt.date, mode: str | None = None) -> Halt | None:
    """The kill switch engaged for `day` that binds a bot in `mode`, or None. An unreadable switch
    counts as engaged (for every mode: we cannot tell whose it is)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return Halt(f"kill switch file {path} is unreadable: remove it to trade")
    if not isinstance(data, dict) or data.get("date") != day.isoformat():
        return None
    engaged_for = data.get("mode")
    engaged_for = str(engaged_for) if engaged_for else None
    if mode == SIMULATOR and engaged_for != SIMULATOR:
        return None  # a real account's switch: a simulated run trades no real account
    return Halt(str(data.get("reason") or "kill switch engaged"), engaged_for)


def halted_on(path: Path, day: dt.date, mode: str | None = None) -> str | None:
    """The reason trading is halted on `day` for a bot in `mode`, or None."""
    halt = halt_on(path, day, mode)
    return None if halt is None else halt.reason
