"""The HA suite's verdicts (lib/checks/ha_checks.py check_*) on synthetic histories and faked replies: no server."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis

from lib.checks import ha_checks, ha_consistency, ha_master_kill, ha_replica_sync
from lib.checks.result import ERROR, FAIL, OK, WARN
from lib.faults.fault import Fault
from lib.faults.graceful import SENTINEL_LOSS
from lib.faults.kill import Kill
from lib.faults.nodes import LocalNode
from lib.history import FAIL as OP_FAIL
from lib.history import HARNESS, HEAL, NEMESIS, PLAIN, PROBE, UNKNOWN, WRITER, History, Op
from lib.history import OK as OP_OK
from lib.phases import ha_phases
from lib.phases.ha_record import FailoverView

from .fakes import FakeHA, FakeKV, FakeNode, replication_info

FAULT_AT = 100.0
KILL = "SIGKILL valkey-master (local launcher, like docker kill)"
GRACEFUL = "SENTINEL FAILOVER (graceful: the old master is demoted, not killed)"
REFUSED = "ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused."


def op(seq: int, start: float, end: float, outcome: str = OP_OK, error: str | None = None, *,
       confirmed: bool | None = None) -> Op:
    """An op at seconds from the fault (FAULT_AT)."""
    return Op(seq, f"w:{seq}", FAULT_AT + start, FAULT_AT + end, outcome, error, confirmed, value=str(seq))


def history(*ops: Op, events: tuple[tuple[str, float], ...] = ()) -> History:
    recorded = History()
    for o in ops:
        recorded.record(o)
    for name, at in events:
        recorded.event(name, "", at=FAULT_AT + at)
    return recorded


def failover_run(writer: History, *, fault: str = KILL, probe: History | None = None,
                 plain: History | None = None, recovered: float | None = 3.5, switches: int | None = None,
                 fault_at: float = FAULT_AT, **fields) -> FailoverView:
    """The run's view as the checks get it: one history, the probe's and plain redis-py's ops in it as their own
    processes, and (switches) how many +switch-master our client followed, as the after-run phase records it."""
    for process, other in ((PROBE, probe), (PLAIN, plain)):
        for o in other.snapshot() if other is not None else []:
            writer.record(replace(o, process=process))
    if switches is not None:
        writer.observe(HARNESS, ha_phases.SWITCHES, switches, at=fault_at + 60)
    return FailoverView(fault, ("valkey-master", 6379), writer, fault_at=fault_at,
                       recovered_at=None if recovered is None else fault_at + recovered, **fields)


def test_master_kill_says_when_the_first_leader_election_failed_and_sentinel_tried_again():
    """Seen on compose under load: all three sentinels tried at once (a split vote); Sentinel tried again 2 x
    failover-timeout later, so the downtime was 23 s. The verdict says so instead of leaving a bare number."""
    writer = history(op(0, -0.10, -0.09), op(1, 0.01, 0.02, OP_FAIL, REFUSED), op(2, 23.5, 23.54),
                     events=(("fault", 0.0), ("+try-failover", 2.514), ("+try-failover", 2.514),
                             ("+try-failover", 2.515), ("+try-failover", 22.918), ("+switch-master", 23.538)))
    result = ha_master_kill.check_master_kill(failover_run(writer, recovered=23.6), None)
    assert result.metrics["leader_elections_s"] == [2.514, 22.918], result.metrics["leader_elections_s"]
    assert result.status == OK and result.detail.endswith(
        "the sentinels' first leader election failed (tried at +2.51 s); Sentinel tried again at +22.92 s "
        "(2 x failover-timeout later)"), result.detail


# ---- crud ------------------------------------------------------------------------------------------

def crud(ha: FakeHA) -> History:
    """The crud phase against a fake master: each step recorded as an operation for the check to judge."""
    recorded = History()
    ha_phases.crud(ha, "vhc:t:", recorded)
    return recorded


def test_crud_passes_when_every_step_reads_back_what_it_wrote():
    store = FakeKV()
    result = ha_checks.check_crud(crud(FakeHA(master=store, master_address=("10.0.0.1", 6379))))
    assert result.status == OK, result.detail
    assert result.metrics["steps"] == {"set": True, "get": True, "ttl": True, "update": True, "delete": True}
    assert (result.metrics["master"], result.metrics["ttl_s"]) == ("10.0.0.1:6379", 60), f"{result.metrics}"
    assert store.commands[0] == ("SET", "vhc:t:crud", "v1") and store.data == {}, "the key is ours and removed"


@pytest.mark.parametrize("broken,failed_step", [({"keeps_ttl": False}, "ttl"), ({"deletes": False}, "delete")])
def test_crud_names_the_step_that_failed(broken, failed_step):
    result = ha_checks.check_crud(crud(FakeHA(master=FakeKV(**broken))))
    assert result.status == FAIL, result.detail
    assert result.detail == f"failed steps: {failed_step}", f"got {result.detail!r}"
    assert result.metrics["steps"][failed_step] is False, f"{result.metrics['steps']}"


def test_crud_names_a_step_that_raised_and_is_skipped_when_no_step_was_recorded():
    class Refusing(FakeKV):
        def ttl(self, key: str) -> int:
            raise redis.ConnectionError("Connection refused")

    result = ha_checks.check_crud(crud(FakeHA(master=Refusing())))
    assert (result.status, result.detail) == (FAIL, "failed steps: ttl (ttl: ConnectionError: Connection refused)"), \
        result.detail
    assert ha_checks.check_crud(History()).status == WARN, "no CRUD recorded: nothing to judge"


# ---- master_kill -----------------------------------------------------------------------------------

def kill_history() -> History:
    """ok until the kill at 0, three failures (one unknown), ok again from +3.25 s."""
    return history(op(0, -0.10, -0.09), op(1, -0.05, -0.04), op(2, 0.01, 0.02, OP_FAIL, REFUSED),
                   op(3, 0.5, 1.0, UNKNOWN, "TimeoutError: Timeout reading from socket"),
                   op(4, 1.5, 1.6, OP_FAIL, REFUSED), op(5, 3.2, 3.25), op(6, 3.3, 3.31),
                   events=(("fault", 0.0), ("+sdown", 2.05), ("+switch-master", 3.22)))


def test_master_kill_reports_the_ok_to_ok_downtime_and_the_errors_seen():
    probe = history(op(0, -0.01, -0.005), op(1, 0.1, 0.101, OP_FAIL, "ConnectionError"), op(2, 3.23, 3.231))
    run = failover_run(kill_history(), probe=probe, new_master=("valkey-replica1", 6380))
    result = ha_master_kill.check_master_kill(run, None)
    metrics = result.metrics
    assert result.status == OK, result.detail
    assert result.detail == f"{KILL}; client unable to write for 3,290 ms", f"-0.04 s to +3.25 s: {result.detail!r}"
    assert (metrics["downtime_ms"], metrics["failed_ops"]) == (3290.0, 3), f"{metrics}"
    assert metrics["errors_by_type"] == {"ConnectionError": 2, "TimeoutError": 1}, f"{metrics['errors_by_type']}"
    assert (metrics["ops_total"], metrics["ops_ok"], metrics["ops_unknown"]) == (7, 4, 1), f"{metrics}"
    assert (metrics["old_master"], metrics["new_master"]) == ("valkey-master:6379", "valkey-replica1:6380")
    assert [(e["t_s"], e["event"]) for e in metrics["events"]] == [(0.0, "fault"), (2.05, "+sdown"),
                                                                   (3.22, "+switch-master")], f"{metrics['events']}"
    assert metrics["timeline"]["downtime_window_s"] == [-0.04, 3.25], f"{metrics['timeline']}"
    recovered = {e["event"]: e["t_s"] for e in metrics["timeline"]["events"]}
    assert recovered["5 ms probe: recovered"] == 3.231, f"the probe's own recovery: {recovered}"
    assert "history" not in metrics, "the history is saved once, beside the verdicts, not in a check's metrics"
    saved = History.from_dict(run.history.to_dict(FAULT_AT))  # what the JSON holds and --recheck judges
    assert len(saved.snapshot(WRITER)) == 7 and len(saved.snapshot(PROBE)) == 3, "every writer and probe op saved"
    again = ha_master_kill.check_master_kill(failover_run(saved, fault_at=0.0, new_master=("valkey-replica1", 6380)),
                                             None)
    assert (again.status, again.detail) == (result.status, result.detail), "the saved history is judged the same way"
    # the same metrics, but for the timeline's 100 ms buckets: an op ending exactly on a boundary (+1.6 s here) may
    # fall on either side of it once its time is relative to the fault (the suite judges the saved history too)
    assert without_buckets(again.metrics) == without_buckets(metrics)


def without_buckets(metrics: dict) -> dict:
    return {**metrics, "timeline": {k: v for k, v in metrics["timeline"].items() if k != "buckets"}}


def test_master_kill_without_an_error_is_ok_with_zero_downtime():
    quiet = history(op(0, -0.1, -0.09), op(1, 0.1, 0.11), op(2, 0.2, 0.21))
    result = ha_master_kill.check_master_kill(failover_run(quiet), None)
    assert result.status == OK and result.detail == f"{KILL}; the client never saw an error", result.detail
    assert (result.metrics["downtime_ms"], result.metrics["failed_ops"]) == (0.0, 0), f"{result.metrics}"


def test_master_kill_without_recovery_fails_and_has_no_downtime_figure():
    stuck = history(op(0, -0.1, -0.09), op(1, 0.1, 0.11, OP_FAIL, REFUSED), op(2, 0.2, 0.21, OP_FAIL, REFUSED))
    run = failover_run(stuck, recovered=None, timeout_reason="timed out after 60s waiting for the client")
    result = ha_master_kill.check_master_kill(run, None)
    assert result.status == FAIL, result.detail
    assert result.detail == "no recovery: timed out after 60s waiting for the client", f"{result.detail!r}"
    assert (result.metrics["downtime_ms"], result.metrics["failed_ops"]) == (None, 2), f"{result.metrics}"


def test_master_kill_is_skipped_with_a_warning_when_no_fault_ran():
    result = ha_master_kill.check_master_kill(None, "--fault none")
    assert (result.status, result.detail) == (WARN, "skipped: --fault none"), f"{result}"


# ---- new_master ------------------------------------------------------------------------------------

SENTINELS = ("10.0.0.9:26379", "10.0.0.9:26380", "10.0.0.9:26381")


def views(*answers: str) -> dict[str, str]:
    return dict(zip(SENTINELS, answers, strict=True))


def ha_with_node(role: str, views_now: dict[str, str] | None = None) -> FakeHA:
    """valkey-replica1 is reached at 127.0.0.1:6380 (the remap), where a node reports role."""
    return FakeHA(views=views_now, remap={"valkey-replica1": "127.0.0.1", "valkey-master": "127.0.0.1"},
                  nodes={("127.0.0.1", 6380): FakeNode(replication_info(role))})


def after_run(ha: FakeHA, recorded: History | None = None) -> History:
    """The after-run phase against the fakes: what the sentinels name, and the role of that node, recorded."""
    recorded = recorded if recorded is not None else History()
    ha_phases.after_run(ha, recorded)
    return recorded


def test_new_master_without_a_run_needs_all_sentinels_to_agree_on_a_master():
    ha = ha_with_node("master", views("valkey-replica1:6380", "valkey-replica1:6380", "valkey-replica1:6380"))
    result = ha_checks.check_new_master(after_run(ha), None)
    assert result.status == OK, result.detail
    assert result.detail == "no failover run; all 3 sentinels agree on valkey-replica1:6380", f"{result.detail!r}"
    assert (result.metrics["master"], result.metrics["role"]) == ("valkey-replica1:6380", "master")
    assert ha.nodes_asked == [("127.0.0.1", 6380)], f"the role is asked at the remapped address: {ha.nodes_asked}"


@pytest.mark.parametrize("answers", [("valkey-replica1:6380", "valkey-replica1:6380", "valkey-master:6379"),
                                     ("error: ConnectionError",) * 3, ("unknown",) * 3])
def test_new_master_fails_when_the_sentinels_disagree_or_cannot_say(answers):
    ha = ha_with_node("master", views(*answers))
    result = ha_checks.check_new_master(after_run(ha), None)
    assert result.status == FAIL and result.detail.startswith("the sentinels disagree"), result.detail
    assert ha.nodes_asked == [], "no node is asked when the sentinels do not agree"


def test_new_master_fails_when_the_named_node_is_not_a_master():
    recorded = after_run(ha_with_node("slave", views(*["valkey-replica1:6380"] * 3)))
    result = ha_checks.check_new_master(recorded, None)
    assert result.status == FAIL, result.detail
    assert result.detail == "all sentinels say valkey-replica1:6380, but its role is slave", f"{result.detail!r}"


def test_new_master_is_not_judged_when_the_run_stopped_before_asking_the_sentinels():
    result = ha_checks.check_new_master(History(), None)
    assert (result.status, result.detail) == (WARN, "not observed: the run stopped before asking the sentinels")


def test_new_master_after_a_run_uses_the_views_recorded_then_and_names_the_switch():
    writer = history(events=(("+switch-master", 3.221),))
    after_run(ha_with_node("master", views(*["valkey-replica1:6380"] * 3)), writer)
    result = ha_checks.check_new_master(writer, failover_run(writer))  # judged from the record: no server asked
    assert result.status == OK, result.detail
    assert result.detail == ("all 3 sentinels agree: valkey-master:6379 -> valkey-replica1:6380 (role master)"), \
        f"{result.detail!r}"
    assert (result.metrics["old_master"], result.metrics["switch_master_s"]) == ("valkey-master:6379", 3.221)


def test_new_master_fails_when_the_old_master_is_still_the_master():
    ha = FakeHA(views=views(*["valkey-master:6379"] * 3), remap={"valkey-master": "127.0.0.1"},
                nodes={("127.0.0.1", 6379): FakeNode(replication_info())})
    recorded = after_run(ha)
    result = ha_checks.check_new_master(recorded, failover_run(recorded))
    assert result.status == FAIL, result.detail
    assert result.detail == "the master is still the old one, valkey-master:6379", f"{result.detail!r}"


# ---- reconnect -------------------------------------------------------------------------------------

def recovering(back_at: float, last_ok: float = -0.005) -> History:
    """ok until last_ok, one failure after the fault, ok again at back_at (op ends 1 ms later)."""
    return history(op(0, last_ok - 0.001, last_ok), op(1, 0.01, 0.02, OP_FAIL, REFUSED),
                   op(2, back_at - 0.001, back_at))


def test_reconnect_measures_ours_the_probe_and_plain_redis_py_against_the_switch():
    writer = recovering(3.301)
    writer.event("+switch-master", "", at=FAULT_AT + 3.25)
    run = failover_run(writer, probe=recovering(3.285, last_ok=-0.004), plain=recovering(13.01, last_ok=-0.01),
                       switches=1)
    result = ha_checks.check_reconnect(run, None)
    metrics = result.metrics
    assert result.status == OK, result.detail
    assert (metrics["ours_downtime_ms"], metrics["probe_downtime_ms"], metrics["plain_downtime_ms"]) == (
        3306.0, 3289.0, 13020.0), f"ok-to-ok: {metrics}"
    assert (metrics["ours_after_switch_ms"], metrics["probe_after_switch_ms"], metrics["plain_after_switch_ms"]) == (
        51.0, 35.0, 9760.0), f"first ok minus +switch-master at 3.25 s: {metrics}"
    assert (metrics["difference_ms"], metrics["switches_followed"]) == (17.0, 1), f"{metrics}"
    assert (metrics["backoff_cap_ms"], metrics["retries_per_call"]) == (50.0, 2), f"{metrics}"
    assert "reported downtime 3,306 ms vs independent 5 ms probe 3,289 ms (difference +17 ms" in result.detail


@pytest.mark.parametrize("ours_back,status", [(3.300, OK), (3.399, OK), (3.401, FAIL), (3.201, OK),
                                              (3.199, WARN)])
def test_reconnect_limit_is_100_ms_later_than_the_probe_and_earlier_is_a_warning(ours_back, status):
    """The probe is back at +3.300 s (last ok at -0.005 s for both): later than +3.400 s fails, before +3.200 warns."""
    run = failover_run(recovering(ours_back), probe=recovering(3.300))
    result = ha_checks.check_reconnect(run, None)
    assert result.status == status, f"ours back at {ours_back}, probe at 3.300: {result.status} {result.detail}"
    assert result.metrics["difference_ms"] == pytest.approx((ours_back - 3.300) * 1000, abs=0.1)


@pytest.mark.parametrize("switch_at,ours_back,status", [
    (3.45, 3.52, WARN),  # the probe (3.30) ran ahead of the announcement; ours wrote 70 ms after it
    (3.45, 3.60, FAIL),  # 150 ms after the announcement: ours lagged
    (3.25, 3.45, FAIL),  # the probe came after the announcement: ours is simply late
])
def test_reconnect_later_than_the_probe_is_a_warning_only_when_the_probe_ran_ahead_of_switch_master(
        switch_at, ours_back, status):
    writer = recovering(ours_back)
    writer.event("+switch-master", "", at=FAULT_AT + switch_at)
    result = ha_checks.check_reconnect(failover_run(writer, probe=recovering(3.300), switches=1), None)
    assert result.status == status, f"{result.status} {result.detail}"
    if status == WARN:
        assert ("the probe found the new master 150 ms before +switch-master reached us, and ours wrote 70 ms "
                "after it") in result.detail


def test_reconnect_warning_says_whether_a_switch_was_seen():
    run = failover_run(recovering(3.0), probe=recovering(3.3))
    result = ha_checks.check_reconnect(run, None)
    assert result.status == WARN and "no +switch-master seen" in result.detail, result.detail


def test_reconnect_fails_when_our_client_never_wrote_again():
    stuck = history(op(0, -0.01, -0.005), op(1, 0.01, 0.02, OP_FAIL, REFUSED))
    result = ha_checks.check_reconnect(failover_run(stuck, probe=recovering(3.3)), None)
    assert (result.status, result.detail) == (FAIL, "no write succeeded after the fault"), f"{result}"


def test_reconnect_without_errors_on_either_side_is_ok_with_zero_difference():
    quiet = history(op(0, -0.01, -0.005), op(1, 0.1, 0.11))
    result = ha_checks.check_reconnect(failover_run(quiet, probe=history(op(0, 0.2, 0.21))), None)
    assert result.status == OK and result.metrics["difference_ms"] == 0.0, f"{result}"
    assert (result.metrics["ours_downtime_ms"], result.metrics["probe_downtime_ms"]) == (None, None)


def test_reconnect_is_skipped_without_a_run_and_failed_without_a_recovery():
    skipped = ha_checks.check_reconnect(None, "--fault none")
    assert (skipped.status, skipped.detail) == (WARN, "skipped: --fault none"), f"{skipped}"
    unrecovered = ha_checks.check_reconnect(failover_run(recovering(3.3), recovered=None), None)
    assert (unrecovered.status, unrecovered.detail) == (FAIL, "skipped: no recovery"), f"{unrecovered}"


# ---- consistency -----------------------------------------------------------------------------------

def acked_writes() -> History:
    """Four acknowledged writes (the first two confirmed by WAIT) and one refused; the fault as the run records it
    (the accounting times the lost writes from it)."""
    return history(op(0, -0.5, -0.49, confirmed=True), op(1, 0.2, 0.21, confirmed=True),
                   op(2, 0.4, 0.41, confirmed=False), op(3, 1.0, 1.01, confirmed=False),
                   op(4, 1.1, 1.2, OP_FAIL, REFUSED), events=(("fault", 0.0),))


def read_back_holding(run: FailoverView, *seqs: int) -> FailoverView:
    """The final read the suite records after the run: the new master holds the writes seqs, nothing else."""
    written = {op.key for op in run.history.snapshot()}
    run.history.record_final_read({key: key.split(":")[1] if int(key.split(":")[1]) in seqs else None
                                   for key in written})
    run.extra["final_read_on"] = "10.0.0.2:6380"
    return run


def test_consistency_is_ok_when_every_acknowledged_write_is_in_the_final_read():
    result = ha_consistency.check_consistency(read_back_holding(failover_run(acked_writes()), 0, 1, 2, 3), None)
    assert result.status == OK, result.detail
    assert result.detail.startswith("all 4 acknowledged writes present in the final read; 0 unknown"), result.detail
    assert (result.metrics["acked"], result.metrics["lost"], result.metrics["checked_on"]) == (4, 0, "10.0.0.2:6380")
    assert (result.metrics["acked_lost"], result.metrics["failed"], result.metrics["failed_present"]) == (0, 1, 0)


def test_consistency_fails_when_any_acknowledged_write_was_lost_confirmed_by_wait_or_not():
    result = ha_consistency.check_consistency(read_back_holding(failover_run(acked_writes()), 0, 1, 3), None)
    assert result.status == FAIL, "strict: an acknowledged write lost is a FAIL, WAIT or not"
    first, second = result.detail.split("\n")
    assert first.startswith("1 of 4 acknowledged writes lost, acknowledged +0.41 s to +0.41 s from the fault"), first
    assert "lost writes were acknowledged between +0.40 s and +0.41 s after the fault" in first, first
    assert second == "no min-replicas bound configured: Sentinel documents no bound", second
    assert (result.metrics["lost_keys_sample"], result.metrics["lost_between_s"]) == (["w:2"], [0.4, 0.41])
    assert result.metrics["lost_acked_window_s"] == [0.41, 0.41], result.metrics


@pytest.mark.parametrize("fault,explained", [(GRACEFUL, SENTINEL_LOSS), (KILL, None)])
def test_consistency_fails_when_a_wait_confirmed_write_was_lost_and_quotes_the_faults_own_explanation(fault,
                                                                                                     explained):
    run = read_back_holding(failover_run(acked_writes(), fault=fault, loss_explained=explained), 0, 3)
    result = ha_consistency.check_consistency(run, None)
    assert result.status == FAIL, result.detail
    first = result.detail.splitlines()[0]
    assert first.startswith("2 of 4 acknowledged writes lost, acknowledged +0.21 s to +0.41 s"), first
    assert first.endswith(f"; {explained}") if explained else first.endswith("after the fault"), first
    assert (result.metrics["wait_confirmed"], result.metrics["wait_confirmed_lost"]) == (2, 1), f"{result.metrics}"


def test_consistency_without_a_final_read_is_an_error_of_the_harness_not_a_guess():
    result = ha_consistency.check_consistency(failover_run(acked_writes()), None)
    expected = "no final read was recorded after the run: nothing to judge the writes by"
    assert (result.status, result.detail) == (ERROR, expected), "the harness could not read: not a FAIL of Valkey"
    run = failover_run(acked_writes())
    run.history.final_read_error = "the harness could not read back the 4 written keys on 127.0.0.1:1 within 30 s"
    result = ha_consistency.check_consistency(run, None)
    assert (result.status, result.detail) == (ERROR, run.history.final_read_error), result


def test_consistency_is_skipped_without_a_run_and_failed_without_a_recovery():
    skipped = ha_consistency.check_consistency(None, "--fault none")
    assert (skipped.status, skipped.detail) == (WARN, "skipped: --fault none"), f"{skipped}"
    unrecovered = ha_consistency.check_consistency(failover_run(acked_writes(), recovered=None), None)
    assert (unrecovered.status, unrecovered.detail) == (FAIL, "skipped: no recovery"), f"{unrecovered}"


# ---- replica_sync (the rejoin phase heals the fault and records what it saw; the check judges the record) ---

MASTER = ("127.0.0.1", 6380)  # valkey-replica1, promoted, as reached from here
REPLICAS_CAUGHT_UP = replication_info(offset=1020, replicas=[("10.0.0.3", 6381, "online", 1020),
                                                             ("10.0.0.1", 6379, "online", 1030)])


def synced_ha(*master_replies: dict, old_master_reply: dict | None = None) -> FakeHA:
    nodes = {MASTER: FakeNode(*master_replies)}
    if old_master_reply is not None:
        nodes[("127.0.0.1", 6379)] = FakeNode(old_master_reply)
    return FakeHA(master_address=MASTER, announced=("valkey-replica1", 6380), nodes=nodes,
                  remap={"valkey-master": "127.0.0.1", "valkey-replica1": "127.0.0.1"})


@pytest.fixture
def short_waits(monkeypatch):
    """The phase's waits (30 s for the replicas, 60 s for the rejoin) cut short: a wait that times out here is
    one that would have timed out there."""
    monkeypatch.setattr(ha_phases, "CAUGHT_UP_TIMEOUT_S", 0.3)
    monkeypatch.setattr(ha_phases, "REJOIN_TIMEOUT_S", 0.3)


def caught_up(ha: FakeHA) -> History:
    """The phase without a failover to heal: the replicas' wait alone."""
    recorded = History()
    ha_phases.replicas_caught_up(ha, recorded)
    return recorded


