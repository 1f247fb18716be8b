"""The breakout-bot command line (registry, lazy commands, error contract) and logging_setup."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from breakout_bot import __version__, logging_setup
from breakout_bot.cli import main as cli
from breakout_bot.errors import (
    BotError,
    BrokerAuthError,
    BrokerRejected,
    BrokerUnavailable,
    ConfigError,
    JournalError,
    UserError,
)
from breakout_bot.logging_setup import RedactingFilter, setup_logging, teardown_logging

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cr3tDISTINCTsecretVALUEzz9"
KEY = "PKDISTINCTKEYID12345"


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    yield
    teardown_logging()


def fake_command(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    run: object,
    configure: object | None = None,
) -> str:
    """Register a command backed by an in-memory module; returns the module name."""
    mod_name = f"_fake_breakout_cmd_{name}"
    mod = types.ModuleType(mod_name)

    def default_configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--flavour", default="plain", help="a distinctive option")

    mod.configure = configure or default_configure  # type: ignore[attr-defined]
    mod.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, mod_name, mod)
    monkeypatch.setitem(cli.COMMANDS, name, cli.CommandSpec(f"the {name} command", mod_name))
    return mod_name


# -- registry, help, version ---------------------------------------------------------------------


EXPECTED = {
    "run": "breakout_bot.cli.commands.run",
    "check": "breakout_bot.cli.commands.check",
    "backtest": "breakout_bot.cli.commands.backtest",
    "bars": "breakout_bot.cli.commands.bars",
    "replay": "breakout_bot.cli.commands.replay",
    "trades": "breakout_bot.cli.commands.trades",
    "sim": "breakout_bot.cli.commands.sim",
    "flatten": "breakout_bot.cli.commands.flatten",
    "verify": "breakout_bot.cli.commands.verify",
    "dashboard": "breakout_bot.cli.commands.dashboard",
    "notify": "breakout_bot.cli.commands.notify",
    "schedule": "breakout_bot.cli.commands.schedule",
}


def test_registry() -> None:
    assert {name: spec.module for name, spec in cli.COMMANDS.items()} == EXPECTED
    for spec in cli.COMMANDS.values():
        help_text, module = spec  # (help, module path) tuple
        assert help_text and "\n" not in help_text and module.startswith("breakout_bot.")


def test_help_lists_all_commands(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: one line per command
    assert cli.main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, spec in cli.COMMANDS.items():
        assert any(line.split() == [name, *spec.help.split()] for line in lines), name


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"breakout-bot {__version__}" == "breakout-bot 0.1.0"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "required" in capsys.readouterr().err


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_not_built_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(
        cli.COMMANDS, "run", cli.CommandSpec("trade", "breakout_bot.cli.commands.no_such_module")
    )
    assert cli.main(["run", "--symbol", "AAPL"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "breakout-bot run: not built yet\n"
    assert captured.out == ""
    # --help on it says the same, and the top-level help still lists it
    assert cli.main(["run", "--help"]) == 2
    assert capsys.readouterr().err == "breakout-bot run: not built yet\n"
    assert cli.main(["--help"]) == 0
    assert "run" in capsys.readouterr().out


def test_missing_parent_package_is_not_built(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "sim", cli.CommandSpec("sim", "breakout_bot.nopkg.cli"))
    assert cli.main(["sim"]) == 2
    assert capsys.readouterr().err == "breakout-bot sim: not built yet\n"


def test_missing_dependency_inside_a_module_is_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "brokencmd_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cmd.py").write_text("import some_dependency_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(cli.COMMANDS, "check", cli.CommandSpec("check", "brokencmd_pkg.cmd"))
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("internal error: ModuleNotFoundError: ")
    assert "not built yet" not in err


def test_command_help_shows_its_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_command(monkeypatch, "check", lambda args: 0)
    assert cli.main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--flavour" in out and "a distinctive option" in out


def test_command_runs_with_its_args(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[argparse.Namespace] = []

    def run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 7

    fake_command(monkeypatch, "trades", run)
    assert cli.main(["trades", "--flavour", "salty"]) == 7
    assert seen[0].flavour == "salty" and seen[0].command == "trades"


def test_only_the_selected_command_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_command(monkeypatch, "trades", lambda args: 0)
    monkeypatch.setitem(
        cli.COMMANDS, "run", cli.CommandSpec("trade", "breakout_bot.cli.commands.no_such_module")
    )
    assert cli.main(["trades"]) == 0  # the unbuilt `run` does not get in the way


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from breakout_bot.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(['--help'])\n"
        "mods = [m for m in sys.modules if m.startswith(('breakout_bot.cli.commands.', 'breakout_bot.sim'))]\n"
        "print(rc, mods)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0 []"


# -- error contract ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code"),
    [(UserError("bad input"), 2), (ConfigError("bad config"), 2), (JournalError("journal broke"), 5)],
)
def test_user_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: UserError, code: int
) -> None:
    def run(args: argparse.Namespace) -> int:
        raise exc

    fake_command(monkeypatch, "bars", run)
    assert cli.main(["bars"]) == code
    captured = capsys.readouterr()
    assert captured.err == f"error: {exc}\n"
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (
            BrokerAuthError("GET /v2/account: request is not authorized (HTTP 401)"),
            3,
            "Alpaca refused the API keys (GET /v2/account: request is not authorized (HTTP 401)); "
            "check APCA_API_KEY_ID / APCA_API_SECRET_KEY",
        ),
        (BrokerUnavailable("GET /v2/clock: timeout"), 4, "broker unreachable: GET /v2/clock: timeout"),
        (
            BrokerRejected("POST /v2/orders: sub-penny (HTTP 422)", status=422),
            1,
            "POST /v2/orders: sub-penny (HTTP 422)",
        ),
    ],
)
def test_broker_errors_become_one_line_at_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: BotError, code: int, line: str
) -> None:
    """The error tree's types carry the exit code; the CLI alone words them (cli.user_message)."""

    def run(args: argparse.Namespace) -> int:
        raise exc

    fake_command(monkeypatch, "bars", run)
    assert cli.main(["bars"]) == code
    assert capsys.readouterr().err == f"error: {line}\n"


