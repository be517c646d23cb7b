"""Lost-write accounting (lib/checks/accounting.py), the final read (lib/phases/final_read.py) and --recheck
(lib/checks/recheck.py, lib/suites/skeleton.recheck_saved) on hand-made histories and on the saved JSON of a real
HA run: no server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import redis

from lib import events
from lib.checks import cluster_checks
from lib.checks.accounting import (
    account,
    account_history,
    bound_line,
    consistency_result,
    fault_window,
    judge,
    op_class,
    writes,
)
from lib.checks.recheck import recheck
from lib.checks.result import FAIL, OK, WARN, SuiteReport
from lib.description import TestDescription as Description  # not Test*: pytest would collect it
from lib.errors import SetupError
from lib.history import FAIL as OP_FAIL
from lib.history import FINAL, HARNESS, NEMESIS, PINNED, PROBE, READ, UNKNOWN, WRITER, History, Op
from lib.history import OK as OP_OK
from lib.phases.cluster_record import LAYOUT, SETTINGS, VICTIM
from lib.phases.final_read import read_back, written_keys
from lib.suites.skeleton import recheck_saved
from lib.workload.workload import ContinuousWriter

OLD_RUN = Path(__file__).parent / "data" / "ha_kill_run.json"  # saved by an older harness: no test, no history
# app/stack.py run ha ... ha_test.py --json after a SIGKILL of the master: its test description and its one history
RECORDED_RUN = Path(__file__).parent / "data" / "ha_kill_run_recorded.json"
FAULT_AT = 100.0


def write(key: str, t_s: float, outcome: str = OP_OK, *, value: str | None = None, ms: float = 1.0,
          attempts: list[str] | None = None, group: str | None = None, process: str = WRITER) -> Op:
    """One write that started t_s seconds from the fault (at 0) and took ms; its value defaults to the key's seq."""
    return Op(0, key, t_s, t_s + ms / 1000, outcome, group=group, value=value or key.split(":")[-1],
              attempts=attempts, process=process)


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
    probe = Op(1, "", 0.1, 0.101, OP_OK, process=PROBE)  # a probe's write: no key, no value
    read = Op(2, "w:0", 0.3, 0.301, OP_OK, value="0", process=FINAL, f=READ)  # a read carries a value, not a write
    observed = Op(3, "", 0.4, 0.4, OP_OK, value={"role": "master"}, process=HARNESS, f="new master role")
    ops = [probe, write("w:0", 0.2), read, observed]
    assert writes(ops) == [ops[1]]
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
    acc = account(ops, {"w:0": "0", "w:1": None, "w:2": "2"}, heal_at=4.0)
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


def test_the_times_are_seconds_from_the_fault_given():
    ops = [write("w:0", FAULT_AT + 0.5), write("w:1", FAULT_AT + 4.2)]
    acc = account(ops, {"w:0": None, "w:1": "1"}, fault_at=FAULT_AT, heal_at=FAULT_AT + 4.0)
    assert (acc.cut_at_s, acc.heal_at_s, acc.lost_acked_window_s) == (0.0, 4.0, [0.501, 0.501]), acc
    assert acc.acked_after_heal == 1 and acc.lost_ops == [ops[0]], acc


def faulted_history() -> History:
    """A fault by hand injected at -1 s and seen at 0 (FAULT_AT), healed at +2.5 s; writes of two writers, a probe's
    write and the final read; times as the run records them (monotonic)."""
    history = History()
    history.record(write("w:0", FAULT_AT + 0.5))
    history.record(write("w:1", FAULT_AT + 3.0))
    history.record(write("old:0", FAULT_AT + 0.6, process=PINNED))
    history.record(write("probe:0", FAULT_AT + 0.7, process=PROBE))  # never read back: not accounted
    history.event(events.FAULT, "by hand", at=FAULT_AT - 1.0)
    history.event(events.FAULT_SEEN, "", at=FAULT_AT)
    history.event(events.HEALED, "resumed", at=FAULT_AT + 2.5)
    history.record_final_read({"w:0": None, "w:1": "1", "old:0": None}, at=FAULT_AT + 4.0)
    return history


