"""Real one-minute bars for the tests.

`SAMPLE_SPY` ships in the repository (data/sample/, QuantConnect Lean, Apache-2.0): tests that need
real bars use it and never skip. A few tests use more real files: the folder `$BREAKOUT_SHARED_DATA`
names, else `../shared/data/minute` beside the repository; where neither holds them they skip cleanly.
No fixed path outside the repository is ever looked at.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SPY = REPO / "data" / "sample" / "spy_1min.csv"  # SPY, 7 regular sessions (2013-10-04 … 2023-08-03)


def shared_minute_dir() -> Path | None:
    """$BREAKOUT_SHARED_DATA, else ../shared/data/minute beside the repo; None when neither has the files."""
    env = os.environ.get("BREAKOUT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    shared = REPO.parent / "shared"
    candidates += [shared / "data" / "minute", shared / "data"]
    for c in candidates:
        if (c / "lean_spy_1min.csv").is_file():
            return c
        if (c / "minute" / "lean_spy_1min.csv").is_file():
            return c / "minute"
    return None


def shared_minute_file(name: str) -> Path | None:
    """One file of that folder, or None."""
    folder = shared_minute_dir()
    path = None if folder is None else folder / name
    return path if path is not None and path.is_file() else None
