"""ha_test.py's fault matrix: each --fault once on one shared real local stack, and the decisions with fakes.

The integration tests assert the outcome class of each fault (coordinated loses nothing, a resumed old
master's writes are reported, a replica kill or a quorum loss brings no failover...) and that each run
leaves the stack as it found it: every service running, the replicas synced, the config put back.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import ha_test
from conftest import checks_of, ha_downtime_limit_ms, run_script, running_stack
from lib import events
from lib.checks import ha_checks, ha_consistency, ha_fault_metrics, ha_master_kill
from lib.checks.result import FAIL, OK
from lib.clients.server_config import ConfigChange
from lib.errors import SetupError
from lib.faults import nodes as nodes_module
from lib.faults.compound import one_stack
from lib.faults.coordinated import Coordinated
from lib.faults.exec import Exec
from lib.faults.fault import Fault, FaultContext, Node, heal_fault
from lib.faults.graceful import Graceful
from lib.faults.kill import Kill
from lib.faults.nodes import LocalNode
from lib.faults.pause import Pause
from lib.faults.quorum_loss import QuorumLoss, require_quorum_loss_possible, sentinels_to_stop
from lib.faults.replica_kill import ReplicaKill
from lib.faults.sigterm import Sigterm
from lib.history import FAIL as OP_FAIL
from lib.history import HARNESS, INJECT, NEMESIS, PINNED, WRITE, WRITER, History, Op
from lib.history import OK as OP_OK
from lib.launcher.local_stack import LocalStack
from lib.phases import ha_phases
from lib.phases.ha_record import TARGET, FailoverView, RunPlan, Watch
from lib.suites import ha as ha_suite
from lib.suites import ha_faults, ha_ownership, ha_session, ha_undo
from lib.util import REPO_ROOT, free_ports
from lib.waits import wait_until
from unit.fakes import FakeHA, FakeNode, FakeSentinel, replication_info

FAULT_AT = 100.0
DEFAULT_CONFIG = {"min-replicas-to-write": "0", "min-replicas-max-lag": "10", "shutdown-on-sigterm": "default"}


# ---- unit: the decisions, with fakes ---------------------------------------------------------------

def parse(*argv: str) -> argparse.Namespace:
    return ha_suite.HASuite().build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv,message", [
    (["--fault", "exec"], "--kill-cmd is empty"),
    (["--fault", "shard-loss"], "does not apply to the ha suite"),
    (["--kill-cmd", "true"], "goes with --fault exec"),
    (["--fault", "pause", "--min-replicas-max-lag", "2"], "goes with --min-replicas-to-write"),
])
def test_fault_options_are_refused_before_any_sentinel_is_asked(argv, message):
    port = free_ports(1)[0]  # nothing listens there: asked first, it would be "no sentinel reachable"
    with pytest.raises(SetupError, match=message):
        ha_test.main([*argv, "--sentinel", f"127.0.0.1:{port}"])


def sentinel_only_ha(replicas: list[tuple[str, int]] = (), master: dict | None = None) -> FakeHA:
    """A FakeHA whose one sentinel knows the master's replicas and its state."""
    ha = FakeHA()
    ha.nodes[ha.sentinel_addresses[0]] = FakeSentinel(replicas, master)
    return ha


@pytest.mark.parametrize("fault", ["pause", "sigterm"])
def test_a_process_fault_on_servers_of_no_stack_and_no_container_says_use_exec_or_manual(monkeypatch, fault):
    monkeypatch.setattr(nodes_module, "docker_usable", lambda: False)
    monkeypatch.setattr(nodes_module, "engine_answers", lambda: False)
    with pytest.raises(SetupError) as refused:
        ha_faults.build_fault(parse("--fault", fault), sentinel_only_ha([("10.0.0.6", 6380)]), ("10.0.0.5", 6379),
                              ("10.0.0.5", 6379), str)
    message = str(refused.value)
    assert message.startswith(f"--fault {fault} cannot reach the process of 10.0.0.5:6379"), message
    assert "--fault exec" in message and "--fault manual" in message and "\n" not in message, message


