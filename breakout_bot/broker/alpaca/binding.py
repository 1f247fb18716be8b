"""What an SDK gives the Alpaca adapter: an HTTP client for the two REST APIs and the handshakes of the
two websockets. Everything else (the JSON, retries, outcome resolution, reconnects) is the adapter's
own and the same whichever SDK carries the bytes, so both SDKs share it:

    broker/alpaca/sdk.py     SDK_BINDING over alpaca-trade-api 3.2 (the default)
    broker/alpacapy/sdk.py   SDK_BINDING over alpaca-py 0.44

broker/sdks.py picks one by name. Importing this module imports no SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import requests

# websockets.connect parameters for both SDKs' clients: ping every 10 s, a dead peer is noticed within
# 30 s (both SDKs' own default is a 180 s ping timeout).
WEBSOCKET_PARAMS: dict[str, Any] = {"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024}


class SdkClient(Protocol):
    """An SDK's REST client, answering JSON (never its models) and raising its own errors; no retries
    of its own, and every request through the session it was given."""

    def get(self, path: str, data: dict[str, Any] | None = None) -> Any: ...

    def post(self, path: str, data: dict[str, Any] | None = None) -> Any: ...

    def patch(self, path: str, data: dict[str, Any] | None = None) -> Any: ...

    def delete(self, path: str, data: dict[str, Any] | None = None) -> Any: ...

    def data_get(self, path: str, data: dict[str, Any] | None = None, api_version: str = "v2") -> Any: ...

    def close(self) -> None: ...


class OpenStream:
    """One websocket past its SDK's handshakes: where it goes, the next raw message, a bounded close."""

    def __init__(
        self,
        endpoint: str,
        recv: Callable[[], Awaitable[str | bytes]],
        close: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self.endpoint = endpoint
        self._recv = recv
        self._close = close

    async def recv(self) -> str | bytes:
        return await self._recv()

    async def close(self) -> None:
        """Close without raising (bounded: a dead peer does not hold us)."""
        await close_quietly(self._close)


async def close_quietly(close: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(close(), 5)


async def handshake(
    steps: Sequence[Callable[[], Awaitable[None]]],
    close: Callable[[], Coroutine[Any, Any, None]],
    opened: Callable[[], OpenStream],
    timeout: float,
) -> OpenStream:
    """An SDK's handshake (`steps`: connect and authenticate, then listen or subscribe), each within
    `timeout`; its socket closed if one fails; then the stream it opened."""
    try:
        for step in steps:
            await asyncio.wait_for(step(), timeout)
    except BaseException:
        await close_quietly(close)
        raise
    return opened()


@dataclass(frozen=True)
class SdkBinding:
    """One SDK's part of the adapter (see the module docstring)."""

    name: str  # as in --sdk / BREAKOUT_SDK
    version: str
    # (key_id, secret_key, base_url, data_url, session) -> the REST client
    rest: Callable[[str, str, str, str, requests.Session], SdkClient]
    # (key_id, secret_key, base_url, timeout) -> trade_updates: connected, authenticated, listening
    open_trade_updates: Callable[[str, str, str, float], Awaitable[OpenStream]]
    # (key_id, secret_key, stream_url, feed, symbols, timeout) -> bars: authenticated, subscribed
    open_bars: Callable[[str, str, str, str, Sequence[str], float], Awaitable[OpenStream]]
