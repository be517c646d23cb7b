"""The fault of a cluster suite (lib/faults/registry.py), built from what the suite read of the cluster before any
server is touched; shared with the cache suite."""

from __future__ import annotations

from collections.abc import Callable

from lib.cluster_client import ClusterClient
from lib.description import TestDescription
from lib.faults import registry
from lib.faults.fault import Fault, FaultContext, Node, WaitNotice, make_fault
from lib.history import History
from lib.report.cluster_report import kill_wait_view
from lib.suites.cli import fault_options
from lib.topology.cluster_topology import ClusterNode, Shard


def build_fault(test: TestDescription, client: ClusterClient, shards: list[Shard], history: History,
                notify: Callable[[WaitNotice], None] | None = None) -> tuple[Fault | None, Callable[[], Shard] | None]:
    """The fault, and a callable naming the shard it hit (asked after the fault: a person may kill any primary).

    The fault hits the primary of slot 0 (node-7000 in our stack) or its shard. Built before any server is
    touched: a fault that cannot be done (no docker, no replica) is a setup error that costs nothing.
    """
    fault_class = registry.chosen(test.fault, test.fault_file)  # --fault or --fault-file
    if fault_class is None:
        return None, None
    victim = shards[0]

    def node(n: ClusterNode) -> Node:
        return Node(n.announced, client.reachable(n), n.node_id)

    ctx = FaultContext("cluster", test.suite, f"shard {victim.label}", node(victim.primary),
                       [node(r) for r in victim.replicas],
                       others=[node(n) for s in shards[1:] for n in (s.primary, *s.replicas)],
                       primaries=[node(s.primary) for s in shards], password=client.password,
                       options=fault_options(test), connect=lambda address, **_: client.node(address), notify=notify,
                       live_view=kill_wait_view(shards, history))
    fault = make_fault(fault_class, ctx)

    def hit_shard() -> Shard:
        hit = fault.hit()
        return next((s for s in shards if client.reachable(s.primary) == hit), victim)

    return fault, hit_shard
