"""Progress bars on a terminal (stderr), silent otherwise (pipes, tests, logs)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

ProgressCallback = Callable[[int, int], None]


@contextlib.contextmanager
def progress_bar(label: str, unit: str, total: int, *, minimum: int = 0) -> Iterator[ProgressCallback | None]:
    """A rich progress bar counting `unit`s (`done/total`) while the block runs, or None (no bar) when
    stderr is not a terminal or `total` is below `minimum`."""
    if not sys.stderr.isatty() or total < minimum:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} " + unit),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(unit, total=total)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
