"""SIGKILL a replica of the primary (`docker kill` on compose): nothing may be promoted, no shard may stop.

The primary keeps its role and its slots; the run watches for a failover that must not come (Sentinel: twice the
detection time plus a failover's; Cluster: until the replica is flagged fail), then starts the replica again and
waits for it to replicate with its link up.
"""

from __future__ import annotations

from lib.faults.compound import Compound
from lib.faults.fault import NO_FAILOVER, OWNED, FaultContext, Node
from lib.faults.kill import Kill


class ReplicaKill(Compound):
    name = "replica-kill"
    help = "SIGKILL a replica of the primary: no failover may follow, no write may be lost"
    not_for_cache = "no promotion follows it, and the cache suite measures HTTP hits through a promotion"
    target = "a replica of the primary"
    expects = NO_FAILOVER
    needs_replica = "to kill"
    why_no_failover = "only a replica was killed"
    short_rejoin_timers = OWNED
    short_timers_after_failover = OWNED

    def __init__(self, kill: Kill, replica: Node, touched: list[tuple[str, int]], label: str):
        super().__init__([kill], label)
        self.stops, self.touched = replica, touched

    @classmethod
    def build(cls, ctx: FaultContext) -> ReplicaKill:
        replica = ctx.replicas[0]
        kill = Kill(ctx.control(replica, cls.name), replica.reachable)
        if ctx.topology == "sentinel":
            return cls(kill, replica, [replica.reachable, *(s.reachable for s in ctx.sentinels)], "replica kill")
        return cls(kill, replica, [replica.reachable], "")

    def touches(self) -> list[tuple[str, int]]:
        return self.touched