def test_the_cut_and_heal_come_from_the_history_events():
    history = faulted_history()
    assert fault_window(history) == (FAULT_AT, FAULT_AT + 2.5), "cut when the fault was seen, not when injected"
    acc = account_history(history)
    assert (acc.cut_at_s, acc.heal_at_s, acc.acked, acc.acked_lost, acc.acked_after_heal) == (0.0, 2.5, 2, 1, 1), acc
    assert acc.lost_acked_window_s == [0.501, 0.501], "seconds from the cut (FAULT_SEEN), not from FAULT"
    both = account_history(history, (WRITER, PINNED))
    assert (both.acked, both.acked_lost, both.lost_keys_sample) == (3, 2, ["w:0", "old:0"]), both
    with pytest.raises(KeyError):
        account_history(History())


def test_a_saved_history_is_accounted_the_same_as_the_live_one():
    history = faulted_history()
    saved = History.from_dict(json.loads(json.dumps(history.to_dict(FAULT_AT))))
    assert saved.final_read == history.final_read
    live, again = account_history(history, (WRITER, PINNED)), account_history(saved, (WRITER, PINNED))
    assert again.metrics() == live.metrics(), (again.metrics(), live.metrics())


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
    ops = [write(f"w:{i}", 2.5 * i / 11, ms=0.0) for i in range(12)]
    acc = account(ops, {f"w:{i}": None for i in range(12)}, fault_at=1.0)
    assert "within 1.5 s of the cut" in bound_line(acc, 2)
    acc.cut_at_s = 1.0  # a merged or hand-made accounting whose cut is not at its zero
    assert "within 0.5 s of the cut" in bound_line(acc, 2)
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
    history.record(Op(99, "", FAULT_AT, FAULT_AT + 0.001, OP_OK, process=PROBE))  # no value: not read back
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
    reads = history.snapshot(FINAL, READ)
    assert [(op.key, op.value) for op in reads] == list(final.items()), "one read operation per key, in the history"
    saved = History.from_dict(json.loads(json.dumps(history.to_dict(FAULT_AT))))
    assert saved.final_read == final
    acc = account_history(saved)
    assert (acc.acked, acc.acked_lost, acc.unknown, acc.unknown_lost) == (6, 1, 1, 1), acc


def test_read_back_refuses_a_short_answer():
    with pytest.raises(ValueError, match="asked for 7 keys and got 1"):
        read_back(lambda keys: [None], None, recorded_history())


# ---- --recheck on saved files -----------------------------------------------------------------------

def test_recheck_of_a_run_saved_by_an_older_harness_is_a_one_line_setup_error():
    with pytest.raises(SetupError) as error:
        recheck(OLD_RUN)
    assert "no test description and history in it (saved by an older harness)" in str(error.value), error.value
    assert "\n" not in str(error.value), error.value


def saved_run() -> dict[str, Any]:
    return json.loads(RECORDED_RUN.read_text())


