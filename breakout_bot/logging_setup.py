"""Logging: a rotating log file (text or JSON lines), WARNING+ on stderr, secrets always redacted.

The terminal belongs to the status panel, so only warnings and errors go to stderr; everything else
(and every traceback) goes to the file. Timestamps are ISO 8601 with their UTC offset, in the zone and
on the clock the CLI chooses (`use_log_time`): New York time, and in a simulated run the simulator's
virtual time, so a log line and the bar it talks about show the same minute. The redacting filter sits on every handler, so a secret
reaches neither the file nor the terminal, whichever logger (ours or a library's) emitted it.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from breakout_bot.errors import ConfigError
from breakout_bot.redaction import Redactor

LOG_NAME = "breakout-bot.log"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_MARK = "_breakout_bot_handler"  # tags our handlers so a second setup_logging replaces them

_redactor = Redactor()
_log_file: Path | None = None
_root_level_before: int | None = None  # restored by teardown_logging
# record.created (epoch seconds) -> the time a line shows; None: the machine's local time.
_log_time: Callable[[float], datetime] | None = None


def use_log_time(clock: Callable[[float], datetime] | None) -> Callable[[float], datetime] | None:
    """Stamp log lines with `clock(record.created)` (an aware datetime) from now on; returns the
    previous choice, so a simulated run can put it back."""
    global _log_time
    previous, _log_time = _log_time, clock
    return previous


def redact(text: str) -> str:
    """`text` without the secrets given to setup_logging."""
    return _redactor(text)


def current_log_file() -> Path | None:
    """The file setup_logging last opened, or None if logging is not set up."""
    return _log_file


class RedactingFilter(logging.Filter):
    """Rewrites a record so that none of ``secrets`` appears in its message, args or traceback."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redact.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as logging does
            return True
        # Freeze the formatted message: args may be objects whose str() holds a secret.
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Format the traceback now, so the handler's formatter uses our redacted copy.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class _Formatter(logging.Formatter):
    """ISO 8601 with UTC offset and milliseconds (unambiguous across DST and machines), on the clock
    `use_log_time` chose."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        clock = _log_time
        when = clock(record.created) if clock else datetime.fromtimestamp(record.created).astimezone()
        return when.isoformat(timespec="milliseconds")


class _ConsoleFormatter(logging.Formatter):
    """``LEVEL: message``, one line: tracebacks belong in the log file, never on the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname}: {record.getMessage()}"


def _console_wanted(record: logging.LogRecord) -> bool:
    # logger.error(..., extra={"console": False}): for messages the CLI already printed its own way
    return getattr(record, "console", True) is not False


class JsonFormatter(_Formatter):
    """One JSON object per line: ts, level, logger, message, and exc when there is a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(
    log_dir: Path,
    log_file: Path | None,
    json_logs: bool,
    verbose: bool,
    secrets: Sequence[str],
) -> Path:
    """Configure the root logger; returns the log file path. Unwritable → ConfigError (one line).

    ``verbose`` adds DEBUG records to the file; the console stays at WARNING (and one line per
    record) because the terminal shows the status panel. A record logged with
    ``extra={"console": False}`` goes to the file only. Calling setup_logging again replaces the
    handlers it installed before (tests, or a command that re-reads its settings).
    """
    global _redactor, _log_file, _root_level_before
    path = Path(log_file) if log_file is not None else Path(log_dir) / LOG_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # delay=False opens the file now, so a permission problem surfaces here, not at the first line
        file_handler = logging.handlers.TimedRotatingFileHandler(
            path, when="midnight", backupCount=30, encoding="utf-8"
        )
    except OSError as exc:
        raise ConfigError(f"cannot write log file {path}: {exc.strerror or exc}") from None

    redactor = RedactingFilter(secrets)
    formatter: logging.Formatter = JsonFormatter() if json_logs else _Formatter(TEXT_FORMAT)
    file_handler.setFormatter(formatter)
    file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)

    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    console.setFormatter(_ConsoleFormatter())
    console.addFilter(_console_wanted)

    root = logging.getLogger()
    if _root_level_before is None:
        _root_level_before = root.level
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    for handler in (file_handler, console):
        handler.addFilter(redactor)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)

    _redactor = redactor.redact
    _log_file = path
    return path


def teardown_logging() -> None:
    """Remove and close the handlers setup_logging installed (tests; clean shutdown)."""
    global _redactor, _log_file, _root_level_before
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    if _root_level_before is not None:
        root.setLevel(_root_level_before)
    _redactor = Redactor()
    _log_file = None
    _root_level_before = None
