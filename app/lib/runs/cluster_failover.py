"""One measured shard failover: a writer per shard running around one fault on one primary.

A writer per shard (not one for all) so that a shard waiting on the dead primary does not delay
the writes to the others: the "other shards kept serving" number then measures the cluster, not
our single thread. The run only records; lib/checks/checker.py gives the verdicts afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.cluster import RedisCluster

from lib import events
from lib.clients.probe import PlainClientProbe
from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.fault import Fault, inject_recorded
from lib.ha_client import AddressRemap
from lib.history import OK, Attempts, History
from lib.topology.cluster_topology import ClusterNode, Shard, key_in_shard
from lib.util import format_endpoint
from lib.waits import PollPolicy, WaitTimeout, wait_until
from lib.workload.workload import ContinuousWriter, stop_all

WARMUP_OPS = 100  # acknowledged writes per shard before the fault, so there is something to lose
SETTLE_OPS = 100  # acknowledged writes per shard after recovery: the client keeps working
FAST_POLL = PollPolicy(first=0.01, cap=0.02)  # promotion time is measured by this poll


@dataclass
class ClusterFailoverRun:
    fault: str
    shards: list[Shard]  # the layout before the fault
    history: History = field(default_factory=History)
    victim: Shard | None = None
    fault_at: float = 0.0
    promoted_at: float | None = None
    promoted: ClusterNode | None = None
    recovered_at: float | None = None
    timeout_reason: str | None = None
    plain: History | None = None  # redis-py RedisCluster, default settings, writing to the victim shard

    def offset(self, at: float) -> float:
        return at - self.fault_at

    def ops(self, shard: Shard | None = None) -> list:
        ops = self.history.snapshot()
        return ops if shard is None else [op for op in ops if op.group == shard.label]


def wait_links_up(client: ClusterClient, shards: list[Shard], timeout: float) -> None:
    """Every replica's link is up: a replica still in its first sync is never promoted."""
    replicas = [r for s in shards for r in s.replicas]

    def links() -> tuple[bool, str]:
        seen = []
        for replica in replicas:
            node = client.node(client.reachable(replica))
            try:
                seen.append(f"{format_endpoint(*replica.announced)} "
                            f"link={node.info('replication').get('master_link_status')}")
            finally:
                node.close()
        return all(s.endswith("link=up") for s in seen), "; ".join(seen)

    wait_until(links, timeout=timeout, what="every replica's master_link_status:up before the fault")


def run_cluster_failover(client: ClusterClient, fault: Fault, shards: list[Shard],
                         victim: Callable[[], Shard], namespace: str, *, recovery_timeout: float = 60.0,
                         history: History | None = None,
                         progress: Callable[[str], None] | None = None) -> ClusterFailoverRun:
    """Write to every shard, inject the fault, wait for a promotion and for writes to the shard again.

    progress is told (one line) when the fault is about to be injected: library code does not print.

    victim() names the shard that lost its primary; it is asked after the fault, because with a
    manual fault a person chooses which primary to kill. Every writer (and the plain client) is
    stopped whatever happens, before the first crash among them is raised.
    """
    run = ClusterFailoverRun(fault.description, shards, history if history is not None else History())
    loops: list = []
    clients: list[ClusterClient] = []
    try:
        writers = [_shard_writer(client, shard, namespace, run.history, clients) for shard in shards]
        plain = None if fault.by_hand else plain_cluster_client(client, victim(), f"{namespace}plain:")
        run.plain = plain.history if plain else None
        for loop in ([plain] if plain else []) + writers:
            loop.start()
            loops.append(loop)
        _wait_ok_per_shard(run, shards, WARMUP_OPS, after=0.0, what="acknowledged writes on every shard before "
                           "the fault")
        if progress is not None:
            progress(f"writing to {len(shards)} shards ({len(run.ops())} writes so far); fault: {fault.description}")
        try:
            run.fault_at = inject_recorded(fault, run.history, "a primary stopped answering")
        except WaitTimeout as exc:  # --fault manual: nobody killed a primary in time
            run.timeout_reason = str(exc)
            return run
        run.victim = victim()
        try:
            run.promoted, run.promoted_at = wait_promoted(run.victim, run.history, client, recovery_timeout)
            _wait_ok_per_shard(run, [run.victim], 1, after=run.promoted_at or run.fault_at,
                               what=f"a write to {run.victim.label} after the promotion", timeout=recovery_timeout)
            run.recovered_at = time.monotonic()
            run.history.event(events.RECOVERED, f"writes to {run.victim.label} succeed again")
            _wait_ok_per_shard(run, shards, SETTLE_OPS, after=run.recovered_at,
                               what="acknowledged writes on every shard after recovery")
        except WaitTimeout as exc:
            run.timeout_reason = str(exc)
    finally:
        try:
            stop_all(loops)
        finally:
            for writer_client in clients:
                writer_client.close()
    return run


def _shard_writer(client: ClusterClient, shard: Shard, namespace: str, history: History,
                  clients: list[ClusterClient]) -> ContinuousWriter:
    """A writer of keys in one shard, on its own cluster client (connected now: a bad seed is a setup error)."""
    writer_client = ClusterClient(client.seeds, password=client.password, host_map=client.remap.host_map)
    clients.append(writer_client)
    writer_client.cluster  # noqa: B018 - connect here, in this thread, not in the writer's

    def write(key: str, value: str, attempts: Attempts) -> None:
        writer_client.call(lambda rc: rc.set(key, value), attempts)

    label = shard.label
    return ContinuousWriter(write, lambda seq: key_in_shard(shard, f"{namespace}w:", seq), history,
                            group_for=lambda key: label, with_attempts=True)


