"""What one cluster failover run recorded, read back from the history alone (ClusterFailoverView.from_history): the
checks judge this view, so a saved run is judged the same way; and what its fault should cause.

The run writes what it learns into the history: the layout before the fault (CLUSTER NODES lines), the shard the
fault hit, the node promoted or the node the cluster flagged fail, where the pinned writer wrote, what the cluster
ran with, and the events (flags, promotion, heal, demotion, recovery).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lib import events
from lib.faults import fault
from lib.faults.fault import EVIDENCE
from lib.history import HARNESS, NEMESIS, OK, PINNED, PLAIN, History, Op
from lib.topology.cluster_topology import Address, ClusterNode, Shard, parse_cluster_nodes, shards_of
from lib.util import format_endpoint, parse_endpoint

# What the fault should cause: the run waits for that, and the checks judge against it (lib/faults/fault.py).
PROMOTION, NO_FAILOVER, SHARD_DOWN = fault.PROMOTION, fault.NO_FAILOVER, fault.SHARD_DOWN

PINNED_GROUP = "pinned to the old primary"  # the group of the pinned writer's ops (process PINNED)

# What the run observed, as operations of the harness process.
LAYOUT = "layout"  # CLUSTER NODES lines of every node before the fault
VICTIM = "victim"  # the label of the shard the fault hit
PROMOTED_NODE = "promoted node"  # its CLUSTER NODES line
DOWN_NODE = "down node"  # the node whose failure flags the run watched (a replica, a lost primary)
PINNED_TO = "pinned to"  # where the pinned writer wrote
SETTINGS = "settings"  # what the cluster ran with (CONFIG GET/SET)
GAVE_UP = "gave up"  # a wait that timed out: its error is why the run stopped waiting
BROKEN = "failover broken"  # the failover phase stopped on an error: why, with what was healed after it
PRIMARY_KEPT_SLOTS = "primary kept slots"  # after a replica's loss: the primary still a primary with its slots
REJOIN = "rejoin"  # the rejoin phase's process (lib/suites/cluster_rejoin_phase.py): restarted, rejoined, roles and
# config put back, undone; lib/checks/cluster_rejoin.py judges it


@dataclass
class ClusterFailoverView:
    fault: str
    shards: list[Shard]  # the layout before the fault
    history: History = field(default_factory=History)
    victim: Shard | None = None
    fault_at: float = 0.0
    promoted_at: float | None = None
    promoted: ClusterNode | None = None
    recovered_at: float | None = None
    timeout_reason: str | None = None
    expect: str = PROMOTION
    down: ClusterNode | None = None  # the node whose failure flags the run watched (a replica, a lost primary)
    down_seen_at: float | None = None  # when the cluster flagged it fail (no promotion expected)
    healed_at: float | None = None  # the run healed the fault (heals_in_run)
    demoted_at: float | None = None  # the healed old primary turned replica
    pinned: Address | None = None  # where the writer pinned to the old primary wrote (ops of process PINNED)
    settings: dict[str, str] = field(default_factory=dict)  # what the cluster ran with (CONFIG GET/SET)
    facts: dict[str, Any] = field(default_factory=dict)  # what the fault says of itself (lib/faults/fault.py)
    evidence: dict[str, Any] = field(default_factory=dict)  # what the fault saw itself (a server's shutdown log)

    def offset(self, at: float) -> float:
        return at - self.fault_at

    @property
    def end_at(self) -> float:
        """When the run recovered, else when its last operation ended (a run that never recovered)."""
        if self.recovered_at is not None:
            return self.recovered_at
        return max((op.end for op in self.history.snapshot(None)), default=self.fault_at)

    def ops(self, shard: Shard | None = None) -> list[Op]:
        ops = self.history.snapshot()
        return ops if shard is None else [op for op in ops if op.group == shard.label]

    def pinned_ops(self) -> list[Op]:
        return self.history.snapshot(PINNED)

    @property
    def plain(self) -> History | None:
        """The stock RedisCluster yardstick's ops, as a history of their own."""
        ops = self.history.snapshot(PLAIN)
        if not ops:
            return None
        plain = History()
        for op in ops:
            plain.record(Op(op.seq, op.key, op.start, op.end, op.outcome, op.error, group=op.group))
        return plain

    @classmethod
    def from_history(cls, history: History, facts: dict[str, Any] | None) -> ClusterFailoverView:
        """The view of a recorded run: facts are what the fault said of itself (the test description's)."""
        facts = facts or {}
        shards = shards_of(parse_cluster_nodes(_value(history, LAYOUT) or ""))
        label = _value(history, VICTIM)
        seen = history.first_event(events.FAULT_SEEN) or history.first_event(events.FAULT)
        fault_at = seen.at if seen is not None else 0.0
        inject = history.observed(NEMESIS, "inject")
        gave_up = history.observed(HARNESS, GAVE_UP)

        def first(name: str) -> float | None:
            return next((e.at for e in sorted(history.events, key=lambda e: e.at)
                         if e.name == name and e.at >= fault_at), None)

        evidence = dict((history.observed(NEMESIS, EVIDENCE).value or {}) if history.observed(NEMESIS, EVIDENCE)
                        else {})
        evidence.pop("loss_explained", None)
        pinned = _value(history, PINNED_TO)
        return cls(fault=(inject.value or {}).get("description", "") if inject is not None else "",
                   shards=shards, history=history, victim=next((s for s in shards if s.label == label), None),
                   fault_at=fault_at, promoted_at=first(events.PROMOTED), promoted=_node(history, PROMOTED_NODE),
                   recovered_at=first(events.RECOVERED), timeout_reason=gave_up.error if gave_up else None,
                   expect=facts.get("expects", PROMOTION), down=_node(history, DOWN_NODE),
                   down_seen_at=first(events.NODE_FAIL), healed_at=first(events.HEALED),
                   demoted_at=first(events.DEMOTED), pinned=parse_endpoint(pinned) if pinned else None,
                   settings=dict(_value(history, SETTINGS) or {}), facts=dict(facts), evidence=evidence)


def node_line(node: ClusterNode) -> str:
    """A CLUSTER NODES line for node (parse_cluster_nodes reads it back): how the history keeps a node."""
    address = f"{node.ip}:{node.port}@0" + (f",{node.hostname}" if node.hostname else "")
    slots = [f"{low}-{high}" if high != low else str(low) for low, high in node.slots]
    return " ".join([node.node_id, address, ",".join(sorted(node.flags)), node.master_id, "0", "0", "0",
                     node.link_state, *slots, *node.migrating])


def record_layout(history: History, shards: list[Shard]) -> None:
    history.observe(HARNESS, LAYOUT, "\n".join(node_line(n) for s in shards for n in (s.primary, *s.replicas)))


def record_node(history: History, f: str, node: ClusterNode | None) -> None:
    if node is not None:
        history.observe(HARNESS, f, node_line(node))


def record_pinned(history: History, address: Address) -> None:
    history.observe(HARNESS, PINNED_TO, format_endpoint(*address))


def _value(history: History, f: str) -> Any:
    op = history.observed(HARNESS, f)
    return op.value if op is not None and op.outcome == OK else None


def _node(history: History, f: str) -> ClusterNode | None:
    line = _value(history, f)
    return parse_cluster_nodes(line)[0] if line else None
