"""SIGSTOP the primary (`docker pause` on compose) for longer than failure detection, then resume it.

The paused server keeps its sockets and its role. Resumed, it still believes it is the primary until the sentinels
(or the cluster) demote it, so a client that stayed with it can have writes acknowledged that the demotion then
discards: a writer is kept on it (pins_old_primary) and the run counts them. The run resumes it once the promotion
is seen (heals_in_run) and waits for its demotion.
"""

from __future__ import annotations

from lib import events
from lib.faults.fault import ALWAYS, UNOWNED, Fault, FaultContext, failover_touches
from lib.faults.nodes import DockerNode, NodeControl


class Pause(Fault):
    name = "pause"
    help = "SIGSTOP (docker pause) the primary, resumed once a replica is promoted; a writer stays on it"
    not_for_cache = "the cache suite does not account what the old primary acknowledges once it is resumed"
    target = "the primary"
    heals_in_run = True
    needs_replica = "to promote"
    pins_old_primary = True
    roles_put_back = {"sentinel": UNOWNED, "cluster": ALWAYS}
    marks = (events.HEALED, events.DEMOTED)

    def __init__(self, node: NodeControl, touched: list[tuple[str, int]]):
        self.node, self.touched = node, touched
        self.how = "docker pause" if isinstance(node, DockerNode) else "SIGSTOP"

    @classmethod
    def build(cls, ctx: FaultContext) -> Pause:
        return cls(ctx.control(ctx.primary, cls.name), failover_touches(ctx))

    @property
    def description(self) -> str:
        resume = "docker unpause" if self.how == "docker pause" else "SIGCONT"
        return f"{self.how} {self.node.name} (resumed with {resume} after the failover)"

    def inject(self) -> None:
        self.node.pause()

    def heal(self, timeout: float) -> bool:
        self.node.resume()
        return True

    def touches(self) -> list[tuple[str, int]]:
        return self.touched
