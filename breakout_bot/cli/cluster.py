"""The flags that say where a backtest's pieces run, and the executor they name.

    --workers N                 a local Dask cluster of N processes (loopback only)
    --scheduler tcp://HOST:PORT an existing Dask cluster
    neither                     this machine: forked processes on its cores (--sweep-jobs for sweeps)

Dask is the optional `cluster` extra; backtest/cluster.py imports it only when asked.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from ..backtest.parallel import Executor, ForkExecutor
from ..errors import UserError


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where the work runs (Dask: pip install -e '.[cluster]')")
    group.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run the sweep or the symbols on a local Dask cluster of N worker processes (loopback only)",
    )
    group.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run them on an existing Dask cluster (its workers need this breakout-bot installed)",
    )


@contextlib.contextmanager
def executor_from_args(args: argparse.Namespace, local_workers: int) -> Iterator[Executor]:
    """The executor the flags name; without Dask flags, `local_workers` processes on this machine."""
    workers = getattr(args, "workers", None)
    scheduler = getattr(args, "scheduler", None)
    if workers is not None and scheduler is not None:
        raise UserError("--workers and --scheduler: give one (a local cluster, or an existing one)")
    if scheduler is not None:
        from ..backtest.cluster import connect

        with connect(scheduler) as executor:
            yield executor
    elif workers is not None:
        from ..backtest.cluster import local_cluster

        if workers < 1:
            raise UserError("--workers must be at least 1")
        with local_cluster(workers) as executor:
            yield executor
    else:
        yield ForkExecutor(local_workers)


def uses_dask(args: argparse.Namespace) -> bool:
    return getattr(args, "workers", None) is not None or getattr(args, "scheduler", None) is not None
