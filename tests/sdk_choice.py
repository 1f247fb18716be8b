"""Which SDK a test drives. The adapter's own tests run on every SDK (the `sdk` fixture of conftest.py,
its leg skipped where that SDK is not installed); the others (the bot end to end, the CLI) run on the
one BREAKOUT_SDK names, as the CLI does (.ci/run's Python 3.13 leg sets alpaca-py), else the default."""

from __future__ import annotations

import os
from typing import Any

import pytest

from breakout_bot.broker.sdks import DEFAULT_SDK, SDKS, installed

TEST_SDK = os.environ.get("BREAKOUT_SDK", "").strip() or DEFAULT_SDK


def each_sdk() -> list[Any]:
    """pytest params: every SDK, skipped cleanly where it is not installed."""
    return [
        pytest.param(
            name, id=name, marks=pytest.mark.skipif(not installed(name), reason=f"{name} not installed")
        )
        for name in SDKS
    ]


def needs(name: str) -> pytest.MarkDecorator:
    """Skip a test of one SDK where that SDK is not installed."""
    return pytest.mark.skipif(not installed(name), reason=f"{name} not installed")
