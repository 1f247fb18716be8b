"""`breakout-bot replay` on simulated days: the bot trading the simulator (REST, websocket, runner,
journal, its log) lined up with the backtest of the simulator's bars, made again from the seed the
run's start line records. Exact without faults (every decision, every price); with partial fills
every decision still matches and the prices' difference is named; where a fault changes a decision,
the replay names the fault."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from sdk_choice import TEST_SDK

from breakout_bot.cli.commands.run import log_start, simulated_session
from breakout_bot.cli.main import main
from breakout_bot.core.params import Params
from breakout_bot.journal import Journal, RunTags, new_run_id
from breakout_bot.live.runner import Runner, RunnerOptions
from breakout_bot.logging_setup import JsonFormatter, use_log_time
from breakout_bot.sim import SimServer

from .harness import NEW_YORK


@contextmanager
def _json_log(path: Path) -> Iterator[None]:
    """The bot's log lines into `path`, as `run --json-logs` writes them (no global logging set-up)."""
    logger = logging.getLogger("breakout_bot")
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def _simulated_day(
    tmp_path: Path,
    symbol: str,
    day: dt.date,
    seed: int,
    *,
    partial_fills: bool = False,
    fault: Callable[[SimServer], None] | None = None,
    mode: str = "simulator",
    feed: str = "sip",
) -> list[tuple[str, str, int]]:
    """One simulated session as `run` trades it, journal and log where `replay --simulated` looks.
    Returns the requests the simulator served: (method, path, status)."""
    apart = "simulated" if mode == "simulator" else ""  # a paper run's journal and log: the configured ones
    journal_path = tmp_path / apart / "past_trades.json"
    log_path = tmp_path / "logs" / apart / "breakout-bot.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    journal_path.parent.mkdir(parents=True, exist_ok=True)
    journal = Journal(journal_path)
    journal.load()
    with (
        simulated_session(
            [symbol], start=day, seed=seed, feed=feed, partial_fills=partial_fills, sdk=TEST_SDK
        ) as (broker, clock, server),
        _json_log(log_path),
    ):
        previous = use_log_time(lambda _c: dt.datetime.fromtimestamp(server.clock.glance(), NEW_YORK))
        try:
            if fault is not None:
                fault(server)
            tags = RunTags(mode, "PSIMTEST", new_run_id(dt.datetime.now(dt.timezone.utc)))
            world = (
                {"seed": seed, "data": None, "partial_fills": partial_fills} if mode == "simulator" else None
            )
            log_start(tags, [symbol], feed, Params(), journal_path, world)
            runner = Runner(
                broker,
                broker.market_data,
                clock,
                journal,
                [symbol],
                Params(),
                RunnerOptions(days=1),
                tags=tags,
            )
            assert runner.run() == 0
        finally:
            use_log_time(previous)
        served = [(r.method, r.path, r.status) for r in server.exchange.requests]
    journal.close()
    return served


