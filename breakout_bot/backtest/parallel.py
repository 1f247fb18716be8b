"""Where a backtest's independent pieces run: in this process, in forked processes on this machine's
cores, or on a Dask cluster (backtest/cluster.py). Every executor returns the results in the order of
the tasks, whatever order they finished in, so the figures built from them never depend on where or
when a piece ran.

A task is `(data_key, args)`: `fn(data[data_key], args)` computes it. The data (a symbol's bars) is
named apart so that an executor can ship it once and reuse it for every task that reads it (Dask
scatters it to the workers; forked processes inherit it without copying).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

Progress = Callable[[int, int], None]  # (tasks done, tasks in all)
Task = tuple[Any, Any]


class Executor(Protocol):
    """Runs `fn(data[key], args)` for every task; results in task order."""

    workers: int

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        tasks: Sequence[Task],
        data: Mapping[Any, Any],
        progress: Progress | None = None,
    ) -> list[Any]: ...


class SerialExecutor:
    """One task after the other, in this process."""

    workers = 1

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        tasks: Sequence[Task],
        data: Mapping[Any, Any],
        progress: Progress | None = None,
    ) -> list[Any]:
        results = []
        for done, (key, args) in enumerate(tasks, start=1):
            results.append(fn(data[key], args))
            if progress is not None:
                progress(done, len(tasks))
        return results


class ForkExecutor:
    """`workers` processes on this machine: this one and `workers - 1` forked children, which inherit the
    data (no copy, no pickling of the bars) and take the next task from a shared counter when they are
    free (the slowest task does not hold the others back). Results come back pickled through a pipe.
    Where the OS cannot fork, the tasks run here one after the other."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        tasks: Sequence[Task],
        data: Mapping[Any, Any],
        progress: Progress | None = None,
    ) -> list[Any]:
        workers = min(self.workers, len(tasks))
        if workers <= 1 or not hasattr(os, "fork"):
            return SerialExecutor().map(fn, tasks, data, progress)
        import gc
        import mmap

        # Shared by the forks: the next task to take, and the count of finished ones (for progress).
        counters = mmap.mmap(-1, 16)
        lock = _fork_lock()
        children: list[tuple[int, int]] = []  # (pid, read end of its pipe)
        sys.stdout.flush()  # else a child's exit could write the parent's buffered output a second time
        sys.stderr.flush()
        gc.collect()
        gc.freeze()  # the children's collector leaves the inherited heap alone (no copy-on-write of it)
        try:
            for _ in range(workers - 1):
                read_fd, write_fd = os.pipe()
                pid = os.fork()
                if pid == 0:  # the child: work, send the results, leave without running any cleanup
                    os.close(read_fd)
                    _child(fn, tasks, data, counters, lock, write_fd)
                os.close(write_fd)
                children.append((pid, read_fd))
            mine = _take_tasks(fn, tasks, data, counters, lock, progress)
            results: dict[int, Any] = dict(mine)
            for pid, read_fd in children:
                with os.fdopen(read_fd, "rb") as pipe:
                    payload = pipe.read()
                _, status = os.waitpid(pid, 0)
                answer: tuple[str, Any] = (
                    pickle.loads(payload) if payload else ("error", f"exit status {status}")
                )
                if answer[0] == "error":
                    raise RuntimeError(f"a backtest worker process failed: {answer[1]}")
                results.update(answer[1])
            children = []
        finally:
            gc.unfreeze()
            for pid, read_fd in children:  # an error here: stop the others
                _stop_child(pid, read_fd)
        if progress is not None:
            progress(len(tasks), len(tasks))
        return [results[i] for i in range(len(tasks))]


def _fork_lock() -> Any:
    import multiprocessing

    return multiprocessing.get_context("fork").Lock()


def _next_index(counters: Any, lock: Any) -> int:
    with lock:
        (index,) = struct.unpack_from("q", counters, 0)
        struct.pack_into("q", counters, 0, index + 1)
    return int(index)


def _take_tasks(
    fn: Callable[[Any, Any], Any],
    tasks: Sequence[Task],
    data: Mapping[Any, Any],
    counters: Any,
    lock: Any,
    progress: Progress | None,
) -> list[tuple[int, Any]]:
    out = []
    while (i := _next_index(counters, lock)) < len(tasks):
        key, args = tasks[i]
        out.append((i, fn(data[key], args)))
        with lock:
            (done,) = struct.unpack_from("q", counters, 8)
            struct.pack_into("q", counters, 8, done + 1)
        if progress is not None:
            progress(done + 1, len(tasks))
    return out


def _child(
    fn: Callable[[Any, Any], Any],
    tasks: Sequence[Task],
    data: Mapping[Any, Any],
    counters: Any,
    lock: Any,
    write_fd: int,
) -> None:
    code = 0
    try:
        try:
            payload = pickle.dumps(("ok", _take_tasks(fn, tasks, data, counters, lock, None)), protocol=5)
        except BaseException as exc:  # the parent raises it; the message is what survives a pipe
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
            code = 1
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
    except BaseException:
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no buffered output of the parent written twice


def _stop_child(pid: int, read_fd: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        os.close(read_fd)


def default_workers(work: float, threshold: float) -> int:
    """2 processes when this machine has the cores and the work (any unit) is at least `threshold`
    (below it, forking and gathering cost more than the second core saves), else 1."""
    return 2 if (os.cpu_count() or 1) >= 2 and work >= threshold else 1
