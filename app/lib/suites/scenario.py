"""What a compatibility scenario gets and returns: the context, the result contract, key hygiene.

A scenario module (app/scenarios/*.py) exposes NAME, DESTRUCTIVE and run(client, ctx) -> CheckResult
(lib.checks.result, the contract every suite shares; build it with result() below). The runner turns
what run returns into a CheckResult with to_result (a legacy contract dict is still accepted, a
wrong shape is a FAIL), and a crash into a FAIL with checked, so one broken scenario never ends
the suite.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from lib.checks.result import FAIL, OK, WARN, CheckResult
from lib.clients.keyspace import delete_prefix
from lib.util import raw_command  # noqa: F401 - the scenarios import it from here

STATUSES = (OK, WARN, FAIL)
CONTRACT_KEYS = ("scenario", "status", "detail", "metrics")  # a legacy scenario's dict (CheckResult.to_dict)


@dataclass
class ScenarioContext:
    """Everything a scenario may use besides its client: its key prefix and a way to open more clients."""

    target_name: str
    prefix: str
    connect: Callable[[], redis.Redis]
    allow_destructive: bool = False
    extra_clients: list[redis.Redis] = field(default_factory=list)

    def key(self, *parts: object) -> str:
        """A key under this scenario's prefix; the runner deletes whatever is left under it."""
        return self.prefix + ":".join(str(p) for p in parts)

    def new_client(self) -> redis.Redis:
        """A second connection (a WATCH that another client breaks, a subscriber); closed by the runner."""
        client = self.connect()
        self.extra_clients.append(client)
        return client

    def cleanup(self, client: redis.Redis) -> int:
        return delete_prefix(client, self.prefix)

    def close(self) -> None:
        for client in self.extra_clients:
            client.close()
        self.extra_clients.clear()


def result(scenario: str, status: str, detail: str, metrics: dict[str, Any] | None = None) -> CheckResult:
    """The one result contract (lib.checks.result), with metrics optional for a scenario that measured nothing."""
    return CheckResult(scenario, status, detail, metrics or {})


def contract_problem(value: Any) -> str | None:
    """Why value is neither a valid CheckResult nor a legacy contract dict, or None if it is one."""
    if isinstance(value, CheckResult):
        value = value.to_dict()
    if not isinstance(value, dict):
        return f"returned {type(value).__name__}, not the contract dict"
    missing = [k for k in CONTRACT_KEYS if k not in value]
    if missing:
        return f"returned a dict without {', '.join(missing)}"
    if value["status"] not in STATUSES:
        return f"returned status {value['status']!r}, not one of {', '.join(STATUSES)}"
    if not isinstance(value["metrics"], dict):
        return f"returned metrics of type {type(value['metrics']).__name__}, not a dict"
    return None


def to_result(name: str, value: Any) -> CheckResult:
    """What scenario `name` returned, as the contract; a wrong shape is that scenario's FAIL, saying why."""
    if problem := contract_problem(value):
        return result(name, FAIL, f"scenario {problem}", {"error_type": "ContractError"})
    if isinstance(value, CheckResult):
        return value
    return CheckResult(*(value[key] for key in CONTRACT_KEYS))  # a user's scenario from before the dataclass


def error_reply(call: Callable[[], Any]) -> str:
    """The server's error for call(), as text ('ERR ...' prefix kept as the server sent it)."""
    try:
        reply = call()
    except redis.ResponseError as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"no error (reply {reply!r})"


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """with stopwatch() as elapsed: ...; elapsed[0] is then the wall time in ms (perf_counter)."""
    elapsed: list[float] = []
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.append((time.perf_counter() - start) * 1000)


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples), 3) if samples else 0.0
