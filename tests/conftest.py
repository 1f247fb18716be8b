"""Shared test configuration (kept minimal: helpers live next to the tests that use them)."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sdk_choice import each_sdk

# breakout-bot's own caches (the XNYS schedule) go to a temporary folder, not the user's ~/.cache; the
# tests' subprocesses inherit it.
os.environ.setdefault("BREAKOUT_CACHE_DIR", str(Path(tempfile.gettempdir()) / "breakout-bot-test-cache"))

# A suite started in the background of a non-interactive shell (`cmd &`, nohup) inherits SIGINT
# ignored, and so would every bot the tests start: Python leaves an ignored SIGINT ignored, so the
# Ctrl-C tests would see it do nothing. A handler here resets to the default at each child's exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# No per-example deadline: CI machines stall; max_examples stays the test's own choice.
settings.register_profile("breakout", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("breakout")


@pytest.fixture(params=each_sdk())
def sdk(request: pytest.FixtureRequest) -> str:
    """The SDK under the Alpaca adapter: a test taking this fixture runs once per SDK."""
    return str(request.param)
