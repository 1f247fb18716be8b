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

ROOT = Path(__file__).resolve().parents[2]


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
@pytest.mark.parametrize("seed", [11, 23, 42, 103])
def test_session_under_random_faults_keeps_every_invariant(seed: int, tmp_path: Path) -> None:
    result = _suite().run_one(seed, tmp_path, wall_limit=120.0)
    assert sum(result.faults.values()) > 0
    assert result.violations == [], (
        f"seed {seed}: {[str(v) for v in result.violations]}; faults {dict(result.faults)}; "
        f"logs in {result.run_dir}"
    )
