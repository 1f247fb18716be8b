"""Benchmark: install time and virtual-environment size of each SDK, alone and with the bot, on clean venvs.

Each case: a new venv (not timed), pip upgraded in it (not timed), then one `pip install --no-cache-dir`
(timed: every wheel is downloaded or built again, none comes from pip's cache), then `du` of the venv.
Cases (the interpreter is --python, default python3.11; --python313 adds the 3.13 cases where it runs):

* `alpaca-trade-api` / `alpaca-py`: the SDK alone, at the versions the project allows;
* `bot (alpaca-trade-api)`: `pip install -e .` (what a trader installs);
* `bot + alpaca-py`: `pip install -e '.[alpaca-py]'` (both SDKs: alpaca-trade-api's pins win);
* `bot on alpaca-py alone` (3.13 only): what .ci/run's Python 3.13 leg installs without the dev tools —
  the dependencies but alpaca-trade-api, alpaca-py, then the project with --no-deps.

It also reports which packages pip had to build from source (no wheel for that Python), and the
versions of websockets, msgpack and urllib3 each case ends up with.

    nice .venv/bin/python benchmarks/sdk_install.py --python313 "$(pyenv root)/versions/3.13.0/bin/python3.13"

Needs PyPI (the machine's package index); takes a few minutes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WATCHED = ("websockets", "msgpack", "urllib3", "alpaca-trade-api", "alpaca-py")


@dataclass
class Case:
    name: str
    python: str
    args: list[list[str]]  # one or more `pip install` argument lists, timed together


@dataclass
class Result:
    case: Case
    seconds: float
    megabytes: float
    built: list[str]
    versions: dict[str, str]


def pip(venv: Path, *args: str, capture: bool = True) -> str:
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", *args],
        capture_output=capture,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return proc.stdout + proc.stderr if capture else ""


def run_case(case: Case, base: Path) -> Result:
    venv = base / re.sub(r"\W+", "-", f"{case.name}-{Path(case.python).name}")
    subprocess.run([case.python, "-m", "venv", str(venv)], check=True)
    pip(venv, "install", "--quiet", "--upgrade", "pip")
    log = ""
    t0 = time.perf_counter()
    for args in case.args:
        log += pip(venv, "install", "--no-cache-dir", "--progress-bar", "off", *args)
    seconds = time.perf_counter() - t0
    du = subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True, check=True).stdout
    built = sorted(set(re.findall(r"Building wheel for (\S+)", log)) - {"breakout-bot"})
    frozen = pip(venv, "list", "--format=freeze")
    versions = {}
    for line in frozen.splitlines():
        name, _, version = line.partition("==")
        if name.lower() in WATCHED:
            versions[name.lower()] = version
    return Result(case, seconds, float(du.split()[0]), built, versions)


def alpaca_py_alone(python: str) -> list[list[str]]:
    script = str(ROOT / ".ci" / "requirements-alpaca-py.py")
    out = subprocess.run([python, script, "--no-dev"], capture_output=True, text=True, check=True).stdout
    return [out.split(), ["--no-deps", "-e", "."]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--python", default="python3.11", help="interpreter for the first set (default python3.11)"
    )
    ap.add_argument("--python313", help="a Python 3.13 interpreter: adds the 3.13 cases")
    args = ap.parse_args()
    cases = []
    for python in [args.python, *([args.python313] if args.python313 else [])]:
        cases += [
            Case("alpaca-trade-api", python, [["alpaca-trade-api>=3.2,<4"]]),
            Case("alpaca-py", python, [["alpaca-py>=0.44,<0.45"]]),
            Case("bot (alpaca-trade-api)", python, [["-e", "."]]),
            Case("bot + alpaca-py", python, [["-e", ".[alpaca-py]"]]),
        ]
    if args.python313:
        cases.append(Case("bot on alpaca-py alone", args.python313, alpaca_py_alone(args.python313)))
    with tempfile.TemporaryDirectory(prefix="bb-install-") as tmp:
        results = []
        for case in cases:
            r = run_case(case, Path(tmp))
            results.append(r)
            print(f"done: {case.name} on {case.python} in {r.seconds:.1f} s", file=sys.stderr, flush=True)
    print(f"{'case':<26}{'python':<10}{'install s':>10}{'venv MB':>9}  built from source; versions")
    for r in results:
        version = subprocess.run(
            [r.case.python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        pins = ", ".join(f"{k} {v}" for k, v in sorted(r.versions.items()))
        print(
            f"{r.case.name:<26}{version:<10}{r.seconds:>10.1f}{r.megabytes:>9.0f}  "
            f"{', '.join(r.built) or 'nothing'}; {pins}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
