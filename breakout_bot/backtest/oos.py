"""Out of sample: choose parameters on one stretch of the data, judge them on the next.

* `--train-to DATE`: the training window is every session up to DATE, the test window every one after.
* `--walk-forward TRAIN:TEST` (e.g. `6M:1M`): rolling windows. The first test starts TRAIN after the
  first session, and the tests follow one another, TEST each (the last may be cut short by the end of
  the data), so they tile the out-of-sample span; each window trains on the TRAIN before its test
  (the first one from the first session). Each window re-chooses its parameters on its training
  stretch; the test stretches, laid end to end, are the out-of-sample record.

Both become segment edges of one sweep (backtest/sweep.py): every window's figures are folds of the
same exact summaries, so choosing and stitching cost no second run.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from ..errors import UserError
from .sweep import Segments

_PERIOD = re.compile(r"^\s*(\d+)\s*([DWMY])\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Period:
    """A calendar length: days, weeks, months or years."""

    amount: int
    unit: str  # D W M Y

    def after(self, day: dt.date, times: int = 1) -> dt.date:
        """`day` moved forward by `times` periods (backward when negative; months keep the day of the
        month, clamped to the month's length)."""
        n = self.amount * times
        if self.unit == "D":
            return day + dt.timedelta(days=n)
        if self.unit == "W":
            return day + dt.timedelta(weeks=n)
        months = n * (12 if self.unit == "Y" else 1)
        year, month0 = divmod(day.month - 1 + months, 12)
        year += day.year
        last = calendar.monthrange(year, month0 + 1)[1]
        return dt.date(year, month0 + 1, min(day.day, last))

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_period(text: str, flag: str) -> Period:
    match = _PERIOD.match(text)
    if not match or int(match.group(1)) < 1:
        raise UserError(f"{flag}: {text!r} is not a period (e.g. 6M, 1M, 2W, 30D, 1Y)")
    return Period(int(match.group(1)), match.group(2).upper())


def parse_walk_forward(text: str) -> tuple[Period, Period]:
    """`TRAIN:TEST`, e.g. `6M:1M`."""
    train, sep, test = text.partition(":")
    if not sep:
        raise UserError(f"--walk-forward: {text!r}: expected TRAIN:TEST, e.g. 6M:1M")
    return parse_period(train, "--walk-forward"), parse_period(test, "--walk-forward")


@dataclass(frozen=True)
class Window:
    """One walk-forward window: dates inclusive, and its segments ([train_first, test_first) trains,
    [test_first, test_stop) tests)."""

    index: int
    train_from: dt.date
    train_to: dt.date
    test_from: dt.date
    test_to: dt.date
    train_first: int
    test_first: int
    test_stop: int


def walk_forward(first: dt.date, last: dt.date, train: Period, test: Period) -> tuple[Segments, list[Window]]:
    """The rolling windows over sessions first..last and the segment edges they need. UserError when
    the data is too short for one window."""
    bounds: list[tuple[dt.date, dt.date, dt.date]] = []  # train start, test start, test end (exclusive)
    first_test = train.after(first)
    i = 0
    while (test_from := test.after(first_test, i)) <= last:
        start = first if i == 0 else max(first, train.after(test_from, -1))
        bounds.append((start, test_from, min(test.after(first_test, i + 1), last + dt.timedelta(days=1))))
        i += 1
    if not bounds:
        raise UserError(
            f"--walk-forward {train}:{test}: the data ({first} to {last}) is shorter than one "
            f"training window plus a test"
        )
    edges = sorted({d for b in bounds for d in b})
    segments = Segments.at(edges)
    index = {d.toordinal(): n for n, d in enumerate(edges)}  # a cut before edges[n] starts segment n + 1
    windows = [
        Window(
            n,
            a,
            b - dt.timedelta(days=1),
            b,
            c - dt.timedelta(days=1),
            index[a.toordinal()] + 1,
            index[b.toordinal()] + 1,
            index[c.toordinal()] + 1,
        )
        for n, (a, b, c) in enumerate(bounds)
    ]
    return segments, windows


def train_test(train_to: dt.date) -> Segments:
    """Two segments: sessions up to `train_to` (0), the ones after (1)."""
    return Segments.at([train_to + dt.timedelta(days=1)])