@pytest.mark.parametrize("fault", ["graceful", "pause", "replica-kill"])
def test_a_master_without_a_replica_is_refused_for_a_fault_that_needs_one(fault):
    with pytest.raises(SetupError, match=f"--fault {fault}: the master 10.0.0.5:6379 has no replica to"):
        ha_faults.build_fault(parse("--fault", fault), sentinel_only_ha([]), ("10.0.0.5", 6379), ("10.0.0.5", 6379),
                              str)


@pytest.mark.parametrize("known,quorum,stop", [(3, 2, 2), (3, 1, 2), (5, 3, 3), (5, 2, 3), (2, 1, 1)])
def test_quorum_loss_stops_one_fewer_sentinels_than_a_failover_needs_left(known, quorum, stop):
    assert sentinels_to_stop(known, quorum) == stop
    given = [("127.0.0.1", 26379 + i) for i in range(known)]
    assert require_quorum_loss_possible(given, known, quorum) == stop


def test_quorum_loss_needs_every_sentinel_given():
    with pytest.raises(SetupError, match="the sentinels know 3 sentinels but 1 were given"):
        require_quorum_loss_possible([("127.0.0.1", 26379)], 3, 2)
    with pytest.raises(SetupError, match="every sentinel would have to stop"):
        require_quorum_loss_possible([("127.0.0.1", 26379)], 1, 1)


class Part(Fault):
    def __init__(self, name: str, log: list[str]):
        self.part, self.log = name, log

    def heal(self, timeout: float) -> bool:
        self.log.append(self.part)
        return True


def test_quorum_loss_heals_the_sentinels_in_the_run_and_leaves_the_master_to_the_suite():
    log: list[str] = []
    fault = QuorumLoss([Part("sentinel2", log), Part("sentinel3", log), Part("master", log)], "why", [])
    fault.inject()
    assert fault.heal_watched(5) == "2 sentinel(s) started again" and log == ["sentinel3", "sentinel2"], log
    assert fault.heal(5) is True and log == ["sentinel3", "sentinel2", "master"], "the master, once, at the end"


def test_services_of_one_stack_share_one_launcher_record(tmp_path):
    stack, copy = object.__new__(LocalStack), object.__new__(LocalStack)
    stack.state_dir = copy.state_dir = tmp_path
    shared = one_stack([LocalNode(stack, "valkey-sentinel2"), LocalNode(copy, "valkey-master")])
    assert [node.stack for node in shared] == [stack, stack], "a second copy would save dead pids back"


def test_each_fault_file_says_what_the_ha_run_must_do_around_it():
    """The run plan comes from the fault's facts: a watch where no failover may come, a writer kept on the old
    master where the fault resumes it, the node stopped when it is not the master."""
    ha = sentinel_only_ha([("10.0.0.6", 6380)], {"down-after-milliseconds": "2000"})
    master = ("10.0.0.5", 6379)
    kill = Kill(LocalNode(object(), "valkey-master"), master)
    assert ha_faults.run_plan(kill, ha, master) == RunPlan(), "a kill: wait for a failover, nothing else"
    pause = Pause(LocalNode(object(), "valkey-master"), [master])
    assert ha_faults.run_plan(pause, ha, master).pin_old_master == master, "a writer stays on the paused master"
    replica = Node(("10.0.0.6", 6380), ("10.0.0.6", 6380))
    replica_kill = ReplicaKill(Kill(LocalNode(object(), "valkey-replica1"), replica.reachable), replica, [], "x")
    plan = ha_faults.run_plan(replica_kill, ha, master)
    assert (plan.expect_failover, plan.watch_s, plan.victim) == (False, 7.0, replica.announced), plan
    assert plan.why_no_failover == "only a replica was killed"


class OwnershipProbe:
    def __init__(self, monkeypatch, owned: bool = False):
        self.asked: list = []

        def refuse(addresses, *, allowed, action):
            self.asked.append((list(addresses), allowed, action))
            raise SetupError(f"refusing to {action}: not ours")

        monkeypatch.setattr(ha_ownership, "require_owned", refuse)
        monkeypatch.setattr(ha_ownership, "ownership", lambda host, port: type("O", (), {"owned": owned})())


def exec_fault(kill_cmd: str, restore_cmd: str | None = None, master: tuple[str, int] = ("10.0.0.1", 6379)) -> Exec:
    ctx = FaultContext("sentinel", "ha", "the master", Node(master, master), [],
                       options={"fault": "exec", "kill_cmd": kill_cmd, "restore_cmd": restore_cmd})
    return Exec.build(ctx)