def rejoined(ha: FakeHA, run: FailoverView, fault: Fault, heal_timeout: float = 30) -> History:
    """The rejoin phase after a failover run: heal, wait for the stopped node to replicate, then the replicas."""
    ha_phases.rejoin(ha, run, fault, heal_timeout, owned=True)
    return run.history


class RestartableFault(Fault):
    def __init__(self, comes_back: bool = True, log: list | None = None):
        self.comes_back, self.log, self.timeouts = comes_back, log if log is not None else [], []

    def heal(self, timeout: float) -> bool:
        self.timeouts.append(timeout)
        self.log.append("heal")
        return self.comes_back


class NeverDown(Fault):
    """Like SENTINEL FAILOVER: nothing to restart."""

    can_heal = False

    def heal(self, timeout: float) -> bool:
        raise AssertionError("a fault that has nothing to heal is not asked to")


REJOINED = replication_info("slave", master_host="valkey-replica1", master_port=6380, master_link_status="up",
                            master_sync_in_progress=0)


def test_replica_sync_waits_until_the_replicas_reach_the_offset_the_master_had_when_asked():
    behind = replication_info(offset=1000, replicas=[("10.0.0.3", 6381, "online", 900),
                                                     ("10.0.0.1", 6379, "online", 950)])
    moved_on = replication_info(offset=1020, replicas=[("10.0.0.3", 6381, "online", 1000),
                                                       ("10.0.0.1", 6379, "online", 1010)])
    result = ha_replica_sync.check_replica_sync(caught_up(synced_ha(behind, moved_on)), False)
    assert result.status == OK, result.detail
    assert result.detail == "2 replica(s) online on 127.0.0.1:6380, offsets [1000, 1010] vs master 1020", \
        f"both reached 1000, the offset when the wait began: {result.detail!r}"
    assert (result.metrics["connected_replicas"], result.metrics["master_repl_offset"]) == (2, 1020)
    assert result.metrics["replicas"][0] == {"address": "10.0.0.3:6381", "state": "online", "offset": 1000, "lag": 0}


