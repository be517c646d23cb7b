"""A cluster in memory, behind the surface of lib.cluster_client.ClusterClient that the cluster verdicts use.

It keeps slot owners, keys per node and open slot migrations, and answers the way a cluster node does:
a plain client at the wrong node gets MOVED, at the source of a migrating slot ASK (for a key it no
longer has); the cluster client keeps its own slot map and follows both. Each node counts the
redirects it sent (INFO errorstats), as the real servers do. CLUSTER SETSLOT / MIGRATE / ASKING /
GETKEYSINSLOT / KEYSLOT / NODES are understood, so lib.phases.cluster_migration runs unchanged against it.
The knobs (`plain_redirects`, `follows_moved`, `keyslot`, `write_to`, `dropped`, `migrate_loses`,
`fails_reads_while_migrating`) each break one behaviour.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable

from redis.crc import key_slot
from redis.exceptions import AskError, ConnectionError, MovedError

from lib.cluster_client import ClusterClient
from lib.topology.cluster_topology import SLOTS, ClusterNode, Shard, parse_cluster_nodes, shards_of

Address = tuple[str, int]

# Three primaries and a replica each; node-700X announced, 10.0.0.1X the bus-side ip.
NODES_TEXT = """\
a0 10.0.0.10:7000@17000,node-7000 master - 0 0 1 connected 0-5460
b1 10.0.0.11:7001@17001,node-7001 master - 0 0 2 connected 5461-10922
c2 10.0.0.12:7002@17002,node-7002 master - 0 0 3 connected 10923-16383
d3 10.0.0.13:7003@17003,node-7003 slave a0 0 0 1 connected
e4 10.0.0.14:7004@17004,node-7004 slave b1 0 0 2 connected
f5 10.0.0.15:7005@17005,node-7005 slave c2 0 0 3 connected
"""


def three_shards(text: str = NODES_TEXT) -> list[Shard]:
    return shards_of(parse_cluster_nodes(text))


class FakeCluster:
    def __init__(self, shards: list[Shard], *, state: str = "ok"):
        self.shards = shards
        self.nodes = [n for s in shards for n in (s.primary, *s.replicas)]
        self.by_id = {n.node_id: n for n in self.nodes}
        self.owner = [next((s.primary.node_id for s in shards if s.owns(slot)), None) for slot in range(SLOTS)]
        self.data: dict[str, dict[str, str]] = {n.node_id: {} for n in self.nodes}
        self.open: dict[tuple[str, int], tuple[str, str]] = {}  # (node id, slot) -> (migrating|importing, other)
        self.cluster_state: dict[str, str] = {n.node_id: state for n in self.nodes}
        self.replication: dict[str, dict] = {}
        self.canned_nodes: dict[str, str] = {}  # node id -> CLUSTER NODES text it answers (overrides the model)
        self.sent: dict[str, Counter[str]] = {n.node_id: Counter() for n in self.nodes}  # MOVED/ASK per node
        self.plain_redirects = True  # False: a node serves keys of slots it does not own (no MOVED/ASK)
        self.follows_moved = True  # False: the cluster client gives up on MOVED instead of following it
        self.keyslot: Callable[[str], int] = lambda key: key_slot(key.encode())  # CLUSTER KEYSLOT's answer
        self.write_to: dict[str, str] = {}  # owner id -> id of the node a write really lands on
        self.dropped: set[str] = set()  # node ids that acknowledge writes and keep nothing
        self.migrate_loses: set[str] = set()  # keys MIGRATE acknowledges and drops
        self.fails_reads_while_migrating = False  # the cluster client's GET raises while a slot is open
        self.misrouted = 0  # writes that landed elsewhere than their slot's owner (write_to)
        self.on_cluster_failover: Callable[[str], None] | None = None  # CLUSTER FAILOVER on a node id
        self.commands: list[tuple] = []

    # ---- lookups ------------------------------------------------------------------------------------
    def node_at(self, address: Address) -> ClusterNode:
        found = next((n for n in self.nodes if n.announced == tuple(address) or (n.ip, n.port) == tuple(address)),
                     None)
        if found is None:
            raise AssertionError(f"no fake node at {address}")
        return found

    def slot_of(self, key: str) -> int:
        return key_slot(key.encode())

    def store(self, node_id: str, key: str, value: str) -> None:
        if node_id not in self.dropped:
            self.data[node_id][key] = value

    # ---- what the cluster client does -----------------------------------------------------------------
    def migrating_to(self, node_id: str, slot: int) -> str | None:
        state, other = self.open.get((node_id, slot), ("", ""))
        return other if state == "migrating" else None

    def route(self, key: str, asked: str | None = None) -> str | None:
        """The node a cluster client ends up on for key, asking `asked` first (its slot map) and following
        MOVED and ASK; None when it does not follow MOVED (follows_moved False)."""
        slot = self.slot_of(key)
        owner = self.owner[slot]
        if asked is not None and asked != owner:
            self.sent[asked]["MOVED"] += 1
            if not self.follows_moved:
                return None
        target = self.migrating_to(owner, slot)
        if target is not None and key not in self.data[owner]:
            self.sent[owner]["ASK"] += 1
            return target
        return owner

    def view(self, asked: ClusterNode) -> list[ClusterNode]:
        """CLUSTER NODES as `asked` answers it: slot ranges from the owner table, its own migrations."""
        if asked.node_id in self.canned_nodes:
            return parse_cluster_nodes(self.canned_nodes[asked.node_id])
        view = []
        for node in self.nodes:
            slots = _ranges([slot for slot, owner in enumerate(self.owner) if owner == node.node_id])
            mine = node.node_id == asked.node_id
            arrows = {"migrating": "->-", "importing": "-<-"}
            migrating = tuple(f"[{slot}{arrows[state]}{other}]" for (holder, slot), (state, other)
                              in sorted(self.open.items()) if holder == node.node_id) if mine else ()
            flags = frozenset(node.flags | {"myself"}) if mine else node.flags
            view.append(ClusterNode(node.node_id, node.ip, node.port, node.hostname, flags, node.master_id,
                                    node.link_state, slots, migrating))
        return view


def _ranges(slots: list[int]) -> tuple[tuple[int, int], ...]:
    ranges: list[list[int]] = []
    for slot in slots:
        if ranges and ranges[-1][1] == slot - 1:
            ranges[-1][1] = slot
        else:
            ranges.append([slot, slot])
    return tuple((low, high) for low, high in ranges)


class FakeRedisCluster:
    """redis.cluster.RedisCluster: a slot map read once at connect (so a migration behind its back makes it
    stale), MOVED followed and remembered, ASK followed for one command."""

    def __init__(self, world: FakeCluster):
        self.world = world
        self.slot_map = list(world.owner)

    def ping(self) -> bool:
        return True

    def _node_for(self, key: str) -> str | None:
        slot = self.world.slot_of(key)
        node = self.world.route(key, asked=self.slot_map[slot])
        if node is not None and self.world.owner[slot] is not None:
            self.slot_map[slot] = self.world.owner[slot]  # MOVED updates the map; ASK does not change the owner
        return node

    def _write(self, key: str, value: str) -> bool:
        node = self._node_for(key)
        lands = self.world.write_to.get(node, node)
        self.world.misrouted += lands != node
        self.world.store(lands, key, value)
        return True

    def set(self, key: str, value: str) -> bool:
        return self._write(key, value)

    def get(self, key: str) -> str | None:
        if self.world.fails_reads_while_migrating and self.world.open:
            raise ConnectionError("Connection reset by peer")
        node = self._node_for(key)
        return None if node is None else self.world.data[node].get(key)

    def mset_nonatomic(self, mapping: dict[str, str]) -> list[bool]:
        return [self._write(k, v) for k, v in mapping.items()]

    def mget_nonatomic(self, keys: list[str]) -> list[str | None]:
        return [self.get(k) for k in keys]

    def pipeline(self) -> FakeClusterPipeline:
        return FakeClusterPipeline(self)


class FakeClusterPipeline:
    def __init__(self, cluster: FakeRedisCluster):
        self.cluster, self.queued = cluster, []

    def set(self, key: str, value: str) -> None:
        self.queued.append((key, value))

    def execute(self) -> list[bool]:
        return [self.cluster.set(k, v) for k, v in self.queued]


class FakeNodeClient:
    """A plain redis.Redis to one node: no redirects followed."""

    def __init__(self, world: FakeCluster, address: Address):
        self.world, self.me = world, world.node_at(address)

    def cluster(self, subcommand: str) -> dict:
        assert subcommand == "INFO", f"only CLUSTER INFO is faked, asked {subcommand}"
        return {"cluster_state": self.world.cluster_state[self.me.node_id]}

    def info(self, section: str = "") -> dict:
        if section == "errorstats":
            return {f"errorstat_{kind}": {"count": count} for kind, count in self.world.sent[self.me.node_id].items()}
        return self.world.replication.get(self.me.node_id, {"role": "master"})

    def get(self, key: str) -> str | None:
        world, slot = self.world, self.world.slot_of(key)
        mine = world.data[self.me.node_id]
        if world.plain_redirects and world.owner[slot] != self.me.node_id:
            owner = world.by_id[world.owner[slot]]
            world.sent[self.me.node_id]["MOVED"] += 1
            raise MovedError(f"{slot} {owner.hostname}:{owner.port}")
        target_id = world.migrating_to(self.me.node_id, slot)
        if world.plain_redirects and target_id is not None and key not in mine:
            target = world.by_id[target_id]
            world.sent[self.me.node_id]["ASK"] += 1
            raise AskError(f"{slot} {target.hostname}:{target.port}")
        return mine.get(key)

    def scan_iter(self, match: str = "*", count: int = 10):
        yield from [k for k in self.world.data[self.me.node_id] if fnmatch.fnmatchcase(k, match)]

    def execute_command(self, *args):
        args = (*str(args[0]).split(), *args[1:])  # "CLUSTER KEYSLOT", key -> CLUSTER, KEYSLOT, key
        world, me = self.world, self.me.node_id
        world.commands.append((self.me.hostname, *args))
        words = [str(a).upper() for a in args[:3]]
        if words[0] == "ASKING":
            return "OK"
        if words[:2] == ["CLUSTER", "FAILOVER"] and world.on_cluster_failover is not None:
            world.on_cluster_failover(me)
            return "OK"
        if words[:2] == ["CLUSTER", "KEYSLOT"]:
            return world.keyslot(args[2])
        if words[:2] == ["CLUSTER", "GETKEYSINSLOT"]:
            slot, count = int(args[2]), int(args[3])
            return [k for k in world.data[me] if world.slot_of(k) == slot][:count]
        if words[:2] == ["CLUSTER", "SETSLOT"]:
            return self._setslot(int(args[2]), str(args[3]).upper(), *args[4:])
        if words[0] == "MIGRATE":
            target = world.node_at((args[1], int(args[2]))).node_id
            keys = list(args[args.index("KEYS") + 1:])
            moved = [k for k in keys if k in world.data[me]]
            for key in moved:
                value = world.data[me].pop(key)
                if key not in world.migrate_loses:
                    world.data[target][key] = value
            return "OK" if moved else "NOKEY"
        raise AssertionError(f"command not faked: {args}")

    def _setslot(self, slot: int, how: str, *rest):
        """IMPORTING/MIGRATING open the slot on this node; NODE (the owner changes) and STABLE close it."""
        world, me = self.world, self.me.node_id
        if how in ("IMPORTING", "MIGRATING"):
            world.open[(me, slot)] = (how.lower(), rest[0])
        else:
            if how == "NODE":
                world.owner[slot] = rest[0]
            world.open.pop((me, slot), None)
        return "OK"

    def pipeline(self, transaction: bool = False) -> FakeNodePipeline:
        return FakeNodePipeline(self)

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeNodeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FakeNodePipeline:
    def __init__(self, node: FakeNodeClient):
        self.node, self.queued = node, []

    def execute_command(self, *args) -> None:
        self.queued.append(lambda: self.node.execute_command(*args))

    def get(self, key: str) -> None:
        self.queued.append(lambda: self.node.get(key))

    def execute(self, raise_on_error: bool = True) -> list:
        replies = []
        for call in self.queued:
            try:
                replies.append(call())
            except (MovedError, AskError) as exc:
                if raise_on_error:
                    raise
                replies.append(exc)
        return replies


class FakeClusterClient:
    """lib.cluster_client.ClusterClient over a FakeCluster (announced addresses are reachable as they are)."""

    password = None
    redirects_sent = ClusterClient.redirects_sent  # the real one: INFO errorstats of the node

    def __init__(self, world: FakeCluster):
        self.world = world
        self.cluster = FakeRedisCluster(world)
        self.seeds = [world.shards[0].primary.announced]

    def call(self, operation):
        return operation(self.cluster)

    def node(self, address: Address, timeout: float = 1.0, *, decode: bool = True) -> FakeNodeClient:
        return FakeNodeClient(self.world, address)

    def reachable(self, node: ClusterNode) -> Address:
        return node.announced

    def nodes(self, via: list[Address] | None = None) -> list[ClusterNode]:
        return self.world.view(self.world.node_at((via or self.seeds)[0]))

    def shards(self, via: list[Address] | None = None) -> list[Shard]:
        return shards_of(self.nodes(via))
