"""A live migration of one slot between two primaries, the way resharding does it.

IMPORTING on the target, MIGRATING on the source, then MIGRATE key by key: while it runs, the
source answers ASK for keys it no longer has, which is what the ASK check needs to observe.
Completing it is SETSLOT NODE on every primary; moving the slot back is a second migration.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from lib.cluster_client import ClusterClient
from lib.cluster_topology import ClusterNode
from lib.util import format_endpoint
from lib.waits import wait_until

MIGRATE_TIMEOUT_MS = 5000


@dataclass
class SlotMigration:
    client: ClusterClient
    slot: int
    source: ClusterNode
    target: ClusterNode

    def _node(self, node: ClusterNode) -> redis.Redis:
        return self.client.node(self.client.reachable(node), timeout=5.0)

    def _on(self, node: ClusterNode, *args) -> object:
        client = self._node(node)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def begin(self) -> None:
        """Target first: a source that says ASK before the target imports would send clients nowhere."""
        self._on(self.target, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source.node_id)
        self._on(self.source, "CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target.node_id)

    def move_keys(self, keys: list[str]) -> int:
        """MIGRATE these keys from source to target (the source reaches the target by its bus-side ip)."""
        if not keys:
            return 0
        auth = ["AUTH", self.client.password] if self.client.password else []
        reply = self._on(self.source, "MIGRATE", self.target.ip, self.target.port, "", 0, MIGRATE_TIMEOUT_MS,
                         *auth, "KEYS", *keys)
        return 0 if reply == "NOKEY" else len(keys)

    def keys_left(self, count: int = 1000) -> list[str]:
        return list(self._on(self.source, "CLUSTER", "GETKEYSINSLOT", self.slot, count))

    def complete(self, primaries: list[ClusterNode], timeout: float = 30.0) -> int:
        """Move the remaining keys, hand the slot to the target everywhere, wait until all agree."""
        moved = 0
        while keys := self.keys_left():
            moved += self.move_keys(keys)
        self._on(self.target, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        self._on(self.source, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        for node in primaries:
            if node.node_id not in (self.source.node_id, self.target.node_id):
                self._on(node, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        wait_owner(self.client, primaries, self.slot, self.target, timeout)
        return moved

    def cancel(self, primaries: list[ClusterNode]) -> None:
        """Best effort after an error: keys already moved are moved back, then both sides STABLE."""
        back = SlotMigration(self.client, self.slot, self.target, self.source)
        for _ in range(100):
            keys = back.keys_left()
            if not keys:
                break
            back.move_keys(keys)
        for node in (self.source, self.target):
            self._on(node, "CLUSTER", "SETSLOT", self.slot, "STABLE")


def wait_owner(client: ClusterClient, primaries: list[ClusterNode], slot: int, owner: ClusterNode,
               timeout: float) -> str:
    """Every primary's CLUSTER NODES shows owner holding slot, with no migration left."""
    addresses = [client.reachable(p) for p in primaries]

    def agreed() -> tuple[bool, str]:
        seen = []
        for address in addresses:
            nodes = client.nodes([address])
            holder = next((n for n in nodes if any(lo <= slot <= hi for lo, hi in n.slots)), None)
            busy = any(n.migrating for n in nodes if "myself" in n.flags)
            seen.append(f"{format_endpoint(*address)}: {holder.announced if holder else None}"
                        + (" (migrating)" if busy else ""))
            if holder is None or holder.node_id != owner.node_id or busy:
                return False, "; ".join(seen)
        return True, "; ".join(seen)

    return wait_until(agreed, timeout=timeout, what=f"every primary to see slot {slot} on "
                      f"{format_endpoint(*owner.announced)}")