def test_replica_sync_fails_when_a_replica_stays_behind(short_waits):
    behind = replication_info(offset=1000, replicas=[("10.0.0.3", 6381, "online", 1000),
                                                     ("10.0.0.1", 6379, "online", 999)])
    result = ha_replica_sync.check_replica_sync(caught_up(synced_ha(behind)), False)
    assert result.status == FAIL, result.detail
    assert "replica offsets [1000, 999], master 1000 (waiting for 1000)" in result.detail, result.detail


def test_replica_sync_fails_when_no_replica_is_online():
    syncing = replication_info(offset=1000, replicas=[("10.0.0.3", 6381, "wait_bgsave", 1000)])
    result = ha_replica_sync.check_replica_sync(caught_up(synced_ha(syncing)), False)
    assert result.status == FAIL and result.detail.startswith("0 replica(s) online"), result.detail


def test_replica_sync_fails_when_the_replicas_were_never_looked_at():
    result = ha_replica_sync.check_replica_sync(History(), False)
    assert (result.status, result.detail) == (FAIL, "the replicas were not looked at"), result


def test_replica_sync_judges_the_rejoin_only_after_a_failover_run():
    ha = synced_ha(REPLICAS_CAUGHT_UP, old_master_reply=REJOINED)
    recorded = rejoined(ha, failover_run(kill_history()), RestartableFault())
    assert ha.nodes_asked == [("127.0.0.1", 6379), MASTER], f"the old master, then the new one: {ha.nodes_asked}"
    result = ha_replica_sync.check_replica_sync(recorded, True)
    assert result.status == OK, result.detail
    assert (result.metrics["old_master_restarted"], result.metrics["old_master_rejoined"]) == (True, True)
    without = ha_replica_sync.check_replica_sync(recorded, False)
    assert "old_master_restarted" not in without.metrics and "rejoined" not in without.detail, without


