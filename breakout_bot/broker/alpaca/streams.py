"""The websockets (trade_updates and market-data bars), each on a daemon thread with its own asyncio loop.

A connection is opened through the SDK's handshakes (binding.py) and then read here: on a drop we reconnect with
jittered backoff, and every transition is reported through on_status("connected" | "disconnected" |
"reconnecting" | "auth_failed" | "refused", detail), so that the runner reconciles over REST after each
reconnection. An auth refusal stops the stream (no reconnect storm), and so does the market-data
stream's 406 "connection limit exceeded" (another connection uses these keys on this feed) and 409
"insufficient subscription" (the plan lacks the feed): alpaca-trade-api 3.2's own loop reconnects
forever on those (its `_auth` raises ValueError(msg); alpaca-backtrader-api #495 shows the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timezone
from typing import Any

import msgpack
from websockets.exceptions import ConnectionClosed

from ...core.events import OrderUpdate
from ...core.model import Bar
from ...redaction import Redactor
from ..base import StreamStatus
from .binding import OpenStream, SdkBinding
from .convert import bar_from_dict, trade_update_from_dict

log = logging.getLogger(__name__)

OnStatus = Callable[[StreamStatus, str], None]
Connect = Callable[[], Coroutine[Any, Any, OpenStream]]


class StreamThread:
    """One websocket client on a daemon thread with its own asyncio loop; the StreamHandle."""

    def __init__(self, name: str, body: Callable[[StreamThread], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._body = body
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._last = time.monotonic()
        self.connections = 0  # successful connections so far (diagnostics/tests)
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> StreamThread:
        self._thread.start()
        self._ready.wait(5)
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._task = loop.create_task(self._body(self))
            self._ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        except Exception:
            log.exception("%s: stream thread failed", self.name)
        finally:
            self._ready.set()
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    # -- StreamHandle ---------------------------------------------------------------------------
    @property
    def last_message_at(self) -> float:
        """time.monotonic() of the last message received (or of the start)."""
        return self._last

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def touch(self) -> None:
        self._last = time.monotonic()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(task.cancel)
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(timeout)

    def __repr__(self) -> str:
        return f"<stream {self.name} alive={self.alive}>"


def start_trade_updates(
    binding: SdkBinding,
    key_id: str,
    secret_key: str,
    base_url: str,
    timeout: float,
    on_update: Callable[[OrderUpdate], None],
    on_status: OnStatus,
    redact: Redactor,
) -> StreamThread:
    """trade_updates on a daemon thread; every (re)connection reported through on_status."""

    async def connect() -> OpenStream:
        return await binding.open_trade_updates(key_id, secret_key, base_url, timeout)

    async def body(h: StreamThread) -> None:
        await keep_connected(
            h, "trading stream", connect, trade_message_handler(on_update), on_status, redact
        )

    return StreamThread("trade-updates", body).start()


def start_bars(
    binding: SdkBinding,
    key_id: str,
    secret_key: str,
    url: str,
    feed: str,
    symbols: Sequence[str],
    timeout: float,
    on_bar: Callable[[str, Bar], None],
    on_status: OnStatus,
    redact: Redactor,
) -> StreamThread:
    """Minute bars of `symbols` from the market-data websocket (msgpack), on a daemon thread."""

    async def connect() -> OpenStream:
        return await binding.open_bars(key_id, secret_key, url, feed, symbols, timeout)

    async def body(h: StreamThread) -> None:
        await keep_connected(h, "bar stream", connect, bar_message_handler(on_bar), on_status, redact)

    return StreamThread("bars", body).start()


async def keep_connected(
    h: StreamThread,
    name: str,
    connect: Connect,
    on_message: Callable[[Any], None],
    on_status: OnStatus,
    redact: Redactor,
) -> None:
    """Connect, read until the connection drops, reconnect with jittered backoff; report every
    (re)connection so the runner reconciles over REST. The library's own loop retries silently."""
    failures = 0
    while not h.stopped:
        try:
            stream = await connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_auth_refusal(exc):
                _emit(on_status, "auth_failed", f"{name}: the server refused the API keys")
                return
            refusal = stream_refusal(exc)
            if refusal is not None:
                _emit(on_status, "refused", f"{name}: {refusal}")
                return
            failures += 1
            delay = reconnect_delay(failures)
            _emit(on_status, "reconnecting", redact(f"{name}: {describe(exc)}; retry in {delay:.1f}s"))
            await asyncio.sleep(delay)
            continue
        h.connections += 1
        h.touch()
        opened = time.monotonic()
        _emit(on_status, "connected", f"{name} {stream.endpoint}")
        detail = "closed"
        try:
            while True:
                raw = await stream.recv()
                h.touch()
                on_message(raw)
        except asyncio.CancelledError:
            await stream.close()
            raise
        except ConnectionClosed as exc:
            detail = closed_detail(exc)
        except Exception as exc:
            detail = describe(exc)
        await stream.close()
        if h.stopped:
            return
        _emit(on_status, "disconnected", redact(f"{name}: {detail}"))
        failures = 1 if time.monotonic() - opened > 10 else failures + 1
        await asyncio.sleep(reconnect_delay(failures))


