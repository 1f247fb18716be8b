"""Alpaca-compatible simulator: REST trading v2 + market data v2 + both websockets, a deterministic
matching engine over a virtual clock and the real NYSE calendar. See docs/simulator.md.

    from breakout_bot.sim import SimConfig, SimServer, VirtualClock
    server = SimServer(SimConfig(symbols=("AAPL",), speed=0))
    base_url = server.start()   # "http://127.0.0.1:PORT"
    server.clock.advance(60)
    server.stop()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .clock import VirtualClock
    from .config import SimConfig
    from .engine import Engine, RequestRecord
    from .errors import ApiError
    from .server import SimServer

# Imported on first use: a SimConfig needs none of the server's web stack (aiohttp, TLS contexts), which
# takes ~1 s to import.
_HOME = {
    "ApiError": "errors",
    "Engine": "engine",
    "RequestRecord": "engine",
    "SimConfig": "config",
    "SimServer": "server",
    "VirtualClock": "clock",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = ["ApiError", "Engine", "RequestRecord", "SimConfig", "SimServer", "VirtualClock"]
