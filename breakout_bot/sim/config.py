"""SimConfig: everything that defines one simulated world (same config + same requests = same fills).

The defaults are Alpaca's behaviour (docs/simulator.md, "How the simulator matches Alpaca"); the
switches below them turn on refusals a given account may meet (a free data plan, the legacy
pattern-day-trader protection) or turn off one that Alpaca applies (the wash-trade check).
"""

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
    # A cancel is a request: processed this many virtual ms after DELETE answered 204 (shares stay held
    # meanwhile). At 1 s or more the order shows `pending_cancel` first (most cancels never do).
    cancel_latency_ms: int = 300
    # When a bracket's stop fills, its take-profit is reported "canceled" (Alpaca support) or "replaced"
    # (alpaca-py #198, a user's report).
    take_profit_on_stop: str = "canceled"
    wash_trade_check: bool = True  # refuse a simple order opposite an open order of the symbol
    wash_trade_status: int = 403  # 403 / 40310000 (probes, 2026) or 422 / 42210000 (alpaca-java #145)
    legacy_pdt: frozenset[str] = frozenset()  # {"entries", "exits"}: refuse them with 40310100 (pre-2026)
    free_plan: bool = False  # no SIP subscription: recent SIP bars 403, the sip stream 409
    iex_missing_pct: float = 5.0  # feed=iex: share of minutes without an IEX print (no bar)
    data_auth_timeout_s: float = 10.0  # wall seconds a data-stream client has to authenticate (404)
    updated_bar_pct: float = 10.0  # share of bars recomputed 30 s after their close (`u` on updatedBars)
    trade_interval_s: float | None = None  # a denser tape: a trade every N s between the bar's anchors
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