def test_exec_runs_the_persons_own_commands_without_an_ownership_refusal(monkeypatch):
    probe = OwnershipProbe(monkeypatch, owned=False)
    fault = exec_fault("kubectl delete pod valkey-0")
    owned = ha_ownership.require_ownership(parse(), FakeHA(), fault, ("10.0.0.1", 6379))
    assert owned is False and probe.asked == [], "asked whether the servers are ours, never refused"


def test_exec_without_a_restore_command_waits_for_the_person_and_an_interrupt_says_heal_it_yourself(monkeypatch):
    answered: list[tuple] = []
    monkeypatch.setattr("lib.faults.exec.answers", lambda address, password, timeout: answered.append(address) or True)
    fault = exec_fault("kill -STOP 1234")
    fault.pending_heal = True
    assert heal_fault(fault, 45) is True and fault.pending_heal is False
    assert answered == [("10.0.0.1", 6379)], "the harness waited for the master to answer again"
    fault.pending_heal = True
    session = ha_session.Session("vhc:ha:t:", fault=fault)
    notes = ha_undo.undo_interrupted(FakeHA(), session)
    assert notes == ["the fault came from --kill-cmd 'kill -STOP 1234' and no --restore-cmd was given: heal it "
                     "yourself"], notes


class SlavesHA(FakeHA):
    """FakeHA whose sentinel client knows the master's replicas."""

    def __init__(self, replicas: list[tuple[str, int]], **kwargs):
        super().__init__(**kwargs)
        self.sentinel = type("S", (), {"discover_slaves": staticmethod(lambda name: list(replicas))})()
        self.master_name = "myvalkey"


def test_min_replicas_on_servers_the_harness_did_not_start_is_refused_naming_every_node(monkeypatch):
    probe = OwnershipProbe(monkeypatch)
    ha = SlavesHA([("10.0.0.2", 6380), ("10.0.0.3", 6381)])
    with pytest.raises(SetupError, match="refusing to CONFIG SET min-replicas-to-write 1 min-replicas-max-lag 2"):
        ha_ownership.config_for_run(parse("--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"), ha,
                                    ("10.0.0.1", 6379), Fault())
    assert probe.asked[0][0] == [("10.0.0.1", 6379), ("10.0.0.2", 6380), ("10.0.0.3", 6381)], probe.asked
    assert probe.asked[0][1] is False, "without --allow-destructive"


def test_sigterm_sets_shutdown_on_sigterm_failover_on_the_master_only():
    sigterm = Sigterm(LocalNode(object(), "valkey-master"), [])
    changes = ha_ownership.config_for_run(parse("--fault", "sigterm"), SlavesHA([]), ("10.0.0.1", 6379), sigterm)
    assert [(c.nodes, c.settings) for c in changes] == [([("10.0.0.1", 6379)], {"shutdown-on-sigterm": "failover"})]


class ConfigNode:
    def __init__(self, values: dict[str, str], fails: bool = False):
        self.values, self.fails = values, fails
        self.commands: list[str] = []

    def config_get(self, name: str) -> dict[str, str]:
        return {name: self.values[name]}

    def execute_command(self, *args: str) -> str:
        self.commands.append(args[0])
        if self.fails:
            raise redis.ConnectionError("Connection refused")
        if args[0] == "CONFIG SET":
            self.values.update(dict(zip(args[1::2], args[2::2], strict=True)))
        return "OK"

    def close(self) -> None:
        pass


def test_config_is_put_back_and_a_node_that_is_down_is_retried_later():
    nodes = {("a", 1): ConfigNode({"min-replicas-to-write": "0"}), ("b", 2): ConfigNode({"min-replicas-to-write": "0"})}
    session = ha_session.Session("vhc:ha:t:")
    session.config.append(ConfigChange(lambda a: nodes[a], list(nodes), {"min-replicas-to-write": "1"}))
    session.config[0].apply()
    assert {n.values["min-replicas-to-write"] for n in nodes.values()} == {"1"}
    nodes[("b", 2)].fails = True
    problems = ha_session.put_config_back(session)
    assert len(problems) == 1 and problems[0].startswith("b:2: could not put back"), problems
    assert nodes[("a", 1)].values["min-replicas-to-write"] == "0" and session.config, "b is kept for a retry"
    nodes[("b", 2)].fails = False
    assert ha_session.put_config_back(session) == [] and session.config == []
    assert nodes[("b", 2)].values["min-replicas-to-write"] == "0"
    sent = [n.commands for n in nodes.values()]
    assert all(c[-1] == "CONFIG REWRITE" and c.count("CONFIG REWRITE") == 1 for c in sent), \
        f"put back in the config file too, once (a sentinel's CONFIG REWRITE may have saved the run's value): {sent}"


