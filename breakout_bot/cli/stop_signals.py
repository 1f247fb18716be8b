"""SIGTERM (`systemctl stop`, a supervisor, `kill`) and Ctrl-C stop `run`, `verify` and `sim`, and no stop is lost.

Python runs a signal's handler in the main thread at the next bytecode, whatever that bytecode belongs
to. When it belongs to a finalizer (a weakref callback, a `__del__`, run by the garbage collector), the
exception the handler raises is printed as "Exception ignored in ..." and dropped: the run goes on as
if nothing had been asked (CI saw a Ctrl-C vanish inside urllib3's pool finalizer, and the bot traded to
the close). So the handlers also remember the stop, and the run's loop calls `raise_if_lost()` on every
turn (verify: at every check and wait): a stop that was swallowed is raised again there, at most a
second later.

`sim` only waits to be stopped: its handlers set a flag (`StopRequest`) that its loop reads. A handler
must take no lock: it runs between two bytecodes of whatever the main thread was doing, which may be
holding that very lock (`threading.Event.set` takes the lock `Event.wait` holds around its check: a
process that never stops).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(BaseException):
    """SIGTERM: stop as Ctrl-C does. A BaseException like KeyboardInterrupt, so that no
    `except Exception` on the way swallows it."""


class _Pending:
    stop: type[BaseException] | None = None  # raised by a handler, not yet seen leaving the loop


def raise_if_lost() -> None:
    """Raise the stop a handler raised where it was dropped (called from the run's loop, where nothing
    swallows it). Nothing pending: nothing happens."""
    stop, _Pending.stop = _Pending.stop, None
    if stop is not None:
        raise stop


def stop_caught() -> None:
    """The stop reached the code that handles it (an `except` that winds down): nothing is lost, and
    cleanup that calls `raise_if_lost` is not stopped again."""
    _Pending.stop = None


@contextmanager
def signals_stop_the_run() -> Iterator[None]:
    """While inside: SIGTERM raises Terminated in the main thread (once; a second one while the run winds
    down is ignored, so that the cleanup finishes) and SIGINT raises KeyboardInterrupt (each time, as
    Python's own handler does; left alone when the process was started with SIGINT ignored, e.g. a
    background job of a script)."""
    fired = False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            _Pending.stop = Terminated
            raise Terminated

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        _Pending.stop = KeyboardInterrupt
        raise KeyboardInterrupt

    try:
        previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (a test driving run() from a thread): no handlers
        yield
        return
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        _Pending.stop = None  # the run is over: a stop still pending has nothing left to stop
        signal.signal(signal.SIGTERM, previous_term)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)


class StopRequest:
    """A stop asked by SIGTERM or Ctrl-C, for a process that does nothing but wait for one: `handler` is
    the signal handler (it sets a plain attribute, no lock), `wait` the loop that reads it."""

    def __init__(self) -> None:
        self.asked = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.asked = True

    def wait(self, poll: float = 0.2) -> None:
        """Return once a stop was asked: at most `poll` seconds later (a handled signal does not cut a
        sleep short)."""
        while not self.asked:
            time.sleep(poll)
