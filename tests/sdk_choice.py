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


# What a subprocess of the bot keeps of the test's environment when a test strips the developer's
# settings (APCA_*, BREAKOUT_*): the SDK the run tests (the 3.13 leg has alpaca-py alone) and the cache.
KEPT_SETTINGS = ("BREAKOUT_SDK", "BREAKOUT_CACHE_DIR")


def without_settings() -> dict[str, str]:
    """os.environ without the developer's APCA_ and BREAKOUT_ settings, but the ones KEPT_SETTINGS names."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "BREAKOUT_")) or k in KEPT_SETTINGS
    }