class SentinelNode:
    def __init__(self, replies: list):
        self.replies, self.commands = replies, []

    def execute_command(self, *args):
        self.commands.append(args)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def close(self) -> None:
        pass


def sentinel_ha(node: SentinelNode) -> FakeHA:
    ha = FakeHA(sentinel_addresses=[("127.0.0.1", 26379)])
    ha.nodes[("127.0.0.1", 26379)] = node
    ha.master_name = "myvalkey"
    return ha


def sentinel_failover(cls: type[Graceful], node: SentinelNode) -> Graceful:
    master = Node(("127.0.0.1", 6379), ("127.0.0.1", 6379))
    sentinel = Node(("127.0.0.1", 26379), ("127.0.0.1", 26379))
    ctx = FaultContext("sentinel", "ha", "the master", master, [], sentinels=[sentinel], master_name="myvalkey",
                       connect=lambda address, **_: node)
    return cls(ctx, None)


def test_coordinated_failover_retries_nogoodslave_until_a_sentinel_accepts():
    nogood = redis.ResponseError("NOGOODSLAVE No suitable replica to promote")
    node = SentinelNode([nogood, nogood, "OK"])
    sentinel_failover(Coordinated, node).inject()
    assert node.commands == [("SENTINEL", "FAILOVER", "myvalkey", "COORDINATED")] * 3, node.commands


def test_plain_sentinel_failover_gives_up_at_once_as_before():
    node = SentinelNode([redis.ResponseError("NOGOODSLAVE No suitable replica to promote")])
    with pytest.raises(SetupError, match="no sentinel accepted SENTINEL FAILOVER myvalkey: 127.0.0.1:26379: "):
        sentinel_failover(Graceful, node).inject()
    assert node.commands == [("SENTINEL", "FAILOVER", "myvalkey")]


# ---- unit: the verdicts of the new faults ----------------------------------------------------------

def op(seq: int, start: float, end: float, outcome: str = OP_OK, error: str | None = None, *,
       confirmed: bool | None = True, prefix: str = "w:", process: str = WRITER) -> Op:
    return Op(seq, f"{prefix}{seq}", FAULT_AT + start, FAULT_AT + end, outcome, error, confirmed, value=str(seq),
              process=process)


def recorded(*ops: Op, events_at: tuple[tuple[str, float], ...] = ()) -> History:
    history = History()
    for o in ops:
        history.record(o)
    for name, at in events_at:
        history.event(name, "", at=FAULT_AT + at)
    return history


def watch(switch_at: float | None = None, why: str = "quorum unreachable") -> Watch:
    return Watch(7.0, why, FAULT_AT + 7.0, None if switch_at is None else FAULT_AT + switch_at,
                 {events.SDOWN: 1}, {})


def test_quorum_loss_without_a_failover_in_the_watch_is_ok_and_measures_the_recovery():
    history = recorded(op(1, -0.1, -0.09), op(2, 0.1, 0.2, OP_FAIL, "ConnectionError"), op(3, 10.3, 10.5),
                       events_at=((events.HEALED, 7.5), (events.SWITCH_MASTER, 10.2)))
    run = FailoverView("quorum loss", ("127.0.0.1", 6379), history, fault_at=FAULT_AT, recovered_at=FAULT_AT + 10.6,
                      watch=watch(), healed_at=FAULT_AT + 7.5)
    result = ha_master_kill.check_master_kill(run, None)
    assert result.status == OK, result.detail
    assert "no failover: quorum unreachable, as expected" in result.detail, result.detail
    metrics = result.metrics
    assert (metrics["failover_in_watch"], metrics["sentinels_back_s"]) == (False, 7.5)
    assert metrics["switch_after_return_s"] == pytest.approx(2.7) and metrics["writes_after_return_s"] == \
        pytest.approx(3.0), metrics


