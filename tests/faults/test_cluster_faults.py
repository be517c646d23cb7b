"""cluster_test.py's fault matrix on a real local cluster: each fault once, its outcome class, and the cluster as it
was afterwards (every node running, same roles, same config, cluster_state ok, no key and no iptables rule left).

One cluster for the module: every test leaves it as it found it, which is what the tests assert.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from conftest import checks_in, run_script, running_stack
from lib.launcher import process
from lib.launcher.local_stack import LocalStack
from lib.topology.cluster_topology import read_cluster_nodes, shards_of
from lib.util import REPO_ROOT
from lib.waits import wait_until

pytestmark = pytest.mark.integration

BUS_PORT_OFFSET = 10000  # a node's bus port is its port + 10000 (docker-compose.cluster.yml)
RUN_SETTINGS = ("shutdown-on-sigterm", "min-replicas-to-write", "min-replicas-max-lag",
                "cluster-require-full-coverage")


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory):
    with running_stack("cluster", tmp_path_factory.mktemp("faults") / "cluster", bus_offset=BUS_PORT_OFFSET) as stack:
        yield stack


def servers(stack: LocalStack) -> list[str]:
    return [name for name, svc in stack.services.items() if svc.kind == "server"]


def node(stack: LocalStack, name: str) -> redis.Redis:
    return redis.Redis(port=stack.service(name).port, decode_responses=True, socket_timeout=5)


def layout(stack: LocalStack) -> dict[str, tuple]:
    """Each node's role, its primary's port, and the settings a fault may change for a run."""
    seen = {}
    for name in servers(stack):
        with node(stack, name) as client:
            info = client.info("replication")
            settings = tuple(client.config_get(setting)[setting] for setting in RUN_SETTINGS)
            seen[name] = (info["role"], info.get("master_port"), settings)
    return seen


def victim_shard(stack: LocalStack) -> tuple[str, str]:
    """(primary, replica) service names of the shard holding slot 0: the nodes every fault hits."""
    with node(stack, servers(stack)[0]) as client:
        shard = next(s for s in shards_of(read_cluster_nodes(client)) if s.owns(0))
    return stack.service_at(shard.primary.port), stack.service_at(shard.replicas[0].port)


def assert_as_before(stack: LocalStack, before: dict[str, tuple]) -> None:
    """Every server runs (not stopped), roles and settings are back, cluster_state ok, no key of a run left."""
    now = LocalStack.load(stack.state_dir)
    for name in servers(stack):
        pid = now.service(name).pid
        assert name in now.running(), f"{name} is not running after the run"
        assert Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "T", f"{name} is still stopped"

    def all_ok() -> tuple[bool, str]:
        """cluster_state ok, and every slot served by an owner no one flags, in every node's own view: with
        cluster-require-full-coverage no, a node says ok while it still flags a restarted primary failed (the
        next test, with coverage yes, then met CLUSTERDOWN before its fault)."""
        states = {}
        for name in servers(stack):
            with node(stack, name) as client:
                info = client.cluster("INFO")
                states[name] = f"{info['cluster_state']} slots_ok={info['cluster_slots_ok']}"
        return set(states.values()) == {"ok slots_ok=16384"}, str(states)

    wait_until(all_ok, timeout=30, what="cluster_state:ok and all 16384 slots ok on every node after the run")
    assert layout(stack) == before, "roles or settings differ from before the run"
    for name in servers(stack):
        with node(stack, name) as client:
            if client.info("replication")["role"] == "master":
                assert list(client.scan_iter(match="vhc:cluster:*")) == [], f"keys of a run left on {name}"


def forget_resurrected_keys(stack: LocalStack) -> set[str]:
    """Delete the keys of earlier runs that a restarted shard brought back from its last full sync's RDB (its
    nodes keep no other copy): the cluster's behaviour, not a key this run left; returns the keys deleted."""
    deleted: set[str] = set()
    for name in servers(stack):
        with node(stack, name) as client:
            if client.info("replication")["role"] == "master":
                keys = set(client.scan_iter(match="vhc:cluster:*"))
                deleted |= {key for key in keys if client.delete(key)}
    return deleted


