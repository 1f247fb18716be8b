"""Print what .ci/run's Python 3.13 leg installs, one requirement a line: pyproject's dependencies and
its alpaca-py and dev extras (`--no-dev`: not the dev tools), without alpaca-trade-api (the project
itself goes in with --no-deps). README, "Python versions and the two SDKs", uses it for a trader's venv.

Why without it: alpaca-trade-api 3.2 pins msgpack 1.0.3, websockets <11 and PyYAML 6.0.1, none of which
has a Python 3.13 wheel (pip builds them from source, msgpack and PyYAML without their C parts), and,
installed beside alpaca-py, its pins win: alpaca-py would be tested on websockets 10.4, msgpack 1.0.3's
pure-Python fallback and urllib3 1.26, the stack of 2022. This leg tests alpaca-py as its users get it.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LEFT_OUT = {"alpaca-trade-api", "breakout-bot"}  # the old SDK; the project's own self-reference

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
extras = project["optional-dependencies"]
dev = [] if "--no-dev" in sys.argv[1:] else extras["dev"]
for requirement in [*project["dependencies"], *extras["alpaca-py"], *dev]:
    if re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower() not in LEFT_OUT:
        print(requirement)
