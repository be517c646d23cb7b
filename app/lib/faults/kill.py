"""SIGKILL of the primary (`docker kill` on compose): the failover every other fault is compared with.

auto kills through the local launcher when a local stack serves the node, else through docker; local and docker
insist on one. The killed node is started again by heal(), with its data dir (like `docker start`).
"""

from __future__ import annotations

from lib.faults.fault import ALWAYS, NEVER, OWNED, UNOWNED, Fault, FaultContext
from lib.faults.nodes import LocalNode, NodeControl


class Kill(Fault):
    names = ("auto", "local", "docker")
    name = "auto"
    help = "SIGKILL the primary: through the local launcher if a local stack serves it, else docker kill"
    helps = {"auto": help, "local": "SIGKILL the primary through the local launcher only",
             "docker": "docker kill the primary's container only"}
    target = "the primary"
    roles_put_back = {"sentinel": UNOWNED, "cluster": UNOWNED}  # on servers not ours: as they were
    strict = False  # a kill loses what the primary had not sent to its replica: asynchronous replication
    loss_explained = ("asynchronous replication: writes the dead primary acknowledged but had not sent to its "
                      "replica")

    def __init__(self, node: NodeControl, address: tuple[str, int]):
        self.node, self.address = node, address
        # Sentinel's rejoin timers: shortened after a local kill always; after a docker kill on our own servers,
        # once the failover was measured (the old master waited 8-10 s on the default timers)
        self.short_rejoin_timers = ALWAYS if isinstance(node, LocalNode) else NEVER
        self.short_timers_after_failover = OWNED

    @classmethod
    def build(cls, ctx: FaultContext) -> Kill:
        mode = ctx.options.get("fault", "auto")
        return cls(ctx.control(ctx.primary, mode, mode=mode), ctx.primary.reachable)

    @property
    def description(self) -> str:
        if isinstance(self.node, LocalNode):
            return f"SIGKILL {self.node.name} (local launcher, like docker kill)"
        return f"docker kill {self.node.name}"

    def inject(self) -> None:
        self.node.kill()

    def heal(self, timeout: float) -> bool:
        return self.node.start(timeout)

    def touches(self) -> list[tuple[str, int]]:
        return [self.address]
