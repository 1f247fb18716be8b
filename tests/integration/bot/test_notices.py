"""The trouble notices end to end (issue 21, part 1): a simulated session with the runner's real
notifications (apprise's json:// to a receiver on loopback): a risk limit and the kill switch once each,
repeated broker errors (one notice, then one when it recovers), and the keys refused mid-run with what
the bot does about it; no key, secret or token in any message."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from notify_receiver import json_receiver
from sdk_choice import TEST_SDK

from breakout_bot.cli.commands.run import simulated_session
from breakout_bot.core.params import Params
from breakout_bot.errors import BrokerAuthError
from breakout_bot.journal import Journal
from breakout_bot.live import halt
from breakout_bot.live.notify import Notifications
from breakout_bot.live.runner import Runner, RunnerOptions, RunnerStatus

from .harness import DAY, NEW_YORK

pytest.importorskip("apprise")

TOKEN = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # as a Telegram bot token looks


def at(hhmm: str) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time.fromisoformat(hhmm), NEW_YORK)


def test_limits_kill_switch_broker_errors_and_refused_keys_reach_the_owner(tmp_path: Path) -> None:
    symbols = ["U000", "U001", "U002", "U003"]
    params = Params(max_positions=1, max_daily_loss=1.0)  # the first loss ends a symbol's day
    with (
        json_receiver() as rx,
        simulated_session(symbols, start=DAY, sdk=TEST_SDK) as (broker, clock, server),
    ):
        url = f"json://bot:{TOKEN}@127.0.0.1:{rx.port}/hook"
        key, secret = server.cfg.key, server.cfg.secret
        notices = Notifications.start([url], [key, secret])
        journal = Journal(tmp_path / "past_trades.json")
        runner = Runner(broker, broker.market_data, clock, journal, symbols, params, RunnerOptions(days=1))
        done: set[str] = set()

        def script(status: RunnerStatus) -> None:
            """The world's trouble, at set times of the session."""
            control = server.control
            if status.now >= at("11:00") and "errors" not in done:
                done.add("errors")  # an outage: the next calls fail through their 5 attempts each
                control.inject_http_fault(503, count=30)
            if status.now >= at("12:00") and "halt" not in done:
                done.add("halt")  # `breakout-bot flatten` in another process engages the kill switch
                halt.engage(halt.halt_path(journal.path), DAY, "flatten command", halt.SIMULATOR)
            flat = all(s.position_qty == 0 for s in status.states)
            if status.now >= at("13:00") and flat and "keys" not in done:
                done.add("keys")  # the keys are revoked: the next reconcile (15 min) meets a 401
                control.inject_http_fault(401, count=1, paths="/v2/clock")

        runner.observe(script)
        runner.observe(notices.observer)
        stopped = "finished"
        try:
            runner.run()
        except BrokerAuthError:
            stopped = "the broker refused the API keys"
        notices.close(stopped)
        bodies = rx.bodies()
        sent = str(rx.messages)
    titles = [b.split(": ", 1)[0] for b in bodies]
    assert stopped == "the broker refused the API keys", bodies
    # A risk limit once a day, however many breakouts it skips.
    assert sum(t.startswith("risk limit") for t in titles) <= 2  # max positions, the portfolio's loss
    assert any(b.startswith("risk limit: max positions: max positions 1 reached") for b in bodies), bodies
    assert sum(b.startswith("risk limit: max positions") for b in bodies) == 1
    assert any(": daily loss limit reached: " in b for b in bodies), bodies
    assert sum(b.startswith("kill switch engaged: ") for b in bodies) == 1
    assert any("flatten command; no new entries today" in b for b in bodies)
    # Repeated broker errors: one notice when they start, one when they end.
    errors = [b for b in bodies if b.startswith("broker errors: ")]
    assert len(errors) == 1 and re.search(r"\d+ broker requests in a row failed, each after", errors[0])
    assert "(gave up after 5 attempts)" in errors[0] and "HTTP 503" in errors[0]
    assert sum(b.startswith("broker answering again") for b in bodies) == 1
    assert bodies.index(errors[0]) < next(i for i, b in enumerate(bodies) if b.startswith("broker answering"))
    # The keys refused after the start: said once, with what the bot does (flat: it stops).
    [keys] = [b for b in bodies if b.startswith("API keys refused: ")]
    assert "BrokerAuthError" in keys and "no position is open: the run stops" in keys
    assert bodies[-1].startswith("breakout-bot stopped: the broker refused the API keys.")
    for needle in (key, secret, TOKEN):
        assert needle not in sent, needle  # no secret in any message
