"""SimConfig: everything that defines one simulated world (same config + same requests = same fills)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import pathlib
from dataclasses import dataclass

DEFAULT_KEY, DEFAULT_SECRET = "simkey", "simsecret"


@dataclass(frozen=True)
class SimConfig:
    symbols: tuple[str, ...] = ("AAPL",)
    start: dt.date | None = None  # None: next XNYS session from today (synthetic) / first session in --data
    speed: float = 600.0  # virtual seconds per wall second; 0 = frozen (tests drive it)
    seed: int = 7  # the synthetic bars (prices and trades are reproducible from it)
    # Order, execution and account ids. None (the default): drawn afresh for each simulator instance,
    # so two runs never share an id (a journal keyed by execution id would drop the second run's
    # fills); an int: the same ids again (tests that compare two runs id for id).
    id_seed: int | None = None
    data: pathlib.Path | None = None  # CSV/Parquet one-minute bars; None = synthetic
    key: str = DEFAULT_KEY
    secret: str = DEFAULT_SECRET
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port
    partial_fills: bool = False
    latency_ms: int = 0
    initial_cash: float = 100_000.0
    start_time: dt.time = dt.time(9, 25)  # America/New_York, on the start date
    rate_limit: int = 200  # requests per 60 virtual seconds, per key and per API (trading / data)
    margin_multiplier: float = 4.0  # intraday buying power = multiplier x equity - gross exposure
    # The /sim/* control API (clock, faults, the simulator's records) answers anyone on loopback; on
    # any other address it wants the API key headers too. None: decided by `host`.
    control_needs_key: bool | None = None

    @property
    def loopback(self) -> bool:
        """Bound to loopback only (127.0.0.0/8, ::1, localhost): no other machine can reach it."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    @property
    def guards_control(self) -> bool:
        return (not self.loopback) if self.control_needs_key is None else self.control_needs_key
