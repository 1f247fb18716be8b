"""The fault suite's TCP proxy (testkit/proxy.py): it carries HTTP both ways, and breaks it on demand."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests

from breakout_bot.testkit.proxy import FaultyProxy


class _Upstream(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []
    protocol_version = "HTTP/1.1"  # keep-alive, as Alpaca's API and the simulator

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append(f"{self.command} {self.path}")
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def proxy() -> Iterator[FaultyProxy]:
    _Upstream.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = FaultyProxy(server.server_address[1]).start()
    yield p
    p.stop()
    server.shutdown()


def test_it_carries_requests_on_a_kept_alive_connection(proxy: FaultyProxy) -> None:
    with requests.Session() as s:
        assert s.get(f"{proxy.url}/v2/clock", timeout=5).json() == {"ok": True}
        assert s.post(f"{proxy.url}/v2/orders", json={"a": 1}, timeout=5).json() == {"ok": True}
    assert _Upstream.seen == ["GET /v2/clock", "POST /v2/orders"]
    assert proxy.stats.connections == 1


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_the_next_post_is_reset_before_it_arrives_or_after_its_answer(
    proxy: FaultyProxy, after: bool
) -> None:
    proxy.reset_next(b"POST /v2/orders", after=after)
    with requests.Session() as s:
        assert s.get(f"{proxy.url}/v2/clock", timeout=5).status_code == 200  # not this one
        with pytest.raises(requests.ConnectionError):
            s.post(f"{proxy.url}/v2/orders", json={"a": 1}, timeout=5)
        assert s.post(f"{proxy.url}/v2/orders", json={"a": 2}, timeout=5).status_code == 200  # one-shot
    arrived = _Upstream.seen.count("POST /v2/orders")
    assert arrived == (2 if after else 1)
    assert (proxy.stats.resets_after, proxy.stats.resets_before) == ((1, 0) if after else (0, 1))


def test_a_blackhole_carries_nothing_then_resets_and_the_control_api_passes(proxy: FaultyProxy) -> None:
    proxy.blackhole(1.0)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{proxy.url}/v2/account", timeout=0.4)
    assert requests.get(f"{proxy.url}/sim/state", timeout=2).status_code == 200  # the test's own channel
    assert "GET /v2/account" not in _Upstream.seen
    time.sleep(max(0.0, 1.3 - (time.monotonic() - started)))
    assert requests.get(f"{proxy.url}/v2/account", timeout=2).status_code == 200


def test_reset_all_drops_every_open_connection_but_the_control_apis(proxy: FaultyProxy) -> None:
    with requests.Session() as a, requests.Session() as b, requests.Session() as control:
        a.get(f"{proxy.url}/v2/clock", timeout=5)
        b.get(f"{proxy.url}/v2/clock", timeout=5)
        control.get(f"{proxy.url}/sim/state", timeout=5)
        assert proxy.reset_all() == 2
        assert control.get(f"{proxy.url}/sim/state", timeout=5).status_code == 200
        # The reset reaches the client: its next request on that connection fails, or finds it dropped
        # and opens a new one; the one after that goes through either way.
        with contextlib.suppress(requests.ConnectionError):
            a.get(f"{proxy.url}/v2/clock", timeout=5)
        assert a.get(f"{proxy.url}/v2/clock", timeout=5).status_code == 200
    assert proxy.stats.connections >= 4


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultyProxy(80, "10.0.0.1")
