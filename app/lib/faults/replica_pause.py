"""SIGSTOP a replica of the primary (`docker pause` on compose): it stops answering but keeps its sockets.

Unlike a killed replica, a paused one holds its connections open and answers nothing, so whoever waits on it (WAIT,
a full sync, a cluster's gossip) waits until a timeout. Nothing may be promoted and no acknowledged write may be
lost; the run watches for a failover that must not come (Sentinel) or for the replica to be flagged fail (Cluster),
then resumes it and waits for it to replicate with its link up again.
"""

from __future__ import annotations

from lib.faults.fault import NO_FAILOVER, Fault, FaultContext, Node
from lib.faults.nodes import DockerNode, NodeControl


class ReplicaPause(Fault):
    name = "replica-pause"
    help = "SIGSTOP (docker pause) a replica of the primary, resumed after: no failover may follow, no write lost"
    not_for_cache = "no promotion follows it, and the cache suite measures HTTP hits through a promotion"
    target = "a replica of the primary"
    expects = NO_FAILOVER
    needs_replica = "to pause"
    why_no_failover = "only a replica was paused"

    def __init__(self, node: NodeControl, replica: Node):
        self.node, self.stops = node, replica
        self.how = "docker pause" if isinstance(node, DockerNode) else "SIGSTOP"

    @classmethod
    def build(cls, ctx: FaultContext) -> ReplicaPause:
        replica = ctx.replicas[0]
        return cls(ctx.control(replica, cls.name), replica)

    @property
    def description(self) -> str:
        resume = "docker unpause" if self.how == "docker pause" else "SIGCONT"
        return f"{self.how} replica {self.node.name} (resumed with {resume} after the watch)"

    def inject(self) -> None:
        self.node.pause()

    def heal(self, timeout: float) -> bool:
        self.node.resume()
        return True

    def touches(self) -> list[tuple[str, int]]:
        return [self.stops.reachable]