def test_replica_sync_restarts_the_old_master_and_sees_it_replicate_from_the_new_one():
    fault = RestartableFault()
    ha = synced_ha(REPLICAS_CAUGHT_UP, old_master_reply=REJOINED)
    recorded = rejoined(ha, failover_run(kill_history()), fault)
    result = ha_replica_sync.check_replica_sync(recorded, True)
    assert result.status == OK, result.detail
    assert fault.timeouts == [30], f"restored with the given timeout: {fault.timeouts}"
    assert (result.metrics["old_master_restarted"], result.metrics["old_master_rejoined"]) == (True, True)
    assert ("old master valkey-master:6379 rejoined as a replica (role=slave master=valkey-replica1:6380 "
            "link=up sync_in_progress=0)") in result.detail, result.detail
    heal = recorded.observed(NEMESIS, HEAL)
    assert heal is not None and heal.outcome == OP_OK, "the heal is the nemesis's operation in the history"


def test_replica_sync_warns_when_the_old_master_was_not_started_again():
    recorded = rejoined(synced_ha(REPLICAS_CAUGHT_UP), failover_run(kill_history()),
                        RestartableFault(comes_back=False), 45)
    result = ha_replica_sync.check_replica_sync(recorded, True)
    assert result.status == WARN, result.detail
    assert "valkey-master:6379 was not started again within 45s" in result.detail, result.detail
    assert result.metrics["old_master_restarted"] is False, f"{result.metrics}"


