"""The cluster harness on a real local cluster: formation, placement, MOVED, ASK, a real SIGKILL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from conftest import assert_recheck_agrees, checks_in, checks_of, outage_in_saved_ops, run_script
from lib.cluster_client import ClusterClient
from lib.launcher import process
from lib.launcher.local_stack import LocalStack
from lib.topology.cluster_topology import shards_of
from test_readme import checked_block_outputs, run_block_checked

from .conftest import run_init

pytestmark = pytest.mark.integration


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scenarios(path) -> dict[str, dict]:
    report = json.loads(path.read_text())
    assert report["suite"] == "cluster" and report["target"]["shards"] == 3, report["target"]
    return checks_in(report)


def node_client(stack, name: str) -> redis.Redis:
    return redis.Redis(port=stack.service(name).port, decode_responses=True)


def test_init_run_twice_changes_nothing_the_second_time(cluster_stack):
    first_log = Path(cluster_stack.service("cluster-init").log).read_text()
    assert "11 change(s)" in first_log, first_log
    proc = run_init(cluster_stack)
    assert proc.returncode == 0, proc.stderr
    assert "0 change(s) (it was already formed)" in proc.stdout, proc.stdout
    for name in [n for n, s in cluster_stack.services.items() if s.kind == "server"]:
        client = node_client(cluster_stack, name)
        info = client.cluster("INFO")
        assert (info["cluster_state"], int(info["cluster_known_nodes"]), int(info["cluster_slots_assigned"])) == (
            "ok", 6, 16384), (name, info)
        assert "handshake" not in client.execute_command("CLUSTER NODES").__repr__(), name
        client.close()


def test_placement_moved_ask_and_distribution(cluster_stack, tmp_path):
    out = tmp_path / "cluster.json"
    proc = run_script("cluster_test.py", "--fault", "none", "--json", str(out), state_dir=cluster_stack.state_dir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = scenarios(out)
    for name in ("connect", "placement", "moved", "ask", "distribution"):
        assert result[name]["status"] == "OK", (name, result[name]["detail"])
    assert result["primary_failure"]["status"] == "WARN" and "skipped" in result["primary_failure"]["detail"]

    assert result["placement"]["metrics"]["client_slot_mismatches"] == 0
    moved = result["moved"]["metrics"]
    assert moved["plain_client_reply"].startswith(f"MOVED {moved['slot']} ")
    assert moved["cluster_client_redirects"] >= 1
    ask = result["ask"]["metrics"]
    assert ask["plain_client_reply"].startswith(f"ASK {ask['slot']} ") and ask["ask_redirects_during"] >= 1
    assert result["distribution"]["metrics"]["counted"] == result["distribution"]["metrics"]["written"]

    # The migrated slot is back on its owner, nothing is left migrating, and no key of the run is left.
    client = ClusterClient([("127.0.0.1", cluster_stack.service("node-7000").port)])
    nodes = client.nodes()
    owner = next(n for n in nodes if any(lo <= ask["slot"] <= hi for lo, hi in n.slots))
    assert owner.announced[1] == int(ask["from"].rsplit(":", 1)[1])
    assert not any(n.migrating for n in nodes)
    for shard in shards_of(nodes):
        primary = client.node(client.reachable(shard.primary))
        assert list(primary.scan_iter(match="vhc:cluster:*")) == [], shard.label
        primary.close()


def metrics_of(path: Path, scenario: str) -> dict:
    return checks_of(path)[scenario]["metrics"]


def assert_timeline_holds_the_failure(out: Path, png: Path) -> None:
    """--plot wrote a PNG, and the saved timeline holds the failure flag and the promotion, in an order the
    saved ops (read here, a second computation) agree with."""
    assert png.read_bytes()[:8] == PNG_MAGIC
    failure = metrics_of(out, "primary_failure")
    events: dict[str, float] = {}
    for event in failure["timeline"]["events"]:  # in time order: the first sighting of each
        events.setdefault(event["event"], event["t_s"])
    assert events["fault"] == 0.0
    # The first failure flag our 10-20 ms poll of the replicas sees: usually fail? (PFAIL), but in a CI
    # rehearsal the poll saw only fail (the replica learnt FAIL from the primaries, or PFAIL was brief).
    flagged = events.get("node flagged pfail", events.get("node flagged fail"))
    assert flagged is not None, f"no failure flag of the killed primary was recorded: {events}"
    assert 0 < flagged <= events["promoted"] <= 15, events  # cluster-node-timeout 2000
    saved = checks_of(out)
    victim_ops = saved.ops(group=failure["shard"])
    last_ok, first_ok = outage_in_saved_ops(victim_ops)
    assert last_ok <= flagged, "the shard stopped taking writes before anyone flagged it"
    # No write reaches the shard before a replica owns its slots; the promotion is seen by a 10-20 ms poll.
    assert first_ok >= events["promoted"] - 0.1, f"the shard wrote again at {first_ok:+.3f} s, promoted " \
                                                 f"{events['promoted']:+.3f} s"
    assert failure["ours_after_promotion_ms"] == pytest.approx((first_ok - events["promoted"]) * 1000, abs=3), \
        f"first ok write on {failure['shard']} at {first_ok:+.3f} s in the saved ops"
    assert failure["plain_after_promotion_ms"] is not None, failure
    groups = {op.get("group") for op in saved.ops()}
    assert len(groups) == 3, groups  # one writer per shard


README_CLUSTER_BLOCK = "cluster-cluster-test-py-without-docker"


def test_the_readmes_cluster_block_promotes_the_replica_without_losing_acked_writes(tmp_path):
    """The README's cluster block as written (marked `checked`). Before its cluster_test.py line: who is the
    primary of slot 0 and its replica. Right after it, on the stack it brought up: the run, its --plot PNG and
    saved timeline, and the servers themselves. Then the block's status / down lines."""
    commands, out, png = checked_block_outputs(README_CLUSTER_BLOCK, "app/cluster_test.py")
    root = tmp_path / "stacks"
    seen: dict[str, int] = {}

    def before() -> None:
        stack = LocalStack.load(root / "cluster")
        shard0 = shards_of(ClusterClient([("127.0.0.1", stack.service("node-7001").port)]).nodes())[0]
        seen.update(victim_port=shard0.primary.port, replica_port=shard0.replicas[0].port,
                    victim_pid=stack.service(stack.service_at(shard0.primary.port)).pid)

    def check(stdout: str) -> None:
        check_primary_kill_run(LocalStack.load(root / "cluster"), out, png, **seen)

    run_block_checked(commands, root, "app/cluster_test.py", before=before, check=check)


