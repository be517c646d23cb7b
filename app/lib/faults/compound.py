"""Several faults as one: injected in order, healed in reverse (a replica and its primary, sentinels and a master).

Not a --fault of its own: the building block of quorum-loss, shard-loss and replica-kill.
"""

from __future__ import annotations

from lib.faults.fault import Fault
from lib.faults.nodes import LocalNode, NodeControl


class Compound(Fault):
    def __init__(self, parts: list[Fault], label: str = ""):
        self.parts, self.label = parts, label  # label: what the parts add up to ("shard loss")

    @property
    def description(self) -> str:
        inner = "; ".join(part.description for part in self.parts)
        return f"{self.label}: {inner}" if self.label else inner

    def inject(self) -> None:
        for part in self.parts:
            part.pending_heal = part.can_heal
            part.inject()

    def heal(self, timeout: float) -> bool:
        """Every part still broken is healed, even if one fails; True only if all came back."""
        results = [part.heal(timeout) for part in reversed(self.parts) if part.pending_heal]
        for part in self.parts:
            part.pending_heal = False
        return all(results)


def one_stack(nodes: list[NodeControl]) -> list[NodeControl]:
    """Services of one local stack share one LocalStack: each restart saves the pids it knows to the stack's state
    file, so a second copy would write back the old, dead pids of the services the first restarted."""
    stacks: dict = {}
    shared: list[NodeControl] = []
    for node in nodes:
        if isinstance(node, LocalNode):
            shared.append(LocalNode(stacks.setdefault(node.stack.state_dir, node.stack), node.name))
        else:
            shared.append(node)
    return shared
