"""Help, `.env.example` and the README say what the code does (issue 17 items 9 and 12)."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from shared_data import SAMPLE_SPY

from breakout_bot.cli.main import COMMANDS
from breakout_bot.config.settings import ENV_VARS, OTHER_ENV_VARS

from .helpers import bot

REPO = Path(__file__).resolve().parents[2]


def traded_qty(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[int]:
    out = tmp_path / "trades.json"
    proc = bot(
        "backtest", "--symbol", "SPY", "--data", str(SAMPLE_SPY), "--trades-out", str(out), *args,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {int(t["qty"]) for t in json.loads(out.read_text())}


def test_a_backtest_rehearses_the_configured_bot(tmp_path: Path) -> None:
    """Same precedence as `run`: flag > environment > .env > default (BREAKOUT_QTY=5 trades 5, not 100)."""
    assert traded_qty(tmp_path) == {100}
    (tmp_path / ".env").write_text("BREAKOUT_QTY=7\n")
    assert traded_qty(tmp_path) == {7}
    assert traded_qty(tmp_path, env={"BREAKOUT_QTY": "5"}) == {5}
    assert traded_qty(tmp_path, "--qty", "3", env={"BREAKOUT_QTY": "5"}) == {3}


def test_command_descriptions_say_what_the_command_does(tmp_path: Path) -> None:
    assert "calendar" not in COMMANDS["schedule"].help and "systemd" in COMMANDS["schedule"].help
    assert "round-trip trades" in COMMANDS["trades"].help
    sim_help = bot("sim", "--help", cwd=tmp_path).stdout
    run_help = bot("run", "--help", cwd=tmp_path).stdout
    squash = lambda s: " ".join(s.split())  # noqa: E731
    assert "default 600" in squash(sim_help) and "0 = frozen" in squash(sim_help)
    assert "default 0: as fast as possible" in squash(run_help)


def test_env_example_shows_the_defaults() -> None:
    text = (REPO / ".env.example").read_text()
    assert re.search(r"^#?BREAKOUT_SPEED=0$", text, flags=re.M)
    for var in ENV_VARS:
        assert var in text, var


def test_every_breakout_variable_the_code_reads_is_known() -> None:
    """A BREAKOUT_ variable read outside the settings (os.environ) must be known to them, or setting it
    draws an "unknown variable" warning (BREAKOUT_CACHE_DIR did)."""
    read = set()
    for path in (REPO / "breakout_bot").rglob("*.py"):
        read |= set(re.findall(r"environ(?:\.get\(|\[)\"(BREAKOUT_[A-Z_]+)\"", path.read_text()))
    assert read, "the pattern finds the variables the code reads"
    assert read <= set(ENV_VARS) | set(OTHER_ENV_VARS)
    example = (REPO / ".env.example").read_text()
    assert all(var in example for var in OTHER_ENV_VARS)


def test_the_readme_tables_list_every_variable_and_command() -> None:
    text = (REPO / "README.md").read_text()
    for var in (*ENV_VARS, *OTHER_ENV_VARS):
        assert f"`{var}`" in text, var
    for command in COMMANDS:
        assert f"`breakout-bot {command}" in text, command


def test_docs_say_nothing_that_stopped_being_true() -> None:
    simulator = (REPO / "docs" / "simulator.md").read_text()
    assert "until the CLI is wired" not in simulator
    patterns = [p for p in (REPO / ".gitignore").read_text().split() if not p.startswith("#")]
    for output in ("report.html", "report.png", "trades.csv", "past_trades.json", "logs/", "simulated/"):
        assert any(fnmatch.fnmatch(output, p) for p in patterns), output