def test_a_failover_inside_the_watch_fails_whatever_came_after():
    run = FailoverView("replica kill", ("127.0.0.1", 6379), recorded(op(1, 1, 1.1)), fault_at=FAULT_AT,
                      recovered_at=FAULT_AT + 8, watch=watch(switch_at=4.0, why="only a replica was killed"),
                      expected_failover=False)
    result = ha_master_kill.check_master_kill(run, None)
    assert result.status == FAIL and "a failover happened at +4.00 s although none was expected" in result.detail


def test_a_replica_kill_keeps_the_master_and_says_so():
    run = FailoverView("replica kill", ("127.0.0.1", 6379), recorded(op(1, -0.01, 0.0), op(2, 0.02, 0.05)),
                      fault_at=FAULT_AT, recovered_at=FAULT_AT + 8, new_master=("127.0.0.1", 6379),
                      watch=watch(why="only a replica was killed"), expected_failover=False)
    kill = ha_master_kill.check_master_kill(run, None)
    assert kill.status == OK and "the master kept serving (longest write gap 50 ms)" in kill.detail, kill.detail
    ha = FakeHA(views={"s1": "127.0.0.1:6379"}, nodes={("127.0.0.1", 6379): FakeNode(replication_info("master"))})
    ha_phases.after_run(ha, run.history)  # the phase records what the sentinels name and that node's role
    new = ha_checks.check_new_master(run.history, run)
    assert new.status == OK and new.detail.startswith("no failover, as expected"), new.detail


def final_read(history: History, holding: dict[str, str]) -> History:
    """The final read the suite records after the run: keys of the history not in holding were not found."""
    history.record_final_read({o.key: holding.get(o.key) for o in history.snapshot()})
    return history


def test_the_old_masters_writes_after_the_heal_are_counted_and_read_back():
    holding = {"w:1": "1", "w:2": "2", "old:10": "10"}  # 11 and 12 were discarded by the demotion
    old = {"prefix": "old:", "process": PINNED}  # the second writer, kept on the old master: one history for both
    history = recorded(op(1, -1, -0.99), op(2, 4.0, 4.01), op(10, -1, -0.99, **old),
                       op(11, 4.2, 4.21, confirmed=False, **old), op(12, 5.0, 5.01, confirmed=False, **old),
                       op(13, 9.0, 9.01, OP_FAIL, "ReadOnlyError: READONLY", **old),
                       events_at=((events.FAULT, 0.0), (events.RECOVERED, 4.1), (events.HEALED, 4.1),
                                  (events.DEMOTED, 8.0)))
    history.observe(HARNESS, TARGET, {"master": "127.0.0.1:6379"}, at=FAULT_AT - 2)
    history.observe(NEMESIS, INJECT, {"description": "SIGSTOP valkey-master"}, at=FAULT_AT)
    history.record_final_read({o.key: holding.get(o.key) for o in history.snapshot(None) if o.f == WRITE})
    run = FailoverView.from_history(history, {})
    assert (run.fault_at, run.healed_at, run.old_master_demoted_at) == (FAULT_AT, FAULT_AT + 4.1, FAULT_AT + 8.0)
    result = ha_consistency.check_consistency(run, None)
    assert result.status == FAIL, "acknowledged writes of the resumed old master were lost: strict FAIL"
    metrics = result.metrics
    assert (metrics["old_master_acked"], metrics["old_master_acked_after_heal"],
            metrics["old_master_acked_after_heal_lost"], metrics["old_master_acked_lost"]) == (3, 2, 2, 2), metrics
    assert metrics["lost_acked_at_s"] == [4.21, 5.01] and metrics["lost"] == 0, metrics
    assert (metrics["acked"], metrics["acked_lost"]) == (5, 2), "both writers' writes are accounted"
    assert run.pinned is not None and run.pinned.final_read == {"old:10": "10", "old:11": None, "old:12": None,
                                                                "old:13": None}, "the old master's keys read back"
    assert "discarded when it was demoted at +8.00 s" in result.detail, result.detail
    assert ha_master_kill.check_master_kill(run, None).metrics["old_master_acked_after_heal"] == 2
    saved = History.from_dict(history.to_dict(FAULT_AT))  # what --recheck judges: the saved history, fault at 0
    rechecked = ha_consistency.check_consistency(FailoverView.from_history(saved, {}), None)
    assert (rechecked.status, rechecked.detail, rechecked.metrics) == (result.status, result.detail, metrics), \
        "the saved history is judged the same way"


