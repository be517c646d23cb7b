"""A retry policy object: how many attempts a call gets, which errors are retried, and what to wait for
between two attempts. Our clients wait for something that makes the next attempt worth making (a fresh
slot map, a +switch-master) rather than sleeping blind; each attempt's error is recorded for the history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int  # extra attempts after the first
    retryable: tuple[type[BaseException], ...]
    wait: Callable[[int], object]  # called with the failures so far, between two attempts (never after the last)

    def call(self, attempt: Callable[[], T], record: Callable[[BaseException], object]) -> T:
        """attempt() until it succeeds or the retries are spent; every failure goes to record first."""
        failures = 0
        while True:
            try:
                return attempt()
            except self.retryable as error:
                failures += 1
                record(error)
                if failures > self.retries:
                    raise
                self.wait(failures)