def test_replica_sync_fails_when_the_old_master_does_not_rejoin(short_waits):
    still_master = replication_info("master")
    ha = synced_ha(REPLICAS_CAUGHT_UP, old_master_reply=still_master)
    result = ha_replica_sync.check_replica_sync(rejoined(ha, failover_run(kill_history()), RestartableFault()), True)
    assert result.status == FAIL, result.detail
    assert result.metrics["old_master_rejoined"] is False, f"{result.metrics}"
    assert "old master did not rejoin" in result.detail and "role=master" in result.detail, result.detail


def test_replica_sync_after_a_graceful_failover_restarts_nothing_but_checks_the_rejoin():
    ha = synced_ha(REPLICAS_CAUGHT_UP, old_master_reply=REJOINED)
    recorded = rejoined(ha, failover_run(kill_history(), fault=GRACEFUL), NeverDown())
    result = ha_replica_sync.check_replica_sync(recorded, True)
    assert result.status == OK and result.metrics["old_master_rejoined"] is True, result.detail
    assert recorded.observed(NEMESIS, HEAL) is None, "nothing was healed"


def test_replica_sync_after_a_local_kill_shortens_the_sentinel_timers_only_while_rejoining():
    log: list = []

    def sentinel_debug(*args):
        log.append(args)
        return {"INFO-PERIOD": 10000, "PUBLISH-PERIOD": 2000, "ASK-PERIOD": 1000} if len(args) == 2 else "OK"

    class Stack:
        def running(self) -> list[str]:
            return []

        def start(self, service: str, timeout: float) -> None:
            log.append(("start", service))

    ha = synced_ha(REPLICAS_CAUGHT_UP, old_master_reply=REJOINED)
    ha.nodes[ha.sentinel_addresses[0]] = FakeNode(on_command=sentinel_debug)
    fault = Kill(LocalNode(Stack(), "valkey-master"), ("127.0.0.1", 6379))
    result = ha_replica_sync.check_replica_sync(rejoined(ha, failover_run(kill_history()), fault), True)
    assert result.status == OK, result.detail
    assert log == [("SENTINEL", "DEBUG"), ("SENTINEL", "DEBUG", "INFO-PERIOD", 100, "PUBLISH-PERIOD", 100),
                   ("start", "valkey-master"), ("SENTINEL", "DEBUG", "INFO-PERIOD", 10000, "PUBLISH-PERIOD", 2000)], \
        f"timers set, old master started, timers put back: {log}"


