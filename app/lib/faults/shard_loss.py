"""A whole shard lost: its primary and its replicas killed together, so nothing can be promoted (Cluster only).

The run starts the shard again itself once the cluster's answer is seen (heals_in_run): with
cluster-require-full-coverage no the other shards keep serving, with yes every shard stops; then it measures the
recovery. Writes lost with every copy of the shard are a WARN (a restart keeps only what the nodes had on disk);
a loss on another shard is a FAIL.
"""

from __future__ import annotations

from lib.faults.compound import Compound, one_stack
from lib.faults.fault import LOSS_OF_LOST_SHARD_WARNS, SHARD_DOWN, FaultContext
from lib.faults.kill import Kill


class ShardLoss(Compound):
    name = "shard-loss"
    help = "SIGKILL the primary and every replica of its shard: no promotion is possible until it is started again"
    topologies = ("cluster",)
    not_for_cache = "no promotion is possible, and the cache suite measures HTTP hits through a promotion"
    target = "the primary's whole shard"
    expects = SHARD_DOWN
    heals_in_run = True
    loss = LOSS_OF_LOST_SHARD_WARNS

    def __init__(self, parts: list[Kill], touched: list[tuple[str, int]]):
        super().__init__(parts, "shard loss")
        self.touched = touched

    @classmethod
    def build(cls, ctx: FaultContext) -> ShardLoss:
        nodes = [*ctx.replicas, ctx.primary]  # the replicas first: healed in reverse, the primary is back first
        controls = one_stack([ctx.control(node, cls.name) for node in nodes])
        kills = [Kill(control, node.reachable) for control, node in zip(controls, nodes, strict=True)]
        return cls(kills, [node.reachable for node in nodes])

    def touches(self) -> list[tuple[str, int]]:
        return self.touched
