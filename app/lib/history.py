"""The recorded history of a run, Jepsen-style: every operation and every event, with their times.

Each operation is ok, fail (known not applied) or unknown (a timeout or a dropped connection after
the command was sent: it may or may not have been applied). Only ok writes count as acknowledged.
An operation retried by a client is judged by all its attempts (Attempts), not by its last one.
Every layer writes into it (clients, workloads, faults, runs) and the checks read it afterwards.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

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
    value: str | None = None  # what a write wrote (unique per key): the final read is compared with it
    attempts: list[str] | None = None  # each attempt's class when retried, e.g. [unknown, fail]: the checker re-judges


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
    final_read: dict[str, str | None] | None = None  # key -> value read back at the end (lib/runs/final_read.py)
    final_read_error: str | None = None  # why the final read never succeeded: the verdict is ERROR, not FAIL
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

    def record_final_read(self, values: dict[str, str | None]) -> None:
        """The state the verdict compares every write with, kept so the saved JSON can be re-judged."""
        with self._lock:
            self.final_read = dict(values)

    def first_event(self, name: str) -> Event | None:
        return next((e for e in self.events if e.name == name), None)


# What an operation may raise and still be an outcome, not a crash of the loop: server and client
# errors, and RedisCluster's own exceptions, which are no RedisError (SlotNotCoveredError once its
# retries run out, "Redis Cluster cannot be connected").
class ClientOpError(Exception):
    """One failed operation of a compared client library (lib/clients/libraries/), already classified.

    outcome: FAIL (surely not applied: refused, READONLY, no node for the slot) or UNKNOWN (a timeout or
    a dropped connection after sending: it may have been applied). error_type: the library's exception
    class name ("RequestError", "ConnectionError"), for the errors-by-type column. Libraries other than
    redis-py raise their own exception trees; translating them here keeps the loops and checks free of them.
    """

    def __init__(self, outcome: str, error_type: str, message: str):
        super().__init__(f"{error_type}: {message}")
        self.outcome, self.error_type = outcome, error_type


OPERATION_ERRORS: tuple[type[BaseException], ...] = (
    redis.RedisError, redis.exceptions.RedisClusterException, OSError, ClientOpError)


def classify(exc: BaseException) -> str:
    """fail if the command surely did not run (refused, rejected); unknown if it may have."""
    if isinstance(exc, ClientOpError):
        return exc.outcome
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

    def classes(self, final: BaseException | None) -> list[str]:
        """Each attempt's class in order (ok last when the op succeeded), saved so the checker can re-judge."""
        if final is None:
            return [*(classify(e) for e in self.errors), OK]
        return [classify(e) for e in self.all_errors(final)]

    def describe(self, final: BaseException) -> str:
        """'ConnectionError: ... (attempts: TimeoutError, ConnectionError)': the final error first."""
        errors = self.all_errors(final)
        text = f"{type(final).__name__}: {final}"
        return text if len(errors) == 1 else f"{text} (attempts: {', '.join(type(e).__name__ for e in errors)})"
