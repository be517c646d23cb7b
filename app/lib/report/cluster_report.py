"""How the cluster suites look: the topology and key-distribution tables, the failover timeline, and the
live view while a person is asked to kill a primary."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.table import Table

from lib.cluster_client import ClusterClient
from lib.history import OK as OP_OK
from lib.history import History
from lib.topology.cluster_topology import SLOTS, Shard, covered_slots
from lib.util import format_endpoint


def topology_table(client: ClusterClient, shards: list[Shard]) -> Table:
    table = Table(title="Cluster topology")
    for column in ("shard (slots)", "role", "node (announced)", "reached at", "node id", "state"):
        table.add_column(column)
    for shard in shards:
        for i, node in enumerate([shard.primary, *shard.replicas]):
            reached = client.reachable(node)
            table.add_row(shard.label if i == 0 else "", "primary" if i == 0 else "replica",
                          format_endpoint(*node.announced),
                          format_endpoint(*reached) if reached != node.announced else "same",
                          node.node_id[:8], "failed" if node.failed else "connected")
    return table


def distribution_table(shards: list[Shard], metrics: dict[str, Any]) -> Table:
    """The distribution check's counts (metrics per_shard, written) beside each shard's share of the slots."""
    written, counts = metrics["written"], metrics["per_shard"]
    table = Table(title=f"Key distribution ({written:,} keys)")
    for column in ("shard (slot ranges)", "primary", "slots", "keys", "share of keys", "share of slots"):
        table.add_column(column)
    for shard in shards:
        count = counts.get(shard.label, 0)
        table.add_row(shard.label, format_endpoint(*shard.primary.announced), f"{shard.primary.slot_count:,}",
                      f"{count:,}", f"{count / written:.1%}", f"{shard.primary.slot_count / SLOTS:.1%}")
    total = sum(counts.values())
    table.add_row("total", "", f"{covered_slots(shards):,}", f"{total:,}", f"{total / written:.1%}", "")
    return table





def kill_wait_view(shards: list[Shard], history: History) -> Callable[[float], Table]:
    """The live view of --fault manual: each shard's writes in the last second, so the kill shows at once."""
    def render(remaining: float) -> Table:
        table = Table(title=f"waiting for a primary to be killed ({remaining:,.0f}s left)")
        table.add_column("shard")
        table.add_column("writes ok (last s)")
        table.add_column("errors (last s)")
        now = time.monotonic()
        recent = [op for op in history.snapshot() if op.end >= now - 1.0]
        for shard in shards:
            mine = [op for op in recent if op.group == shard.label]
            table.add_row(shard.label, str(sum(op.outcome == OP_OK for op in mine)),
                          str(sum(op.outcome != OP_OK for op in mine)))
        return table
    return render
