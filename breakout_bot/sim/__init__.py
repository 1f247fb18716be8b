"""Alpaca-compatible simulator: REST trading v2 + market data v2 + both websockets, a deterministic
matching engine over a virtual clock and the real NYSE calendar. See docs/simulator.md.

    from breakout_bot.sim import SimConfig, SimServer, VirtualClock
    server = SimServer(SimConfig(symbols=("AAPL",), speed=0))
    base_url = server.start()   # "http://127.0.0.1:PORT"
    server.clock.advance(60)
    server.stop()
"""

from .calendar import MarketCalendar, Session, xnys
from .clock import VirtualClock
from .config import SimConfig
from .data import DayBars, FileSource, SyntheticSource, load_bars, synthetic_day
from .engine import Engine, RequestRecord
from .errors import ApiError
from .server import SimServer

__all__ = [
    "ApiError",
    "DayBars",
    "Engine",
    "FileSource",
    "MarketCalendar",
    "RequestRecord",
    "Session",
    "SimConfig",
    "SimServer",
    "SyntheticSource",
    "VirtualClock",
    "load_bars",
    "synthetic_day",
    "xnys",
]
