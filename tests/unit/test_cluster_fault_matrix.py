"""The cluster suite's fault matrix without a server: which faults each suite refuses, what each fault changes,
and the verdicts of a fault that should cause no failover, a lost shard, and a strictly judged failover."""

from __future__ import annotations

import pytest

from lib.checks.cluster_failover_checks import check_primary_failure
from lib.checks.result import FAIL, OK, WARN
from lib.errors import SetupError
from lib.faults import registry
from lib.history import FAIL as OP_FAIL
from lib.history import UNKNOWN as OP_UNKNOWN
from lib.history import History
from lib.phases.cluster_record import NO_FAILOVER, PROMOTION, SHARD_DOWN
from lib.suites import cache
from lib.suites import cluster as cluster_suite
from lib.suites.cli import describe
from lib.suites.cluster_faults import build_fault
from lib.suites.cluster_target import build_parser, run_config

from .cluster_history_builders import RecordedRun, pinned_key, writer_key
from .fake_cluster import NODES_TEXT, FakeCluster, FakeClusterClient, three_shards

LABELS = ("0-5460", "5461-10922", "10923-16383")


def args(*argv: str, suite: str = "cluster"):
    """The test description the suite builds from these options (lib/suites/cli.describe)."""
    parsed = build_parser(f"{suite}_test.py", "test", suite, []).parse_args(list(argv))
    return describe(parsed, suite, "cluster", cache.LOOPS if suite == "cache" else cluster_suite.LOOPS)


def cluster(text: str = NODES_TEXT):
    shards = three_shards(text)
    fake = FakeCluster(shards)
    return FakeClusterClient(fake), fake, shards


# ---- the faults, built from what the suite read (lib/faults/*.py via lib/suites/cluster_faults.py) -----------

@pytest.mark.parametrize("fault", ["pause", "partition", "replica-kill", "shard-loss"])
def test_the_cache_suite_refuses_faults_it_cannot_judge_in_one_line(fault):
    message = registry.applies(registry.fault_class(fault), "cluster", "cache")
    assert message.startswith(f"--fault {fault} does not apply to the cache suite: ") and "\n" not in message, message
    assert message.endswith(f"use python app/cluster_test.py --fault {fault}"), message


def test_the_cache_suite_keeps_graceful_coordinated_and_none_and_they_hand_over():
    client, _, shards = cluster()
    for fault in ("graceful", "coordinated"):
        assert registry.applies(registry.fault_class(fault), "cluster", "cache") is None, fault
        built, victim = build_fault(args("--fault", fault, suite="cache"), client, shards, History())
        assert built.hands_over and victim() is shards[0], fault
        assert built.description.startswith("CLUSTER FAILOVER on replica node-7003:7003"), built.description
    assert build_fault(args("--fault", "none", suite="cache"), client, shards, History()) == (None, None)


@pytest.mark.parametrize("fault", ["pause", "sigterm", "replica-kill", "shard-loss"])
def test_a_fault_that_needs_the_nodes_process_says_to_use_exec_or_manual_elsewhere(fault, monkeypatch):
    monkeypatch.setattr("lib.faults.nodes.docker_usable", lambda: False)
    client, _, shards = cluster()  # node-7000:7000 is served by no local stack here
    with pytest.raises(SetupError) as refused:
        build_fault(args("--fault", fault), client, shards, History())
    message = str(refused.value)
    assert message.startswith(f"--fault {fault} cannot reach the process of node-70"), message
    assert "--fault exec --kill-cmd CMD --restore-cmd CMD" in message and "--fault manual" in message, message


@pytest.mark.parametrize(("fault", "why"), [("pause", "has no replica to promote"),
                                            ("sigterm", "has no replica to promote"),
                                            ("coordinated", "has no replica to promote"),
                                            ("replica-kill", "has no replica to kill")])
def test_a_shard_without_a_replica_is_refused(fault, why):
    lonely = "\n".join(line for line in NODES_TEXT.splitlines() if " slave a0 " not in line) + "\n"
    client, _, shards = cluster(lonely)
    with pytest.raises(SetupError, match=f"--fault {fault}: shard 0-5460 {why}"):
        build_fault(args("--fault", fault), client, shards, History())


