"""One measured shard failover: a writer per shard running around one fault on one primary.

A writer per shard (not one for all) so that a shard waiting on the dead primary does not delay
the writes to the others: the "other shards kept serving" number then measures the cluster, not
our single thread. The run only records; lib/checks/checker.py gives the verdicts afterwards.

What the run waits for depends on what the fault should cause (`expect`, lib/phases/cluster_outcomes.py):
a promotion (kill, pause, SIGTERM, CLUSTER FAILOVER, partition), nothing at all (a replica killed), or a
shard without any node (shard loss: nothing can be promoted). A fault that heals in the run (pause,
partition, shard loss) is healed as soon as that answer is seen, and a writer pinned to the old primary
(a plain client, no redirects followed) shows what the old primary acknowledged meanwhile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from redis.cluster import RedisCluster

from lib.clients.probe import PlainClientProbe
from lib.cluster_client import ClusterClient
from lib.description import Loop, TestDescription
from lib.faults.fault import Fault, heal_fault, inject_recorded
from lib.ha_client import AddressRemap
from lib.history import HARNESS, Attempts, History
from lib.phases.client_comparison import ClientComparison
from lib.phases.cluster_outcomes import (
    HEAL_TIMEOUT_S,
    after_promotion,
    after_replica_loss,
    after_shard_loss,
    wait_ok_per_shard,
    wait_pinned,
)
from lib.phases.cluster_record import (
    DOWN_NODE,
    GAVE_UP,
    NO_FAILOVER,
    PINNED_GROUP,
    PROMOTED_NODE,
    PROMOTION,
    SETTINGS,
    SHARD_DOWN,
    VICTIM,
    ClusterFailoverView,
    record_layout,
    record_node,
    record_pinned,
)
from lib.topology.cluster_topology import Address, Shard, key_in_shard
from lib.waits import WaitTimeout
from lib.workload.scheduler import Scheduler
from lib.workload.workload import ContinuousWriter

WARMUP_OPS = 100  # acknowledged writes per shard before the fault, so there is something to lose
COMPARED_WARMUP_OPS = 50  # acknowledged writes per shard of each compared client library before the fault
PINNED_WARMUP_OPS = 20  # acknowledged writes of the pinned writer before the fault


def measure_cluster_failover(test: TestDescription, client: ClusterClient, fault: Fault, shards: list[Shard],
                         victim: Callable[[], Shard], namespace: str, history: History, *,
                         progress: Callable[[str], None] | None = None, settings: dict[str, str] | None = None,
                         compared: ClientComparison | None = None) -> ClusterFailoverView:
    """Write to every shard, inject the fault, wait for what it should cause and for writes to the shard again.

    progress is told (one line) when the fault is about to be injected: library code does not print. The loops are
    the test description's (lib/workload/scheduler.py): a writer per shard, the stock RedisCluster yardstick on the
    victim's shard, a writer pinned to the victim's primary when the fault pins one, the compared libraries.

    victim() names the shard that lost its primary; it is asked after the fault, because with a manual fault a
    person chooses which primary to kill. Every loop is stopped whatever happens, before the first crash among them
    is raised. compared: after our recovery the run waits, up to their own deadline, for each to write again.
    Everything the run learns goes into history; the checks judge ClusterFailoverView.from_history of it.
    """
    run = ClusterFailoverView(fault.description, shards, history, expect=fault.expects,
                             settings=dict(settings or {}), facts=fault.facts())
    record_layout(history, shards)
    history.observe(HARNESS, SETTINGS, dict(settings or {}))
    clients: list = []

    def writers(loop: Loop) -> list[ContinuousWriter]:
        return [_shard_writer(client, shard, namespace, history, clients, loop) for shard in shards]

    def pinned(loop: Loop) -> ContinuousWriter:
        run.pinned = client.reachable(victim().primary)
        record_pinned(history, run.pinned)
        return pinned_writer(client, run.pinned, victim(), namespace, history, clients, loop)

    loops = Scheduler(test.workload, {
        "writer": writers, "pinned": pinned, "clients": lambda loop: compared,  # type: ignore[dict-item]
        "plain": lambda loop: plain_cluster_client(client, victim(), f"{namespace}plain:", history, loop)})
    try:
        loops.start()
        wait_ok_per_shard(run, shards, WARMUP_OPS, after=0.0, what="acknowledged writes on every shard before "
                          "the fault")
        if fault.pins_old_primary:
            wait_pinned(run, PINNED_WARMUP_OPS, after=0.0, acked=True, what="acknowledged writes of the pinned "
                        "writer before the fault")
        if compared is not None:
            compared.wait_warm(COMPARED_WARMUP_OPS)
        if progress is not None:
            progress(f"writing to {len(shards)} shards ({len(run.ops())} writes so far); fault: {fault.description}")
        try:
            run.fault_at = inject_recorded(fault, history, "a primary stopped answering")
        except WaitTimeout as exc:  # --fault manual: nobody killed a primary in time
            run.timeout_reason = str(exc)
            history.observe(HARNESS, GAVE_UP, error=str(exc))
            return run
        run.victim = victim()
        history.observe(HARNESS, VICTIM, run.victim.label)
        try:
            {PROMOTION: after_promotion, NO_FAILOVER: after_replica_loss, SHARD_DOWN: after_shard_loss}[run.expect](
                run, client, fault, test.recovery_timeout_s)
        except WaitTimeout as exc:
            run.timeout_reason = str(exc)
            history.observe(HARNESS, GAVE_UP, error=str(exc))
        record_node(history, PROMOTED_NODE, run.promoted)
        record_node(history, DOWN_NODE, run.down)
        if compared is not None:
            compared.wait_recovered(run.promoted_at if run.promoted_at is not None else run.fault_at)
    except BaseException:
        if fault.heals_in_run and fault.pending_heal:  # Ctrl-C: resume now, or the writers stuck on the
            with contextlib.suppress(Exception):  # paused node hold up the undo until the failover happened
                heal_fault(fault, HEAL_TIMEOUT_S)
        raise
    finally:
        try:
            loops.stop(first=[compared] if compared is not None else [])
        finally:
            for writer_client in clients:
                writer_client.close()
    return run


def _shard_writer(client: ClusterClient, shard: Shard, namespace: str, history: History,
                  clients: list[ClusterClient], loop: Loop) -> ContinuousWriter:
    """A writer of keys in one shard, on its own cluster client (connected now: a bad seed is a setup error)."""
    writer_client = ClusterClient(client.seeds, password=client.password, host_map=client.remap.host_map)
    clients.append(writer_client)
    writer_client.cluster  # noqa: B018 - connect here, in this thread, not in the writer's

    def write(key: str, value: str, attempts: Attempts) -> None:
        writer_client.call(lambda rc: rc.set(key, value), attempts)

    label = shard.label
    return ContinuousWriter(write, lambda seq: key_in_shard(shard, f"{namespace}w:", seq), history,
                            group_for=lambda key: label, with_attempts=True, pause_s=loop.pause_s,
                            process=loop.process)


def pinned_writer(client: ClusterClient, address: Address, shard: Shard, namespace: str, history: History,
                  clients: list, loop: Loop) -> ContinuousWriter:
    """Keys of the shard written to one node with a plain client: no redirect followed, no retry, so it
    shows what that node itself acknowledges (a paused primary resumed, the minority side of a cut)."""
    node = client.node(address, timeout=0.5)
    clients.append(node)

    def write(key: str, value: str) -> None:
        node.set(key, value)

    return ContinuousWriter(write, lambda seq: key_in_shard(shard, f"{namespace}pin:", seq), history,
                            group_for=lambda key: PINNED_GROUP, pause_s=loop.pause_s, process=loop.process)


def plain_cluster_client(client: ClusterClient, shard: Shard, prefix: str, history: History,
                         loop: Loop) -> PlainClientProbe:
    """redis-py's RedisCluster with default settings, writing keys of the shard that will lose its primary:
    the yardstick for our client's recovery. Given the same address_remap as ours (a user setting, public
    API) when the nodes announce addresses this machine does not reach, e.g. compose service names."""
    seed = client.seeds[0]
    remap = AddressRemap(client.remap.fallback_host, dict(client.remap.host_map))
    plain = RedisCluster(host=seed[0], port=seed[1], password=client.password, address_remap=remap)
    keys = [key_in_shard(shard, prefix, i) for i in range(100)]
    return PlainClientProbe(lambda seq: plain.set(keys[seq % len(keys)], seq), plain.close, history,
                            key=prefix, group=shard.label, interval_s=loop.pause_s, process=loop.process)