@pytest.mark.parametrize("fault,owned,shorten", [
    ("local", False, True), ("graceful", False, True), ("coordinated", True, True),
    ("docker", True, True), ("docker", False, False), ("manual", True, True), ("manual", False, False)])
def test_the_rejoin_after_a_run_is_watched_with_short_timers_only_where_the_harness_may_change_them(
        fault, owned, shorten):
    """After the measured failover: always for a local kill and SENTINEL FAILOVER (which needs
    --allow-destructive on servers not ours); a docker kill or a kill by hand only on servers the harness
    started. Undoing an interrupted run keeps the stricter rule (a failover may be under way)."""
    from lib.faults.coordinated import Coordinated
    from lib.faults.fault import FaultContext, Node
    from lib.faults.graceful import Graceful
    from lib.faults.manual import Manual
    from lib.faults.nodes import DockerNode

    master = Node(("valkey-master", 6379), ("10.0.0.1", 6379))
    ctx = FaultContext("sentinel", "ha", "the master valkey-master:6379", master, [], options={"fault": fault})
    faults = {"local": Kill(LocalNode(object(), "valkey-master"), master.reachable),
              "graceful": Graceful(ctx, None), "coordinated": Coordinated(ctx, None),
              "docker": Kill(DockerNode("valkey-master"), master.reachable),
              "manual": Manual(ctx, "kill it", "start it")}
    assert faults[fault].shortens_rejoin(owned, after_failover=True) is shorten
    if fault in ("graceful", "coordinated", "docker", "manual"):
        assert faults[fault].shortens_rejoin(owned) is False


