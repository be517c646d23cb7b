"""A Ctrl-C that Python swallows (raised inside a __del__) must still stop the run and undo it."""

from __future__ import annotations

import gc
import os
import signal

import pytest

from lib.interrupts import interrupts_raise
from lib.report.report import ManualPrompt, run_undoing_interrupts
from lib.waits import wait_until


class SignalsInDel:
    """Sends SIGINT to this process while being collected: the KeyboardInterrupt lands in __del__."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)


def swallow_an_interrupt() -> None:
    SignalsInDel()
    gc.collect()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_swallowed_in_a_del_is_raised_at_the_end_and_undone(capsys):
    undone = []

    def body() -> int:
        swallow_an_interrupt()
        return 0  # without the pending check the run would end here, exit 0, Ctrl-C forgotten

    with pytest.raises(KeyboardInterrupt):
        run_undoing_interrupts(body, lambda: undone.append("undo") or ["put back the node"], ManualPrompt())
    assert undone == ["undo"], "the run's changes must be undone"
    assert "put back the node" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_wait_raises_a_swallowed_interrupt_at_its_next_poll():
    with interrupts_raise():
        swallow_an_interrupt()
        with pytest.raises(KeyboardInterrupt):
            wait_until(lambda: (False, "never"), timeout=30, what="something that never happens")


def test_a_signal_the_process_ignores_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_raise():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
