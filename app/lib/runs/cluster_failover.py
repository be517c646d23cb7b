"""One measured shard failover: a writer per shard running around one fault on one primary.

A writer per shard (not one for all) so that a shard waiting on the dead primary does not delay
the writes to the others: the "other shards kept serving" number then measures the cluster, not
our single thread. The run only records; lib/checks/checker.py gives the verdicts afterwards.

What the run waits for depends on what the fault should cause (`expect`): a promotion (kill, pause,
SIGTERM, CLUSTER FAILOVER, partition), nothing at all (a replica killed), or a shard without any node
(shard loss: nothing can be promoted). A fault that heals in the run (pause, partition, shard loss) is
healed as soon as that answer is seen, and a writer pinned to the old primary (a plain client, no
redirects followed) shows what the old primary acknowledged meanwhile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.cluster import RedisCluster

from lib import events
from lib.clients.probe import PlainClientProbe
from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.fault import Fault, inject_recorded, restore_fault
from lib.ha_client import AddressRemap
from lib.history import OK, Attempts, History
from lib.topology.cluster_topology import Address, ClusterNode, Shard, key_in_shard
from lib.util import format_endpoint
from lib.waits import PollPolicy, WaitTimeout, wait_until
from lib.workload.workload import ContinuousWriter, stop_all

WARMUP_OPS = 100  # acknowledged writes per shard before the fault, so there is something to lose
SETTLE_OPS = 100  # acknowledged writes per shard after recovery: the client keeps working
PINNED_WARMUP_OPS = 20  # acknowledged writes of the pinned writer before the fault
FAST_POLL = PollPolicy(first=0.01, cap=0.02)  # promotion time is measured by this poll
HEAL_TIMEOUT_S = 30.0  # a paused node resumed, a cut healed, a lost shard's nodes started again
STOPPED_TIMEOUT_S = 15.0  # with full coverage required, every shard stops soon after the FAIL flag
PINNED_GROUP = "pinned to the old primary"  # the group of the pinned writer's ops in the history

# What the fault should cause: the run waits for that, and the checks judge against it.
PROMOTION, NO_FAILOVER, SHARD_DOWN = "promotion", "no failover", "shard down"


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
    expect: str = PROMOTION
    down: ClusterNode | None = None  # the node whose failure flags the run watched (a replica, a lost primary)
    down_seen_at: float | None = None  # when the cluster flagged it fail (no promotion expected)
    healed_at: float | None = None  # the run healed the fault (heals_in_run)
    demoted_at: float | None = None  # the healed old primary turned replica
    pinned: Address | None = None  # where the writer pinned to the old primary wrote (ops of PINNED_GROUP)
    settings: dict[str, str] = field(default_factory=dict)  # what the cluster ran with (CONFIG GET/SET)
    server_log: list[str] | None = None  # the old primary's log lines around the fault (local stack only)

    def offset(self, at: float) -> float:
        return at - self.fault_at

    def ops(self, shard: Shard | None = None) -> list:
        ops = self.history.snapshot()
        return ops if shard is None else [op for op in ops if op.group == shard.label]

    def pinned_ops(self) -> list:
        return [op for op in self.history.snapshot() if op.group == PINNED_GROUP]


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
                         history: History | None = None, progress: Callable[[str], None] | None = None,
                         expect: str = PROMOTION, pinned: bool = False,
                         settings: dict[str, str] | None = None) -> ClusterFailoverRun:
    """Write to every shard, inject the fault, wait for what it should cause and for writes to the shard again.

    progress is told (one line) when the fault is about to be injected: library code does not print.

    victim() names the shard that lost its primary; it is asked after the fault, because with a
    manual fault a person chooses which primary to kill. pinned: also write to the victim's primary
    with a plain client that follows no redirect. Every writer (and the plain client) is stopped
    whatever happens, before the first crash among them is raised.
    """
    run = ClusterFailoverRun(fault.description, shards, history if history is not None else History(),
                             expect=expect, settings=dict(settings or {}))
    loops: list = []
    clients: list = []
    try:
        writers = [_shard_writer(client, shard, namespace, run.history, clients) for shard in shards]
        if pinned:
            run.pinned = client.reachable(victim().primary)
            writers.append(pinned_writer(client, run.pinned, victim(), namespace, run.history, clients))
        plain = None if fault.by_hand else plain_cluster_client(client, victim(), f"{namespace}plain:")
        run.plain = plain.history if plain else None
        for loop in ([plain] if plain else []) + writers:
            loop.start()
            loops.append(loop)
        _wait_ok_per_shard(run, shards, WARMUP_OPS, after=0.0, what="acknowledged writes on every shard before "
                           "the fault")
        if pinned:
            _wait_pinned(run, PINNED_WARMUP_OPS, after=0.0, acked=True, what="acknowledged writes of the pinned "
                         "writer before the fault")
        if progress is not None:
            progress(f"writing to {len(shards)} shards ({len(run.ops())} writes so far); fault: {fault.description}")
        try:
            run.fault_at = inject_recorded(fault, run.history, "a primary stopped answering")
        except WaitTimeout as exc:  # --fault manual: nobody killed a primary in time
            run.timeout_reason = str(exc)
            return run
        run.victim = victim()
        try:
            {PROMOTION: _after_promotion, NO_FAILOVER: _after_replica_loss, SHARD_DOWN: _after_shard_loss}[expect](
                run, client, fault, recovery_timeout)
        except WaitTimeout as exc:
            run.timeout_reason = str(exc)
    except BaseException:
        if fault.heals_in_run and fault.pending_restore:  # Ctrl-C: resume now, or the writers stuck on the
            with contextlib.suppress(Exception):  # paused node hold up the undo until the failover happened
                restore_fault(fault, HEAL_TIMEOUT_S)
        raise
    finally:
        try:
            stop_all(loops)
        finally:
            for writer_client in clients:
                writer_client.close()
    return run


def _after_promotion(run: ClusterFailoverRun, client: ClusterClient, fault: Fault, recovery_timeout: float) -> None:
    """A replica takes over; a fault that heals in the run is healed at once, and the old primary demoted."""
    victim = run.victim
    run.promoted, run.promoted_at = wait_promoted(victim, run.history, client, recovery_timeout)
    if fault.heals_in_run:
        heal(run, fault)
        run.demoted_at = wait_demoted(client, victim.primary, run.history, HEAL_TIMEOUT_S)
        if run.pinned is not None:
            _wait_pinned(run, 1, after=run.demoted_at, acked=False, what="write of the pinned writer after the "
                         "demotion")
    _wait_ok_per_shard(run, [victim], 1, after=run.promoted_at or run.fault_at,
                       what=f"a write to {victim.label} after the promotion", timeout=recovery_timeout)
    _recovered(run)


def _after_replica_loss(run: ClusterFailoverRun, client: ClusterClient, fault: Fault, recovery_timeout: float) -> None:
    """The replica is flagged fail by the cluster; every shard, the victim's too, keeps taking writes."""
    victim = run.victim
    run.down = victim.replicas[0]
    run.down_seen_at = wait_flagged_fail(run.down, victim.primary, run.history, client, recovery_timeout)
    _wait_ok_per_shard(run, run.shards, SETTLE_OPS, after=run.down_seen_at,
                       what="acknowledged writes on every shard after the replica was flagged fail")
    run.recovered_at = time.monotonic()