def test_exec_runs_the_users_commands_anywhere_and_puts_roles_back_only_on_the_harness_servers():
    client, _, shards = cluster()
    options = args("--fault", "exec", "--kill-cmd", "kubectl delete pod valkey-0", "--restore-cmd", "true")
    fault, victim = build_fault(options, client, shards, History())
    assert fault.description == "exec: kubectl delete pod valkey-0" and victim() is shards[0], fault.description
    assert fault.touches() == [], "the user's own commands: no ownership refusal"
    assert not fault.puts_back_roles("cluster", owned=False), "someone else's servers: their roles are theirs"
    assert fault.puts_back_roles("cluster", owned=True), "on the harness's servers the roles are put back"


def test_what_each_fault_changes_and_whose_roles_are_put_back(monkeypatch):
    monkeypatch.setattr("lib.faults.nodes.docker_usable", lambda: True)
    monkeypatch.setattr("lib.faults.nodes.container_for", lambda host, port: host)  # every node a container
    client, _, shards = cluster()
    built = {name: build_fault(args("--fault", name), client, shards, History())[0]
             for name in ("replica-kill", "shard-loss", "pause", "auto")}
    primary, replica = ("node-7000", 7000), ("node-7003", 7003)
    assert built["replica-kill"].touches() == [replica]
    assert built["shard-loss"].touches() == [replica, primary], "the replicas first, then the primary"
    assert built["pause"].touches() == [primary, replica]
    assert not built["replica-kill"].puts_back_roles("cluster", owned=True), "nothing was promoted"
    assert built["pause"].puts_back_roles("cluster", owned=True), "a pause's roles are put back always"
    assert not built["auto"].puts_back_roles("cluster", owned=True), "a kill on our own stack: roles as they end"
    assert built["auto"].puts_back_roles("cluster", owned=False), "a kill on servers not ours: put back"
    with patched_partition_tools(monkeypatch):
        cut = build_fault(args("--fault", "partition"), client, shards, History())[0]
    assert len(cut.touches()) == 6, "the cut changes every node's links"


def patched_partition_tools(monkeypatch):
    """A compose cut built without docker or iptables: the peers' containers have made-up addresses."""
    import contextlib

    monkeypatch.setattr("lib.faults.partition.require_partition_tools", lambda **_: None)
    monkeypatch.setattr("lib.faults.partition.docker_usable", lambda: True)
    monkeypatch.setattr("lib.faults.partition.container_for", lambda host, port: host)
    monkeypatch.setattr("lib.faults.partition.container_ips", lambda container: [f"172.18.0.{len(container)}"])
    return contextlib.nullcontext()


def test_run_config_sets_the_faults_own_settings_on_the_victim_and_min_replicas_everywhere(monkeypatch):
    monkeypatch.setattr("lib.faults.nodes.docker_usable", lambda: True)
    monkeypatch.setattr("lib.faults.nodes.container_for", lambda host, port: host)
    client, fake, shards = cluster()
    nodes = fake.nodes
    sigterm, _ = build_fault(args("--fault", "sigterm"), client, shards, History())
    changes = run_config(args("--fault", "sigterm"), client, nodes, shards, sigterm)
    assert [(c.nodes, c.settings) for c in changes] == [([("node-7000", 7000)], {"shutdown-on-sigterm": "failover"})]
    bounded = run_config(args("--fault", "pause", "--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"),
                         client, nodes, shards, None)
    assert len(bounded) == 1 and len(bounded[0].nodes) == 6, bounded
    assert bounded[0].settings == {"min-replicas-to-write": "1", "min-replicas-max-lag": "2"}


# ---- verdicts: pure functions of the recorded history (ClusterFailoverView.from_history) --------------------

@pytest.fixture
def facts(monkeypatch):
    """facts(name): what the fault's file says of itself, as the suite saves it in the test description
    (Fault.facts of the fault built for this cluster; every node a container here)."""
    monkeypatch.setattr("lib.faults.nodes.docker_usable", lambda: True)
    monkeypatch.setattr("lib.faults.nodes.container_for", lambda host, port: host)
    client, _, shards = cluster()
    return lambda name: build_fault(args("--fault", name), client, shards, History())[0].facts()


