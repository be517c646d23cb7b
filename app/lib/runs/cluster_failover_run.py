"""What one cluster failover run recorded, and what its fault should cause."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lib.faults import fault
from lib.history import History
from lib.topology.cluster_topology import Address, ClusterNode, Shard

PINNED_GROUP = "pinned to the old primary"  # the group of the pinned writer's ops in the history

# What the fault should cause: the run waits for that, and the checks judge against it (lib/faults/fault.py).
PROMOTION, NO_FAILOVER, SHARD_DOWN = fault.PROMOTION, fault.NO_FAILOVER, fault.SHARD_DOWN


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
    facts: dict[str, Any] = field(default_factory=dict)  # what the fault says of itself (lib/faults/fault.py)
    evidence: dict[str, Any] = field(default_factory=dict)  # what the fault saw itself (a server's shutdown log)
    compared: Any = None  # the compared client libraries (lib/runs/client_comparison.ClientComparison), --client

    def offset(self, at: float) -> float:
        return at - self.fault_at

    def ops(self, shard: Shard | None = None) -> list:
        ops = self.history.snapshot()
        return ops if shard is None else [op for op in ops if op.group == shard.label]

    def pinned_ops(self) -> list:
        return [op for op in self.history.snapshot() if op.group == PINNED_GROUP]
