"""lib/phases/cache_outage.py on hand-made request histories: per-shard recovery and the request totals."""

from __future__ import annotations

import pytest

from lib.history import FAIL, OK, UNKNOWN, History, Op
from lib.phases.cache_outage import ok_count, request_totals, shard_recovery
from lib.workload.http_requests import HTTP, request_op

HIT, MISS, ERROR = "HIT", "MISS", "ERROR"


def req(seq: int, start: float, cache: str | None, *, status: int | None = 200, group: str = "A",
        duration: float = 0.01, error: str | None = None) -> Op:
    outcome = UNKNOWN if status is None else (FAIL if status >= 500 else OK)
    if error is None and cache == ERROR:
        error = "cache: CacheUnavailable"
    return request_op(seq, f"/p{seq}", start, start + duration, outcome, error, group, status, cache)


# ---- shard_recovery ----------------------------------------------------------------------------------

def test_recovery_is_measured_after_the_last_store_error_not_the_first():
    ops = [req(0, 0.0, HIT), req(1, 1.0, ERROR), req(2, 1.5, MISS), req(3, 2.0, ERROR), req(4, 2.5, ERROR),
           req(5, 3.0, MISS), req(6, 3.5, MISS), req(7, 4.0, HIT), req(8, 4.5, HIT)]
    recovery = shard_recovery("A", ops, fault_at=0.5)
    assert recovery.requests == 9 and recovery.cache_errors == 3, f"{recovery}"
    assert (recovery.first_error_at, recovery.last_error_at) == (1.01, 2.51), "ends of the 1st and 3rd error"
    assert recovery.client_recovered_at == 3.01, "the MISS at 1.5 came before the last error; the one at 3.0 counts"
    assert recovery.hits_returned_at == 4.01, "the first HIT after the last error"


def test_errors_before_the_fault_and_of_other_shards_do_not_count():
    ops = [req(0, 0.0, ERROR), req(1, 0.2, HIT), req(2, 1.0, ERROR, group="B"), req(3, 1.2, HIT)]
    recovery = shard_recovery("A", ops, fault_at=0.5)
    assert recovery.requests == 3 and recovery.cache_errors == 0, f"the A error ended at 0.01 < 0.5: {recovery}"
    assert (recovery.first_error_at, recovery.client_recovered_at, recovery.hits_returned_at) == (None, None, None)
    assert shard_recovery("B", ops, fault_at=0.5).cache_errors == 1, "B's own error is B's"


def test_a_shard_that_never_recovers_has_no_recovery_times():
    ops = [req(0, 0.0, HIT), req(1, 1.0, ERROR), req(2, 2.0, None, status=502, error="HTTP 502"),
           req(3, 3.0, ERROR)]
    recovery = shard_recovery("A", ops, fault_at=0.5)
    assert recovery.cache_errors == 2 and recovery.last_error_at == 3.01, f"{recovery}"
    assert recovery.client_recovered_at is None and recovery.hits_returned_at is None, f"{recovery}"


def test_recovery_reads_requests_in_start_order_whatever_the_recording_order():
    ops = [req(3, 3.0, HIT), req(2, 2.0, MISS), req(1, 1.0, ERROR), req(0, 0.0, HIT)]
    recovery = shard_recovery("A", ops, fault_at=0.5)
    assert (recovery.client_recovered_at, recovery.hits_returned_at) == (2.01, 3.01), f"{recovery}"


# ---- request_totals ----------------------------------------------------------------------------------

def test_request_totals_count_by_what_the_cache_and_the_server_did():
    ops = [req(0, 0.0, HIT), req(1, 1.0, HIT), req(2, 2.0, MISS), req(3, 3.0, ERROR, duration=0.25),
           req(4, 4.0, None, status=503, error="HTTP 503"),
           req(5, 5.0, None, status=None, error="HTTP ConnectionRefusedError: [Errno 111] Connection refused"),
           req(6, 6.0, ERROR, error="cache: ClusterDownError")]
    totals = request_totals(ops)
    assert (totals.requests, totals.hits, totals.misses, totals.cache_errors) == (7, 2, 1, 2), f"{totals}"
    assert (totals.http_5xx, totals.http_failed) == (1, 1), "503 is a 5xx; no status at all is a failed request"
    assert totals.errors_by_type == {"cache: CacheUnavailable": 1, "cache: ClusterDownError": 1, "HTTP 503": 1,
                                     "HTTP ConnectionRefusedError": 1}, f"{totals.errors_by_type}"
    assert totals.slowest_ms == pytest.approx(250.0), f"request 3 took 0.25 s, got {totals.slowest_ms}"
    assert totals.hit_ratio == pytest.approx(2 / 7), f"2 hits of 7, got {totals.hit_ratio}"
    as_json = totals.to_dict()
    assert (as_json["hit_ratio"], as_json["slowest_request_ms"]) == (0.2857, 250.0), f"{as_json}"


def test_no_requests_is_a_zero_hit_ratio_not_a_division_error():
    totals = request_totals([])
    assert (totals.requests, totals.hit_ratio, totals.slowest_ms) == (0, 0.0, 0.0), f"{totals}"


# ---- ok_count ----------------------------------------------------------------------------------------

def test_ok_count_counts_answered_requests_of_one_shard_started_after_a_moment():
    ops = [req(0, 1.0, HIT), req(1, 2.0, HIT), req(2, 2.0, MISS, group="B"), req(3, 3.0, MISS),
           req(4, 4.0, None, status=500, error="HTTP 500"), req(5, 5.0, ERROR), req(6, 6.0, HIT)]
    assert ok_count(ops, "A", after=2.0) == 3, "3.0 MISS, 5.0 ERROR (served by the app), 6.0 HIT; 2.0 is not after"
    assert ok_count(ops, "A", after=2.0, cache=HIT) == 1, "only the HIT at 6.0"
    assert ok_count(ops, "B", after=0.0) == 1, "B's one request"


# ---- a saved history is judged the same (--recheck) --------------------------------------------------

def test_requests_saved_and_read_back_give_the_same_recovery_and_totals():
    history = History()
    for op in [req(0, 10.0, HIT), req(1, 11.0, ERROR), req(2, 12.0, None, status=502, error="HTTP 502"),
               req(3, 13.0, MISS), req(4, 14.0, HIT), req(5, 14.5, HIT, group="B")]:
        history.record(op)
    saved = History.from_dict(history.to_dict(zero=10.5))  # times become seconds from the fault at 10.5
    ops = saved.snapshot(HTTP)
    assert len(ops) == 6, "every request is an op of process HTTP, told apart from the writer's ops"
    recovery = shard_recovery("A", ops, fault_at=0.0)
    assert (recovery.cache_errors, recovery.client_recovered_at, recovery.hits_returned_at) == (
        1, pytest.approx(2.51), pytest.approx(3.51)), f"{recovery}"
    assert request_totals(ops).to_dict() == request_totals(history.snapshot(HTTP)).to_dict()
