"""Dask (the `cluster` extra): a 2-worker local cluster on loopback gives the in-process results, byte
for byte; its scheduler and workers listen on 127.0.0.1 only; every worker has the kernel compiled
before its first task. Skipped where Dask is not installed."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from breakout_bot.backtest import kernel  # noqa: E402
from breakout_bot.backtest.cluster import local_cluster  # noqa: E402
from breakout_bot.backtest.portfolio import run_portfolio  # noqa: E402
from breakout_bot.cli import sweep as sweep_command  # noqa: E402
from breakout_bot.cli.cluster import add_cluster_arguments  # noqa: E402
from breakout_bot.core.params import Params  # noqa: E402
from breakout_bot.errors import UserError  # noqa: E402
from breakout_bot.market.synthetic import synthetic_bars  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {s: synthetic_bars(s, 5, 50, start=dt.date(2023, 11, 15)) for s in ("AAA", "BBB", "CCC")}


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commission", type=float, default=0.0)
    parser.add_argument("--slippage", type=float, default=0.0)
    sweep_command.add_sweep_arguments(parser)
    add_cluster_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_cluster_listens_on_loopback_only(cluster: Any) -> None:
    import psutil

    client = cluster.client
    info = client.scheduler_info()
    assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    assert len(info["workers"]) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in info["workers"])
    assert all(w["nanny"].startswith("tcp://127.0.0.1:") for w in info["workers"].values())
    # This process (the scheduler runs in it) and its children (the nannies and their workers).
    processes = [psutil.Process(os.getpid()), *psutil.Process(os.getpid()).children(recursive=True)]
    assert set(client.run(os.getpid).values()) <= {p.pid for p in processes}
    listening = [
        c.laddr.ip
        for p in processes
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert len(listening) >= 5 and set(listening) == {"127.0.0.1"}, (
        listening
    )  # scheduler, 2 nannies, 2 workers


def test_every_worker_is_warm_before_its_first_task(cluster: Any) -> None:
    assert set(cluster.client.run(kernel.compiled).values()) == {True}


def test_a_sweep_on_the_cluster_writes_the_in_process_csv_byte_for_byte(
    cluster: Any, frames: dict[str, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from breakout_bot.backtest import cluster as dask_cluster

    here, there = tmp_path / "here.csv", tmp_path / "there.csv"
    flags = [
        "--sweep",
        "lookback=4:12:2",
        "min_range=0.1:0.3:0.1",
        "--commission",
        "0.005",
        "--slippage",
        "0.01",
    ]
    flags += ["--walk-forward", "1M:1M"]
    out = io.StringIO()
    assert (
        sweep_command.run_sweep(_args(*flags, "--sweep-out", str(here), "--sweep-jobs", "1"), frames, out=out)
        == 0
    )
    calls: list[tuple[int, int]] = []

    class Recording:  # the module's cluster, its progress seen
        workers = cluster.workers

        def map(self, fn, tasks, data, progress=None):  # type: ignore[no-untyped-def]
            return cluster.map(
                fn, tasks, data, lambda d, t: (calls.append((d, t)), progress and progress(d, t))
            )

    monkeypatch.setattr(dask_cluster, "local_cluster", lambda n: _yielding(Recording()))
    text = io.StringIO()
    assert (
        sweep_command.run_sweep(_args(*flags, "--sweep-out", str(there), "--workers", "2"), frames, out=text)
        == 0
    )
    assert there.read_bytes() == here.read_bytes()
    assert "on 2 Dask workers" in text.getvalue()
    tasks = calls[-1][1]
    assert tasks >= 3 * 2 and [d for d, _ in calls] == list(range(1, tasks + 1))  # a tick per task


def test_many_symbols_on_the_cluster_trade_as_in_process(
    cluster: Any, frames: dict[str, pd.DataFrame]
) -> None:
    costs = {"commission_per_share": 0.005, "slippage_per_share": 0.01}
    here = run_portfolio(frames, Params(), **costs)
    there = run_portfolio(frames, Params(), executor=cluster, **costs)
    for s in frames:
        assert there.results[s].fills == here.results[s].fills
        assert there.results[s].trades == here.results[s].trades
    assert there.daily.equals(here.daily)


def test_the_command_starts_and_stops_its_own_cluster(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    from breakout_bot.cli.main import main

    folder = tmp_path / "bars"
    folder.mkdir()
    for s, f in frames.items():
        f.reset_index().to_parquet(folder / f"{s}.parquet", index=False)
    here, there = tmp_path / "here.csv", tmp_path / "there.csv"
    base = ["backtest", "--data", str(folder), "--symbols", "AAA,BBB", "--sweep", "lookback=5:9:2"]
    assert main([*base, "--sweep-out", str(here)]) == 0
    assert main([*base, "--sweep-out", str(there), "--workers", "2"]) == 0
    assert there.read_bytes() == here.read_bytes()


def _yielding(value: Any) -> Any:
    import contextlib

    @contextlib.contextmanager
    def manager() -> Iterator[Any]:
        yield value

    return manager()


def test_an_existing_scheduler(cluster: Any, frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    here, there = tmp_path / "here.csv", tmp_path / "there.csv"
    flags = ["--sweep", "lookback=5:9:2", "--train-to", "2023-12-29"]
    assert sweep_command.run_sweep(_args(*flags, "--sweep-out", str(here)), frames, out=io.StringIO()) == 0
    address = cluster.client.scheduler.address
    args = _args(*flags, "--sweep-out", str(there), "--scheduler", address)
    assert sweep_command.run_sweep(args, frames, out=io.StringIO()) == 0
    assert there.read_bytes() == here.read_bytes()
    with pytest.raises(UserError, match="expected tcp://HOST:PORT"):
        sweep_command.run_sweep(_args(*flags, "--scheduler", "127.0.0.1:8786"), frames, out=io.StringIO())
