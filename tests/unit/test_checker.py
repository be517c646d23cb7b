"""lib/checks/checker.py on hand-made histories: outage windows, gaps, error counts; and lost writes, which the
final read (lib/phases/final_read.py) and the accounting (lib/checks/accounting.py) count now."""

from __future__ import annotations

import pytest

from lib.checks.accounting import LOST_SAMPLE, account, account_history
from lib.checks.checker import error_counts, longest_gap_ms, outage_around
from lib.history import FAIL, OK, UNKNOWN, History, Op
from lib.phases.final_read import read_back


def op(seq: int, start: float, end: float, outcome: str = OK, error: str | None = None, key: str | None = None,
       confirmed: bool | None = None) -> Op:
    return Op(seq, key or f"k{seq}", start, end, outcome, error, confirmed)


# ---- outage_around ---------------------------------------------------------------------------------

KILL_HISTORY = [
    op(0, 0.000, 0.001),
    op(1, 0.010, 0.011),  # the last success before the outage
    op(2, 0.020, 0.025, FAIL, "ConnectionError: Error 111 connecting"),
    op(3, 0.030, 0.040, UNKNOWN, "TimeoutError: Timeout reading from socket"),
    op(4, 0.050, 0.052),  # the first success after it
    op(5, 0.060, 0.061),
]


def test_outage_runs_from_the_last_ok_end_to_the_first_ok_end_after_the_fault():
    outage = outage_around(KILL_HISTORY, fault_at=0.015)
    assert outage is not None, "two failed ops after the fault are an outage"
    assert (outage.last_ok_end, outage.first_ok_end) == (0.011, 0.052), f"window {outage}"
    assert outage.failed_ops == 2, f"fail + unknown in between, got {outage.failed_ops}"
    assert outage.first_error == "ConnectionError: Error 111 connecting", f"first error {outage.first_error!r}"
    assert outage.downtime_ms == pytest.approx(41.0), f"0.052 - 0.011 s = 41 ms, got {outage.downtime_ms}"


def test_outage_does_not_depend_on_the_order_ops_were_recorded_in():
    shuffled = [KILL_HISTORY[i] for i in (4, 0, 2, 5, 3, 1)]
    assert outage_around(shuffled, 0.015) == outage_around(KILL_HISTORY, 0.015), "ops are sorted by start"


def test_a_failure_that_ended_before_the_fault_is_not_the_outage():
    ops = [op(0, 0.0, 0.001), op(1, 0.01, 0.012, FAIL, "ResponseError: x"), op(2, 0.02, 0.021),
           op(3, 0.03, 0.031)]
    assert outage_around(ops, fault_at=0.015) is None, "the only failure ended at 0.012 < fault 0.015"


def test_a_failure_in_flight_at_the_fault_is_part_of_the_outage():
    ops = [op(0, 0.0, 0.001), op(1, 0.010, 0.030, FAIL, "ConnectionError: reset"), op(2, 0.04, 0.041)]
    outage = outage_around(ops, fault_at=0.020)
    assert outage is not None and outage.failed_ops == 1, f"started 0.010, ended 0.030 > fault 0.020: {outage}"
    assert outage.downtime_ms == pytest.approx(40.0), f"0.041 - 0.001 s, got {outage.downtime_ms}"


def test_failures_before_any_success_are_skipped_for_the_next_run_of_failures():
    ops = [op(0, 0.00, 0.002, FAIL, "ConnectionError: a"), op(1, 0.01, 0.011),
           op(2, 0.02, 0.021, FAIL, "ConnectionError: b"), op(3, 0.03, 0.031)]
    outage = outage_around(ops, fault_at=0.0)
    assert outage is not None and outage.first_error == "ConnectionError: b", f"no ok before op 0: {outage}"
    assert outage.downtime_ms == pytest.approx(20.0), f"0.031 - 0.011 s, got {outage.downtime_ms}"


def test_an_outage_that_never_ends_has_no_downtime_figure():
    ops = [op(0, 0.0, 0.001), op(1, 0.01, 0.011, FAIL, "E: 1"), op(2, 0.02, 0.021, FAIL, "E: 2"),
           op(3, 0.03, 0.031, UNKNOWN, "E: 3")]
    outage = outage_around(ops, fault_at=0.005)
    assert outage is not None and outage.first_ok_end is None, f"no ok after the failures: {outage}"
    assert outage.failed_ops == 3 and outage.downtime_ms is None, f"3 failed, open window: {outage}"


def test_a_write_that_blocked_through_the_fault_and_then_succeeded_is_an_outage():
    ops = [op(0, 0.0, 0.001), op(1, 0.002, 0.003), op(2, 0.004, 3.204), op(3, 3.205, 3.206)]
    outage = outage_around(ops, fault_at=0.01)
    assert outage is not None, "no write failed, but none was acknowledged for 3.2 s: redis-py's retries hid it"
    assert (outage.last_ok_end, outage.first_ok_end, outage.failed_ops) == (0.003, 3.204, 0), f"window {outage}"
    assert outage.first_error is None and outage.downtime_ms == pytest.approx(3201.0), f"{outage}"


def test_a_short_gap_without_a_failed_write_is_no_outage():
    ops = [op(0, 0.0, 0.001), op(1, 0.002, 0.300), op(2, 0.301, 0.302)]
    assert outage_around(ops, fault_at=0.0) is None, "299 ms with no failure is below BLOCKED_WRITE_S"


