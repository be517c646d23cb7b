"""Issue 15, cache side, on a real local cluster: a store that clears keys of a slot being imported, a suite
that refuses to touch servers it did not start, checks what it can before the first write, and undoes a
graceful failover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.crc import key_slot

from conftest import checks_of, run_script  # tests/conftest.py
from lib.cluster_client import ClusterClient
from lib.phases.cluster_migration import SlotMigration, put_slot_back
from lib.topology.cluster_topology import shards_of
from lib.workload.cache_store import storage_key

pytestmark = pytest.mark.integration

WRITE_COMMANDS = ("set", "mset", "unlink", "del", "cluster|failover")


def writes_seen(stack) -> dict[str, int]:
    """Calls of write commands on every node (INFO commandstats): unchanged means nothing was written."""
    counts = {}
    for host, port in stack.endpoints("server"):
        with redis.Redis(host=host, port=port, decode_responses=True) as node:
            stats = node.info("commandstats")
        counts.update({f"{port} {c}": stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in WRITE_COMMANDS})
    return counts


def test_clear_deletes_entries_on_a_primary_that_is_importing_their_slot(cluster_stack, cluster_store):
    later = datetime.now(UTC) + timedelta(minutes=1)
    with ClusterClient(cluster_stack.endpoints("server")) as client:
        shards = shards_of(client.nodes())
        key = next(k for k in range(10_000) if shards[0].owns(key_slot(storage_key(cluster_store.prefix, k).encode())))
        slot = key_slot(storage_key(cluster_store.prefix, key).encode())
        cluster_store.set(key, b"page", later)
        migration = SlotMigration(client, slot, shards[0].primary, shards[1].primary)
        try:
            migration.begin()
            migration.move_keys([storage_key(cluster_store.prefix, key)])  # the importing node answers MOVED to UNLINK
            deleted = cluster_store.clear()
            counts = cluster_store.shard_counts()
        finally:
            put_slot_back(client, slot, shards[0].primary, shards[1].primary, [s.primary for s in shards])
    assert deleted == 1 and sum(counts.values()) == 0, (deleted, counts)


def test_a_fault_on_a_cluster_the_harness_did_not_start_is_refused_before_anything_is_written(cluster_stack,
                                                                                              tmp_path):
    port = cluster_stack.endpoints("server")[0][1]
    env = {"VHC_STACK_ROOT": str(tmp_path / "no-stacks"), "VHC_STACK_STATE": ""}  # nothing records this cluster
    before = writes_seen(cluster_stack)
    proc = run_script("cache_test.py", "--node", f"127.0.0.1:{port}", "--fault", "graceful", env=env)
    assert proc.returncode == 2 and "refusing to CLUSTER FAILOVER" in proc.stderr, proc.stderr
    assert "--allow-destructive" in proc.stderr and proc.stdout == "", proc.stdout
    assert writes_seen(cluster_stack) == before, "refused before the first write"


@pytest.mark.parametrize(("args", "expected"), [
    (["--json", "/proc/no/cache.json"], "--json /proc/no/cache.json"),
    (["--host-map", "127.0.0.1=192.0.2.1"], "--host-map 127.0.0.1=HOST"),
    (["--fault", "docker"], "--fault docker"),
])
def test_what_cannot_be_done_is_one_line_and_exit_2_before_the_first_write(cluster_stack, args, expected):
    before = writes_seen(cluster_stack)
    proc = run_script("cache_test.py", *args, state_dir=cluster_stack.state_dir)
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert writes_seen(cluster_stack) == before, "nothing was written before the refusal"


def test_a_graceful_failover_is_undone_after_the_http_run(cluster_stack, tmp_path):
    with ClusterClient(cluster_stack.endpoints("server")) as client:
        before = {s.label: s.primary.node_id for s in client.shards()}
    out = tmp_path / "cache.json"
    proc = run_script("cache_test.py", "--fault", "graceful", "--json", str(out), state_dir=cluster_stack.state_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = checks_of(out)
    assert result["http_failover"]["status"] == "OK", result["http_failover"]["detail"]
    assert result["rejoin"]["status"] == "OK" and "roles put back" in result["rejoin"]["detail"], result["rejoin"]
    with ClusterClient(cluster_stack.endpoints("server")) as client:
        assert {s.label: s.primary.node_id for s in client.shards()} == before, "the primaries it started with"
