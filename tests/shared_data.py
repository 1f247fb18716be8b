"""Where the shared real one-minute bars are (../shared/data/minute beside the repo; never copied in).

Tests that use them skip cleanly where the folder is absent."""

from __future__ import annotations

import os
from pathlib import Path


def shared_minute_dir() -> Path | None:
    """$BREAKOUT_SHARED_DATA, else ../shared/data/minute beside the repo, else /work/shared/data/minute."""
    env = os.environ.get("BREAKOUT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parents[1]
    for shared in (repo.parent / "shared", Path("/work/shared")):
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
