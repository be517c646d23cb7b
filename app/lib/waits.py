"""Waiting for a condition with a deadline, never for a fixed time.

A check returns (done, observed). On timeout the error says what was last observed, so a
failed wait explains itself instead of just saying "timed out".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lib.report import SetupError

Check = Callable[[], tuple[bool, str]]


class WaitTimeout(SetupError):
    """A condition did not become true before its deadline."""


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
               explain: Callable[[], str] | None = None) -> str:
    """Poll check() until it says done; return its last observation.

    abort() returning a message stops the wait at once (e.g. the process died).
    explain() adds context to a timeout (e.g. the tail of a log).
    """
    deadline = time.monotonic() + timeout
    observed = "nothing yet"
    for interval in policy.intervals():
        try:
            done, observed = check()
        except Exception as exc:  # noqa: BLE001 - an error is an observation while waiting
            done, observed = False, f"{type(exc).__name__}: {exc}"
        if done:
            return observed
        if abort is not None and (reason := abort()):
            raise WaitTimeout(f"gave up waiting for {what}: {reason}; last seen: {observed}"
                              + (f"\n{explain()}" if explain else ""))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {observed}"
                              + (f"\n{explain()}" if explain else ""))
        time.sleep(min(interval, remaining))
    raise AssertionError("unreachable")
