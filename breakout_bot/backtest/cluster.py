"""Dask as an executor (backtest/parallel.py): the `cluster` extra, `pip install -e '.[cluster]'`.

`local_cluster(n)` starts a scheduler and n single-threaded worker processes bound to loopback only
(127.0.0.1; no dashboard), `connect(address)` joins an existing scheduler. Either way every worker
compiles (or loads from numba's cache) the kernel before it takes a task (`warm_kernel_plugin`, a worker
plugin: it also runs on workers that join later; a cold worker compiles for ~7-13 s and would
otherwise do it inside its first task). The package must be importable on the workers (the same
breakout-bot version: the tasks are its functions).

`DaskExecutor.map` scatters each task's data once (a symbol-year's bars go to one worker and every
task reading them is sent there), submits the tasks, and returns the results in task order however
they finish, so the figures are those of the in-process run, byte for byte.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..errors import UserError
from .parallel import Progress, Task

LOOPBACK = "127.0.0.1"


def _require_dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise UserError(
            "--workers/--scheduler need Dask: pip install -e '.[cluster]' (or pip install 'dask[distributed]')"
        ) from None
    return distributed


WARM_PLUGIN = "breakout-bot-warm-kernel"


def warm_kernel_plugin() -> Any:
    """A Dask worker plugin (WorkerPlugin, which Dask requires: defined here, where Dask is imported)
    that compiles or loads the numba kernel on a worker before it takes any task."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class WarmKernel(WorkerPlugin):
        name = WARM_PLUGIN
        idempotent = True

        def setup(self, worker: Any) -> None:
            from . import kernel

            kernel.warm_up()

    return WarmKernel()


class DaskExecutor:
    """Runs tasks on a Dask client's workers; results in task order."""

    def __init__(self, client: Any, warm: bool = True) -> None:
        self.client = client
        self.workers = max(1, len(client.scheduler_info().get("workers", {})))
        if warm:
            self._warm()

    def _warm(self) -> None:
        self.client.register_plugin(warm_kernel_plugin(), name=WARM_PLUGIN)

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        tasks: Sequence[Task],
        data: Mapping[Any, Any],
        progress: Progress | None = None,
    ) -> list[Any]:
        distributed = _require_dask()
        if not tasks:
            return []
        keys = list(dict.fromkeys(key for key, _ in tasks))
        shipped = dict(zip(keys, self.client.scatter([data[k] for k in keys]), strict=True))
        futures = [self.client.submit(fn, shipped[key], args, pure=False) for key, args in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        for done, future in enumerate(distributed.as_completed(futures), start=1):
            results[index[future.key]] = future.result()  # raises the task's exception here
            if progress is not None:
                progress(done, len(futures))
        del shipped
        return results


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[DaskExecutor]:
    """A LocalCluster of `workers` single-threaded processes on 127.0.0.1 (scheduler, workers and
    nannies; no dashboards), and an executor on it; closed on exit."""
    distributed = _require_dask()
    if workers < 1:
        raise UserError("--workers must be at least 1")
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host=LOOPBACK,
            dashboard_address=None,
            worker_dashboard_address=None,
            protocol="tcp://",
            # The scheduler's HTTP routes (health, metrics) run even without a dashboard: on loopback,
            # on a free port (its default, 8787, would clash with a second cluster and warn).
            scheduler_kwargs={"dashboard_address": f"{LOOPBACK}:0"},
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        yield DaskExecutor(client)


@contextlib.contextmanager
def connect(address: str) -> Iterator[DaskExecutor]:
    """An executor on the existing scheduler at `address` (tcp://HOST:PORT)."""
    distributed = _require_dask()
    if "://" not in address:
        raise UserError(f"--scheduler {address!r}: expected tcp://HOST:PORT")
    try:
        client = distributed.Client(address, timeout=10)
    except OSError as exc:
        raise UserError(f"--scheduler {address}: cannot connect ({exc})") from None
    with client:
        if not client.scheduler_info().get("workers"):
            try:
                client.wait_for_workers(1, timeout=30)
            except TimeoutError:
                raise UserError(f"--scheduler {address}: no worker joined within 30 s") from None
        yield DaskExecutor(client)