def test_coordinated_loss_is_not_explained_away_as_plain_sentinel_failovers():
    history = final_read(recorded(op(1, 0.1, 0.2)), {})
    fault = sentinel_failover(Coordinated, SentinelNode(["OK"]))
    evidence = {"coordinated_path_seen": False}
    run = FailoverView(fault.description, ("127.0.0.1", 6379), history, fault_at=FAULT_AT, recovered_at=FAULT_AT + 1,
                      extra=evidence, loss_explained=fault.explain_loss(evidence))
    result = ha_consistency.check_consistency(run, None)
    assert result.status == FAIL and "SENTINEL FAILOVER does not pause" not in result.detail, result.detail
    assert "coordinated path: the servers did not log it" in result.detail, result.detail


def test_first_noreplicas_is_timed_from_the_fault_for_all_writers_and_for_the_old_master():
    both = recorded(op(1, 0.5, 3.8, OP_FAIL, "ResponseError: NOREPLICAS Not enough good replicas to write."),
                    op(2, 4.0, 4.1, OP_FAIL, "ResponseError: NOREPLICAS Not enough good replicas", prefix="o:",
                       process=PINNED))
    run = FailoverView("partition", ("127.0.0.1", 6379), both, fault_at=FAULT_AT, recovered_at=FAULT_AT + 4,
                      settings={"min-replicas-to-write": "1"})
    metrics = ha_master_kill.check_master_kill(run, None).metrics
    assert (metrics["first_noreplicas_after_s"], metrics["old_master_first_noreplicas_after_s"]) == (3.8, 4.1)
    assert metrics["config_for_run"] == {"min-replicas-to-write": "1"}


def test_the_write_pause_is_the_longest_gap_between_acknowledged_writes_that_ends_after_the_fault():
    ops = [op(1, -2, -1.5), op(2, -0.2, -0.1), op(3, 0.0, 0.3, OP_FAIL), op(4, 0.3, 0.85), op(5, 0.9, 0.9)]
    assert ha_fault_metrics.write_pause_ms(ops, FAULT_AT, FAULT_AT + 1) == pytest.approx(950), "-0.1 s to +0.85 s"


# ---- integration: one shared stack, each fault once ------------------------------------------------

integration = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack("ha", tmp_path_factory.mktemp("ha-faults") / "ha") as started:
        yield started


def client(port: int, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                       retry=Retry(NoBackoff(), 0), decode_responses=True)


def master_service(stack: LocalStack) -> str:
    sentinel = client(stack.endpoints("sentinel")[0][1])
    try:
        port = int(sentinel.sentinel_get_master_addr_by_name("myvalkey")[1])
    finally:
        sentinel.close()
    return stack.service_at(port)


def healthy(stack: LocalStack) -> tuple[bool, str]:
    """Every service runs (as the launcher's record on disk says), the sentinels agree, 2 replicas online."""
    record = LocalStack.load(stack.state_dir)
    stopped = sorted(set(record.services) - set(record.running()))
    if stopped:
        return False, f"not running: {stopped}"
    master = client(record.service(master_service(stack)).port)
    try:
        info = master.info("replication")
    finally:
        master.close()
    online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict) and v["state"] == "online"]
    return info["role"] == "master" and len(online) == 2, f"role {info['role']}, {len(online)} replicas online"


def config_of_every_server(stack: LocalStack) -> dict[str, dict[str, str]]:
    seen = {}
    for name, svc in stack.services.items():
        if svc.kind == "server":
            node = client(svc.port)
            try:
                seen[name] = {key: node.config_get(key)[key] for key in DEFAULT_CONFIG}
            finally:
                node.close()
    return seen


