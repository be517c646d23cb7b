"""Workloads: a continuous writer that records every operation in a history, Jepsen-style.

Each operation is ok, fail (known not applied) or unknown (a timeout or a dropped connection after
the command was sent: it may or may not have been applied). Only ok writes count as acknowledged.
An operation retried by a client is judged by all its attempts (Attempts), not by its last one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import redis

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


@dataclass
class Op:
    seq: int
    key: str
    start: float  # time.monotonic()
    end: float
    outcome: str
    error: str | None = None
    confirmed: bool | None = None  # WAIT saw >= 1 replica acknowledge it
    group: str | None = None  # e.g. the shard a cluster key belongs to


@dataclass
class Event:
    at: float  # time.monotonic()
    name: str
    detail: str = ""


@dataclass
class History:
    """Operations and server-side events of one run, safe to append from several threads."""

    ops: list[Op] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, op: Op) -> None:
        with self._lock:
            self.ops.append(op)

    def event(self, name: str, detail: str = "", at: float | None = None) -> Event:
        event = Event(time.monotonic() if at is None else at, name, detail)
        with self._lock:
            self.events.append(event)
        return event

    def snapshot(self) -> list[Op]:
        with self._lock:
            return list(self.ops)

    def first_event(self, name: str) -> Event | None:
        return next((e for e in self.events if e.name == name), None)


# What an operation may raise and still be an outcome, not a crash of the loop: server and client
# errors, and RedisCluster's own exceptions, which are no RedisError (SlotNotCoveredError once its
# retries run out, "Redis Cluster cannot be connected").
OPERATION_ERRORS: tuple[type[BaseException], ...] = (
    redis.RedisError, redis.exceptions.RedisClusterException, OSError)


def classify(exc: BaseException) -> str:
    """fail if the command surely did not run (refused, rejected); unknown if it may have."""
    if isinstance(exc, redis.exceptions.TimeoutError | TimeoutError):
        return UNKNOWN
    if isinstance(exc, redis.exceptions.ConnectionError):
        text = str(exc)
        refused = "Connection refused" in text or "Error 111" in text or "No master found" in text
        return FAIL if refused or isinstance(exc, redis.exceptions.ReadOnlyError) else UNKNOWN
    if isinstance(exc, ConnectionRefusedError):
        return FAIL
    if isinstance(exc, OSError):  # reset, broken pipe: the command may have reached the server
        return UNKNOWN
    return FAIL  # rejected by the server, or never sent (RedisClusterException: no node for the slot)


@dataclass
class Attempts:
    """The failed attempts of one operation, so that it is judged by all of them.

    Pass `failed` as the fail callback of redis-py's Retry.call_with_retry (it is called with each
    error). A write that timed out (it may have been applied) and was then refused is unknown, not
    failed: judged by its last attempt only, a write that may be in the data would count as failed.
    """

    errors: list[BaseException] = field(default_factory=list)

    def failed(self, error: BaseException) -> None:
        self.errors.append(error)

    def all_errors(self, final: BaseException) -> list[BaseException]:
        """Every attempt's error, the final one included once (Retry calls fail for it too)."""
        return self.errors if any(e is final for e in self.errors) else [*self.errors, final]

    def outcome(self, final: BaseException | None) -> str:
        """ok when the last attempt succeeded; else unknown if any attempt may have been applied."""
        if final is None:
            return OK
        return UNKNOWN if any(classify(e) == UNKNOWN for e in self.all_errors(final)) else FAIL

    def describe(self, final: BaseException) -> str:
        """'ConnectionError: ... (attempts: TimeoutError, ConnectionError)': the final error first."""
        errors = self.all_errors(final)
        text = f"{type(final).__name__}: {final}"
        return text if len(errors) == 1 else f"{text} (attempts: {', '.join(type(e).__name__ for e in errors)})"


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
                 with_attempts: bool = False):
        super().__init__(history, name="continuous-writer", pause_s=pause_s)
        self.write, self.key_for, self.group_for = write, key_for, group_for
        self.with_attempts = with_attempts

    def attempt(self, seq: int) -> Op:
        key = self.key_for(seq)
        attempts = Attempts()
        start = time.monotonic()
        try:
            confirmed = (self.write(key, str(seq), attempts) if self.with_attempts  # type: ignore[call-arg]
                         else self.write(key, str(seq)))  # type: ignore[call-arg]
            op = Op(seq, key, start, time.monotonic(), OK, confirmed=confirmed)
        except OPERATION_ERRORS as exc:
            op = Op(seq, key, start, time.monotonic(), attempts.outcome(exc), attempts.describe(exc))
        if self.group_for is not None:
            op.group = self.group_for(key)
        return op
