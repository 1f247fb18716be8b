"""Shared test configuration (kept minimal: helpers live next to the tests that use them)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from sdk_choice import each_sdk

# No per-example deadline: CI machines stall; max_examples stays the test's own choice.
settings.register_profile("breakout", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("breakout")


@pytest.fixture(params=each_sdk())
def sdk(request: pytest.FixtureRequest) -> str:
    """The SDK under the Alpaca adapter: a test taking this fixture runs once per SDK."""
    return str(request.param)
