"""Every command in the README and docs/ runs as written (issue 17).

Each page's commands — its ```bash blocks line by line, the `breakout-bot …` commands quoted in its
prose and tables, and its ```python blocks — run in a scratch folder laid out like a fresh clone
(the shipped `data/sample/`, `examples/`, `.env.example`; no `.env`, no keys, no `../shared`), in page order.
Without keys a command either works (the simulator stands in) or must fail with its one clear line:
`EXPECTED` says which, per command. A command the table does not know fails the test: a new one must
be added there, runnable. Not run, and why (`NOT_RUN`): installing (the README's two set-up commands
are what `.ci/run` runs, in a fresh virtual environment), the test suite itself, the linters (also
`.ci/run`'s), and root-only deployment steps (sudo, systemctl, crontab).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sdk_choice import without_settings

REPO = Path(__file__).resolve().parents[1]
PAGES = [
    "README.md",
    "deploy/README.md",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
]
CONSOLE = Path(sys.executable).with_name("breakout-bot")

# What a command may do without keys: (exit code, a phrase its output must hold), by its first words.
EXPECTED: dict[str, tuple[int, str]] = {
    "breakout-bot run": (0, "finished: "),
    "breakout-bot backtest --symbol AAPL --data data/cache": (2, "error: --data: no such file or directory"),
    "breakout-bot backtest --data data/cache": (2, "error: --data: no such file or directory"),
    "breakout-bot backtest": (0, "net P&L"),
    "breakout-bot trades": (0, ""),
    "breakout-bot bars --symbol": (2, "error: bars needs Alpaca API keys"),
    "breakout-bot bars --universe": (2, "error: bars needs Alpaca API keys"),
    "breakout-bot bars --compact": (2, "error: --compact: data/cache holds no symbol folders"),
    "breakout-bot bars": (2, "error: --start and --end are required"),
    "breakout-bot check": (1, "no Alpaca API keys configured"),
    "breakout-bot verify": (2, "error: verify checks your Alpaca paper account: set APCA_API_KEY_ID"),
    "breakout-bot flatten --clear": (0, "kill switch"),
    "breakout-bot flatten": (2, "error: no Alpaca keys configured: nothing to flatten"),
    "breakout-bot schedule": (0, "breakout-bot"),
    "breakout-bot replay --date 2024-03-05 --simulated": (0, "verdict: decisions matched"),
    "breakout-bot sim --help": (0, "usage: breakout-bot sim"),
    "breakout-bot sim": (0, "listening on http://127.0.0.1:"),  # a server: started, asked, stopped
}
NOT_RUN = {
    "python3 -m venv": "installing: .ci/run does it in a fresh virtual environment",
    ". .venv/bin/activate": "installing",
    "pip install": "installing",
    "python3 .ci/requirements-alpaca-py.py": "installing (the packages of an alpaca-py-only venv)",
    "export BREAKOUT_SDK=": "installing (the SDK choice for the shell that installed alpaca-py alone)",
    "python -m pytest": "the test suite itself (.ci/run runs it word for word)",
    "ruff ": "a linter (.ci/run)",
    "mypy ": "a type checker (.ci/run)",
    "sudo ": "root-only deployment step",
    "journalctl ": "needs a systemd host",
    "crontab ": "edits the user's crontab",
    "H=": "needs a running simulator: test_the_curl_examples_run_against_the_simulator runs the block",
    "curl ": "as above",
}
OPTIONAL_IMPORTS = ("alpaca_trade_api", "alpaca")  # the SDKs: either may be missing (docs examples use one)
PLACEHOLDER = re.compile(r"[\[\]…|<>]|\bCOMMAND\b|\bFILE\b|\bDATE\b|\bSYMBOL\b|\bURL\b")


def fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def shell_lines(block: str) -> list[str]:
    """A bash block's commands: continuations joined, comments dropped, `a && b` split."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out: list[str] = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.extend(part.strip() for part in line.split(" && "))
    return out


def page_commands(page: str) -> list[str]:
    """The page's commands in order: its bash blocks, then the runnable ones quoted in its prose."""
    text = (REPO / page).read_text()
    commands = [c for block in fenced(text, "bash") for c in shell_lines(block)]
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for quoted in re.findall(r"`(breakout-bot [^`]+)`", prose):
        if not PLACEHOLDER.search(quoted):
            commands.append(quoted)
    seen: set[str] = set()
    return [c for c in commands if not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]


def expectation(command: str) -> tuple[int, str] | None:
    """(exit code, phrase) for a breakout-bot command; None for one not run (NOT_RUN)."""
    if any(command.startswith(prefix) for prefix in NOT_RUN):
        return None
    for prefix in sorted(EXPECTED, key=len, reverse=True):
        if command == prefix or command.startswith(prefix + " "):
            return EXPECTED[prefix]
    raise AssertionError(
        f"a command the docs test does not know: {command!r} (add it to EXPECTED or NOT_RUN)"
    )