def judged(recorded: RecordedRun, facts: dict):
    """The verdict on the run as recorded; the same verdict on it as the JSON saves it (--recheck's input)."""
    result = check_primary_failure(recorded.run(facts), None)
    again = check_primary_failure(recorded.saved(facts), None)
    assert (again.status, again.detail) == (result.status, result.detail), "a saved run is judged the same"
    return result


def replica_kill_run(shards, facts: dict, *, lose=(), kept_slots: bool = True) -> RecordedRun:
    recorded = RecordedRun(shards)
    recorded.steady(LABELS)
    recorded.failover(facts, victim=shards[0], down=shards[0].replicas[0], down_seen_s=2.5, recovered_s=4.0,
                      primary_kept_slots=kept_slots)
    recorded.final_read(lose)
    return recorded


def test_replica_kill_is_ok_without_a_failover_or_a_loss_and_fails_on_a_loss(facts):
    shards = three_shards()
    replica_kill = facts("replica-kill")
    recorded = replica_kill_run(shards, replica_kill)
    assert recorded.run(replica_kill).expect == NO_FAILOVER, "the fault's facts say what it should cause"
    result = judged(recorded, replica_kill)
    assert result.status == OK, result.detail
    assert "no failover (node-7000:7000 still serves 0-5460)" in result.detail, result.detail
    assert result.metrics["replica_flagged_fail_s"] == 2.5 and result.metrics["lost"] == 0, result.metrics
    result = judged(replica_kill_run(shards, replica_kill, lose={writer_key(LABELS[0], 3)}), replica_kill)
    assert result.status == FAIL and "acknowledged writes were lost" in result.detail, result.detail
    result = judged(replica_kill_run(shards, replica_kill, kept_slots=False), replica_kill)
    assert result.status == FAIL and "the primary is no longer the primary of its slots" in result.detail, (
        result.detail)


def shard_loss_run(shards, facts: dict, coverage: str, writes, lose=()) -> RecordedRun:
    recorded = RecordedRun(shards)
    writes(recorded)
    recorded.failover(facts, victim=shards[0], down=shards[0].primary, down_seen_s=3.0, healed_s=3.5,
                      recovered_s=5.5, settings={"cluster-require-full-coverage": coverage})
    recorded.final_read(lose)
    return recorded


def partial_coverage_writes(recorded: RecordedRun) -> None:
    recorded.steady(LABELS[1:], until_s=6.0)
    recorded.write(LABELS[0], 0, -0.2, -0.19)
    recorded.write(LABELS[0], 1, 0.0, 0.3, OP_FAIL, "ConnectionError")
    recorded.write(LABELS[0], 2, 5.4, 5.5)


def test_shard_loss_with_partial_coverage_is_expected_and_the_others_keep_serving(facts):
    shards = three_shards()
    shard_loss = facts("shard-loss")
    recorded = shard_loss_run(shards, shard_loss, "no", partial_coverage_writes)
    assert recorded.run(shard_loss).expect == SHARD_DOWN
    result = judged(recorded, shard_loss)
    assert result.status == OK, result.detail
    assert "no promotion possible: the whole shard 0-5460 is down (expected)" in result.detail, result.detail
    assert "the other shards kept serving (longest pause 200 ms)" in result.detail, result.detail
    assert (result.metrics["recovered_after_heal_s"], result.metrics["affected_downtime_ms"]) == (2.0, 5690.0)

    lost = shard_loss_run(shards, shard_loss, "no", partial_coverage_writes,  # the shard's write before the fault
                          lose={writer_key(LABELS[0], 0)})
    result = judged(lost, shard_loss)
    assert result.status == WARN and "every copy of the shard was lost" in result.detail, result.detail
    assert result.metrics["lost_on_lost_shard"] == 1, result.metrics


