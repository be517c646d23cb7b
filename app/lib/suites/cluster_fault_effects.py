"""What each fault does to the cluster: what the run waits for, the nodes it changes, whether roles are put back."""

from __future__ import annotations

import argparse

from lib.faults.cluster_failover import ClusterManualFailover
from lib.faults.fault import DockerKill, Fault, LocalKill
from lib.runs.cluster_failover_run import NO_FAILOVER, SHARD_DOWN
from lib.topology.cluster_topology import ClusterNode, Shard

EXPECTS = {"replica-kill": NO_FAILOVER, "shard-loss": SHARD_DOWN}  # every other fault: a promotion
PINNED_FAULTS = ("pause", "partition")  # a writer stays with the old primary: what it acknowledges counts
ROLE_SWAPPING_FAULTS = ("coordinated", "pause", "sigterm", "partition")  # roles always put back after


def changed_by(mode: str, fault: Fault | None, shards: list[Shard]) -> list[ClusterNode]:
    """The nodes whose process, role or links the fault changes (a manual fault is the user's own act: none)."""
    victim = shards[0]
    if isinstance(fault, ClusterManualFailover):
        return [victim.primary, fault.replica]
    if mode == "replica-kill":
        return victim.replicas[:1]
    if mode == "shard-loss":
        return [victim.primary, *victim.replicas]
    if mode == "partition":
        return [n for s in shards for n in (s.primary, *s.replicas)]
    if mode in ROLE_SWAPPING_FAULTS:  # the old primary stops or is demoted, and is made primary again after
        return [victim.primary, *victim.replicas[:1]]
    if isinstance(fault, LocalKill | DockerKill):
        return [victim.primary]
    return []


def puts_back_roles(args: argparse.Namespace, fault: Fault | None, owned: bool = False) -> bool:
    """A graceful failover and the fault matrix's failovers are undone always; a kill on servers the harness
    does not own, too; the failover of the user's --kill-cmd on servers the harness started (owned)."""
    return (isinstance(fault, ClusterManualFailover) or (args.fault in ROLE_SWAPPING_FAULTS and fault is not None)
            or (args.fault == "exec" and owned)
            or (args.allow_destructive and fault is not None and not fault.by_hand))