def _after_shard_loss(run: ClusterFailoverRun, client: ClusterClient, fault: Fault, recovery_timeout: float) -> None:
    """The lost primary is flagged fail; the other shards keep serving (or all stop, with full coverage
    required); then the run starts the shard's nodes again and waits for writes to every shard."""
    victim = run.victim
    others = [s for s in run.shards if s.label != victim.label]
    run.down = victim.primary
    witness = others[0].primary if others else victim.primary
    run.down_seen_at = wait_flagged_fail(victim.primary, witness, run.history, client, recovery_timeout)
    if run.settings.get("cluster-require-full-coverage") == "yes":
        _wait_failing(run, others, after=run.fault_at, what="a failed write on every other shard (cluster down)")
    else:
        _wait_ok_per_shard(run, others, SETTLE_OPS, after=run.down_seen_at,
                           what="acknowledged writes on the other shards while the shard is down")
    heal(run, fault)
    _wait_ok_per_shard(run, [victim], 1, after=run.healed_at or run.fault_at,
                       what=f"a write to {victim.label} after its nodes were started again", timeout=recovery_timeout)
    _recovered(run)


def _recovered(run: ClusterFailoverRun) -> None:
    run.recovered_at = time.monotonic()
    run.history.event(events.RECOVERED, f"writes to {run.victim.label} succeed again")
    _wait_ok_per_shard(run, run.shards, SETTLE_OPS, after=run.recovered_at,
                       what="acknowledged writes on every shard after recovery")


