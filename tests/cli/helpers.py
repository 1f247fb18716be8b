"""Running `breakout-bot` as a user does: a subprocess in a scratch folder, with no keys and no
BREAKOUT_ settings from the developer's environment."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from sdk_choice import without_settings

CONSOLE = Path(sys.executable).with_name("breakout-bot")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = without_settings()
    env.update({"COLUMNS": "80", "PYTHONWARNINGS": "ignore"})
    env.update(extra or {})
    return env


def bot(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`breakout-bot ARGS` in `cwd`; stdout is a pipe (not a terminal), as under cron."""
    return subprocess.run(
        [str(CONSOLE), *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one `error:` line a failed command printed (asserting it is one line, no traceback)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and len(lines) == 1, proc.stderr
    return errors[0]