def check_primary_kill_run(cluster_stack: LocalStack, out: Path, png: Path, *, victim_port: int, replica_port: int,
                           victim_pid: int) -> None:
    assert_timeline_holds_the_failure(out, png)
    assert_recheck_agrees("cluster_test.py", out)
    result = scenarios(out)
    failure = result["primary_failure"]
    assert failure["status"] == "OK", failure["detail"]
    metrics = failure["metrics"]
    assert metrics["fault"].startswith("SIGKILL node-"), metrics["fault"]
    assert metrics["promoted"].endswith(f":{replica_port}")
    assert 1.0 <= metrics["promoted_after_s"] <= 15, metrics["promoted_after_s"]
    assert metrics["affected_downtime_ms"] >= 1000, "a SIGKILLed primary cannot be replaced in under a second"
    assert all(gap < 1000 for gap in metrics["other_shards_longest_gap_ms"].values()), metrics
    assert metrics["acked"] > 300 and metrics["lost"] == 0, metrics

    assert result["rejoin"]["status"] == "OK", result["rejoin"]["detail"]
    assert not process.is_alive(victim_pid), "the original process really died; a new one replaced it"
    old = node_client(cluster_stack, cluster_stack.service_at(victim_port))
    info = old.info("replication")
    assert (info["role"], info["master_port"], info["master_link_status"]) == ("slave", replica_port, "up")
    old.close()
