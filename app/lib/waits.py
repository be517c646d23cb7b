"""Waiting for a condition with a deadline, never for a fixed time.

A check returns (done, observed). On timeout the error says what was last observed, so a
failed wait explains itself instead of just saying "timed out".

A timeout is not a setup error: a wait inside a check that never converges (a migration, a
rejoin) is that check's FAIL. Waits that are setup (a stack that never became ready) are turned
into SetupError where they are called (lib/launcher/readiness.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from lib.errors import SetupError
from lib.interrupts import raise_if_pending

Check = Callable[[], tuple[bool, str]]

# What a check may raise while the system is still changing: a node down or restarting, a
# connection cut, a lookup of ours that found no node yet (SetupError from ClusterClient.nodes).
# Anything else (KeyError, TypeError, ...) is a bug in the check and is raised at once, instead
# of being retried until the deadline.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.RedisError, redis.exceptions.RedisClusterException, OSError, SetupError)


class WaitTimeout(Exception):
    """A condition did not become true before its deadline; `observed` is what was last seen."""

    def __init__(self, message: str, *, what: str = "", observed: str = ""):
        super().__init__(message)
        self.what, self.observed = what, observed


@dataclass(frozen=True)
class PollPolicy:
    """How often to look: start fast, back off to a cap (so a slow wait does not spin the CPU)."""

    first: float = 0.02
    cap: float = 0.25
    factor: float = 1.5

    def intervals(self):
        interval = self.first
        while True:
            yield interval
            interval = min(self.cap, interval * self.factor)


def wait_until(check: Check, *, timeout: float, what: str, policy: PollPolicy = PollPolicy(),
               abort: Callable[[], str | None] | None = None,
               explain: Callable[[], str] | None = None,
               transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS) -> str:
    """Poll check() until it says done; return its last observation.

    An exception of a `transient` type is an observation ("not yet"); any other is raised at once.
    abort() returning a message stops the wait at once (e.g. the process died).
    explain() adds context to a timeout (e.g. the tail of a log).
    """
    deadline = time.monotonic() + timeout
    observed = "nothing yet"
    for interval in policy.intervals():
        raise_if_pending()  # a Ctrl-C swallowed somewhere (a __del__) still stops the run here
        try:
            done, observed = check()
        except transient as exc:
            done, observed = False, f"{type(exc).__name__}: {exc}"
        if done:
            return observed
        if abort is not None and (reason := abort()):
            raise WaitTimeout(f"gave up waiting for {what}: {reason}; last seen: {observed}"
                              + (f"\n{explain()}" if explain else ""), what=what, observed=observed)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {observed}"
                              + (f"\n{explain()}" if explain else ""), what=what, observed=observed)
        time.sleep(min(interval, remaining))
    raise AssertionError("unreachable")
