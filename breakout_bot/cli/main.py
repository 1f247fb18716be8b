"""``breakout-bot``: the command line.

Commands are registered by name with a one-line help and the dotted path of the module that
implements them. A command module exposes::

    def configure(parser: argparse.ArgumentParser) -> None   # add its flags
    def run(args: argparse.Namespace) -> int                  # do the work, return the exit code

Modules are imported lazily, only for the command being run, so ``--help`` stays fast and a command
whose module does not exist yet answers "not built yet" instead of breaking the others.

Errors: a BotError (errors.py) prints ``error: <message>`` (`user_message`) and exits with its code;
anything else prints one ``internal error: ...`` line and exits 1, with the traceback in the log
file only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import NamedTuple, NoReturn

from breakout_bot import __version__
from breakout_bot.errors import BotError, BrokerAuthError, BrokerUnavailable, FeedNotPermitted, UserError

log = logging.getLogger("breakout_bot.cli")

PROG = "breakout-bot"


class CommandSpec(NamedTuple):
    help: str
    module: str


COMMANDS: dict[str, CommandSpec] = {
    "run": CommandSpec(
        "trade the breakout strategy (simulator, paper, or --live)", "breakout_bot.cli.commands.run"
    ),
    "check": CommandSpec(
        "check configuration, keys and connectivity without trading", "breakout_bot.cli.commands.check"
    ),
    "backtest": CommandSpec(
        "replay historical bars through the same strategy", "breakout_bot.cli.commands.backtest"
    ),
    "bars": CommandSpec("download and cache one-minute bars", "breakout_bot.cli.commands.bars"),
    "replay": CommandSpec(
        "line a traded day up with its backtest: decisions, slippage, P&L",
        "breakout_bot.cli.commands.replay",
    ),
    "trades": CommandSpec(
        "list round-trip trades with P&L per trade, day and account, from the fill journal",
        "breakout_bot.cli.commands.trades",
    ),
    "sim": CommandSpec(
        "run the Alpaca-compatible simulator server on loopback", "breakout_bot.cli.commands.sim"
    ),
    "verify": CommandSpec(
        "check Alpaca's rules the bot relies on, on your paper account", "breakout_bot.cli.commands.verify"
    ),
    "flatten": CommandSpec(
        "kill switch: cancel all orders, close all positions, no new entries today (--clear lifts it)",
        "breakout_bot.cli.commands.flatten",
    ),
    "dashboard": CommandSpec(
        "a read-only web page of past days from the journal: fills, P&L, charts",
        "breakout_bot.cli.commands.dashboard",
    ),
    "notify": CommandSpec(
        "send a test message to a notification URL (apprise: Telegram, Discord, ntfy, e-mail, JSON…)",
        "breakout_bot.cli.commands.notify",
    ),
    "schedule": CommandSpec(
        "print a systemd service and timer, or a crontab line, that run the bot every trading day",
        "breakout_bot.cli.commands.schedule",
    ),
}


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line, like every other error (argparse prints the whole usage first)."""

    help_prog: str | None = None  # whose --help to point at (the command's, for its unknown flags)

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        message = _INVALID_VALUE.sub(lambda m: f"expected {_KINDS[m.group(1)]}, got ", message)
        self.exit(2, f"error: {message} (`{self.help_prog or self.prog} --help` lists the options)\n")


_INVALID_VALUE = re.compile(r"invalid (int|float) value: ")
_KINDS = {"int": "a whole number", "float": "a number"}


class NotBuilt(Exception):
    """The command's module does not exist (yet)."""