def scratch_clone(tmp_path: Path) -> Path:
    """What a fresh clone gives a new user: the sample data and .env.example (and no ../shared)."""
    root = tmp_path / "clone"
    shutil.copytree(REPO / "data" / "sample", root / "data" / "sample")
    shutil.copy(REPO / ".env.example", root / ".env.example")
    shutil.copytree(REPO / "examples", root / "examples")
    return root


def env() -> dict[str, str]:
    clean = without_settings()
    clean.update({"COLUMNS": "100", "PYTHONWARNINGS": "ignore"})
    bin_dir = str(CONSOLE.parent)
    clean["PATH"] = bin_dir + os.pathsep + clean.get("PATH", "")
    return clean


def serve(argv: list[str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    return proc, first


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def run_command(command: str, cwd: Path) -> None:
    expected = expectation(command)
    if expected is None:
        return
    code, phrase = expected
    argv = shlex.split(command)
    argv[0] = str(CONSOLE)
    if command.startswith("breakout-bot sim") and "--help" not in argv:
        proc, first = serve(argv, cwd)
        assert first.startswith(phrase), (command, first, proc.stderr.read() if proc.stderr else "")
        _, err = stop(proc)
        assert proc.returncode == code and "Traceback" not in err, (command, err)
        return
    done = subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == code, (command, output[-2000:])
    assert phrase in output, (command, output[-2000:])
    assert "Traceback" not in output and "internal error" not in output, (command, output[-2000:])
    if code == 2:  # a refusal is one clear line (`check` without keys reports its ✘ lines instead)
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(errors) == 1, (command, done.stderr)


@pytest.mark.parametrize("page", PAGES)
def test_every_shell_command_of_the_page_runs_as_written(page: str, tmp_path: Path) -> None:
    root = scratch_clone(tmp_path)
    commands = page_commands(page)
    for command in commands:
        run_command(command, root)


def test_the_readme_has_its_commands() -> None:
    """The parser finds what a reader sees (so the test above cannot pass by finding nothing)."""
    commands = page_commands("README.md")
    assert (
        "breakout-bot backtest --symbol SPY --data data/sample/spy_1min.csv --report report.html --png report.png"
        in commands
    )
    assert "breakout-bot run --symbol AAPL" in commands and "breakout-bot trades --simulated" in commands
    assert any(c.startswith("breakout-bot bars ") for c in commands)
    assert len(commands) >= 12


def test_the_curl_examples_run_against_the_simulator(tmp_path: Path) -> None:
    """docs/simulator.md's curl block, as written, with URL set to the address `breakout-bot sim` printed."""
    text = (REPO / "docs" / "simulator.md").read_text()
    block = next(b for b in fenced(text, "bash") if b.lstrip().startswith("H="))
    root = scratch_clone(tmp_path)
    proc, first = serve([str(CONSOLE), "sim", "--start", "2024-03-04", "--speed", "0"], root)
    try:
        url = first.split()[-1]
        assert url.startswith("http://127.0.0.1:")
        script = f"set -e\nURL={url}\n{block}"
        done = subprocess.run(
            ["bash", "-c", script], cwd=root, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert '"is_open"' in done.stdout and '"bars"' in done.stdout and '"client_order_id"' in done.stdout
        assert '"now"' in done.stdout  # the /sim/clock answer
    finally:
        stop(proc)


@pytest.mark.parametrize("page", ["docs/simulator.md", "docs/backtesting.md"])
def test_every_python_example_runs(page: str, tmp_path: Path) -> None:
    root = scratch_clone(tmp_path)
    blocks = fenced((REPO / page).read_text(), "python")
    assert blocks
    ran = 0
    for block in blocks:
        missing = [
            m for m in OPTIONAL_IMPORTS if f"from {m} " in block and importlib.util.find_spec(m) is None
        ]
        if missing:
            continue  # an example of an SDK this install lacks (the 3.13 leg has alpaca-py alone)
        ran += 1
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=root,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (block, done.stderr[-2000:])
        assert time.monotonic() - started < 120
    if not ran:
        pytest.skip(f"every example of {page} needs a package this install lacks ({OPTIONAL_IMPORTS})")


def test_readme_setup_is_two_commands_and_ci_runs_the_test_one_word_for_word() -> None:
    text = (REPO / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("## ", 1)[0]
    install, tests = (block.strip() for block in fenced(quick, "bash"))
    assert (
        install
        == "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && breakout-bot run --symbol AAPL"
    )
    assert "[dev]" not in install  # a trader gets what a trader needs
    assert tests == "pip install -e '.[dev]' && python -m pytest -q -n 2"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert f"{tests} || exit 1" in ci  # word for word; set -e alone would not stop on a failed install
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"types-requests<2.31.0.7"' in pyproject  # later ones need urllib3>=2: pip backtracked


def test_the_tests_look_at_no_fixed_path_outside_the_repository() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "tests").rglob("*.py")
        if re.search(r"['\"]/work/", p.read_text())
    ]
    assert offenders == []


def test_the_docs_do_not_send_readers_to_shared() -> None:
    pages = [REPO / p for p in PAGES]
    assert [
        str(p.relative_to(REPO))
        for p in pages
        if "../shared" in p.read_text() or "DESIGN.md" in p.read_text()
    ] == []