def heal(run: ClusterFailoverRun, fault: Fault, timeout: float = HEAL_TIMEOUT_S) -> None:
    """The run heals its own fault (resume, heal the cut, start the nodes) and records when."""
    if not restore_fault(fault, timeout):
        raise WaitTimeout(f"{fault.description}: not healed within {timeout:.0f}s", observed="not restored")
    run.healed_at = time.monotonic()
    run.history.event(events.HEALED, f"{fault.description}: healed by the run", at=run.healed_at)


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


def pinned_writer(client: ClusterClient, address: Address, shard: Shard, namespace: str, history: History,
                  clients: list) -> ContinuousWriter:
    """Keys of the shard written to one node with a plain client: no redirect followed, no retry, so it
    shows what that node itself acknowledges (a paused primary resumed, the minority side of a cut)."""
    node = client.node(address, timeout=0.5)
    clients.append(node)

    def write(key: str, value: str) -> None:
        node.set(key, value)

    return ContinuousWriter(write, lambda seq: key_in_shard(shard, f"{namespace}pin:", seq), history,
                            group_for=lambda key: PINNED_GROUP)


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


def wait_flagged_fail(node: ClusterNode, witness: ClusterNode, history: History, client: ClusterClient,
                      timeout: float) -> float:
    """Poll the witness's view until it flags node fail (the majority agreed); the pfail/fail events are
    recorded as for a promotion. Returns when fail was seen."""
    address = client.reachable(witness)

    def flagged() -> tuple[bool, str]:
        view = client.nodes([address])
        _record_flags(history, view, node)
        theirs = next((n for n in view if n.node_id == node.node_id), None)
        flags = ",".join(sorted(theirs.flags)) if theirs else "not listed"
        return theirs is not None and "fail" in theirs.flags, f"{format_endpoint(*node.announced)} flags {flags}"

    wait_until(flagged, timeout=timeout, policy=FAST_POLL,
               what=f"{format_endpoint(*witness.announced)} to flag {format_endpoint(*node.announced)} fail")
    return time.monotonic()


def wait_demoted(client: ClusterClient, old: ClusterNode, history: History, timeout: float) -> float:
    """The healed old primary says it is a replica now (its own CLUSTER NODES); recorded as DEMOTED."""
    address = client.reachable(old)

    def demoted() -> tuple[bool, str]:
        try:
            me = next(n for n in client.nodes([address]) if "myself" in n.flags)
        except SetupError as exc:
            return False, str(exc)
        return not me.is_primary, f"{'primary' if me.is_primary else 'replica'} slots={me.slots}"

    wait_until(demoted, timeout=timeout, policy=FAST_POLL,
               what=f"the old primary {format_endpoint(*old.announced)} to turn replica after the heal")
    at = time.monotonic()
    history.event(events.DEMOTED, f"{format_endpoint(*old.announced)} is a replica now", at=at)
    return at


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


def _wait_pinned(run: ClusterFailoverRun, count: int, *, after: float, acked: bool, what: str,
                 timeout: float = 30.0) -> None:
    """count writes of the pinned writer begun after `after` (acked: only acknowledged ones count)."""
    def enough() -> tuple[bool, str]:
        ops = [op for op in run.pinned_ops() if op.start > after and (op.outcome == OK or not acked)]
        return len(ops) >= count, f"{len(ops)} so far"

    wait_until(enough, timeout=timeout, what=f"{count} {what}")


def _wait_failing(run: ClusterFailoverRun, shards: list[Shard], *, after: float, what: str,
                  timeout: float = STOPPED_TIMEOUT_S) -> None:
    def failing() -> tuple[bool, str]:
        seen = {s.label: any(op.outcome != OK and op.start > after for op in run.ops(s)) for s in shards}
        return all(seen.values()), f"a failed write per shard: {seen}"

    wait_until(failing, timeout=timeout, what=what)


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