# ---- roles_restored --------------------------------------------------------------------------------

@pytest.mark.parametrize("done,status", [(True, OK), (False, FAIL)])
def test_roles_restored_follows_whether_the_original_master_is_master_again(monkeypatch, done, status):
    from lib.phases.ha_roles import PutBack

    asked = []

    def put_back_master(ha, original):
        asked.append(original)
        return PutBack(done, "valkey-master:6379 is master again" if done else "sentinels picked another", ["s1"])

    monkeypatch.setattr(ha_phases, "put_back_master", put_back_master)  # the I/O; the verdict is what is tested
    recorded = History()
    assert ha_phases.put_back_roles(FakeHA(), ("valkey-master", 6379), recorded) is done, "the suite keeps it"
    result = ha_replica_sync.check_roles_restored(recorded)
    assert result.status == status, f"{result}"
    assert result.metrics == {"original_master": "valkey-master:6379", "steps": ["s1"]}, f"{result.metrics}"
    assert asked == [("valkey-master", 6379)], "the master the sentinels announced before the run"


def test_roles_restored_is_skipped_when_the_roles_were_not_put_back():
    result = ha_replica_sync.check_roles_restored(History())
    assert (result.status, result.detail) == (WARN, "skipped: the roles were not put back"), f"{result}"