def _import_command(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only the command's own module (or a missing parent package) means "not built yet"; a
        # missing dependency *inside* an existing module is a real error and propagates.
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise NotBuilt(module) from None
        raise


class CommandListFormatter(argparse.HelpFormatter):
    """argparse measures the command names without the two spaces it indents them by, so a name of
    nine letters ("dashboard") would push its help onto a line of its own: count them."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if action.help is not argparse.SUPPRESS and action.choices and isinstance(action.choices, dict):
            longest = max(len(name) for name in action.choices) + self._current_indent + 2
            self._action_max_length = max(self._action_max_length, longest)


def build_parser() -> tuple[OneLineParser, dict[str, OneLineParser]]:
    """The top-level parser with every command listed but none configured (no imports), and each
    command's own parser."""
    parser = OneLineParser(
        prog=PROG,
        description="Intraday breakout trading bot for US stocks on Alpaca.",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options.",
        formatter_class=CommandListFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = {
        name: sub.add_parser(name, help=spec.help, description=spec.help) for name, spec in COMMANDS.items()
    }
    return parser, commands


def _command_name(argv: list[str]) -> str | None:
    # The top-level parser has no option taking a value, so the first non-option token is the
    # command. Found before parsing so that only that command's module is imported and its
    # subparser configured before argparse handles `COMMAND --help`.
    for token in argv:
        if token == "--":
            return None
        if not token.startswith("-"):
            return token
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, commands = build_parser()
        name = _command_name(argv)
        module: ModuleType | None = None
        if name in COMMANDS:
            try:
                module = _import_command(COMMANDS[name].module)
            except NotBuilt:
                print(f"{PROG} {name}: not built yet", file=sys.stderr)
                return 2
            module.configure(commands[name])
            parser.help_prog = commands[name].prog
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors: argparse already printed
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        assert module is not None  # parse_args accepted a command, so it is one of COMMANDS
        _log_in_new_york_time()
        return int(module.run(args))
    except BotError as exc:
        for line in (_redact(user_message(exc)) or type(exc).__name__).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `breakout-bot trades | head`: the reader left. Point stdout at devnull so the interpreter's
        # final flush does not raise again (recipe from the Python signal docs).
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        return _internal_error(exc)


# Commands whose work is over when they return: output written and closed, no thread, child process or
# open temporary file left. After them the executable skips the interpreter's teardown (`console`).
_NOTHING_LEFT_RUNNING = frozenset({"backtest"})


def console() -> NoReturn:
    """The `breakout-bot` executable: `main()`, then exit with its code.

    After a command in `_NOTHING_LEFT_RUNNING` the interpreter's own teardown is skipped: freeing the
    modules and objects of pandas, pyarrow and numba costs ~0.15 s, 5-8 % of a whole backtest of 1M
    bars, and does nothing a user could see (mypy exits the same way). Output and log files are
    flushed first; atexit handlers are not run, hence the list of commands rather than every one
    (`run` has stream threads and a journal to release). With another thread still alive it exits the
    ordinary way."""
    argv = sys.argv[1:]
    code = main(argv)
    if _command_name(argv) in _NOTHING_LEFT_RUNNING and threading.active_count() == 1:
        logging.shutdown()  # flushes and closes the log file
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # the reader of a pipe left: what it did not read is gone anyway
            code = code or 1
        os._exit(code)
    sys.exit(code)


def _log_in_new_york_time() -> None:
    """Log lines in the market's time, whatever the machine's zone (a simulated run swaps in its clock)."""
    from datetime import datetime

    from breakout_bot import logging_setup
    from breakout_bot.core.model import NEW_YORK

    logging_setup.use_log_time(lambda created: datetime.fromtimestamp(created, NEW_YORK))


def user_message(exc: BotError) -> str:
    """What the user reads for an error: the one place where errors become sentences."""
    if isinstance(exc, BrokerAuthError):
        return f"Alpaca refused the API keys ({exc}); check APCA_API_KEY_ID / APCA_API_SECRET_KEY"
    if isinstance(exc, BrokerUnavailable):
        return f"broker unreachable: {exc}"
    if isinstance(exc, FeedNotPermitted) and "--feed iex" not in str(exc):
        return f"{exc}: your data plan does not include this feed; use --feed iex (free plans)"
    return str(exc)


def _internal_error(exc: Exception) -> int:
    where = _ensure_log_file()
    log.error("internal error", exc_info=exc, extra={"console": False})
    message = (str(exc).strip().splitlines() or [""])[0]
    if len(message) > 300:
        message = message[:297] + "..."
    detail = f"details in the log file {where}" if where else "no log file could be written"
    print(f"internal error: {type(exc).__name__}: {_redact(message)} ({detail})", file=sys.stderr)
    return 1


def _ensure_log_file() -> Path | None:
    """The log file to hold the traceback; sets up a default one if the command never did."""
    from breakout_bot import logging_setup

    current = logging_setup.current_log_file()
    if current is not None:
        return current
    # The command failed before configuring logging. Without a handler, Python's last-resort handler
    # would print the traceback on the terminal; log to the default file instead, redacting the
    # keys we can know without the (possibly broken) configuration.
    secrets = [v for v in (os.environ.get("APCA_API_SECRET_KEY"), os.environ.get("APCA_API_KEY_ID")) if v]
    try:
        return logging_setup.setup_logging(Path("logs"), None, False, False, secrets)
    except UserError:
        logging.getLogger().addHandler(logging.NullHandler())
        return None


def _redact(text: str) -> str:
    from breakout_bot import logging_setup

    return logging_setup.redact(text)


if __name__ == "__main__":
    sys.exit(main())
