"""SIGTERM and Ctrl-C stop the run even when the signal lands in a finalizer, where Python prints the
handler's exception ("Exception ignored in ...") and drops it: the handler remembers the stop and the run's
loop raises it again (`raise_if_lost`). Real signals, sent to this process."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from breakout_bot.cli.stop_signals import Terminated, raise_if_lost, signals_stop_the_run, stop_caught


class _LandsInAFinalizer:
    """Sends `sig` to this process from its `__del__`: the handler runs (and raises) inside it."""

    def __init__(self, sig: signal.Signals) -> None:
        self.sig = sig

    def __del__(self) -> None:
        signal.raise_signal(self.sig)


@pytest.fixture
def dropped(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[type[BaseException]]]:
    """What Python dropped inside finalizers (sys.unraisablehook), instead of printing it."""
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(type(u.exc_value)))
    yield seen


@pytest.mark.parametrize(("sig", "stop"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_stop_dropped_in_a_finalizer_is_raised_again(
    sig: signal.Signals, stop: type[BaseException], dropped: list[type[BaseException]]
) -> None:
    with signals_stop_the_run():
        lands = _LandsInAFinalizer(sig)
        del lands  # the finalizer runs here; the handler's raise is dropped inside it
        assert dropped == [stop]
        with pytest.raises(stop):
            raise_if_lost()
        raise_if_lost()  # raised once: nothing is left pending


def test_a_stop_that_got_out_is_not_raised_twice_after_the_run() -> None:
    with pytest.raises(Terminated), signals_stop_the_run():
        signal.raise_signal(signal.SIGTERM)
    raise_if_lost()  # the run is over: nothing pending


def test_a_second_sigterm_while_winding_down_is_ignored() -> None:
    with signals_stop_the_run():
        with pytest.raises(Terminated):
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # the cleanup finishes


def test_every_ctrl_c_interrupts_as_pythons_own_handler_does() -> None:
    with signals_stop_the_run():
        for _ in range(2):
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)


def test_the_handlers_are_put_back_after_the_run() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with signals_stop_the_run():
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_sigint_ignored_from_the_start_stays_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A background job of a script starts with SIGINT ignored: Ctrl-C in that terminal is not for it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with signals_stop_the_run():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
            raise_if_lost()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_caught_is_not_raised_again_in_the_cleanup() -> None:
    """verify cleans up after a Ctrl-C with calls that ask `raise_if_lost`: they must not stop it again."""
    with signals_stop_the_run():
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            stop_caught()
        raise_if_lost()  # the cleanup goes on


_SIGNAL_AT_EVERY_LINE = """
import signal, sys
from breakout_bot.cli.stop_signals import StopRequest

for n in range(1, 80):
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop.handler)
    lines = 0

    def tracer(frame, event, arg):
        global lines
        if event == "line":
            lines += 1
            if lines == n:  # the signal lands at the n-th line the waiting runs (its handler just after)
                signal.raise_signal(signal.SIGTERM)
        return tracer

    sys.settrace(tracer)
    stop.wait(poll=0.001)
    sys.settrace(None)
print("stopped every time")
"""


def test_sims_stop_comes_through_wherever_the_signal_lands_in_its_wait() -> None:
    """A real SIGTERM raised at each line the waiting loop runs, in turn: the wait ends every time. Its
    handler takes no lock (an Event's set() waits for the lock its wait() holds around its check, and the
    process never stops: what this test does to an Event-based loop at the third line). In a process of
    its own: a hang is a timeout, not a stuck suite."""
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AT_EVERY_LINE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "stopped every time", done.stderr[-800:]
