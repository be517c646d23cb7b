"""After the fault, what the run waits for: a promotion, no failover, or a shard down and started again."""

from __future__ import annotations

import time

import redis

from lib import events
from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.fault import Fault, heal_fault
from lib.history import HARNESS, OK
from lib.phases.cluster_record import PRIMARY_KEPT_SLOTS, ClusterFailoverView
from lib.phases.cluster_watch import wait_demoted, wait_flagged_fail, wait_promoted
from lib.topology.cluster_topology import Shard, own_view
from lib.waits import WaitTimeout, wait_until

SETTLE_OPS = 100  # acknowledged writes per shard after recovery: the client keeps working
HEAL_TIMEOUT_S = 30.0  # a paused node resumed, a cut healed, a lost shard's nodes started again
STOPPED_TIMEOUT_S = 15.0  # with full coverage required, every shard stops soon after the FAIL flag


def after_promotion(run: ClusterFailoverView, client: ClusterClient, fault: Fault, recovery_timeout: float) -> None:
    """A replica takes over; a fault that heals in the run is healed at once, and the old primary demoted."""
    victim = run.victim
    run.promoted, run.promoted_at = wait_promoted(victim, run.history, client, recovery_timeout)
    if fault.heals_in_run:
        heal(run, fault)
        run.demoted_at = wait_demoted(client, victim.primary, run.history, HEAL_TIMEOUT_S)
        if run.pinned is not None:
            wait_pinned(run, 1, after=run.demoted_at, acked=False, what="write of the pinned writer after the "
                        "demotion")
    wait_ok_per_shard(run, [victim], 1, after=run.promoted_at or run.fault_at,
                      what=f"a write to {victim.label} after the promotion", timeout=recovery_timeout)
    _recovered(run)


def after_replica_loss(run: ClusterFailoverView, client: ClusterClient, fault: Fault, recovery_timeout: float) -> None:
    """The replica is flagged fail by the cluster; every shard, the victim's too, keeps taking writes."""
    victim = run.victim
    run.down = victim.replicas[0]
    run.down_seen_at = wait_flagged_fail(run.down, victim.primary, run.history, client, recovery_timeout)
    wait_ok_per_shard(run, run.shards, SETTLE_OPS, after=run.down_seen_at,
                      what="acknowledged writes on every shard after the replica was flagged fail")
    run.recovered_at = time.monotonic()
    run.history.event(events.RECOVERED, "every shard kept taking writes after the replica was flagged fail",
                      at=run.recovered_at)
    try:
        me = own_view(client.nodes([client.reachable(victim.primary)]))
    except (SetupError, redis.RedisError) as exc:
        run.history.observe(HARNESS, PRIMARY_KEPT_SLOTS, error=f"{type(exc).__name__}: {exc}")
    else:
        run.history.observe(HARNESS, PRIMARY_KEPT_SLOTS, me.is_primary and bool(me.slots))


def after_shard_loss(run: ClusterFailoverView, client: ClusterClient, fault: Fault, recovery_timeout: float) -> None:
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
        wait_ok_per_shard(run, others, SETTLE_OPS, after=run.down_seen_at,
                          what="acknowledged writes on the other shards while the shard is down")
    heal(run, fault)
    wait_ok_per_shard(run, [victim], 1, after=run.healed_at or run.fault_at,
                      what=f"a write to {victim.label} after its nodes were started again", timeout=recovery_timeout)
    _recovered(run)


def _recovered(run: ClusterFailoverView) -> None:
    run.recovered_at = time.monotonic()
    run.history.event(events.RECOVERED, f"writes to {run.victim.label} succeed again")
    wait_ok_per_shard(run, run.shards, SETTLE_OPS, after=run.recovered_at,
                      what="acknowledged writes on every shard after recovery")


def heal(run: ClusterFailoverView, fault: Fault, timeout: float = HEAL_TIMEOUT_S) -> None:
    """The run heals its own fault (resume, heal the cut, start the nodes) and records when."""
    if not heal_fault(fault, timeout):
        raise WaitTimeout(f"{fault.description}: not healed within {timeout:.0f}s", observed="not restored")
    run.healed_at = time.monotonic()
    run.history.event(events.HEALED, f"{fault.description}: healed by the run", at=run.healed_at)


def wait_ok_per_shard(run: ClusterFailoverView, shards: list[Shard], count: int, *, after: float, what: str,
                      timeout: float = 30.0) -> None:
    def enough() -> tuple[bool, str]:
        counts = {s.label: sum(1 for op in run.ops(s) if op.outcome == OK and op.start > after) for s in shards}
        return all(c >= count for c in counts.values()), f"acknowledged per shard: {counts}"

    wait_until(enough, timeout=timeout, what=f"{count} {what}")


def wait_pinned(run: ClusterFailoverView, count: int, *, after: float, acked: bool, what: str,
                timeout: float = 30.0) -> None:
    """count writes of the pinned writer begun after `after` (acked: only acknowledged ones count)."""
    def enough() -> tuple[bool, str]:
        ops = [op for op in run.pinned_ops() if op.start > after and (op.outcome == OK or not acked)]
        return len(ops) >= count, f"{len(ops)} so far"

    wait_until(enough, timeout=timeout, what=f"{count} {what}")


def _wait_failing(run: ClusterFailoverView, shards: list[Shard], *, after: float, what: str,
                  timeout: float = STOPPED_TIMEOUT_S) -> None:
    def failing() -> tuple[bool, str]:
        seen = {s.label: any(op.outcome != OK and op.start > after for op in run.ops(s)) for s in shards}
        return all(seen.values()), f"a failed write per shard: {seen}"

    wait_until(failing, timeout=timeout, what=what)
