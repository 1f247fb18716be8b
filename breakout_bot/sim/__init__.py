"""Alpaca-compatible simulator: REST trading v2 + market data v2 + both websockets, a deterministic
matching engine over a virtual clock and the real NYSE calendar. See docs/simulator.md.

    from breakout_bot.sim import SimConfig, SimServer, VirtualClock
    server = SimServer(SimConfig(symbols=("AAPL",), speed=0))
    base_url = server.start()   # "http://127.0.0.1:PORT"
    server.clock.advance(60)
    server.stop()

The parts: app.py (the server: lifecycle, the pump, every request's guard), exchange.py with book.py,
account.py and matching.py (orders, the account, matching: models, no JSON), wire.py (all of Alpaca's JSON),
routes_trading.py, routes_data.py, websockets.py, control.py (/sim/* and the fault API), tape.py
(ticks from bars), clock.py (virtual time), orders.py (order requests), acceptance.py (which orders
are refused), assets.py, faults.py, quota.py, config.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import SimServer
    from .clock import VirtualClock
    from .config import SimConfig
    from .errors import ApiError
    from .exchange import Exchange, RequestRecord

# Imported on first use: a SimConfig needs none of the server's web stack (aiohttp, TLS contexts), which
# takes ~1 s to import.
_HOME = {
    "ApiError": "errors",
    "Exchange": "exchange",
    "RequestRecord": "exchange",
    "SimConfig": "config",
    "SimServer": "app",
    "VirtualClock": "clock",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = ["ApiError", "Exchange", "RequestRecord", "SimConfig", "SimServer", "VirtualClock"]
