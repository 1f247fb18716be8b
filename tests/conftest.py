"""Shared test configuration (kept minimal: helpers live next to the tests that use them)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# No per-example deadline: CI machines stall; max_examples stays the test's own choice.
settings.register_profile("breakout", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("breakout")
