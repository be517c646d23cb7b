"""Quorum loss: too few sentinels left to agree the master is down, then the master killed.

Sentinel needs `quorum` sentinels to flag the master objectively down and a majority of all sentinels to
elect the leader that fails it over. With fewer running, a dead master stays dead: that is the expected
outcome, reported as such. The run watches for a while, starts the sentinels again (heal_sentinels) and
measures how long the failover then takes; the master itself is started by the suite as after a kill.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.errors import SetupError
from lib.faults.compound import Compound
from lib.faults.fault import DockerKill, Fault, LocalKill
from lib.faults.nodes import LocalNode, NodeControl
from lib.util import format_endpoint

Address = tuple[str, int]


def kill_of(node: NodeControl) -> Fault:
    """SIGKILL (docker kill) of one node, restarted by restore(): the kill faults' own descriptions."""
    if isinstance(node, LocalNode):
        return LocalKill(node.stack, node.name)
    return DockerKill(node.name, getattr(node, "address", None))


def sentinels_to_stop(known: int, quorum: int) -> int:
    """How many of `known` sentinels must stop so that a failover cannot happen.

    It needs `quorum` sentinels to agree the master is down and a majority of all to elect a leader:
    with one fewer than the larger of the two left, one of them is out of reach (3 and quorum 2: stop 2).
    """
    majority = known // 2 + 1
    return known - (max(quorum, majority) - 1)


@dataclass
class QuorumLoss(Compound):
    """Compound of the sentinel kills, then the master's kill (the last part)."""

    label: str = "quorum loss"

    @property
    def sentinel_parts(self) -> list[Fault]:
        return self.parts[:-1]

    def heal_sentinels(self, timeout: float) -> bool:
        """Start the stopped sentinels again (the master stays down); True once all of them answer."""
        back = [part.restore(timeout) for part in reversed(self.sentinel_parts) if part.pending_restore]
        for part in self.sentinel_parts:
            part.pending_restore = False
        return all(back)


def quorum_loss(sentinels: list[NodeControl], master: NodeControl) -> QuorumLoss:
    nodes = same_stack([*sentinels, master])
    return QuorumLoss([kill_of(node) for node in nodes])


def same_stack(nodes: list[NodeControl]) -> list[NodeControl]:
    """Services of one local stack share one LocalStack: each restart saves the pids it knows to the stack's
    state file, so a second copy would write back the old, dead pids of the services the first restarted."""
    stacks: dict = {}
    shared: list[NodeControl] = []
    for node in nodes:
        if isinstance(node, LocalNode):
            stack = stacks.setdefault(node.stack.state_dir, node.stack)
            shared.append(LocalNode(stack, node.name))
        else:
            shared.append(node)
    return shared


def require_quorum_loss_possible(given: list[Address], known: int, quorum: int) -> int:
    """How many of the given sentinels to stop; a SetupError if the ones we can reach are not enough."""
    stop = sentinels_to_stop(known, quorum)
    if known > len(given):
        raise SetupError(f"--fault quorum-loss: the sentinels know {known} sentinels but {len(given)} were given "
                         f"({', '.join(format_endpoint(*a) for a in given)}): give every one with --sentinel "
                         "HOST:PORT, or the harness could not stop enough of them")
    if stop >= known:
        raise SetupError(f"--fault quorum-loss: with {known} sentinel(s) and quorum {quorum}, every sentinel would "
                         "have to stop and nothing would be left to watch: use --fault auto")
    return stop
