"""What a cluster looks like right now: shards, slot ranges and roles, read from CLUSTER NODES.

CLUSTER NODES is answered by every Redis/Valkey version with cluster support, and it carries the
announced hostname (Valkey 7+/Redis 7+), so the harness reads any cluster, not just ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from redis.crc import key_slot

from lib.util import raw_command

Address = tuple[str, int]
SLOTS = 16384


@dataclass(frozen=True)
class ClusterNode:
    """One line of CLUSTER NODES."""

    node_id: str
    ip: str  # what other nodes use to reach it (MIGRATE targets it)
    port: int
    hostname: str  # announced hostname, "" if none
    flags: frozenset[str]
    master_id: str  # "-" for a primary
    link_state: str
    slots: tuple[tuple[int, int], ...]
    migrating: tuple[str, ...] = ()

    @property
    def announced(self) -> Address:
        """The address clients are told about (hostname when announced, else the ip)."""
        return (self.hostname or self.ip), self.port

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool({"fail", "fail?", "noaddr"} & self.flags) or self.link_state != "connected"

    @property
    def slot_count(self) -> int:
        return sum(high - low + 1 for low, high in self.slots)


@dataclass
class Shard:
    primary: ClusterNode
    replicas: list[ClusterNode] = field(default_factory=list)

    @property
    def slots(self) -> tuple[tuple[int, int], ...]:
        return self.primary.slots

    @property
    def label(self) -> str:
        return ",".join(f"{low}-{high}" if high != low else str(low) for low, high in self.slots)

    def owns(self, slot: int) -> bool:
        return any(low <= slot <= high for low, high in self.slots)


def parse_cluster_nodes(text: str) -> list[ClusterNode]:
    nodes = []
    for line in text.strip().splitlines():
        parts = line.split()
        address, _, extra = parts[1].partition(",")  # ip:port@cport[,hostname]
        ip_port = address.split("@")[0]
        ip, _, port = ip_port.rpartition(":")
        hostname = extra.split(",")[0] if extra else ""
        slots, migrating = [], []
        for token in parts[8:]:
            if token.startswith("["):
                migrating.append(token)
                continue
            low, _, high = token.partition("-")
            slots.append((int(low), int(high or low)))
        nodes.append(ClusterNode(parts[0], ip, int(port), hostname, frozenset(parts[2].split(",")), parts[3],
                                 parts[7], tuple(slots), tuple(migrating)))
    return nodes


def read_cluster_nodes(client: redis.Redis) -> list[ClusterNode]:
    """CLUSTER NODES of the node behind client, parsed by us."""
    # raw: redis-py's CLUSTER NODES callback turns the reply into a dict keyed by ip:port, without
    # the announced hostname that the harness needs.
    return parse_cluster_nodes(_decoded(raw_command(client, "CLUSTER", "NODES")))


def _decoded(reply: str | bytes) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply


def own_view(nodes: list[ClusterNode]) -> ClusterNode:
    """The line of the node that answered (flag myself): the only one that shows its open slots."""
    return next(n for n in nodes if "myself" in n.flags)


def open_slots(node: ClusterNode) -> dict[int, tuple[str, str]]:
    """slot -> ("migrating" | "importing", other node id), from a myself line's [slot->-id] / [slot-<-id]."""
    found = {}
    for token in node.migrating:
        body = token.strip("[]")
        for arrow, state in (("->-", "migrating"), ("-<-", "importing")):
            if arrow in body:
                slot, _, other = body.partition(arrow)
                found[int(slot)] = (state, other)
    return found


def owner_of(nodes: list[ClusterNode], slot: int) -> ClusterNode | None:
    return next((n for n in nodes if any(low <= slot <= high for low, high in n.slots)), None)


def shards_of(nodes: list[ClusterNode]) -> list[Shard]:
    """Primaries that own slots, each with its replicas, ordered by their first slot."""
    shards = {n.node_id: Shard(n) for n in nodes if n.is_primary and n.slots}
    for node in nodes:
        if not node.is_primary and node.master_id in shards:
            shards[node.master_id].replicas.append(node)
    return sorted(shards.values(), key=lambda s: s.slots[0][0])


def covered_slots(shards: list[Shard]) -> int:
    return sum(s.primary.slot_count for s in shards)


def shard_for_slot(shards: list[Shard], slot: int) -> Shard | None:
    return next((s for s in shards if s.owns(slot)), None)


def key_in_shard(shard: Shard, prefix: str, seq: int) -> str:
    """A key named after seq that hashes into the shard (a few tries: each shard owns ~1/n of slots)."""
    for attempt in range(100_000):
        key = f"{prefix}{seq}:{attempt}"
        if shard.owns(key_slot(key.encode())):
            return key
    raise ValueError(f"no key found for shard {shard.label}")


def tag_for_slot(slot: int, prefix: str = "t") -> str:
    """A hash tag {tag} whose keys all land in slot (found by search: CRC16 is not invertible here)."""
    for n in range(1_000_000):
        tag = f"{prefix}{n}"
        if key_slot(tag.encode()) == slot:
            return tag
    raise ValueError(f"no tag found for slot {slot}")
