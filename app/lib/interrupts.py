"""Ctrl-C and SIGTERM that cannot be lost while a suite runs.

Python raises KeyboardInterrupt wherever the main thread happens to be. Inside a __del__ (redis-py's
ConnectionPool, collected mid-run) it is printed as "Exception ignored" and dropped: the run went on
and exited 0 with the user's Ctrl-C forgotten. So the handler also records the signal, every wait
(lib/waits.py) raises it again at its next poll, and the suite's wrapper checks it at the end.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

_pending: list[int] = []


def _handler(signum, frame) -> None:  # noqa: ANN001 - the signal module's signature
    _pending.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def _quiet_unraisable(previous):
    """An interrupt dropped in a __del__ is ours to raise again: do not print it as a traceback."""
    def hook(unraisable) -> None:  # noqa: ANN001 - sys.UnraisableHookArgs
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _pending:
            return
        previous(unraisable)
    return hook


def raise_if_pending() -> None:
    """Raise the KeyboardInterrupt of a signal that arrived but was swallowed somewhere."""
    if _pending:
        raise KeyboardInterrupt(f"signal {_pending[-1]}")


def handled() -> None:
    """The interrupt is being handled (undo, cleanup): waits must not raise it again."""
    _pending.clear()


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt, and are remembered until handled().

    A SIGINT the process ignores (a shell's background job) stays ignored.
    """
    signals = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, _handler) for sig in signals}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(previous_hook)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        sys.unraisablehook = previous_hook
        _pending.clear()
