"""AlpacaBroker without a server, on each SDK: secrets hygiene, construction, the library's knobs turned off."""

from __future__ import annotations

import logging
import pickle
import socket
import time
from collections.abc import Callable

import pytest

from breakout_bot.broker.alpaca.broker import AlpacaBroker
from breakout_bot.errors import BrokerUnavailable

KEY = "PKLEAKCHECK1234567"
SECRET = "s3cr3t-DO-NOT-PRINT-abcdef0123456789"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Make = Callable[..., AlpacaBroker]


@pytest.fixture
def make(sdk: str) -> Make:
    """AlpacaBroker(**options) on `sdk`, pointed at a closed port: every test taking it runs per SDK."""

    def build(**kw: object) -> AlpacaBroker:
        url = f"http://127.0.0.1:{closed_port()}"
        return AlpacaBroker(KEY, SECRET, url, url, url, sleep=lambda s: None, timeout=1.0, sdk=sdk, **kw)  # type: ignore[arg-type]

    return build


def test_repr_and_str_hide_keys(make: Make) -> None:
    b = make()
    for text in (
        repr(b),
        str(b),
        f"{b}",
        repr(b.rest),
        repr(b.rest.sdk),
        repr(b.throttle),
        repr(b.market_data),
    ):
        assert KEY not in text and SECRET not in text
    assert "127.0.0.1" in repr(b)


def test_cannot_be_pickled(make: Make) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(make())


def test_errors_never_carry_keys(make: Make, caplog: pytest.LogCaptureFixture) -> None:
    b = make(max_attempts=2)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BrokerUnavailable) as info:
        b.get_account()
    for text in (str(info.value), repr(info.value), caplog.text):
        assert KEY not in text and SECRET not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_redact(make: Make) -> None:
    b = make()
    assert b.redact(f"key={KEY} secret={SECRET}") == "key=*** secret=***"


def test_library_retries_and_env_are_neutralised(
    make: Make, sdk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APCA_RETRY_MAX", "9")
    monkeypatch.setenv("APCA_API_OAUTH_TOKEN", "someone-elses-token")
    monkeypatch.setenv("APCA_API_DATA_URL", "https://data.alpaca.markets")
    monkeypatch.setenv("APCA_API_VERSION", "v1")
    b = make()
    assert b.rest.sdk.retries == 0 and b.rest.sdk.retry_codes == []
    assert b.rest.sdk.data_url == b.data_url
    if sdk == "alpaca-trade-api":  # alpaca-py reads no environment
        assert b.rest.sdk.oauth is None and b.rest.sdk.api_version == "v2"


def test_requests_have_a_timeout_and_take_a_limiter_slot(make: Make) -> None:
    b = make(max_attempts=1)
    with pytest.raises(BrokerUnavailable):
        b.get_clock()
    assert b.throttle.total == 1 and b.requests_sent == 1


def test_a_silent_server_times_out(sdk: str) -> None:
    """Neither SDK sets a request timeout of its own (alpaca-py waits forever): ours applies."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()  # accepts connections, never answers
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        b = AlpacaBroker(
            KEY, SECRET, url, url, url, sleep=lambda s: None, timeout=0.3, max_attempts=1, sdk=sdk
        )
        t0 = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="timeout"):
            b.get_clock()
        assert time.monotonic() - t0 < 3
        b.close()


def test_needs_keys() -> None:
    with pytest.raises(ValueError):
        AlpacaBroker("", "", "http://127.0.0.1:1", "http://127.0.0.1:1")


def test_stream_status_details_never_carry_keys(make: Make) -> None:
    import queue

    q: queue.Queue[tuple[str, str]] = queue.Queue()
    b = make()
    handle = b.stream_trade_updates(lambda u: None, lambda s, d: q.put((s, d)))
    status, detail = q.get(timeout=10)
    handle.stop()
    assert status == "reconnecting"
    assert KEY not in detail and SECRET not in detail
    b.close()


def test_closed_detail_reads_the_close_frame_without_deprecated_attributes() -> None:
    import warnings

    from websockets.exceptions import ConnectionClosed
    from websockets.frames import Close

    from breakout_bot.broker.alpaca.streams import closed_detail

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # websockets >= 13.1 deprecates ConnectionClosed.code/.reason
        assert closed_detail(ConnectionClosed(Close(1001, "going away"), None)) == (
            "connection closed (code 1001, going away)"
        )
        assert closed_detail(ConnectionClosed(None, None)) == "connection closed (code 1006, no close frame)"


def test_a_data_stream_refusal_stops_the_stream_instead_of_reconnecting() -> None:
    """alpaca-trade-api raises ValueError(msg) when `auth` is answered with an error: 406 and 409 cannot
    be cured by reconnecting (its own loop would retry forever: alpaca-backtrader-api #495)."""
    import time

    from breakout_bot.broker.alpaca.streams import StreamThread, keep_connected, stream_refusal
    from breakout_bot.redaction import Redactor

    assert stream_refusal(ValueError("connection limit exceeded")) is not None
    assert "iex" in (stream_refusal(ValueError("insufficient subscription")) or "")
    assert stream_refusal(ValueError("auth timeout")) is None
    assert stream_refusal(OSError("connection limit exceeded")) is None
    attempts: list[int] = []
    statuses: list[tuple[str, str]] = []

    async def connect() -> object:
        attempts.append(1)
        raise ValueError("connection limit exceeded")

    async def body(h: StreamThread) -> None:
        await keep_connected(
            h,
            "bar stream",
            connect,
            lambda raw: None,
            lambda s, d: statuses.append((s, d)),
            Redactor([]),  # type: ignore[arg-type]
        )

    handle = StreamThread("test-bars", body).start()
    deadline = time.monotonic() + 5
    while handle.alive and time.monotonic() < deadline:  # the thread ends by itself
        time.sleep(0.01)
    assert not handle.alive and attempts == [1]
    assert statuses and statuses[0][0] == "refused" and "406" in statuses[0][1]