def trade_message_handler(on_update: Callable[[OrderUpdate], None]) -> Callable[[str | bytes], None]:
    """Raw trade_updates messages -> OrderUpdates for `on_update` (anything else ignored, said once)."""

    def handle(raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("trading stream: undecodable message ignored")
            return
        if not isinstance(msg, dict) or msg.get("stream") != "trade_updates":
            return
        try:
            update = trade_update_from_dict(msg["data"], datetime.now(timezone.utc))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("trading stream: malformed trade update ignored: %s", exc)
            return
        try:
            on_update(update)
        except Exception:
            log.exception("on_update callback failed")

    return handle


def bar_message_handler(on_bar: Callable[[str, Bar], None]) -> Callable[[str | bytes], None]:
    """Raw market-data messages -> (symbol, Bar) for `on_bar`."""

    def handle(raw: str | bytes) -> None:
        try:
            msgs = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        except Exception:
            log.warning("bar stream: undecodable message ignored")
            return
        for msg in msgs if isinstance(msgs, list) else [msgs]:
            if not isinstance(msg, dict):
                continue
            kind = msg.get("T")
            if kind == "b":
                try:
                    bar = bar_from_dict(msg)
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("bar stream: malformed bar ignored: %s", exc)
                    continue
                try:
                    on_bar(str(msg.get("S")), bar)
                except Exception:
                    log.exception("on_bar callback failed")
            elif kind == "error":
                log.error("bar stream error: %s (%s)", msg.get("msg"), msg.get("code"))

    return handle


def closed_detail(exc: ConnectionClosed) -> str:
    """How the peer closed: the close frame received (`rcvd`; `.code`/`.reason` are deprecated since
    websockets 13.1), 1006 when none came."""
    frame = exc.rcvd
    if frame is None:
        return "connection closed (code 1006, no close frame)"
    return f"connection closed (code {frame.code}{', ' + frame.reason if frame.reason else ''})"


def reconnect_delay(failures: int, base: float = 0.5, cap: float = 30.0) -> float:
    expo = min(cap, base * (2 ** max(0, failures - 1)))
    return expo / 2 + random.random() * expo / 2


def is_auth_refusal(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, ValueError) and any(
        s in text for s in ("failed to authenticate", "auth failed", "not authenticated", "unauthorized")
    )


STREAM_REFUSALS = {
    "connection limit exceeded": "406 connection limit exceeded (another connection uses these keys on this feed)",
    "insufficient subscription": "409 insufficient subscription (the plan lacks this feed: free plans use iex)",
}


def stream_refusal(exc: BaseException) -> str | None:
    """A data-stream refusal that reconnecting cannot cure (the SDK raises ValueError(msg) at auth)."""
    text = str(exc).lower()
    if not isinstance(exc, ValueError):
        return None
    return next((why for msg, why in STREAM_REFUSALS.items() if msg in text), None)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _emit(on_status: OnStatus, status: StreamStatus, detail: str) -> None:
    try:
        on_status(status, detail)
    except Exception:
        log.exception("on_status callback failed")
