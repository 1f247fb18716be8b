"""Benchmark: one simulated 390-minute session driven by the real alpaca_trade_api.REST client.

Each virtual minute the clock advances 60 s and the client polls today's bars and the clock, as the
bot does. Prints wall seconds and requests per second. Target: < 5 s for the day.

    .venv/bin/python benchmarks/sim_day.py
"""

from __future__ import annotations

import datetime as dt
import os
import time

from alpaca_trade_api.common import URL
from alpaca_trade_api.rest import REST, TimeFrame

from breakout_bot.sim import SimConfig, SimServer


def main() -> None:
    os.environ["APCA_RETRY_MAX"] = "0"
    server = SimServer(
        SimConfig(symbols=("AAPL",), start=dt.date(2024, 3, 4), speed=0, start_time=dt.time(9, 30))
    )
    url = server.start()
    os.environ["APCA_API_DATA_URL"] = url
    api = REST("simkey", "simsecret", URL(url))
    n_requests = 0
    bars_seen = 0
    t0 = time.perf_counter()
    try:
        for _ in range(390):
            server.clock.advance(60)
            bars = api.get_bars("AAPL", TimeFrame.Minute)
            clock = api.get_clock()
            n_requests += 2
            bars_seen = len(bars)
        wall = time.perf_counter() - t0
    finally:
        server.stop()
    assert bars_seen == 390 and not clock.is_open
    print(
        f"simulated 390-minute day: {wall:.2f} s wall, {n_requests} requests, {n_requests / wall:.0f} requests/s"
    )


if __name__ == "__main__":
    main()