def run_fault(stack: LocalStack, tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    """ha_test.py with these arguments on the shared stack; afterwards the stack is as it was, config included."""
    wait_until(lambda: healthy(stack), timeout=60, what="the stack healthy before the run")
    out = tmp_path / "ha.json"
    proc = run_script("ha_test.py", *args, "--json", str(out), state_dir=stack.state_dir)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    scenarios = checks_of(out)
    wait_until(lambda: healthy(stack), timeout=60, what="the stack healthy after the run")
    assert config_of_every_server(stack) == {name: DEFAULT_CONFIG for name in config_of_every_server(stack)}
    return proc, scenarios


def statuses(scenarios: dict) -> dict[str, tuple[str, str]]:
    return {name: (s["status"], s["detail"]) for name, s in scenarios.items()}


def all_ok(scenarios: dict) -> bool:
    """Every check OK; reconnect may WARN when our client wrote before the probe (see check_reconnect)."""
    return all(s["status"] == "OK" or (name == "reconnect" and s["status"] == "WARN") for name, s in scenarios.items())


@integration
def test_coordinated_failover_loses_no_acknowledged_write(stack, tmp_path):
    proc, result = run_fault(stack, tmp_path, "--fault", "coordinated")
    assert proc.returncode == 0 and all_ok(result), statuses(result)
    kill, loss = result["master_kill"]["metrics"], result["consistency"]["metrics"]
    assert kill["fault"].startswith("SENTINEL FAILOVER COORDINATED"), kill["fault"]
    assert kill["coordinated_path_seen"] is True, kill.get("coordinated_log_lines")
    assert 0 < kill["write_pause_ms"] < 5000, kill["write_pause_ms"]
    assert loss["acked"] > 0 and loss["lost"] == 0, loss


@integration
def test_pause_reports_what_the_resumed_old_master_acknowledged_and_lost(stack, tmp_path):
    proc, result = run_fault(stack, tmp_path, "--fault", "pause")
    kill, loss = result["master_kill"]["metrics"], result["consistency"]["metrics"]
    switched = min(e["t_s"] for e in kill["events"] if e["event"] == "+switch-master")
    assert switched >= 2.0, "the pause outlasted down-after-milliseconds (2 s)"
    assert switched <= kill["healed_s"] < kill["old_master_demoted_s"], kill
    assert kill["old_master_acked_after_heal"] > 0, f"the resumed master still took writes: {kill}"
    assert loss["old_master_acked_after_heal"] == kill["old_master_acked_after_heal"]
    assert loss["old_master_acked_after_heal_lost"] == loss["old_master_acked_after_heal"], "its demotion drops them"
    assert result["consistency"]["status"] in ("WARN", "FAIL"), result["consistency"]["detail"]
    assert result["replica_sync"]["status"] == "OK", result["replica_sync"]["detail"]


@integration
def test_min_replicas_to_write_bounds_what_a_paused_master_loses(stack, tmp_path):
    _, result = run_fault(stack, tmp_path, "--fault", "pause", "--min-replicas-to-write", "1",
                          "--min-replicas-max-lag", "1")
    kill, loss = result["master_kill"]["metrics"], result["consistency"]["metrics"]
    assert kill["config_for_run"] == {"min-replicas-to-write": "1", "min-replicas-max-lag": "1"}
    assert kill["first_noreplicas_after_s"] is not None and kill["old_master_first_noreplicas_after_s"] is not None
    bound = kill["healed_s"] + 1 + 1  # max-lag, plus the second the server takes to count its replicas
    assert all(at <= bound for at in loss.get("lost_acked_at_s", [])), (bound, loss.get("lost_acked_at_s"))


@integration
def test_replica_kill_brings_no_failover_and_no_loss(stack, tmp_path):
    master_before = master_service(stack)
    proc, result = run_fault(stack, tmp_path, "--fault", "replica-kill")
    assert proc.returncode == 0 and all_ok(result), statuses(result)
    kill = result["master_kill"]
    assert "no failover: only a replica was killed, as expected" in kill["detail"], kill["detail"]
    assert kill["metrics"]["failover_in_watch"] is False and kill["metrics"]["watch_s"] >= 4.0
    assert result["new_master"]["detail"].startswith("no failover, as expected"), result["new_master"]["detail"]
    assert result["consistency"]["metrics"]["lost"] == 0
    assert result["replica_sync"]["metrics"]["replica_rejoined"] is True
    assert master_service(stack) == master_before


@integration
def test_quorum_loss_brings_no_failover_until_the_sentinels_return(stack, tmp_path):
    proc, result = run_fault(stack, tmp_path, "--fault", "quorum-loss")
    assert proc.returncode == 0 and all_ok(result), statuses(result)
    kill = result["master_kill"]
    metrics = kill["metrics"]
    assert "no failover: quorum unreachable (2 of 3 sentinels stopped, quorum 2), as expected" in kill["detail"]
    assert metrics["failover_in_watch"] is False and metrics["watch_events"].get("+odown", 0) == 0, metrics
    assert metrics["sentinels_back_s"] >= metrics["watch_s"] >= 7.0, "2 x down-after + the failover allowance"
    assert 0 < metrics["switch_after_return_s"] < 30 and 0 < metrics["writes_after_return_s"] < 30, metrics
    assert result["replica_sync"]["metrics"]["old_master_rejoined"] is True


@integration
def test_sigterm_fails_over_like_a_kill_and_puts_shutdown_on_sigterm_back(stack, tmp_path):
    proc, result = run_fault(stack, tmp_path, "--fault", "sigterm")
    assert proc.returncode == 0 and all_ok(result), statuses(result)
    kill = result["master_kill"]["metrics"]
    assert kill["fault"].startswith("SIGTERM ") and "shutdown-on-sigterm failover" in kill["fault"], kill["fault"]
    assert kill["config_for_run"] == {"shutdown-on-sigterm": "failover"}
    assert 1000 <= kill["downtime_ms"] <= ha_downtime_limit_ms(kill), result["master_kill"]["detail"]
    assert result["consistency"]["metrics"]["wait_confirmed_lost"] == 0


@integration
def test_exec_runs_the_users_kill_and_restore_commands(stack, tmp_path):
    victim = master_service(stack)
    stack_py = f"{sys.executable} {REPO_ROOT / 'app' / 'stack.py'}"
    proc, result = run_fault(stack, tmp_path, "--fault", "exec", "--kill-cmd", f"{stack_py} kill {victim}",
                             "--restore-cmd", f"{stack_py} start {victim}")
    assert proc.returncode == 0 and all_ok(result), statuses(result)
    assert result["master_kill"]["metrics"]["fault"] == f"exec: {stack_py} kill {victim}"
    assert result["replica_sync"]["metrics"]["old_master_restarted"] is True
    assert master_service(stack) != victim


@integration
@pytest.mark.usefixtures("partition_tools")
def test_partition_loses_what_the_cut_off_master_acknowledged(stack, tmp_path):
    from lib.faults.partition import leftover_rules

    ports = [svc.port for svc in stack.services.values() if svc.port]
    proc, result = run_fault(stack, tmp_path, "--fault", "partition")
    kill, loss = result["master_kill"]["metrics"], result["consistency"]["metrics"]
    assert kill["fault"].startswith("partition: ") and kill["healed_s"] > 0, kill
    assert loss["lost"] + loss["old_master_acked_lost"] > 0, f"acknowledged on the cut-off side, then dropped: {loss}"
    assert leftover_rules(ports) == [], "the cut is healed"


@integration
def test_ctrl_c_during_a_pause_resumes_the_master_and_puts_the_config_back(stack):
    wait_until(lambda: healthy(stack), timeout=60, what="the stack healthy before the run")
    victim = stack.service(master_service(stack))
    env = dict(os.environ, VHC_STACK_STATE=str(stack.state_dir), COLUMNS="160")
    proc = subprocess.Popen([sys.executable, "app/ha_test.py", "--fault", "pause", "--min-replicas-to-write", "1"],
                            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def paused() -> tuple[bool, str]:
            assert proc.poll() is None, f"ha_test.py ended early: {proc.communicate()}"
            pid = LocalStack.load(stack.state_dir).service(victim.name).pid
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
            return state == "T", f"process state {state}"

        wait_until(paused, timeout=90, what="ha_test.py to pause the master", transient=(OSError,))
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, f"exit {proc.returncode}\n{stdout[-3000:]}\n{stderr[-2000:]}"
    assert "put back: min-replicas-to-write" in stdout, stdout[-3000:]
    wait_until(lambda: healthy(stack), timeout=60, what="the stack healthy after the interrupted run")
    assert config_of_every_server(stack) == {name: DEFAULT_CONFIG for name in config_of_every_server(stack)}
