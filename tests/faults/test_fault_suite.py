"""A fast subset of the randomized crash/fault suite (the full one is benchmarks/faults.py).

Each case runs one simulated session with the bot as a real subprocess against a simulator subprocess,
injecting seeded random faults (kill -9 + restart, corrupt journal, stream drops, 429/5xx bursts incl.
"the order arrived but the response failed", latency, partial fills, rejections, clock jumps; and issue
16's: SIGSTOP/SIGCONT stalls, connection resets and black holes from the suite's TCP proxy, SIGTERM in a
trade, a real 429 storm, a fault in the flatten window), then checks every reliability invariant against
the simulator's own records. Seed 103 runs three symbols, bars from the websocket and partial fills.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sdk_choice import TEST_SDK, needs

ROOT = Path(__file__).resolve().parents[2]
ALREADY_ON_ALPACA_PY = pytest.mark.skipif(
    TEST_SDK == "alpaca-py", reason="the other seeds run on alpaca-py here"
)


def _suite() -> ModuleType:
    name = "breakout_faults_benchmark"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "faults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("seed", "sdk"),
    [
        (11, None),
        (23, None),
        (42, None),
        (103, None),
        pytest.param(42, "alpaca-py", marks=[needs("alpaca-py"), ALREADY_ON_ALPACA_PY]),
    ],
    ids=["11", "23", "42", "103", "42-alpaca-py"],
)  # None: the bot's own choice (TEST_SDK); one seed on alpaca-py as well
def test_session_under_random_faults_keeps_every_invariant(
    seed: int, sdk: str | None, tmp_path: Path
) -> None:
    result = _suite().run_one(seed, tmp_path, wall_limit=120.0, sdk=sdk)
    assert sum(result.faults.values()) > 0
    assert result.violations == [], (
        f"seed {seed}: {[str(v) for v in result.violations]}; faults {dict(result.faults)}; "
        f"logs in {result.run_dir}"
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_session_under_alpacas_account_rules_keeps_every_invariant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15's faults alone (legacy PDT refusals, a plan losing SIP, slow cancels, a 406 on the data
    stream, a price that moves before the order) plus kills, on a run trading --feed sip --bars stream."""
    suite = _suite()
    weights = {**dict.fromkeys(suite.ALPACA_RULE_FAULTS, 3), "kill": 1}
    monkeypatch.setattr(suite, "FAULT_WEIGHTS", weights)
    monkeypatch.setattr(suite, "alpaca_rule_run_flags", lambda seed: ["--feed", "sip", "--bars", "stream"])
    result = suite.run_one(7, tmp_path, wall_limit=120.0, intensity=2.0)
    injected = {k for k, n in result.faults.items() if n}
    assert len(injected & set(suite.ALPACA_RULE_FAULTS)) >= 3, result.faults
    assert result.violations == [], (
        f"{[str(v) for v in result.violations]}; faults {dict(result.faults)}; logs in {result.run_dir}"
    )