def test_shard_loss_with_full_coverage_reports_when_the_healthy_shards_stopped(facts):
    def writes(recorded: RecordedRun) -> None:
        for label in LABELS[1:]:
            recorded.write(label, 0, 2.9, 3.1)
            recorded.write(label, 1, 3.2, 4.2, OP_FAIL, "ClusterDownError: The cluster is down")
            recorded.write(label, 2, 5.6, 5.7)
        recorded.write(LABELS[0], 0, 5.5, 5.52)

    shard_loss = facts("shard-loss")
    result = judged(shard_loss_run(three_shards(), shard_loss, "yes", writes), shard_loss)
    assert result.status == OK, result.detail
    assert result.metrics["healthy_shards_stopped_after_s"] == {"5461-10922": 3.1, "10923-16383": 3.1}
    assert result.metrics["healthy_shards_first_error_s"] == {"5461-10922": 4.2, "10923-16383": 4.2}
    assert "every other shard stopped taking writes at +3.10-3.10 s" in result.detail, result.detail


def failover_writes(recorded: RecordedRun) -> None:
    """The victim's writer: a timeout at the fault, NOREPLICAS at +3.0 s, acknowledged again at +3.31 s; the
    writer pinned to the old primary: a timeout at the fault, one write taken after the heal, then MOVED."""
    recorded.steady(LABELS[1:])
    recorded.write(LABELS[0], 0, -0.1, -0.09)
    recorded.write(LABELS[0], 1, 0.0, 0.5, OP_FAIL, "TimeoutError")
    recorded.write(LABELS[0], 2, 3.0, 3.02, OP_FAIL, "ResponseError: NOREPLICAS Not enough good replicas to write.")
    recorded.write(LABELS[0], 3, 3.3, 3.31)
    recorded.pinned_write(0, -0.2, -0.19)
    recorded.pinned_write(1, 0.0, 0.5, OP_UNKNOWN, "TimeoutError")
    recorded.pinned_write(2, 2.95, 2.96)
    recorded.pinned_write(3, 3.0, 3.01, OP_FAIL, "MovedError")


def pause_run(shards, facts: dict, lose=()) -> RecordedRun:
    recorded = RecordedRun(shards)
    failover_writes(recorded)
    recorded.failover(facts, victim=shards[0], promoted=shards[0].replicas[0], promoted_s=2.9, healed_s=2.9,
                      demoted_s=2.97, recovered_s=3.31, pinned=("node-7000", 7000),
                      settings={"min-replicas-to-write": "1"})
    recorded.final_read(lose)
    return recorded


def test_a_pause_reports_the_pinned_writer_noreplicas_and_fails_on_what_the_old_primary_took_after_resuming(facts):
    shards = three_shards()
    pause = facts("pause")
    result = judged(pause_run(shards, pause), pause)
    metrics = result.metrics
    assert result.status == OK, result.detail
    assert (metrics["old_primary_acked_after_heal"], metrics["pinned_first_error_after_s"]) == (1, 0.5), metrics
    assert (metrics["first_noreplicas_after_s"], metrics["old_primary_demoted_after_heal_ms"]) == (3.02, 70.0)
    assert metrics["write_pause_ms"] == 3400.0, "last ok -0.09 s, next ok +3.31 s"

    result = judged(pause_run(shards, pause, lose={pinned_key(2)}), pause)
    assert result.status == FAIL, result.detail
    assert (result.metrics["old_primary_acked_after_heal_lost"], result.metrics["lost_acked_at_s"]) == (1, [2.96])


def test_a_loss_fails_a_coordinated_failover_and_a_kill_alike(facts):
    shards = three_shards()

    def lost_run(fault_facts: dict) -> RecordedRun:
        recorded = RecordedRun(shards)
        failover_writes(recorded)
        recorded.failover(fault_facts, victim=shards[0], promoted=shards[0].replicas[0], promoted_s=2.9,
                          recovered_s=3.31)
        recorded.final_read({writer_key(LABELS[0], 3)})  # the victim shard's write acknowledged at +3.31 s
        return recorded

    coordinated = facts("coordinated")
    assert lost_run(coordinated).run(coordinated).expect == PROMOTION, "the fault's facts say what it should cause"
    result = judged(lost_run(coordinated), coordinated)
    assert result.status == FAIL and "any acknowledged write lost is a FAIL" in result.detail, result.detail
    kill = facts("auto")
    killed = judged(lost_run(kill), kill)
    assert killed.status == FAIL and "write_pause_ms" not in killed.metrics, killed.detail
    assert "asynchronous replication" in killed.detail, "a kill's loss is explained, and still a FAIL"