def test_multi_line_user_error_prefixes_each_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(args: argparse.Namespace) -> int:
        raise ConfigError("BREAKOUT_QTY: expected a positive whole number, got 'ten'\n--lookback: too big")

    fake_command(monkeypatch, "run", run)
    assert cli.main(["run"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: BREAKOUT_QTY: expected a positive whole number, got 'ten'",
        "error: --lookback: too big",
    ]


def test_user_error_custom_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(args: argparse.Namespace) -> int:
        raise UserError("nope", exit_code=9)

    fake_command(monkeypatch, "run", run)
    assert cli.main(["run"]) == 9


def test_configure_raising_user_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def configure(parser: argparse.ArgumentParser) -> None:
        raise ConfigError("cannot configure")

    fake_command(monkeypatch, "run", lambda a: 0, configure)
    assert cli.main(["run"]) == 2
    assert capsys.readouterr().err == "error: cannot configure\n"


def test_unexpected_exception_one_line_and_traceback_in_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_path = setup_logging(tmp_path / "logs", None, False, False, [SECRET])

    def run(args: argparse.Namespace) -> int:
        def deep() -> None:
            raise ValueError(f"boom with {SECRET}\nsecond line")

        deep()
        return 0

    fake_command(monkeypatch, "backtest", run)
    assert cli.main(["backtest"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"internal error: ValueError: boom with *** (details in the log file {log_path})\n"
    assert "Traceback" not in captured.err and SECRET not in captured.err
    text = log_path.read_text()
    assert "Traceback" in text and "in deep" in text and "internal error" in text
    assert SECRET not in text


def test_unexpected_exception_before_logging_setup_uses_default_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)

    def run(args: argparse.Namespace) -> int:
        raise RuntimeError(f"early failure {SECRET}")

    fake_command(monkeypatch, "check", run)
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and SECRET not in err
    assert (
        "internal error: RuntimeError: early failure *** (details in the log file logs/breakout-bot.log)"
        in err
    )
    text = (tmp_path / "logs" / "breakout-bot.log").read_text()
    assert "Traceback" in text and "early failure ***" in text and SECRET not in text


def test_unexpected_exception_without_any_writable_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").write_text("a file where the log directory should be")

    def run(args: argparse.Namespace) -> int:
        raise KeyError("k")

    fake_command(monkeypatch, "check", run)
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert err == "internal error: KeyError: 'k' (no log file could be written)\n"


def test_keyboard_interrupt(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def run(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    fake_command(monkeypatch, "run", run)
    assert cli.main(["run"]) == 130
    err = capsys.readouterr().err
    assert err == "interrupted\n"


# -- the installed entry points ------------------------------------------------------------------


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("breakout-bot")
    if not exe.exists():
        pytest.skip("console script not installed next to this interpreter")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for name in cli.COMMANDS:
        assert name in proc.stdout
    assert proc.stderr == ""


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "breakout_bot", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "breakout-bot 0.1.0"


# -- logging_setup -------------------------------------------------------------------------------


def test_log_file_text_format_and_levels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = setup_logging(tmp_path / "logs", None, False, False, [])
    assert path == tmp_path / "logs" / "breakout-bot.log"
    lg = logging.getLogger("breakout_bot.test")
    lg.debug("debug line")
    lg.info("info line %d", 42)
    lg.warning("warn line")
    text = path.read_text(encoding="utf-8")
    assert "debug line" not in text
    assert " INFO    breakout_bot.test: info line 42" in text
    assert "WARNING breakout_bot.test: warn line" in text
    first = text.splitlines()[0]
    assert first[:4].isdigit() and first[10] == "T"  # ISO 8601 timestamp
    err = capsys.readouterr().err
    assert err == "WARNING: warn line\n"  # console: WARNING+ only


def test_verbose_adds_debug_to_file_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = setup_logging(tmp_path, tmp_path / "custom.log", False, True, [])
    assert path == tmp_path / "custom.log"
    logging.getLogger("x").debug("fine detail")
    assert "fine detail" in path.read_text()
    assert capsys.readouterr().err == ""


def test_json_logs_parse(tmp_path: Path) -> None:
    path = setup_logging(tmp_path, None, True, False, [SECRET])
    lg = logging.getLogger("breakout_bot.json")
    lg.info("hello %s", "wörld")
    try:
        raise RuntimeError(f"bad {SECRET}")
    except RuntimeError:
        lg.exception("it failed", extra={"console": False})
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 2
    assert entries[0]["message"] == "hello wörld" and entries[0]["level"] == "INFO"
    assert entries[0]["logger"] == "breakout_bot.json" and "ts" in entries[0]
    assert "RuntimeError: bad ***" in entries[1]["exc"] and SECRET not in lines[1]


def test_redaction_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = setup_logging(tmp_path, None, False, False, [SECRET, KEY, "", "ab"])
    lg = logging.getLogger("breakout_bot.secret")

    class Creds:
        def __str__(self) -> str:
            return f"Creds({KEY}, {SECRET})"

    lg.info(f"in the message {SECRET}")
    lg.info("in the args %s / %r", SECRET, {"key": KEY})
    lg.warning("object arg %s", Creds())
    try:
        raise ConnectionError(f"401 for key {KEY} secret {SECRET}")
    except ConnectionError:
        lg.exception("request failed")
    lg.info("stack", stack_info=True)
    text = path.read_text()
    err = capsys.readouterr().err
    for output in (text, err):
        assert SECRET not in output and KEY not in output
    assert "in the message ***" in text and "in the args *** / {'key': '***'}" in text
    assert "Creds(***, ***)" in text and "ConnectionError: 401 for key *** secret ***" in text
    lg.info("about abstract labs")
    assert "about abstract labs" in path.read_text()  # too-short "secrets" ("ab") are not redacted
    assert "WARNING: object arg Creds(***, ***)" in err
    assert "ERROR: request failed" in err and "Traceback" not in err  # console: one line, no traceback
    assert logging_setup.redact(f"x{SECRET}y") == "x***y"


def test_redacting_filter_standalone() -> None:
    f = RedactingFilter([SECRET])
    rec = logging.LogRecord("n", logging.INFO, __file__, 1, "value=%s", (SECRET,), None)
    assert f.filter(rec) is True
    assert rec.getMessage() == "value=***"


def test_setup_twice_replaces_handlers(tmp_path: Path) -> None:
    setup_logging(tmp_path / "a", None, False, False, [])
    setup_logging(tmp_path / "b", None, False, False, [])
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_breakout_bot_handler", False)]
    assert len(ours) == 2  # one file + one console
    logging.getLogger("t").info("only in b")
    assert "only in b" in (tmp_path / "b" / "breakout-bot.log").read_text()
    assert "only in b" not in (tmp_path / "a" / "breakout-bot.log").read_text()


def test_rotation_settings(tmp_path: Path) -> None:
    setup_logging(tmp_path, None, False, False, [])
    handlers = [
        h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.TimedRotatingFileHandler)
    ]
    assert len(handlers) == 1
    assert handlers[0].when == "MIDNIGHT" and handlers[0].backupCount == 30
    assert handlers[0].encoding == "utf-8"


def test_unwritable_log_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file, not a directory")
    with pytest.raises(ConfigError) as info:
        setup_logging(blocker / "sub", None, False, False, [])
    msg = str(info.value)
    assert msg.startswith(f"cannot write log file {blocker / 'sub' / 'breakout-bot.log'}: ")
    assert "\n" not in msg


def test_permission_denied_log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        probe_ok = True
        try:
            (d / "probe").write_text("x")
        except PermissionError:
            probe_ok = False
        if probe_ok:  # running as root: permissions are not enforced, inject what the kernel says

            def denied(*a: object, **k: object) -> None:
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(logging.handlers.TimedRotatingFileHandler, "__init__", denied)
        with pytest.raises(ConfigError) as info:
            setup_logging(d, None, False, False, [])
        assert str(info.value) == f"cannot write log file {d / 'breakout-bot.log'}: Permission denied"
    finally:
        d.chmod(0o700)