def plain_cluster_client(client: ClusterClient, shard: Shard, prefix: str) -> PlainClientProbe:
    """redis-py's RedisCluster with default settings, writing keys of the shard that will lose its primary:
    the yardstick for our client's recovery. Given the same address_remap as ours (a user setting, public
    API) when the nodes announce addresses this machine does not reach, e.g. compose service names."""
    seed = client.seeds[0]
    remap = AddressRemap(client.remap.fallback_host, dict(client.remap.host_map))
    plain = RedisCluster(host=seed[0], port=seed[1], password=client.password, address_remap=remap)
    keys = [key_in_shard(shard, prefix, i) for i in range(100)]
    return PlainClientProbe(lambda seq: plain.set(keys[seq % len(keys)], seq), plain.close,
                            key=prefix, group=shard.label)




def wait_promoted(victim: Shard, history: History, client: ClusterClient, timeout: float) -> tuple[ClusterNode, float]:
    """Poll the victim's replicas every 10-20 ms: the one that wins the election says so first.

    Records in history when a replica first sees the old primary as fail? (PFAIL, its own opinion)
    and fail (the majority agreed), then the promotion; returns the promoted node and when it was seen.
    """
    old, replicas = victim.primary, victim.replicas
    if not replicas:
        raise WaitTimeout(f"{victim.label} has no replica: nothing can be promoted")
    winner: list[ClusterNode] = []

    def promoted() -> tuple[bool, str]:
        seen = []
        for replica in replicas:
            try:
                view = client.nodes([client.reachable(replica)])
            except SetupError as exc:
                seen.append(f"{format_endpoint(*replica.announced)}: {exc}")
                continue
            me = next(n for n in view if "myself" in n.flags)
            _record_flags(history, view, old)
            seen.append(f"{format_endpoint(*replica.announced)} {'primary' if me.is_primary else 'replica'}")
            if me.is_primary and me.slots:
                winner.append(me)
                return True, "; ".join(seen)
        return False, "; ".join(seen)

    wait_until(promoted, timeout=timeout, policy=FAST_POLL,
               what=f"a replica of {format_endpoint(*old.announced)} to be promoted")
    promoted_at = time.monotonic()
    history.event(events.PROMOTED, f"{format_endpoint(*winner[0].announced)} now serves {victim.label}",
                  at=promoted_at)
    return winner[0], promoted_at


def _record_flags(history: History, view: list[ClusterNode], old: ClusterNode) -> None:
    """The first sighting of each of the old primary's failure flags, as an event."""
    theirs = next((n for n in view if n.node_id == old.node_id), None)
    if theirs is None:
        return
    for flag, name in (("fail?", events.NODE_PFAIL), ("fail", events.NODE_FAIL)):
        if flag in theirs.flags and not history.first_event(name):
            history.event(name, f"{format_endpoint(*old.announced)} flags {','.join(sorted(theirs.flags))}")


def _wait_ok_per_shard(run: ClusterFailoverRun, shards: list[Shard], count: int, *, after: float, what: str,
                       timeout: float = 30.0) -> None:
    def enough() -> tuple[bool, str]:
        counts = {s.label: sum(1 for op in run.ops(s) if op.outcome == OK and op.start > after) for s in shards}
        return all(c >= count for c in counts.values()), f"acknowledged per shard: {counts}"

    wait_until(enough, timeout=timeout, what=f"{count} {what}")


def put_back_roles(client: ClusterClient, old_primary: ClusterNode, promoted: ClusterNode,
                   timeout: float = 60.0) -> str:
    """Make the old primary the primary of its shard again, as it was before the fault.

    CLUSTER FAILOVER (no FORCE) on the old primary once it replicates the promoted node with its
    link up: the promoted primary pauses its clients until the old one has its whole offset, so
    no acknowledged write is lost by the swap back.
    """
    wait_rejoined(client, old_primary, promoted, timeout)
    address = client.reachable(old_primary)
    with client.node(address, timeout=5.0) as node:
        node.execute_command("CLUSTER", "FAILOVER")

    def primary_again() -> tuple[bool, str]:
        me = next(n for n in client.nodes([address]) if "myself" in n.flags)
        return me.is_primary and bool(me.slots), f"{'primary' if me.is_primary else 'replica'} slots={me.slots}"

    wait_until(primary_again, timeout=timeout, what=f"{format_endpoint(*old_primary.announced)} to be the "
               "primary of its shard again after CLUSTER FAILOVER")
    return wait_rejoined(client, promoted, old_primary, timeout)


def wait_rejoined(client: ClusterClient, old: ClusterNode, new_primary: ClusterNode, timeout: float) -> str:
    """The old primary, running again, is a replica of the new one with its link up."""
    address = client.reachable(old)

    def rejoined() -> tuple[bool, str]:
        me = next(n for n in client.nodes([address]) if "myself" in n.flags)
        node = client.node(address)
        try:
            link = node.info("replication").get("master_link_status")
        finally:
            node.close()
        return (not me.is_primary and me.master_id == new_primary.node_id and link == "up",
                f"{'primary' if me.is_primary else 'replica of ' + me.master_id[:8]} link={link}")

    return wait_until(rejoined, timeout=timeout, what=f"{format_endpoint(*old.announced)} to replicate from "
                      f"{format_endpoint(*new_primary.announced)} with its link up")
