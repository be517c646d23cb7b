"""The final read waits until the servers answer it, and a read that never succeeds is the harness's ERROR."""

from __future__ import annotations

import pytest
import redis

from lib.checks.result import (
    ERROR,
    EXIT_CHECK_FAILED,
    EXIT_NOT_JUDGED,
    EXIT_OK,
    FAIL,
    OK,
    WARN,
    CheckResult,
    SuiteReport,
    checked,
)
from lib.errors import HarnessError
from lib.history import OK as OP_OK
from lib.history import History, Op
from lib.phases.final_read import read_back


def written(history: History, keys: list[str]) -> History:
    for seq, key in enumerate(keys):
        history.record(Op(seq, key, 0.0, 0.001, OP_OK, value=str(seq)))
    return history


def test_the_final_read_is_tried_again_while_the_cluster_says_it_is_down():
    history = written(History(), ["a", "b"])
    answers = [redis.exceptions.ClusterDownError("The cluster is down"), ["0", None]]

    def read_many(keys):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    values = read_back(read_many, None, history, where="through the cluster client")
    assert values == {"a": "0", "b": None}, "the second attempt's answer, after CLUSTERDOWN"
    assert history.final_read == values and history.final_read_error is None, "recorded for the checks"


def test_a_final_read_that_never_succeeds_is_kept_as_the_harnesss_error():
    history = written(History(), ["a"])

    def down(keys):
        raise redis.exceptions.ClusterDownError("The cluster is down")

    with pytest.raises(HarnessError, match="could not read back the 1 written keys on 127.0.0.1:7000 within 0 s"):
        read_back(down, None, history, where="on 127.0.0.1:7000", timeout=0.05)
    assert history.final_read is None, "no final read: nothing to judge by"
    assert "last seen ClusterDownError: The cluster is down" in history.final_read_error, history.final_read_error


def test_a_harness_error_in_a_check_is_error_not_fail():
    def check() -> CheckResult:
        raise HarnessError("the harness could not read back the 3 written keys within 30 s")

    result = checked("primary_failure", check)
    assert (result.status, result.detail) == (ERROR, "the harness could not read back the 3 written keys within 30 s")


@pytest.mark.parametrize(("statuses", "code"), [([OK, WARN], EXIT_OK), ([OK, ERROR], EXIT_NOT_JUDGED),
                                                 ([ERROR, FAIL], EXIT_CHECK_FAILED), ([FAIL], EXIT_CHECK_FAILED)])
def test_exit_code_a_failed_check_outranks_one_the_harness_could_not_judge(statuses, code):
    report = SuiteReport("cluster", {}, [CheckResult(f"c{i}", s, "") for i, s in enumerate(statuses)])
    assert report.exit_code() == code, f"{statuses} -> {report.exit_code()}, expected {code}"
