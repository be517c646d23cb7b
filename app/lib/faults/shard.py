"""A whole shard lost (its primary and its replicas killed together, so nothing can be promoted), and the
kill of one node given as a NodeControl (a replica, for --fault replica-kill).

The run restarts the shard itself once the cluster's answer is seen (heals_in_run): the other shards keep
serving with cluster-require-full-coverage no, every shard stops with yes; then it measures the recovery.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.errors import SetupError
from lib.faults.compound import Compound
from lib.faults.fault import DockerKill, Fault, LocalKill
from lib.faults.nodes import DockerNode, LocalNode, NodeControl


def kill_of(node: NodeControl) -> Fault:
    """SIGKILL (docker kill) of one node, restored by starting it again, described as every kill is."""
    if isinstance(node, LocalNode):
        return LocalKill(node.stack, node.name)
    if isinstance(node, DockerNode):
        return DockerKill(node.name, node.address)
    raise SetupError(f"cannot kill {node.name}: neither a local stack's service nor a compose container; "
                     "use --fault exec --kill-cmd CMD --restore-cmd CMD, or --fault manual")


@dataclass
class ShardLoss(Compound):
    """The replicas, then the primary: restored in reverse, so the primary is back before its replicas."""

    heals_in_run = True


def shard_loss(primary: NodeControl, replicas: list[NodeControl]) -> ShardLoss:
    stacks: dict = {}

    def one_stack(node: NodeControl) -> NodeControl:
        """Local nodes of one stack share one LocalStack: each start saves the whole state file, so a second
        object would write back the first node's old pid."""
        if isinstance(node, LocalNode):
            return LocalNode(stacks.setdefault(node.stack.state_dir, node.stack), node.name)
        return node

    return ShardLoss([kill_of(one_stack(node)) for node in [*replicas, primary]], label="shard loss")