def final_read_rows(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The saved final read: one read operation per key."""
    return {row["key"]: row for row in body["history"]["ops"] if row.get("process") == FINAL and row.get("f") == READ}


def acked_after_the_fault(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The writer's acknowledged writes that started after the fault, as saved."""
    return [row for row in body["history"]["ops"] if row.get("process", WRITER) == WRITER and "f" not in row
            and row["outcome"] == OP_OK and "value" in row and row["t_s"] > 0]


def lose(body: dict[str, Any], count: int) -> list[str]:
    """The first `count` acknowledged writes after the fault read back empty, as a failover that dropped them would
    leave them; their keys."""
    keys = [row["key"] for row in acked_after_the_fault(body)[:count]]
    reads = final_read_rows(body)
    for key in keys:
        reads[key]["value"] = None
    return keys


def saved_as(tmp_path: Path, body: dict[str, Any], name: str = "tampered.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return path


def test_recheck_of_a_real_run_agrees_with_the_run():
    body = saved_run()
    report, differences = recheck(RECORDED_RUN, expect_suite="ha")
    assert differences == [], differences
    assert [(s.name, s.status) for s in report.checks] == [(s["scenario"], s["status"])
                                                                 for s in body["scenarios"]]
    consistency = next(s for s in report.checks if s.name == "consistency")
    assert consistency.status == OK and consistency.metrics["acked"] == 616, consistency
    assert consistency.metrics["acked_lost"] == 0, consistency.metrics
    assert (consistency.metrics["failed"], consistency.metrics["failed_present"]) == (91, 0), \
        "the real run has writes refused during the failover, none of them applied"
    assert report.test == body["test"] and report.history == body["history"], "the report keeps what it judged"
    assert report.exit_code() == 0


def test_recheck_reports_where_the_recomputed_verdict_differs(tmp_path):
    body = saved_run()
    lost = lose(body, 3)
    report, lines = recheck(saved_as(tmp_path, body))
    consistency = next(s for s in report.checks if s.name == "consistency")
    assert consistency.status == FAIL and consistency.metrics["acked_lost"] == 3, consistency
    assert consistency.metrics["lost_keys_sample"] == lost, consistency.metrics
    assert any(line.startswith("consistency: saved OK, recomputed FAIL from the saved history: 3 of 616 "
                               "acknowledged writes lost") for line in lines), lines
    assert "consistency: acked_lost saved 0, recomputed 3" in lines, lines
    assert "consistency: lost saved 0, recomputed 3" in lines, "the run's own count against the saved final read"
    assert all(line.startswith("consistency: ") for line in lines), "no other verdict depends on the final read"
    assert report.exit_code() == 1


@pytest.mark.parametrize("tampering", ["read back empty", "read removed"])
def test_recheck_finds_an_acknowledged_write_missing_from_a_tampered_final_read(tmp_path, tampering):
    body = saved_run()
    acked = acked_after_the_fault(body)[0]
    read = final_read_rows(body)[acked["key"]]
    if tampering == "read back empty":
        read["value"] = None  # the write is gone
    else:
        body["history"]["ops"].remove(read)  # the final read no longer holds the acknowledged write at all
    report, differences = recheck(saved_as(tmp_path, body), expect_suite="ha")
    consistency = next(s for s in report.checks if s.name == "consistency")
    assert consistency.status == FAIL, consistency
    assert any(line.startswith("consistency: saved OK, recomputed FAIL") for line in differences), differences
    if tampering == "read back empty":
        assert consistency.metrics["acked_lost"] == 1 and consistency.metrics["lost_keys_sample"] == [acked["key"]]
    else:
        assert "the final read has no entry for 1 written key" in consistency.detail, consistency.detail
    assert report.exit_code() == 1


class RecordingOutput:
    """The Output recheck_saved writes to (lib/suites/skeleton.Output), keeping what it was given."""

    def __init__(self) -> None:
        self.shown: list[Any] = []
        self.warned: list[str] = []
        self.finished: tuple[SuiteReport, str | None] | None = None

    def show(self, renderable: Any) -> None:
        self.shown.append(renderable)

    def warn(self, line: str) -> None:
        self.warned.append(line)

    def finish(self, report: SuiteReport, json_path: str | None) -> int:
        self.finished = (report, json_path)
        return report.exit_code()


class HaSuite:
    name = "ha"


def test_recheck_saved_says_the_file_matches_or_warns_each_difference(tmp_path):
    out = RecordingOutput()
    again = str(tmp_path / "again.json")
    assert recheck_saved(HaSuite(), argparse.Namespace(recheck=str(RECORDED_RUN), json=again), out) == 0
    assert out.warned == [], out.warned
    assert out.shown == ["recheck: all 6 verdicts and their metrics, recomputed from the saved history, match the "
                         "file"], out.shown
    assert out.finished is not None and out.finished[1] == again, "the recomputed report goes where --json says"
    body = saved_run()
    lose(body, 1)
    out = RecordingOutput()
    assert recheck_saved(HaSuite(), argparse.Namespace(recheck=str(saved_as(tmp_path, body)), json=None), out) == 1
    assert out.shown == [], "a difference is no match"
    assert any(line.startswith("consistency: saved OK, recomputed FAIL") for line in out.warned), out.warned


# A cluster of three shards, each primary with one replica (CLUSTER NODES lines, as the connect phase records them).
CLUSTER_LAYOUT = "\n".join([
    "a1 127.0.0.1:7000@17000 master - 0 0 1 connected 0-5460",
    "b1 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922",
    "c1 127.0.0.1:7002@17002 master - 0 0 3 connected 10923-16383",
    "a2 127.0.0.1:7003@17003 slave a1 0 0 1 connected",
    "b2 127.0.0.1:7004@17004 slave b1 0 0 2 connected",
    "c2 127.0.0.1:7005@17005 slave c1 0 0 3 connected",
])
PROMOTED_LINE = "a2 127.0.0.1:7003@17003 master - 0 0 4 connected 0-5460"
CLUSTER_FACTS = {"name": "auto", "description": "SIGKILL node-7000", "target": "the primary", "expects": "promotion",
                 "strict": False, "loss_explained": "asynchronous replication"}
OTHER_SHARDS = ("5461-10922", "10923-16383")


def cluster_history(stall_s: float) -> History:
    """A primary's SIGKILL at 0: its shard's writes, the other shards writing every 50 ms (the first one stalled
    stall_s from +0.2 s), a promotion at +0.5 s, recovery at +3 s and the final read; what the phases recorded."""
    history = History()
    history.observe(HARNESS, LAYOUT, CLUSTER_LAYOUT, at=-1.0)
    for f, value in (("cluster_state", "ok"), ("slots covered", 16384), ("open slots", [])):
        history.observe("connect", f, value, at=-1.0)
    history.observe("placement", "slots", {"keys": [], "client": [], "server": [], "groups": {}}, at=-1.0)
    for phase in ("moved", "ask"):
        history.observe(phase, "skipped", "not part of this test", at=-1.0)
    history.observe("distribution", "written", 3, at=-1.0)
    for label in ("0-5460", *OTHER_SHARDS):
        history.observe("distribution", "count", 1, at=-1.0, key=label)
    history.observe(HARNESS, SETTINGS, {"min-replicas-to-write": "1", "min-replicas-max-lag": "2"}, at=-1.0)
    history.observe(HARNESS, VICTIM, "0-5460", at=-0.5)
    history.observe(NEMESIS, "inject", {"description": "SIGKILL node-7000"}, at=0.0)
    history.event(events.FAULT, "SIGKILL node-7000", at=0.0)
    for i in range(5):
        history.record(write(f"w:{i}:0", 0.1 * i, group="0-5460"))
    for shard, label in enumerate(OTHER_SHARDS, start=1):
        for i in range(70):
            at = -0.5 + 0.05 * i
            if shard != 1 or not 0.2 < at < 0.2 + stall_s:
                history.record(write(f"w:{i}:{shard}", at, group=label))
    history.observe(HARNESS, "promoted node", PROMOTED_LINE, at=0.5)
    history.event(events.PROMOTED, "127.0.0.1:7003", at=0.5)
    history.event(events.RECOVERED, "every shard writing", at=3.0)
    history.observe("rejoin", "rejoined", "role=slave master=127.0.0.1:7003", at=3.5)
    history.record_final_read({op.key: op.value for op in history.snapshot()}, at=3.6)
    return history


def cluster_file(tmp_path: Path, *, stall_s: float = 0.0, lost: bool = False) -> Path:
    """A cluster run saved as the suite saves it: the description, the history, the verdicts judged from them; then,
    if lost, an acknowledged write (acknowledged +0.101 s after the fault) taken out of the saved final read."""
    test = Description("cluster", "cluster", fault="auto", facts=CLUSTER_FACTS,
                           checks=["connect", "placement", "moved", "ask", "distribution", "primary_failure", "rejoin"])
    history = cluster_history(stall_s)
    report = SuiteReport("cluster", {"nodes": 6}, cluster_checks.judge(test, history), test.to_dict(),
                         history.to_dict(0.0))
    path = report.write_json(tmp_path / "cluster.json")
    if lost:
        body = json.loads(path.read_text())
        final_read_rows(body)["w:1:0"]["value"] = None
        path.write_text(json.dumps(body))
    return path


def test_recheck_of_a_cluster_run_judges_its_failover_again(tmp_path):
    path = cluster_file(tmp_path)
    saved = {s["scenario"]: s for s in json.loads(path.read_text())["scenarios"]}
    assert saved["primary_failure"]["status"] == OK, saved["primary_failure"]
    report, lines = recheck(cluster_file(tmp_path, lost=True))
    failure = next(s for s in report.checks if s.name == "primary_failure")
    assert failure.status == FAIL and failure.metrics["acked_lost"] == 1, failure
    assert "within 0.1 s of the cut (min-replicas-max-lag 2 s)" in failure.detail, failure.detail
    assert lines and lines[0].startswith("primary_failure: saved OK, recomputed FAIL"), lines
    assert all(line.startswith("primary_failure: ") for line in lines), lines


def test_recheck_keeps_a_failure_that_was_not_about_lost_writes(tmp_path):
    path = cluster_file(tmp_path, stall_s=2.5)
    saved = {s["scenario"]: s for s in json.loads(path.read_text())["scenarios"]}
    assert saved["primary_failure"]["status"] == FAIL, saved["primary_failure"]
    report, lines = recheck(path)
    failure = next(s for s in report.checks if s.name == "primary_failure")
    assert failure.status == FAIL and failure.metrics["acked_lost"] == 0, failure
    assert "shards 5461-10922 stopped serving" in failure.detail, failure.detail
    assert lines == [], lines


TEST = '{"suite": "ha", "topology": "sentinel"}'
SCENARIOS = '[{"scenario": "crud", "status": "OK", "detail": "", "metrics": {}}]'


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file"), ("{", "not readable as JSON"), ('{"x": 1}', "not a suite's --json report"),
    ('{"suite": "bench", "scenarios": []}', "not a suite's --json report"),
    (f'{{"suite": "ha", "scenarios": {SCENARIOS}}}', "no test description and history in it"),
    (f'{{"suite": "ha", "scenarios": {SCENARIOS}, "test": {TEST}}}', "no test description and history in it"),
    (f'{{"suite": "ha", "scenarios": {SCENARIOS}, "test": {{"suite": "ha"}}, "history": {{}}}}',
     "its test description or history cannot be read"),
    (f'{{"suite": "ha", "scenarios": {SCENARIOS}, "test": {TEST}, "history": {{"ops": [{{"t_s": 0}}]}}}}',
     "its test description or history cannot be read"),
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


def test_the_saved_history_keeps_every_operation_and_reads_back_the_same():
    """The JSON contract: every row has t_s, ms, outcome; a row names its process and f unless it is the writer's
    write, and adds key, value, error, group, confirmed, attempts when it has them."""
    history = recorded_history()
    history.ops[0].confirmed, history.ops[0].attempts = True, [UNKNOWN, OP_OK]
    history.record_final_read({"w:0": "0", "w:3": None}, at=FAULT_AT + 1.0)
    rows = history.to_dict(FAULT_AT)["ops"]
    assert rows[0] == {"t_s": 0.0, "ms": 1.0, "outcome": "ok", "key": "w:0", "value": "0", "confirmed": True,
                       "attempts": ["unknown", "ok"]}, rows[0]
    assert {"t_s": 0.0, "ms": 1.0, "outcome": "ok", "process": PROBE} in rows, "a probe's row: no key, no value"
    assert rows[-1] == {"t_s": 1.0, "ms": 0.0, "outcome": "ok", "process": FINAL, "f": READ, "key": "w:3",
                        "value": None}, "a read that found nothing keeps its value: None"
    assert History().to_dict(FAULT_AT) == {"ops": [], "events": []}
    again = History.from_dict(json.loads(json.dumps(history.to_dict(FAULT_AT))))
    assert [(op.process, op.f, op.key, op.value, op.outcome, op.confirmed, op.attempts) for op in again.ops] == [
        (op.process, op.f, op.key, op.value, op.outcome, op.confirmed, op.attempts)
        for op in sorted(history.ops, key=lambda op: op.start)]
    assert again.final_read == history.final_read == {"w:0": "0", "w:3": None}
