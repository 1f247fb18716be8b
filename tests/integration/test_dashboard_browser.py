"""The dashboard in a real browser: Debian's chromium, headless, driven over the DevTools protocol on
loopback (aiohttp's websocket client). A simulated `breakout-bot run --dashboard` trades; the page
shows the symbol and its phase, changes when the bot trades (a fill appears), says it is reconnecting
when the bot stops, and comes back by itself (EventSource) when the bot is started again.

Skipped, with the reason, where no chromium binary is found (`.ci/run` installs Debian's `chromium`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sdk_choice import without_settings

CONSOLE = Path(sys.executable).with_name("breakout-bot")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((found for name in BROWSERS if (found := shutil.which(name))), None)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)
SPEED = "300"  # five virtual minutes a second: the session's first trade comes within seconds

pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium binary found (apt-get install chromium)")

# The page's state as the test reads it: the symbol's heading, phase, fills, and the connection badge.
READ_PAGE = """JSON.stringify((() => {
  const s = document.querySelector('#sym-AAPL');
  return {
    symbol: s ? s.querySelector('.name').textContent : null,
    phase: s ? s.querySelector('.phase').textContent : null,
    fills: s ? s.querySelectorAll('tbody.fills td:not(.empty)').length : 0,
    conn: document.querySelector('#conn').textContent,
    clock: document.querySelector('#clock').textContent,
  };
})())"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_bot(cwd: Path, port: int) -> subprocess.Popen[str]:
    env = without_settings()
    env.update({"COLUMNS": "100", "PYTHONWARNINGS": "ignore"})
    proc = subprocess.Popen(
        [str(CONSOLE), "run", "--symbol", "AAPL", "--speed", SPEED, "--dashboard", f"127.0.0.1:{port}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the banner, then the dashboard's address
        if line.startswith("dashboard: "):
            assert line.split()[1] == f"http://127.0.0.1:{port}/", line
            break
    else:
        raise AssertionError(f"the bot never served its dashboard (exit {proc.wait()})")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[str]:
    """A headless chromium with a fresh profile; yields its DevTools websocket URL, which chromium
    writes into the profile's DevToolsActivePort file (port, then path) once it listens."""
    assert BROWSER is not None
    profile = tmp_path / "profile"
    with open(tmp_path / "chromium.err", "w") as err:
        proc = subprocess.Popen(
            [BROWSER, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = None
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60  # a loaded machine: chromium's start once took over 20 s
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        lines = active.read_text().split() if active.exists() else []
        if len(lines) == 2:
            url = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        else:
            time.sleep(0.1)
    try:
        if url is None:
            tail = (tmp_path / "chromium.err").read_text()[-500:]
            pytest.fail(f"chromium did not start its DevTools endpoint (exit {proc.poll()}): {tail}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class DevTools:
    """The DevTools protocol over one websocket, one page attached (flattened sessions)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.session: str | None = None

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        await self._ws.send_str(json.dumps(message))
        while True:
            reply = json.loads((await self._ws.receive(timeout=15)).data)
            if reply.get("id") == number:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    async def open(self, url: str) -> None:
        target = await self.send("Target.createTarget", url=url)
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        self.session = attached["sessionId"]

    async def page(self) -> dict[str, Any]:
        result = await self.send("Runtime.evaluate", expression=READ_PAGE, returnByValue=True)
        if "exceptionDetails" in result:  # not our page yet (still loading)
            return {}
        return dict(json.loads(result["result"]["value"]))

    async def wait(self, what: str, holds: Any, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            seen = await self.page()
            if seen and holds(seen):
                return seen
            await asyncio.sleep(0.1)
        raise AssertionError(f"the page never showed {what}; last seen {seen}")


def test_the_page_follows_a_simulated_run_and_reconnects_after_a_restart(
    browser: str, tmp_path: Path
) -> None:
    port = free_port()
    bot = start_bot(tmp_path, port)
    phases: list[str] = []

    async def drive() -> None:
        nonlocal bot
        async with aiohttp.ClientSession() as session, session.ws_connect(browser, max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.open(f"http://127.0.0.1:{port}/")
            first = await tools.wait(
                "the symbol and its phase", lambda p: p["symbol"] == "AAPL" and p["phase"]
            )
            phases.append(first["phase"])
            assert first["conn"] == "live" and first["fills"] == 0
            traded = await tools.wait("a fill", lambda p: p["fills"] > 0)
            phases.append(traded["phase"])
            # The bot stops: the page says so; started again, the page is live again by itself.
            stop(bot)
            await tools.wait("that it is reconnecting", lambda p: p["conn"].startswith("reconnecting"))
            bot = start_bot(tmp_path, port)
            back = await tools.wait(
                "the restarted bot", lambda p: p["conn"] == "live" and p["symbol"] == "AAPL"
            )
            assert back["phase"]

    try:
        asyncio.run(asyncio.wait_for(drive(), 60))
    finally:
        stop(bot)
    assert phases[0] != phases[-1] or phases[0] == "in trade", phases  # the DOM changed as the bot traded
    assert os.path.exists(tmp_path / "simulated" / "past_trades.json")
