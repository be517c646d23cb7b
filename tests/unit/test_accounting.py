"""Lost-write accounting (lib/checks/accounting.py), the final read (lib/runs/final_read.py) and --recheck
(lib/checks/recheck.py) on hand-made histories and on the saved JSON of a real HA run: no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from lib import events
from lib.checks.accounting import account, account_history, bound_line, consistency_result, judge, op_class
from lib.checks.recheck import recheck
from lib.checks.result import FAIL, OK, WARN
from lib.checks.timeline import history_to_dict
from lib.errors import SetupError
from lib.history import FAIL as OP_FAIL
from lib.history import OK as OP_OK
from lib.history import UNKNOWN, History, Op
from lib.runs.final_read import read_back, written_keys
from lib.workload.workload import ContinuousWriter

REAL_RUN = Path(__file__).parent / "data" / "ha_kill_run.json"  # app/stack.py run ha ... ha_test.py --json
FAULT_AT = 100.0


def write(key: str, t_s: float, outcome: str = OP_OK, *, value: str | None = None, ms: float = 1.0,
          attempts: list[str] | None = None, group: str | None = None) -> dict:
    """One saved write, as history_to_dict writes it (t_s from the fault)."""
    row = {"t_s": t_s, "ms": ms, "outcome": outcome, "key": key, "value": value or key.split(":")[-1]}
    if attempts:
        row["attempts"] = attempts
    if group:
        row["group"] = group
    return row


# ---- each class of write ------------------------------------------------------------------------

def test_an_acknowledged_write_in_the_final_read_is_kept_and_one_missing_is_lost():
    ops = [write("w:0", -0.5), write("w:1", 0.2, ms=10.0), write("w:2", 0.9)]
    acc = account(ops, {"w:0": "0", "w:1": None, "w:2": "2"})
    assert (acc.acked, acc.acked_lost) == (3, 1), acc
    assert acc.lost_acked_window_s == [0.21, 0.21], "acknowledged at start + duration, seconds from the fault"
    assert acc.lost_keys_sample == ["w:1"]


def test_an_older_value_in_the_final_read_is_a_lost_write():
    acc = account([write("w:0", 0.1, value="7")], {"w:0": "6"})
    assert acc.acked_lost == 1, "present means the exact value written"


def test_a_later_write_to_the_same_key_overwrites_without_losing_the_earlier_one():
    ops = [write("k", 0.1, value="a"), write("k", 0.5, value="b")]
    assert account(ops, {"k": "b"}).acked_lost == 0
    assert account(ops, {"k": "a"}).acked_lost == 1, "the later acknowledged write is the one lost"


def test_unknown_writes_are_applied_or_not_and_never_count_as_lost():
    ops = [write("w:0", 0.1, UNKNOWN), write("w:1", 0.2, UNKNOWN), write("w:2", 0.3, UNKNOWN)]
    acc = account(ops, {"w:0": "0", "w:1": None, "w:2": None})
    assert (acc.unknown, acc.unknown_applied, acc.unknown_lost, acc.acked_lost) == (3, 1, 2, 0), acc
    assert acc.lost_acked_window_s is None


def test_a_failed_write_found_in_the_final_state_is_failed_present():
    ops = [write("w:0", 0.1, OP_FAIL), write("w:1", 0.2, OP_FAIL)]
    acc = account(ops, {"w:0": "0", "w:1": None})
    assert (acc.failed, acc.failed_present, acc.failed_present_keys_sample) == (2, 1, ["w:0"]), acc
    status, detail = judge(acc)
    assert status == WARN and "a retry would write them twice" in detail, detail


def test_a_retry_whose_earlier_attempt_timed_out_is_unknown_even_if_saved_as_failed():
    """Judged by every attempt: a timeout may have applied the write, the refusals after it do not undo that."""
    retried = write("w:0", 0.1, OP_FAIL, attempts=[UNKNOWN, OP_FAIL, OP_FAIL])
    assert op_class(retried) == UNKNOWN
    assert op_class(write("w:1", 0.1, OP_FAIL, attempts=[OP_FAIL, OP_FAIL])) == OP_FAIL
    assert op_class(write("w:2", 0.1, OP_OK, attempts=[UNKNOWN, OP_OK])) == OP_OK
    acc = account([retried], {"w:0": "0"})
    assert (acc.unknown_applied, acc.failed_present) == (1, 0), "a timed-out attempt that landed is not failed_present"


def test_the_attempts_reach_the_saved_history_through_the_writer():
    refused = "Error 111 connecting to 127.0.0.1:6379. Connection refused."

    def flaky(key, value, attempts):
        attempts.failed(redis.exceptions.TimeoutError("Timeout reading from socket"))
        attempts.failed(redis.exceptions.ConnectionError(refused))
        raise redis.exceptions.ConnectionError(refused)

    op = ContinuousWriter(flaky, lambda seq: f"w:{seq}", History(), with_attempts=True).attempt(0)
    assert (op.outcome, op.value, op.attempts) == (UNKNOWN, "0", [UNKNOWN, OP_FAIL, OP_FAIL]), op
    ok = ContinuousWriter(lambda key, value: None, lambda seq: f"w:{seq}", History()).attempt(1)
    assert (ok.outcome, ok.value, ok.attempts) == (OP_OK, "1", None), "one attempt: nothing extra saved"


def test_reads_and_probes_without_a_value_are_not_accounted():
    ops = [{"t_s": 0.1, "ms": 1.0, "outcome": OP_OK}, write("w:0", 0.2)]
    assert account(ops, {"w:0": "0"}).acked == 1


def test_a_final_read_that_misses_written_keys_is_refused_not_counted_as_loss():
    with pytest.raises(ValueError, match="no entry for 1 written key"):
        account([write("w:0", 0.1)], {})


# ---- the window, the heal, the groups -------------------------------------------------------------

def test_the_window_spans_the_first_and_last_acknowledgement_of_a_lost_write():
    ops = [write(f"w:{i}", t) for i, t in enumerate([-0.3, -0.05, 0.4, 1.5, 2.5])]
    final = {"w:0": "0", "w:1": None, "w:2": None, "w:3": None, "w:4": "4"}
    acc = account(ops, final)
    assert acc.acked_lost == 3 and acc.lost_acked_window_s == [-0.049, 1.501], acc


def test_writes_acknowledged_after_the_heal_are_counted_apart():
    ops = [write("w:0", 0.5), write("w:1", 4.2), write("w:2", 4.3)]
    acc = account(ops, {"w:0": "0", "w:1": None, "w:2": "2"}, heal_at_s=4.0)
    assert (acc.acked_after_heal, acc.acked_lost_after_heal) == (2, 1), acc
    assert acc.metrics()["heal_at_s"] == 4.0


def test_lost_writes_are_counted_per_shard():
    ops = [write("a:0", 0.1, group="0-5460"), write("b:0", 0.1, group="5461-10922"), write("a:1", 0.2, group="0-5460")]
    acc = account(ops, {"a:0": None, "b:0": "0", "a:1": None})
    assert acc.metrics()["acked_lost_by_group"] == {"0-5460": 2}


def test_metrics_carry_the_names_the_json_promises():
    metrics = account([write("w:0", 0.1)], {"w:0": None}).metrics()
    for name in ("acked", "acked_lost", "unknown", "unknown_applied", "unknown_lost", "failed_present",
                 "lost_acked_window_s"):
        assert name in metrics, f"{name} missing from {sorted(metrics)}"
    assert metrics["lost_acked_window_s"] == [0.101, 0.101]


def test_the_cut_and_heal_come_from_the_saved_events():
    saved = {"ops": [write("w:0", 0.5), write("w:1", 3.0)], "final_read": {"w:0": None, "w:1": "1"},
             "events": [{"t_s": -1.0, "event": events.FAULT, "detail": "by hand"},
                        {"t_s": 0.0, "event": events.FAULT_SEEN, "detail": ""},
                        {"t_s": 2.5, "event": events.HEALED, "detail": "resumed"}]}
    acc = account_history(saved)
    assert (acc.cut_at_s, acc.heal_at_s, acc.acked_lost, acc.acked_after_heal) == (0.0, 2.5, 1, 1), acc
    with pytest.raises(KeyError):
        account_history({"ops": [], "events": []})


# ---- the verdict and its second line ------------------------------------------------------------

def lost_within(last_s: float, count: int = 12):
    ops = [write(f"w:{i}", last_s * i / max(count - 1, 1), ms=0.0) for i in range(count)]
    return account(ops, {f"w:{i}": None for i in range(count)})


def test_bound_line_within_the_documented_bound():
    line = bound_line(lost_within(1.6), 2)
    assert line == ("all 12 lost writes were acknowledged within 1.6 s of the cut (min-replicas-max-lag 2 s): "
                    "within the documented bound"), line


def test_bound_line_beyond_the_documented_bound():
    line = bound_line(lost_within(3.1), 2)
    assert line.endswith("up to 3.1 s after the cut (min-replicas-max-lag 2 s): beyond the documented bound"), line


def test_bound_line_without_min_replicas():
    assert bound_line(lost_within(1.0), None) == "no min-replicas bound configured: Sentinel documents no bound"
    assert bound_line(lost_within(1.0), None, "Valkey Cluster").startswith("no min-replicas bound configured: Valkey")


def test_bound_line_measures_from_the_cut_and_without_loss_is_within():
    acc = lost_within(2.5)
    acc.cut_at_s = 1.0
    assert "within 1.5 s of the cut" in bound_line(acc, 2)
    assert bound_line(account([write("w:0", 0.1)], {"w:0": "0"}), 2).startswith("no acknowledged write lost")


def test_any_acknowledged_write_lost_fails_and_the_bound_is_the_second_line():
    result = consistency_result(lost_within(1.6), 2, checked_on="127.0.0.1:6380")
    first, second = result.detail.split("\n")
    assert result.status == FAIL and first.startswith("12 of 12 acknowledged writes lost"), result.detail
    assert second.endswith("within the documented bound"), second
    assert result.metrics["checked_on"] == "127.0.0.1:6380" and result.metrics["min_replicas_max_lag_s"] == 2


def test_nothing_lost_is_ok_in_one_line_when_no_bound_was_asked_for():
    status, detail = judge(account([write("w:0", 0.1), write("w:1", 0.2, UNKNOWN)], {"w:0": "0", "w:1": None}))
    assert status == OK and "\n" not in detail and "1 unknown (0 applied, 1 not)" in detail, detail


# ---- the final read, recorded in the history -------------------------------------------------------

def recorded_history() -> History:
    history = History()
    for seq in range(7):
        history.record(Op(seq, f"w:{seq}", FAULT_AT + seq * 0.1, FAULT_AT + seq * 0.1 + 0.001,
                          OP_OK if seq != 3 else UNKNOWN, value=str(seq)))
    history.record(Op(99, "probe", FAULT_AT, FAULT_AT + 0.001, OP_OK))  # no value: a probe, not read back
    history.event(events.FAULT, "SIGSTOP valkey-master", at=FAULT_AT)
    return history


def test_read_back_reads_every_written_key_in_batches_and_records_it():
    history = recorded_history()
    store = {f"w:{seq}": str(seq).encode() for seq in range(7) if seq not in (2, 3)}
    batches = []

    def read_many(keys):
        batches.append(list(keys))
        return [store.get(k) for k in keys]

    final = read_back(read_many, None, history, where="on 127.0.0.1:6380", batch=3)
    assert [len(b) for b in batches] == [3, 3, 1] and written_keys(history) == [f"w:{i}" for i in range(7)]
    assert final["w:0"] == "0" and final["w:2"] is None, "bytes decoded, a missing key is None"
    assert history.final_read == final
    event = history.first_event(events.FINAL_READ)
    assert event is not None and "7 keys read back on 127.0.0.1:6380, 5 with a value" in event.detail, event
    saved = json.loads(json.dumps(history_to_dict(history, FAULT_AT)))
    assert saved["final_read"] == final
    acc = account_history(saved)
    assert (acc.acked, acc.acked_lost, acc.unknown, acc.unknown_lost) == (6, 1, 1, 1), acc


def test_read_back_refuses_a_short_answer():
    with pytest.raises(ValueError, match="asked for 7 keys and got 1"):
        read_back(lambda keys: [None], None, recorded_history())


# ---- --recheck on saved files -----------------------------------------------------------------------

def test_recheck_of_a_real_run_saved_before_the_final_read_is_a_one_line_setup_error():
    with pytest.raises(SetupError) as error:
        recheck(REAL_RUN)
    assert "no final read saved" in str(error.value) and "\n" not in str(error.value), error.value


def with_final_read(tmp_path: Path, lose: int = 0) -> tuple[Path, dict]:
    """The real run's file plus the final read it would have recorded (every applied write present), by hand;
    `lose` acknowledged writes after the fault are left out of it, as a failover that dropped them would."""
    body = json.loads(REAL_RUN.read_text())
    history = next(s for s in body["scenarios"] if s["scenario"] == "master_kill")["metrics"]["history"]
    final = {op["key"]: op["value"] if op["outcome"] == OP_OK else None for op in history["ops"] if "key" in op}
    dropped = [op["key"] for op in history["ops"] if op["outcome"] == OP_OK and op["t_s"] > 0][:lose]
    final.update({key: None for key in dropped})
    history["final_read"] = final
    path = tmp_path / "ha.json"
    path.write_text(json.dumps(body))
    return path, body


def test_recheck_of_the_real_run_agrees_with_its_saved_verdict(tmp_path):
    path, body = with_final_read(tmp_path)
    report, lines = recheck(path, expect_suite="ha")
    assert lines == [], lines
    assert [s.scenario for s in report.scenarios] == [s["scenario"] for s in body["scenarios"]]
    consistency = next(s for s in report.scenarios if s.scenario == "consistency")
    saved = next(s for s in body["scenarios"] if s["scenario"] == "consistency")
    assert consistency.status == OK and consistency.metrics["acked"] == saved["metrics"]["acked"], consistency
    assert consistency.metrics["unknown"] >= 1, "the real run has a retried write whose first attempt may have landed"
    assert report.exit_code() == 0


def test_recheck_reports_where_the_recomputed_verdict_differs(tmp_path):
    path, _ = with_final_read(tmp_path, lose=3)
    report, lines = recheck(path)
    consistency = next(s for s in report.scenarios if s.scenario == "consistency")
    assert consistency.status == FAIL and consistency.metrics["acked_lost"] == 3, consistency
    assert any(line.startswith("consistency: saved OK, recomputed FAIL") for line in lines), lines
    assert any("own read-back found 0 acknowledged writes lost, the saved final read 3" in line for line in lines)
    assert report.exit_code() == 1


def cluster_file(tmp_path: Path, *, gap_ms: float = 20.0, lost: bool = False) -> Path:
    ops = [write(f"w:{i}:0", 0.1 * i, group="0-5460") for i in range(5)]
    final = {op["key"]: op["value"] for op in ops}
    if lost:
        final["w:1:0"] = None
    body = {"suite": "cluster", "target": {"min_replicas_max_lag_s": 2}, "scenarios": [
        {"scenario": "connect", "status": OK, "detail": "3 shards", "metrics": {}},
        {"scenario": "primary_failure", "status": FAIL if gap_ms > 1000 else OK, "detail": "SIGKILL; 0 lost",
         "metrics": {"acked": 5, "lost": 0, "other_shards_longest_gap_ms": {"5461-10922": gap_ms},
                     "history": {"ops": ops, "events": [{"t_s": 0.0, "event": "fault", "detail": "SIGKILL"}],
                                 "final_read": final}}}]}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(body))
    return path


def test_recheck_of_a_cluster_run_judges_the_scenario_holding_the_history(tmp_path):
    report, lines = recheck(cluster_file(tmp_path, lost=True))
    failure = report.scenarios[1]
    assert failure.status == FAIL and failure.metrics["acked_lost"] == 1, failure
    assert "within 0.1 s of the cut (min-replicas-max-lag 2 s)" in failure.detail, failure.detail
    assert lines and lines[0].startswith("primary_failure: saved OK, recomputed FAIL"), lines


def test_recheck_keeps_a_failure_that_was_not_about_lost_writes(tmp_path):
    report, lines = recheck(cluster_file(tmp_path, gap_ms=2500.0))
    assert report.scenarios[1].status == FAIL and lines == [], (report.scenarios[1], lines)


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file"), ("{", "not readable as JSON"), ('{"x": 1}', "not a suite's --json report"),
    ('{"suite": "ha", "scenarios": [{"scenario": "crud", "status": "OK", "detail": "", "metrics": {}}]}',
     "no recorded history"),
    ('{"suite": "cache", "scenarios": [{"scenario": "http_failover", "status": "OK", "detail": "", "metrics": '
     '{"history": {"ops": [{"t_s": 0, "ms": 1, "outcome": "ok"}], "events": []}}}]}', "holds no writes"),
])
def test_recheck_of_a_file_it_cannot_judge_says_why_in_one_line(tmp_path, content, expected):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SetupError) as error:
        recheck(path)
    assert expected in str(error.value) and "\n" not in str(error.value), error.value


def test_recheck_names_the_suite_a_file_belongs_to(tmp_path):
    expected = "holds a cluster suite run; recheck it with its own script: python app/cluster_test.py"
    with pytest.raises(SetupError, match=expected):
        recheck(cluster_file(tmp_path), expect_suite="ha")


def test_the_saved_history_only_gains_keys():
    """The JSON contract: rows keep t_s, ms, outcome, error, group; writes add key, value, confirmed, attempts."""
    history = recorded_history()
    history.ops[0].confirmed, history.ops[0].attempts = True, [UNKNOWN, OP_OK]
    rows = history_to_dict(history, FAULT_AT)["ops"]
    assert rows[0] == {"t_s": 0.0, "ms": 1.0, "outcome": "ok", "key": "w:0", "value": "0", "confirmed": True,
                       "attempts": ["unknown", "ok"]}, rows[0]
    assert {"t_s", "ms", "outcome"} == set(next(r for r in rows if "key" not in r)), "a probe's row is unchanged"
    assert "final_read" not in history_to_dict(History(), FAULT_AT), "no final read: no key (an old file's shape)"


# ---- a real run's file (ha_test.py --json after a SIGKILL of the master, final read recorded) ---------

RUN_WITH_FINAL_READ = Path(__file__).parent / "data" / "ha_kill_run_with_final_read.json"


def test_recheck_of_a_real_run_agrees_with_the_run():
    report, differences = recheck(RUN_WITH_FINAL_READ, expect_suite="ha")
    consistency = next(s for s in report.scenarios if s.scenario == "consistency")
    assert differences == [], differences
    assert consistency.status == "OK" and consistency.metrics["acked"] == 547, consistency
    assert consistency.metrics["acked_lost"] == 0, consistency.metrics


def test_recheck_finds_an_acknowledged_write_missing_from_a_tampered_final_read(tmp_path):
    body = json.loads(RUN_WITH_FINAL_READ.read_text())
    kill = next(s for s in body["scenarios"] if s["scenario"] == "master_kill")
    acked = next(op for op in kill["metrics"]["history"]["ops"] if op["outcome"] == "ok" and "value" in op)
    kill["metrics"]["history"]["final_read"][acked["key"]] = None  # the write is gone
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(body))
    report, differences = recheck(tampered, expect_suite="ha")
    consistency = next(s for s in report.scenarios if s.scenario == "consistency")
    assert consistency.status == "FAIL" and consistency.metrics["acked_lost"] == 1, consistency
    assert any("saved OK, recomputed FAIL" in line for line in differences), differences
