"""The recorded history of a run, Jepsen-style: every operation and every event, with their times.

Each operation is ok, fail (known not applied) or unknown (a timeout or a dropped connection after
the command was sent: it may or may not have been applied). Only ok writes count as acknowledged.
An operation retried by a client is judged by all its attempts (Attempts), not by its last one.
Every layer writes into it (clients, workloads, faults, the phases of a run) and the checks read it afterwards.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


# Who ran an operation (Jepsen's process) and what it did (its f). A write of the harness's own writer is the
# default; every other loop, phase and the nemesis say who they are.
WRITER, PROBE, PLAIN, PINNED, NEMESIS, HARNESS, FINAL = (
    "writer", "5 ms probe", "plain redis-py", "pinned", "nemesis", "harness", "final read")
WRITE, READ, OBSERVE, INJECT, HEAL = "write", "read", "observe", "inject", "heal"


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
    value: Any = None  # a write: what it wrote (unique per key); a read: what it read; an observation: what was seen
    attempts: list[str] | None = None  # each attempt's class when retried, e.g. [unknown, fail]: the checker re-judges
    process: str = WRITER  # who ran it: a writer, a probe, a compared client, a phase of the run, the nemesis
    f: str = WRITE  # what it did


@dataclass
class Event:
    at: float  # time.monotonic()
    name: str
    detail: str = ""


@dataclass
class History:
    """Every operation and server-side event of one run, safe to append from several threads.

    One history per run: the writers, the probes, the compared clients, the phases that act (the CRUD steps, the
    migrations), the nemesis's inject and heal and the final read are all operations in it, told apart by their
    process. The checks read it afterwards, and a saved one (to_dict) is judged again by --recheck (from_dict).
    """

    ops: list[Op] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, op: Op) -> Op:
        with self._lock:
            self.ops.append(op)
        return op

    def event(self, name: str, detail: str = "", at: float | None = None) -> Event:
        event = Event(time.monotonic() if at is None else at, name, detail)
        with self._lock:
            self.events.append(event)
        return event

    def snapshot(self, process: str | None = WRITER, f: str | None = None) -> list[Op]:
        """The operations of one process (None: of every process), optionally only those doing f."""
        with self._lock:
            ops = list(self.ops)
        return [op for op in ops if (process is None or op.process == process) and (f is None or op.f == f)]

    def observe(self, process: str, f: str, value: Any = None, *, at: float | None = None, error: str | None = None,
                key: str = "") -> Op:
        """What a phase saw or did, as an operation: ok with its value, or fail with the error (JSON-able values)."""
        when = time.monotonic() if at is None else at
        outcome = OK if error is None else FAIL
        return self.record(Op(len(self.ops), key, when, when, outcome, error, value=value, process=process, f=f))

    def observed(self, process: str, f: str) -> Op | None:
        """The last operation of process doing f (an observation, a phase's step), None if there was none."""
        return next(iter(reversed(self.snapshot(process, f))), None)

    def record_final_read(self, values: dict[str, str | None], at: float | None = None) -> None:
        """The state the verdict compares every write with: one read operation per key, so a saved run is re-judged."""
        when = time.monotonic() if at is None else at
        with self._lock:
            self.ops.extend(Op(i, key, when, when, OK, value=value, process=FINAL, f=READ)
                            for i, (key, value) in enumerate(values.items()))

    @property
    def final_read(self) -> dict[str, str | None] | None:
        """key -> the value the final read found (None: absent); None when there was no final read."""
        reads = self.snapshot(FINAL, READ)
        if not reads or all(op.outcome != OK for op in reads):
            return None
        return {op.key: op.value for op in reads if op.outcome == OK}

    @property
    def final_read_error(self) -> str | None:
        """Why the final read never succeeded (its failed operation's error): the verdict is ERROR, not FAIL."""
        failed = next((op for op in self.snapshot(FINAL, READ) if op.outcome != OK), None)
        return failed.error if failed is not None and self.final_read is None else None

    @final_read_error.setter
    def final_read_error(self, text: str) -> None:
        self.observe(FINAL, READ, error=text)

    def first_event(self, name: str) -> Event | None:
        return next((e for e in self.events if e.name == name), None)

    def to_dict(self, zero: float) -> dict[str, Any]:
        """Every op and event with times as seconds from zero (the fault), as the JSON saves it (from_dict reverses)."""
        ops = []
        for op in sorted(self.snapshot(None), key=lambda op: op.start):
            row: dict[str, Any] = {"t_s": round(op.start - zero, 6), "ms": round((op.end - op.start) * 1000, 3),
                                   "outcome": op.outcome}
            if op.process != WRITER:
                row["process"] = op.process
            if op.f != WRITE:
                row["f"] = op.f
            if op.key:
                row["key"] = op.key
            for name in ("error", "group", "confirmed", "attempts"):
                if (value := getattr(op, name)) is not None:
                    row[name] = value if name != "attempts" else list(value)
            if op.value is not None or op.f in (READ,):
                row["value"] = op.value
            ops.append(row)
        events = [{"t_s": round(e.at - zero, 6), "event": e.name, "detail": e.detail}
                  for e in sorted(self.events, key=lambda e: e.at)]
        return {"ops": ops, "events": events}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> History:
        """A saved history back, its times in seconds from the fault (the fault is at 0)."""
        history = cls()
        for seq, row in enumerate(saved.get("ops", [])):
            start = float(row["t_s"])
            history.ops.append(Op(seq, row.get("key", ""), start, start + float(row.get("ms", 0)) / 1000,
                                  row["outcome"], row.get("error"), row.get("confirmed"), row.get("group"),
                                  row.get("value"), row.get("attempts"), row.get("process", WRITER),
                                  row.get("f", WRITE)))
        for row in saved.get("events", []):
            history.events.append(Event(float(row["t_s"]), row["event"], row.get("detail", "")))
        return history


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
