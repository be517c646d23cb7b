"""RetryPolicy: attempts, what is retried, the wait between attempts (never after the last)."""

from __future__ import annotations

import pytest

from lib.retry import RetryPolicy


class Flaky:
    def __init__(self, failures: int, error: type[BaseException] = ConnectionError):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"attempt {self.calls}")
        return "ok"


def test_it_waits_between_attempts_and_records_every_failure():
    waits, recorded = [], []
    policy = RetryPolicy(2, (ConnectionError,), waits.append)
    assert policy.call(Flaky(2), recorded.append) == "ok"
    assert waits == [1, 2] and [str(e) for e in recorded] == ["attempt 1", "attempt 2"]


def test_the_last_failure_is_raised_without_a_wait_after_it():
    waits, recorded = [], []
    attempt = Flaky(5)
    with pytest.raises(ConnectionError, match="attempt 3"):
        RetryPolicy(2, (ConnectionError,), waits.append).call(attempt, recorded.append)
    assert attempt.calls == 3 and waits == [1, 2] and len(recorded) == 3


def test_an_error_it_does_not_retry_goes_out_at_once():
    waits, recorded = [], []
    attempt = Flaky(1, ValueError)
    with pytest.raises(ValueError):
        RetryPolicy(2, (ConnectionError,), waits.append).call(attempt, recorded.append)
    assert attempt.calls == 1 and waits == [] and recorded == []
