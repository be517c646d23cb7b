"""--fault replica-pause: the fault added to prove the contract (its file, one registry line, these tests).

Unit: what its file says of itself and how it is built. Integration: one run on each topology's real local stack:
no failover, nothing lost, the paused replica resumed and replicating again, the stack left as it was.
"""

from __future__ import annotations

import pytest

from conftest import checks_of, run_script, running_stack
from lib.errors import SetupError
from lib.faults import registry
from lib.faults.fault import NO_FAILOVER, FaultContext, Node, make_fault
from lib.faults.nodes import DockerNode
from lib.launcher.local_stack import LocalStack

BUS_PORT_OFFSET = 10000


def context(topology: str, replicas: list[Node]) -> FaultContext:
    primary = Node(("node-7000", 7000), ("127.0.0.1", 7000))
    return FaultContext(topology, topology, "shard 0-5460", primary, replicas, options={"fault": "replica-pause"})


def test_its_file_says_it_pauses_a_replica_expects_no_failover_and_applies_to_both_topologies():
    cls = registry.fault_class("replica-pause")
    assert (cls.expects, cls.target, cls.topologies) == (NO_FAILOVER, "a replica of the primary",
                                                         ("sentinel", "cluster"))
    assert registry.applies(cls, "sentinel", "ha") is None and registry.applies(cls, "cluster", "cluster") is None
    assert registry.applies(cls, "cluster", "cache").startswith("--fault replica-pause does not apply to the cache")
    assert "replica-pause: SIGSTOP (docker pause) a replica" in "; ".join(registry.help_lines("cluster", "cluster"))


def test_it_pauses_and_resumes_the_replica_it_was_built_for(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr("lib.faults.nodes.docker", lambda *args: calls.append(args) or "false")
    monkeypatch.setattr("lib.faults.fault.node_control", lambda *a, **k: DockerNode("node-7003"))
    replica = Node(("node-7003", 7003), ("127.0.0.1", 7003))
    fault = make_fault(registry.fault_class("replica-pause"), context("cluster", [replica]))
    assert fault.description == "docker pause replica node-7003 (resumed with docker unpause after the watch)"
    assert (fault.stops, fault.touches()) == (replica, [("127.0.0.1", 7003)])
    fault.inject()
    assert fault.heal(5) is True
    assert calls[0] == ("pause", "node-7003") and calls[1][0] == "inspect", calls


def test_a_primary_without_a_replica_is_refused_in_one_line():
    with pytest.raises(SetupError, match="--fault replica-pause: shard 0-5460 has no replica to pause"):
        make_fault(registry.fault_class("replica-pause"), context("cluster", []))


def ran_clean(script: str, stack: LocalStack, tmp_path) -> dict:
    out = tmp_path / "run.json"
    proc = run_script(script, "--fault", "replica-pause", "--json", str(out), state_dir=stack.state_dir)
    result = checks_of(out) if out.exists() else {}
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return result


@pytest.mark.integration
def test_a_paused_sentinel_replica_brings_no_failover_and_is_resumed(tmp_path):
    with running_stack("ha", tmp_path / "ha") as stack:
        result = ran_clean("ha_test.py", stack, tmp_path)
        kill = result["master_kill"]
        assert kill["status"] == "OK" and "no failover: only a replica was paused, as expected" in kill["detail"]
        assert kill["metrics"]["fault"].startswith("SIGSTOP replica valkey-replica"), kill["metrics"]["fault"]
        assert result["consistency"]["metrics"]["acked_lost"] == 0, result["consistency"]["detail"]
        assert result["replica_sync"]["metrics"]["replica_rejoined"] is True, result["replica_sync"]["detail"]


@pytest.mark.integration
def test_a_paused_cluster_replica_is_flagged_fail_brings_no_failover_and_is_resumed(tmp_path):
    with running_stack("cluster", tmp_path / "cluster", bus_offset=BUS_PORT_OFFSET) as stack:
        result = ran_clean("cluster_test.py", stack, tmp_path)
        failure = result["primary_failure"]
        assert failure["status"] == "OK", failure["detail"]
        metrics = failure["metrics"]
        assert metrics["promoted"] is None and metrics["primary_kept_slots"] is True, metrics
        assert metrics["replica_flagged_fail_s"] >= 1.0 and metrics["lost"] == 0, metrics
        assert result["rejoin"]["metrics"]["replica_rejoined"] is True, result["rejoin"]["detail"]