def _replay(
    tmp_path: Path, day: dt.date, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> dict[str, Any]:
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["replay", "--date", str(day), "--simulated", "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def _decision(side: dict[str, Any]) -> tuple[Any, ...]:
    return (side["side"], side["signal_bar"], side["qty"], side["exit_reason"])


SESSIONS = [
    ("AAPL", dt.date(2024, 3, 5), 3),
    ("AAPL", dt.date(2024, 3, 5), 7),
    ("MSFT", dt.date(2024, 3, 6), 11),
    ("SPY", dt.date(2024, 7, 3), 5),  # an early close (13:00)
]


@pytest.mark.parametrize(
    ("symbol", "day", "seed"), SESSIONS, ids=[f"{s}-{d}-seed{n}" for s, d, n in SESSIONS]
)
def test_a_simulated_day_replays_exactly(
    tmp_path: Path, symbol: str, day: dt.date, seed: int, capsys: Any, monkeypatch: Any
) -> None:
    _simulated_day(tmp_path, symbol, day, seed)
    report = _replay(tmp_path, day, capsys, monkeypatch)
    verdict = report["verdict"]
    assert verdict["decisions"] >= 2, "a day with fewer trades proves little"
    assert verdict["decisions_matched"] == verdict["exact"] == verdict["decisions"], report
    assert verdict["first_divergence"] is None
    assert verdict["live_pnl"] == verdict["rehearsal_pnl"] and verdict["slippage"] == "0.00"
    for row in report["rows"]:
        live, rehearsal = row["live"], row["rehearsal"]
        assert live["box"] == rehearsal["box"] and live["box"] is not None
        assert (
            live["entry_price"] == rehearsal["entry_price"] and live["exit_price"] == rehearsal["exit_price"]
        )
        assert row["entry_slippage_cents"] == "0.00"
    assert report["params"] == asdict(Params())


def test_partial_fills_match_every_decision_and_are_named(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    day = dt.date(2024, 3, 6)
    _simulated_day(tmp_path, "MSFT", day, 11, partial_fills=True)
    report = _replay(tmp_path, day, capsys, monkeypatch)
    verdict = report["verdict"]
    assert verdict["decisions"] >= 2
    assert verdict["decisions_matched"] == verdict["decisions"]
    for row in report["rows"]:
        assert _decision(row["live"]) == _decision(row["rehearsal"])
        assert row["live"]["box"] == row["rehearsal"]["box"]
    pieces = [row for row in report["rows"] if row["live"]["entry_fills"] > 1]
    assert pieces, "the simulator filled no entry in pieces"
    if verdict["first_divergence"] is not None:  # the pieces trade at the tape's successive prices
        assert verdict["first_divergence"]["why"].startswith("partial fill: the entry filled in")


def test_a_rejected_entry_is_the_divergence_the_replay_names(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    day = dt.date(2024, 3, 5)
    _simulated_day(tmp_path, "AAPL", day, 7, fault=lambda server: server.control.reject_next_orders(1))
    report = _replay(tmp_path, day, capsys, monkeypatch)
    verdict = report["verdict"]
    first = verdict["first_divergence"]
    assert first is not None and first["row"] == 1, report
    assert first["what"].startswith("the rehearsal went ") and "the bot did not trade it" in first["what"]
    assert first["why"].startswith("rejected order at "), first
    assert verdict["decisions_matched"] < verdict["decisions"]
    assert report["rows"][0]["live"] is None


def test_an_entry_lost_to_503s_is_named(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    """Two 503s on the first entry's POST (before it reached the book): its outcome stays unknown, the
    bot gives the signal up, and the day runs apart from its rehearsal from there."""
    day = dt.date(2024, 3, 5)
    served = _simulated_day(
        tmp_path,
        "AAPL",
        day,
        7,
        fault=lambda server: server.control.inject_http_fault(
            503, count=2, paths="/v2/orders", method="POST"
        ),
    )
    assert [(m, s) for m, path, s in served if path == "/v2/orders" and s == 503] == [("POST", 503)] * 2
    report = _replay(tmp_path, day, capsys, monkeypatch)
    first = report["verdict"]["first_divergence"]
    assert first is not None and first["row"] == 1 and report["rows"][0]["live"] is None, report
    assert first["why"].startswith("order outcome unknown at "), first
    assert "HTTP 503" in first["why"]


def test_a_fault_that_changes_nothing_leaves_the_day_exact(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """Reads that fail twice (503 on the positions and the account): retried, the same fills."""

    def fault(server: SimServer) -> None:
        server.control.inject_http_fault(503, count=2, paths="/v2/positions", method="GET")
        server.control.inject_http_fault(503, count=2, paths="/v2/account", method="GET")

    day = dt.date(2024, 3, 5)
    served = _simulated_day(tmp_path, "AAPL", day, 7, fault=fault)
    assert sum(1 for _, path, status in served if status == 503 and "/v2/orders" not in path) == 4
    verdict = _replay(tmp_path, day, capsys, monkeypatch)["verdict"]
    assert verdict["decisions_matched"] == verdict["exact"] == verdict["decisions"] >= 2, verdict


def test_a_paper_days_bars_are_downloaded_into_the_cache(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paper run's day (here: traded on the simulator, journaled as paper): its bars are not made
    again but read from the `bars` cache, and downloaded with the user's keys when missing (from a
    simulator on loopback with the same world, standing in for Alpaca's data API)."""
    from breakout_bot.sim import SimConfig

    day = dt.date(2024, 3, 5)
    _simulated_day(tmp_path, "AAPL", day, 7, mode="paper")
    key, secret = "PKREPLAYTEST0001", "replay-secret-0123456789"
    data_api = SimServer(
        SimConfig(symbols=("AAPL",), speed=0.0, seed=7, key=key, secret=secret, start=dt.date(2024, 3, 11))
    )
    url = data_api.start()
    try:
        for var in ("APCA_API_BASE_URL", "APCA_API_DATA_URL"):
            monkeypatch.setenv(var, url)
        monkeypatch.setenv("APCA_API_KEY_ID", key)
        monkeypatch.setenv("APCA_API_SECRET_KEY", secret)
        monkeypatch.chdir(tmp_path)
        capsys.readouterr()
        assert main(["replay", "--date", str(day), "--json"]) == 0
        captured = capsys.readouterr()
        report = json.loads(captured.out)  # the download's progress went to stderr
        assert "AAPL 2024-03-05: 390 bars" in captured.err
        bar_reads = [r for r in data_api.exchange.requests if r.path == "/v2/stocks/AAPL/bars"]
        assert len(bar_reads) == 1
        assert (tmp_path / "data" / "cache" / "AAPL" / "2024-03-05.parquet").exists()
        verdict = report["verdict"]
        assert verdict["decisions_matched"] == verdict["exact"] == verdict["decisions"] >= 2, report
        assert report["feed"] == "sip" and any("the cache data/cache" in n for n in report["notes"])
        assert main(["replay", "--date", str(day), "--json"]) == 0  # cached now: no second download
        assert len([r for r in data_api.exchange.requests if r.path == "/v2/stocks/AAPL/bars"]) == 1
    finally:
        data_api.stop()


def test_a_run_on_the_iex_feed_is_named_where_it_parts_from_the_consolidated_rehearsal(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """The bot decided on the simulator's IEX bars (minutes missing, prices a cent off); the simulator's
    tape and the rehearsal are the consolidated bars: a box a cent apart, and the replay says why."""
    day = dt.date(2024, 3, 5)
    _simulated_day(tmp_path, "AAPL", day, 3, feed="iex")
    report = _replay(tmp_path, day, capsys, monkeypatch)
    first = report["verdict"]["first_divergence"]
    assert report["feed"] == "iex" and first is not None, report
    assert first["why"].startswith("IEX vs consolidated prices"), first
