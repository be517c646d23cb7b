"""Workloads: operation loops (a continuous writer) that record every operation in a History (lib/history.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from lib.history import OK, OPERATION_ERRORS, WRITER, Attempts, History, Op

WriteFn = Callable[[str, str], bool | None]  # returns WAIT confirmation (or None if not asked)
AttemptWriteFn = Callable[[str, str, Attempts], bool | None]  # the same, recording each attempt


class OpLoop(threading.Thread):
    """Runs attempt(seq) in a loop until stopped, recording each Op; a crash is raised by stop().

    The pause between attempts sets the rate, it is not synchronisation: it leaves the 2 cores
    to the servers.
    """

    def __init__(self, history: History, *, name: str, pause_s: float):
        super().__init__(daemon=True, name=name)
        self.history, self.pause_s = history, pause_s
        self._halt = threading.Event()
        self.crashed: BaseException | None = None

    def attempt(self, seq: int) -> Op:
        raise NotImplementedError

    def run(self) -> None:
        seq = 0
        try:
            while not self._halt.is_set():
                self.history.record(self.attempt(seq))
                seq += 1
                self._halt.wait(self.pause_s)
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self.crashed = exc

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        if self.ident is not None:  # started
            self.join(timeout)
        if self.crashed is not None:
            raise RuntimeError(f"{self.name} crashed: {self.crashed!r}") from self.crashed

    def __enter__(self) -> OpLoop:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Stoppable(Protocol):
    def stop(self) -> None: ...


def stop_all(loops: Iterable[Stoppable]) -> None:
    """Stop every loop, then raise the first crash: one crashed loop must not leave the others running."""
    crashes: list[BaseException] = []
    for loop in loops:
        try:
            loop.stop()
        except Exception as exc:  # noqa: BLE001 - raised below, once every loop is stopped
            crashes.append(exc)
    if crashes:
        raise crashes[0]


class ContinuousWriter(OpLoop):
    """Writes key(seq) = seq in a loop until stopped, recording every operation.

    with_attempts=True: write(key, value, attempts) records each failed attempt of a retried
    write in `attempts` (an Attempts), and the op's outcome is judged by all of them.
    """

    def __init__(self, write: WriteFn | AttemptWriteFn, key_for: Callable[[int], str], history: History, *,
                 pause_s: float = 0.002, group_for: Callable[[str], str | None] | None = None,
                 with_attempts: bool = False, process: str = WRITER):
        super().__init__(history, name=f"{process}-loop", pause_s=pause_s)
        self.write, self.key_for, self.group_for = write, key_for, group_for
        self.with_attempts, self.process = with_attempts, process

    def attempt(self, seq: int) -> Op:
        key, value = self.key_for(seq), str(seq)
        attempts = Attempts()
        final: BaseException | None = None
        start = time.monotonic()
        try:
            confirmed = (self.write(key, value, attempts) if self.with_attempts  # type: ignore[call-arg]
                         else self.write(key, value))  # type: ignore[call-arg]
            op = Op(seq, key, start, time.monotonic(), OK, confirmed=confirmed, value=value, process=self.process)
        except OPERATION_ERRORS as exc:
            final = exc
            op = Op(seq, key, start, time.monotonic(), attempts.outcome(exc), attempts.describe(exc), value=value,
                    process=self.process)
        if len(tried := attempts.classes(final)) > 1:  # retried: keep every attempt's class for the checker
            op.attempts = tried
        if self.group_for is not None:
            op.group = self.group_for(key)
        return op
