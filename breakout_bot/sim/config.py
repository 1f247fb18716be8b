"""SimConfig: everything that defines one simulated world (same config + same requests = same fills)."""

from __future__ import annotations

import datetime as dt
import pathlib
from dataclasses import dataclass


@dataclass(frozen=True)
class SimConfig:
    symbols: tuple[str, ...] = ("AAPL",)
    start: dt.date | None = None  # None: next XNYS session from today (synthetic) / first session in --data
    speed: float = 600.0  # virtual seconds per wall second; 0 = frozen (tests drive it)
    seed: int = 7
    data: pathlib.Path | None = None  # CSV/Parquet one-minute bars; None = synthetic
    key: str = "simkey"
    secret: str = "simsecret"
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port
    partial_fills: bool = False
    latency_ms: int = 0
    initial_cash: float = 100_000.0
    start_time: dt.time = dt.time(9, 25)  # America/New_York, on the start date
    rate_limit: int = 200  # requests per 60 virtual seconds, per key and per API (trading / data)
    margin_multiplier: float = 4.0  # intraday buying power = multiplier x equity - gross exposure
