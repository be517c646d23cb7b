"""Workloads: a continuous writer that records every operation in a history, Jepsen-style.

Each operation is ok, fail (known not applied) or unknown (a timeout or a dropped connection after
the command was sent: it may or may not have been applied). Only ok writes count as acknowledged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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


def classify(exc: Exception) -> str:
    """fail if the command surely did not run (refused, rejected); unknown if it may have."""
    if isinstance(exc, redis.exceptions.TimeoutError):
        return UNKNOWN
    if isinstance(exc, redis.exceptions.ConnectionError):
        text = str(exc)
        refused = "Connection refused" in text or "Error 111" in text or "No master found" in text
        return FAIL if refused or isinstance(exc, redis.exceptions.ReadOnlyError) else UNKNOWN
    return FAIL


WriteFn = Callable[[str, str], bool | None]  # returns WAIT confirmation (or None if not asked)


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
        self.join(timeout)
        if self.crashed is not None:
            raise RuntimeError(f"{self.name} crashed: {self.crashed!r}") from self.crashed

    def __enter__(self) -> OpLoop:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ContinuousWriter(OpLoop):
    """Writes key(seq) = seq in a loop until stopped, recording every attempt."""

    def __init__(self, write: WriteFn, key_for: Callable[[int], str], history: History, *,
                 pause_s: float = 0.002, group_for: Callable[[str], str | None] | None = None):
        super().__init__(history, name="continuous-writer", pause_s=pause_s)
        self.write, self.key_for, self.group_for = write, key_for, group_for

    def attempt(self, seq: int) -> Op:
        key = self.key_for(seq)
        start = time.monotonic()
        try:
            confirmed = self.write(key, str(seq))
            op = Op(seq, key, start, time.monotonic(), OK, confirmed=confirmed)
        except redis.RedisError as exc:
            op = Op(seq, key, start, time.monotonic(), classify(exc), f"{type(exc).__name__}: {exc}")
        if self.group_for is not None:
            op.group = self.group_for(key)
        return op