def test_the_longest_outage_after_the_fault_is_the_one_reported():
    ops = [op(0, 0.0, 0.001), op(1, 0.01, 0.02, FAIL, "E: short"), op(2, 0.03, 0.031),
           op(3, 0.04, 0.05, FAIL, "E: long"), op(4, 0.06, 0.07, FAIL, "E: long 2"), op(5, 2.0, 2.001)]
    outage = outage_around(ops, fault_at=0.005)
    assert outage is not None and outage.first_error == "E: long", f"the 1.97 s outage, not the 30 ms one: {outage}"
    assert (outage.last_ok_end, outage.first_ok_end, outage.failed_ops) == (0.031, 2.001, 2), f"{outage}"


def test_no_ops_no_outage():
    assert outage_around([], fault_at=1.0) is None, "an empty history has no outage"


# ---- longest_gap_ms --------------------------------------------------------------------------------

def test_longest_gap_includes_the_edges_of_the_window_and_ignores_failures_and_outsiders():
    ops = [op(0, 0.05, 0.10), op(1, 0.15, 0.20), op(2, 0.85, 0.90), op(3, 0.4, 0.5, FAIL, "E: x"),
           op(4, 1.5, 1.6)]  # op 4 ends after the window
    assert longest_gap_ms(ops, 0.0, 1.0) == pytest.approx(700.0), "0.20 -> 0.90 is the longest pause"


def test_longest_gap_without_a_success_is_the_whole_window():
    ops = [op(0, 0.1, 0.2, FAIL, "E: x")]
    assert longest_gap_ms(ops, 2.0, 2.5) == pytest.approx(500.0), "nothing ok in [2.0, 2.5]"
    assert longest_gap_ms([], 3.0, 3.0) == 0.0, "an empty window has no gap"


def test_longest_gap_at_the_end_of_the_window_counts():
    ops = [op(0, 0.0, 0.1), op(1, 0.1, 0.2)]
    assert longest_gap_ms(ops, 0.0, 1.2) == pytest.approx(1000.0), "the last ok at 0.2, the window ends at 1.2"


# ---- error_counts ----------------------------------------------------------------------------------

def test_error_counts_group_failed_ops_by_exception_name():
    ops = [op(0, 0, 1, FAIL, "ConnectionError: Error 111"), op(1, 1, 2, FAIL, "ConnectionError: reset by peer"),
           op(2, 2, 3, UNKNOWN, "TimeoutError: Timeout reading"), op(3, 3, 4, UNKNOWN, None),
           op(4, 4, 5, OK, "ignored: an ok op is no error")]
    assert error_counts(ops) == {"ConnectionError": 2, "TimeoutError": 1, "": 1}, "by the text before ':'"
    assert error_counts([]) == {}, "no ops, no errors"


# ---- lost writes: the final read and the accounting -----------------------------------------------

def written(*ops: Op) -> list[Op]:
    """The ops as writes of value str(seq), as ContinuousWriter records them."""
    for o in ops:
        o.value = str(o.seq)
    return list(ops)


def test_the_final_read_reads_every_written_key_in_batches_and_the_accounting_finds_the_lost_ones():
    history = History()
    for o in written(op(0, 0, 1, confirmed=True), op(1, 1, 2, confirmed=True), op(2, 2, 3, confirmed=False),
                     op(3, 3, 4, confirmed=True), op(4, 4, 5, FAIL, "ConnectionError: x"), op(5, 5, 6)):
        history.record(o)
    history.record(op(6, 6, 7))  # no value: not a write of the harness's (a probe's), not read back
    store = {"k0": "0", "k1": None, "k2": "1", "k3": "3", "k4": None, "k5": "5"}  # k1 missing, k2 an older value
    asked: list[list[str]] = []

    def read_many(keys: list[str]) -> list[str | None]:
        asked.append(list(keys))
        return [store[k] for k in keys]

    read_back(read_many, None, history, batch=2)
    assert asked == [["k0", "k1"], ["k2", "k3"], ["k4", "k5"]], f"the failed write k4 is read back too: {asked}"
    loss = account_history(history)
    assert (loss.acked, loss.acked_lost, loss.wait_confirmed, loss.wait_confirmed_lost) == (5, 2, 3, 1), f"{loss}"
    assert (loss.failed, loss.failed_present) == (1, 0), "the failed write is not in the final read: not applied"
    assert loss.lost_keys_sample == ["k1", "k2"] and [o.seq for o in loss.lost_ops] == [1, 2], f"{loss}"


def test_lost_keys_are_a_sample_of_twenty_but_all_are_counted():
    history = written(*(op(i, i, i + 1) for i in range(25)))
    loss = account(history, {o.key: None for o in history})
    assert loss.acked_lost == 25 and len(loss.lost_ops) == 25, f"every write is lost, got {loss.acked_lost}"
    assert LOST_SAMPLE == 20 and loss.lost_keys_sample == [f"k{i}" for i in range(20)], f"{loss.lost_keys_sample}"


def test_nothing_written_nothing_read_and_a_failed_write_is_not_lost():
    def read_many(keys):
        raise AssertionError(f"nothing to read, asked for {keys}")

    history = History()
    history.record(op(0, 0, 1, FAIL, "E: x"))  # no value: no write to read back
    assert read_back(read_many, None, history) == {}, "no key written, none read"
    loss = account(written(op(1, 0, 1, FAIL, "E: x")), {"k1": None})
    assert (loss.acked, loss.acked_lost, loss.failed, loss.lost_keys_sample) == (0, 0, 1, []), f"{loss}"