def run_fault(stack: LocalStack, tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "cluster.json"
    proc = run_script("cluster_test.py", "--json", str(out), *argv, state_dir=stack.state_dir)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    return proc, checks_in(report)


def judged(result: dict, status: str, proc: subprocess.CompletedProcess) -> dict:
    failure = result["primary_failure"]
    assert failure["status"] == status, failure["detail"] + "\n" + proc.stderr[-2000:]
    assert result["rejoin"]["status"] == "OK", result["rejoin"]["detail"]
    return failure["metrics"]


def test_coordinated_failover_loses_nothing_and_measures_the_write_pause(fault_cluster, tmp_path):
    before = layout(fault_cluster)
    proc, result = run_fault(fault_cluster, tmp_path, "--fault", "coordinated")
    metrics = judged(result, "OK", proc)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert metrics["fault"].startswith("CLUSTER FAILOVER on replica ") and "coordinated" in metrics["fault"]
    assert metrics["acked"] > 100 and metrics["lost"] == 0, metrics
    assert 0 < metrics["write_pause_ms"] < 1000, "CLUSTER FAILOVER pauses writes for a moment, not a detection"
    assert result["rejoin"]["metrics"]["roles_put_back"] is True
    assert_as_before(fault_cluster, before)


def test_pause_is_healed_after_the_promotion_and_the_old_primarys_writes_are_counted(fault_cluster, tmp_path):
    before = layout(fault_cluster)
    proc, result = run_fault(fault_cluster, tmp_path, "--fault", "pause")
    failure = result["primary_failure"]
    metrics = failure["metrics"]
    assert failure["status"] in ("OK", "FAIL"), failure["detail"]  # FAIL: the resumed primary's writes were lost
    assert metrics["fault"].startswith("SIGSTOP node-") and metrics["promoted_after_s"] >= 2.0, metrics
    assert metrics["healed_after_s"] >= metrics["promoted_after_s"] - 0.1, "healed once the promotion was seen"
    assert metrics["old_primary_demoted_after_heal_ms"] is not None, metrics
    assert metrics["old_primary_acked_after_heal"] >= 0 and "old_primary_acked_after_heal_lost" in metrics, metrics
    assert (failure["status"] == "FAIL") == (metrics["lost"] > 0), failure["detail"]
    events = {e["event"] for e in result.events}
    assert {"fault", "promoted", "healed", "old primary demoted"} <= events, events
    assert result["rejoin"]["status"] == "OK", result["rejoin"]["detail"]
    assert_as_before(fault_cluster, before)


def test_sigterm_hands_the_slots_over_before_the_server_exits(fault_cluster, tmp_path):
    before = layout(fault_cluster)
    pid = LocalStack.load(fault_cluster.state_dir).service(victim_shard(fault_cluster)[0]).pid
    proc, result = run_fault(fault_cluster, tmp_path, "--fault", "sigterm")
    metrics = judged(result, "OK", proc)
    assert metrics["run_settings"]["shutdown-on-sigterm"] == "failover", metrics["run_settings"]
    assert metrics["server_log_handover"] is True, metrics["server_log"]
    assert metrics["promoted_after_s"] < 2.0, "handed over, not detected: a SIGKILL takes cluster-node-timeout"
    assert metrics["lost"] == 0, metrics
    assert result["rejoin"]["metrics"]["config_put_back"] is True
    assert not process.is_alive(pid), "the first process really exited"
    assert_as_before(fault_cluster, before)


def test_exec_runs_the_users_kill_and_restore_commands(fault_cluster, tmp_path):
    before = layout(fault_cluster)
    primary, _ = victim_shard(fault_cluster)
    stack_py = f"{sys.executable} {REPO_ROOT / 'app' / 'stack.py'}"
    proc, result = run_fault(fault_cluster, tmp_path, "--fault", "exec", "--kill-cmd", f"{stack_py} kill {primary}",
                             "--restore-cmd", f"{stack_py} start {primary}")
    metrics = judged(result, "OK", proc)
    assert metrics["fault"] == f"exec: {stack_py} kill {primary}", metrics["fault"]
    assert metrics["affected_downtime_ms"] >= 1000 and metrics["lost"] == 0, metrics
    assert result["rejoin"]["metrics"]["roles_put_back"] is True
    assert_as_before(fault_cluster, before)


def test_replica_kill_causes_no_failover_and_no_loss(fault_cluster, tmp_path):
    before = layout(fault_cluster)
    _, replica = victim_shard(fault_cluster)
    proc, result = run_fault(fault_cluster, tmp_path, "--fault", "replica-kill")
    metrics = judged(result, "OK", proc)
    assert metrics["killed_replica"].endswith(f":{fault_cluster.service(replica).port}"), metrics
    assert metrics["promoted"] is None and metrics["primary_kept_slots"] is True, metrics
    assert max(metrics["longest_gap_ms"].values()) < 1000 and metrics["lost"] == 0, metrics
    assert result["rejoin"]["metrics"]["replica_rejoined"] is True
    assert_as_before(fault_cluster, before)


@pytest.mark.parametrize("coverage", ["no", "yes"])
def test_shard_loss_is_expected_and_measured_with_and_without_full_coverage(fault_cluster, tmp_path, coverage):
    before = layout(fault_cluster)
    clients = {name: node(fault_cluster, name) for name in servers(fault_cluster)}
    old = {name: c.config_get("cluster-require-full-coverage")["cluster-require-full-coverage"]
           for name, c in clients.items()}
    try:
        for client in clients.values():
            client.config_set("cluster-require-full-coverage", coverage)
        proc, result = run_fault(fault_cluster, tmp_path, "--fault", "shard-loss")
    finally:
        for name in servers(fault_cluster):  # the killed nodes came back with their config file's value
            with node(fault_cluster, name) as client:
                client.config_set("cluster-require-full-coverage", old[name])
            clients[name].close()
        resurrected = forget_resurrected_keys(fault_cluster)  # whatever the assertions below say: the next
        # test on this cluster must not meet keys that this shard's restart brought back
    failure = result["primary_failure"]
    metrics = failure["metrics"]
    assert failure["status"] in ("OK", "WARN"), failure["detail"]  # WARN: the shard's own data went with it
    assert "no promotion possible: the whole shard" in failure["detail"], failure["detail"]
    assert metrics["full_coverage"] == coverage and metrics["promoted"] is None, metrics
    assert metrics["recovered_after_heal_s"] is not None and metrics["lost"] == metrics["lost_on_lost_shard"]
    stopped = metrics["healthy_shards_stopped_after_s"]
    if coverage == "no":
        assert max(metrics["other_shards_longest_gap_ms"].values()) < 1000, metrics
        assert set(stopped.values()) == {None}, "the other shards never refused a write"
    else:
        assert None not in stopped.values(), "every shard stops when the cluster requires full coverage"
        assert min(stopped.values()) >= metrics["node_flagged_fail_s"] - 0.5, metrics
    assert result["rejoin"]["status"] == "OK", result["rejoin"]["detail"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    run_keys = [op["key"] for op in result.ops(group=metrics["shard"]) if "key" in op]
    assert run_keys and not set(run_keys) & resurrected, "the run's own keys were cleaned up by the run"
    assert_as_before(fault_cluster, before)


def test_min_replicas_during_a_pause_reports_noreplicas_and_puts_the_setting_back(fault_cluster, tmp_path):
    before = layout(fault_cluster)
    proc, result = run_fault(fault_cluster, tmp_path, "--fault", "pause", "--min-replicas-to-write", "1",
                             "--min-replicas-max-lag", "1")
    metrics = result["primary_failure"]["metrics"]
    assert metrics["run_settings"]["min-replicas-to-write"] == "1", metrics["run_settings"]
    # NOREPLICAS comes only if a write reaches the promoted primary before the resumed old one replicates from
    # it (16-71 ms after the heal): seen in every benchmark run, missed once in a CI rehearsal. When it comes,
    # it is the promoted primary's, never the paused one's.
    first = metrics["first_noreplicas_after_s"]
    assert first is None or first >= metrics["promoted_after_s"] - 0.1, metrics
    assert "lost_acked_at_s" in metrics, metrics
    assert result["rejoin"]["status"] == "OK" and result["rejoin"]["metrics"]["config_put_back"] is True
    assert_as_before(fault_cluster, before)


@pytest.mark.usefixtures("partition_tools")
def test_partition_cuts_the_primary_off_and_reports_when_its_side_stopped(fault_cluster, tmp_path):
    from lib.faults import partition

    before = layout(fault_cluster)
    ports = [fault_cluster.service(name).port for name in servers(fault_cluster)]
    proc, result = run_fault(fault_cluster, tmp_path, "--fault", "partition")
    failure = result["primary_failure"]
    metrics = failure["metrics"]
    assert metrics["fault"].startswith("partition: "), metrics["fault"]
    assert metrics["minority_stopped_writes_after_s"] is not None, "the minority side refuses writes after the cut"
    assert 1.0 <= metrics["minority_stopped_writes_after_s"] <= 10, metrics
    assert metrics["old_primary_acked_during_fault"] > 0, "the cut primary took writes until it knew"
    assert failure["status"] == ("FAIL" if metrics["lost"] else "OK"), failure["detail"]
    assert result["rejoin"]["status"] == "OK", result["rejoin"]["detail"]
    assert partition.leftover_rules(ports) == [], "no iptables rule is left"
    assert_as_before(fault_cluster, before)


def test_ctrl_c_during_a_pause_resumes_the_primary_and_puts_the_config_back(fault_cluster, tmp_path):
    before = layout(fault_cluster)
    primary, _ = victim_shard(fault_cluster)
    env = dict(os.environ, COLUMNS="160", PYTHONUNBUFFERED="1", VHC_STACK_STATE=str(fault_cluster.state_dir))
    run = subprocess.Popen([sys.executable, "app/cluster_test.py", "--fault", "pause", "--min-replicas-to-write", "1"],
                           cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    try:
        for line in run.stdout:  # the suite says when it injects the fault
            if "fault: SIGSTOP" in line:
                break
        pid = LocalStack.load(fault_cluster.state_dir).service(primary).pid  # restarted by the tests before
        wait_until(lambda: (Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "T", "running"),
                   timeout=10, what=f"{primary} to be stopped")
        run.send_signal(signal.SIGINT)  # before the promotion: cluster-node-timeout is 2 s
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "put back min-replicas-to-write on 6 node(s)" in stdout, stdout[-2000:] + stderr[-2000:]
    assert_as_before(fault_cluster, before)
