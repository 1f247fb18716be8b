"""Choosing the SDK: --sdk / BREAKOUT_SDK, the default, and one clear line when the chosen one is missing
(the CLI as a subprocess, with the SDK's package made unimportable)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sdk_choice import needs

from breakout_bot.broker.sdks import DEFAULT_SDK, SDKS, installed, sdk_binding
from breakout_bot.config.settings import load_settings
from breakout_bot.errors import ConfigError

PACKAGES = {"alpaca-trade-api": "alpaca_trade_api", "alpaca-py": "alpaca"}


def test_the_default_is_alpaca_trade_api() -> None:
    assert DEFAULT_SDK == SDKS[0] == "alpaca-trade-api"
    assert load_settings(env={}, dotenv_path=None).sdk == "alpaca-trade-api"
    assert load_settings(env={"BREAKOUT_SDK": "alpaca-py"}, dotenv_path=None).sdk == "alpaca-py"
    assert load_settings(
        {"sdk": "alpaca-py"}, env={"BREAKOUT_SDK": "alpaca-trade-api"}, dotenv_path=None
    ).sdk == ("alpaca-py")  # the flag wins
    with pytest.raises(ConfigError, match=r"BREAKOUT_SDK: expected one of alpaca-trade-api, alpaca-py"):
        load_settings(env={"BREAKOUT_SDK": "alpaca"}, dotenv_path=None)


@pytest.mark.parametrize("name", SDKS)
def test_each_name_has_a_binding(name: str) -> None:
    if not installed(name):
        with pytest.raises(ConfigError, match="not installed"):
            sdk_binding(name)
        return
    binding = sdk_binding(name)
    assert binding.name == name and binding.version[:1].isdigit()
    with pytest.raises(ConfigError, match="unknown SDK"):
        sdk_binding("ib-insync")


def cli_without(
    package: str, *argv: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`breakout-bot ARGV` in a fresh interpreter where `package` cannot be imported."""
    code = (
        f"import sys; sys.modules[{package!r}] = None\n"
        "from breakout_bot.cli.main import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "BREAKOUT_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, **(env or {})},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("chosen", "argv", "env"),
    [
        ("alpaca-py", ["--sdk", "alpaca-py"], {}),
        ("alpaca-py", [], {"BREAKOUT_SDK": "alpaca-py"}),
        ("alpaca-trade-api", [], {}),  # the default
    ],
    ids=["flag", "environment", "default"],
)
def test_a_missing_sdk_is_one_line(chosen: str, argv: list[str], env: dict[str, str], tmp_path: Path) -> None:
    proc = cli_without(PACKAGES[chosen], "run", "--symbol", "AAPL", *argv, cwd=tmp_path, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: the {chosen} SDK is not installed: install it with `pip install -e ")
    assert "--sdk" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "simulated" / "past_trades.json").exists()  # nothing started before the check


@needs("alpaca-py")
def test_the_other_sdk_runs_without_the_default_one(tmp_path: Path) -> None:
    """A simulated session on alpaca-py with alpaca-trade-api unimportable: nothing else needs it."""
    proc = cli_without("alpaca_trade_api", "run", "--symbol", "AAPL", "--sdk", "alpaca-py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SIMULATED" in proc.stdout
    assert '"symbol": "AAPL"' in (tmp_path / "simulated" / "past_trades.json").read_text()
