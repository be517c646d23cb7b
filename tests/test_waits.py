"""lib.waits: what a wait treats as "not yet", and what becomes of a timeout (a check's FAIL, not a setup error)."""

from __future__ import annotations

import os
import time

import pytest
import redis

from lib.checks.result import EXIT_SETUP_ERROR, FAIL, OK, CheckResult, checked
from lib.errors import SetupError
from lib.launcher import readiness
from lib.report.report import cli_main
from lib.util import free_ports
from lib.waits import PollPolicy, WaitTimeout, wait_until

FAST = PollPolicy(first=0.01, cap=0.01)


def test_a_bug_in_the_check_is_raised_at_once_not_after_the_deadline():
    def buggy() -> tuple[bool, str]:
        return {}["missing"], "never"

    start = time.monotonic()
    with pytest.raises(KeyError):
        wait_until(buggy, timeout=5, what="a buggy check", policy=FAST)
    assert time.monotonic() - start < 1, "a KeyError must not be retried until the 5 s deadline"


def test_a_type_error_in_the_check_is_raised_at_once():
    with pytest.raises(TypeError):
        wait_until(lambda: (None + 1, "x"), timeout=5, what="a buggy check", policy=FAST)


@pytest.mark.parametrize("error", [redis.ConnectionError("Error 111 connection refused"),
                                   redis.exceptions.SlotNotCoveredError("slot 7 not covered"),
                                   ConnectionResetError("reset by peer"), TimeoutError("timed out"),
                                   SetupError("no cluster node answered CLUSTER NODES")])
def test_expected_transient_errors_are_observations_until_the_check_passes(error):
    calls = []

    def flaky() -> tuple[bool, str]:
        calls.append(1)
        if len(calls) < 3:
            raise error
        return True, "ok now"

    assert wait_until(flaky, timeout=5, what="a flaky node", policy=FAST) == "ok now"
    assert len(calls) == 3


def test_a_timeout_says_what_was_last_seen_and_is_not_a_setup_error():
    def refused() -> tuple[bool, str]:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1")

    with pytest.raises(WaitTimeout) as caught:
        wait_until(refused, timeout=0.05, what="node to answer", policy=FAST)
    assert not isinstance(caught.value, SetupError), "a convergence timeout must not end the suite as exit 2"
    assert caught.value.observed == "ConnectionError: Error 111 connecting to 127.0.0.1:1"
    assert "waiting for node to answer; last seen: ConnectionError" in str(caught.value)


def test_a_wait_that_times_out_inside_a_check_is_that_checks_fail_and_the_next_check_runs():
    def converging_never() -> CheckResult:
        wait_until(lambda: (False, "slot 7 still migrating"), timeout=0.05, what="slot 7 to settle", policy=FAST)
        return CheckResult("ask", OK, "unreachable")

    first = checked("ask", converging_never)
    second = checked("distribution", lambda: CheckResult("distribution", OK, "ran"))
    assert first.status == FAIL and "slot 7 still migrating" in first.detail, first
    assert first.metrics == {"error_type": "WaitTimeout", "last_seen": "slot 7 still migrating"}
    assert second.status == OK, "the checks after a timed-out one still run"


def test_a_setup_error_inside_a_check_still_ends_the_suite():
    def refused() -> CheckResult:
        raise SetupError("refusing to migrate a slot")

    with pytest.raises(SetupError):
        checked("ask", refused)


def test_notes_of_a_failed_check_are_part_of_its_detail():
    def failing() -> CheckResult:
        error = redis.ResponseError("Target instance replied with error: NOAUTH")
        error.add_note("slot 7 put back on 127.0.0.1:7000")
        raise error

    result = checked("ask", failing)
    assert result.status == FAIL and result.detail.endswith("; slot 7 put back on 127.0.0.1:7000"), result.detail


def test_a_stray_timeout_at_the_top_is_one_line_and_exit_2(capsys):
    def main() -> int:
        raise WaitTimeout("timed out after 30s waiting for 100 acknowledged writes; last seen: 0")

    with pytest.raises(SystemExit) as leaving:
        cli_main(main)
    assert leaving.value.code == EXIT_SETUP_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "last seen: 0" in err and "Traceback" not in err, err


class _DeadServerStack:
    """Enough of a LocalStack for wait_pingable: a live pid (ours) whose port nobody serves."""

    def __init__(self, port: int):
        self.port = port

    def service(self, name: str):
        return type("Svc", (), {"pid": os.getpid()})()

    def endpoint(self, name: str) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def log_tail(self, name: str) -> str:
        return "--- last lines of node.log ---"


def test_a_stack_that_never_became_ready_is_still_a_setup_error():
    (port,) = free_ports(1)
    with pytest.raises(SetupError, match=f"(?s)node-7000 to answer PING on {port}.*last lines of node.log"):
        readiness.wait_pingable(_DeadServerStack(port), "node-7000", timeout=0.2)
