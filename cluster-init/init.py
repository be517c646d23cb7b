"""Form a Valkey Cluster: meet the nodes, assign slots, attach replicas, wait until it is ok.

    python init.py --primary HOST:PORT ... --replica HOST:PORT ...   (replica i follows primary i)

Idempotent: it looks (CLUSTER NODES on every node) before it acts. It only MEETs nodes nobody
knows yet, only assigns slots nobody owns, only attaches replicas that are not attached. A second
run changes nothing, also after a failover swapped a shard's primary and replica (a shard is the
pair, whichever of the two holds the slots). On a half-formed cluster it completes the job, or
stops with the reason (a slot owned outside its shard, a slot in migration, a node it was not told
about) without touching anything. It runs in its own container (compose) or as a local job
(python app/stack.py up cluster), so it depends on redis-py only.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

SLOTS = 16384


class InitError(Exception):
    """The cluster is in a state this script will not change by itself."""


@dataclass(frozen=True)
class Node:
    host: str
    port: int

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Shard:
    primary: Node
    replicas: tuple[Node, ...]
    low: int
    high: int

    @property
    def members(self) -> tuple[Node, ...]:
        return (self.primary, *self.replicas)


@dataclass
class Entry:
    """One line of CLUSTER NODES."""

    node_id: str
    address: str  # ip:port
    flags: set[str]
    master_id: str
    slots: list[tuple[int, int]]
    migrating: list[str]  # "[slot->-id]" / "[slot-<-id]" tokens

    @property
    def handshake(self) -> bool:
        return "handshake" in self.flags


def parse_nodes(text: str) -> list[Entry]:
    entries = []
    for line in text.strip().splitlines():
        parts = line.split()
        slots, migrating = [], []
        for token in parts[8:]:
            if token.startswith("["):
                migrating.append(token)
                continue
            low, _, high = token.partition("-")
            slots.append((int(low), int(high or low)))
        address = parts[1].split("@")[0].split(",")[0]
        entries.append(Entry(parts[0], address, set(parts[2].split(",")), parts[3], slots, migrating))
    return entries


def parse_info(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def slot_ranges(count: int) -> list[tuple[int, int]]:
    """16384 slots split evenly: 3 primaries -> 0-5460, 5461-10922, 10923-16383 (as valkey-cli does)."""
    step = SLOTS / count
    return [(round(i * step), round((i + 1) * step) - 1) for i in range(count)]


def shards_for(primaries: list[Node], replicas: list[Node]) -> list[Shard]:
    """Replica i follows primary i mod len(primaries); each primary gets its even slot range."""
    if len(set(primaries + replicas)) != len(primaries) + len(replicas):
        raise InitError("a node is listed twice")
    ranges = slot_ranges(len(primaries))
    return [Shard(p, tuple(replicas[i::len(primaries)]), *ranges[i]) for i, p in enumerate(primaries)]


# ---- planning: pure functions of what the nodes report -----------------------------------------

def plan_meets(ids: dict[Node, str], addresses: dict[Node, str], view: list[Entry]) -> list[Node]:
    """Nodes the first node neither knows nor is already shaking hands with.

    Meeting a node that is mid-handshake again is what leaves duplicate entries behind.
    """
    known = {e.node_id for e in view if not e.handshake}
    pending = {e.address for e in view if e.handshake}
    return [node for node in ids if ids[node] not in known and addresses[node] not in pending]


def check_no_strangers(ids: dict[Node, str], views: dict[Node, list[Entry]]) -> None:
    """A node id nobody told us about (e.g. the old id of a node that was reset) stops the run."""
    ours = set(ids.values())
    for node, view in views.items():
        strangers = [f"{e.node_id[:8]} at {e.address} ({','.join(sorted(e.flags))})"
                     for e in view if not e.handshake and e.node_id not in ours]
        if strangers:
            raise InitError(f"{node.name} knows node(s) not given to this script: {'; '.join(strangers)}. "
                            "CLUSTER FORGET them on every node (or CLUSTER RESET HARD all nodes) and run again")


def slot_owners(views: dict[Node, list[Entry]]) -> dict[int, str]:
    """Every slot any node reports as owned; a slot two views disagree on stops the run."""
    owners: dict[int, str] = {}
    for node, view in views.items():
        for entry in view:
            if entry.migrating:
                raise InitError(f"{node.name} reports slots in migration on {entry.address}: {entry.migrating}; "
                                "finish it or run CLUSTER SETSLOT <slot> STABLE on both nodes, then run again")
            for low, high in entry.slots:
                for slot in range(low, high + 1):
                    if owners.setdefault(slot, entry.node_id) != entry.node_id:
                        raise InitError(f"slot {slot} has two owners ({owners[slot][:8]} and {entry.node_id[:8]}) "
                                        "in different nodes' views; wait for the cluster to settle and run again")
    return owners


def plan_slots(shards: list[Shard], ids: dict[Node, str], owners: dict[int, str]) -> list[tuple[Node, int, int]]:
    """ADDSLOTSRANGE calls for unowned slots only, each to whichever member holds its shard."""
    by_id = {node_id: node for node, node_id in ids.items()}
    plan = []
    for shard in shards:
        members = {ids[n] for n in shard.members}
        held = {owners[s] for s in range(shard.low, shard.high + 1) if s in owners}
        outside = sorted(by_id[i].name if i in by_id else i for i in held - members)
        if outside:
            raise InitError(f"slots {shard.low}-{shard.high} belong to the shard of {shard.primary.name}, but "
                            f"{', '.join(outside)} own(s) some: not the layout this script makes; "
                            "reset the nodes (CLUSTER RESET HARD) or move the slots back by hand")
        if len(held) > 1:
            raise InitError(f"slots {shard.low}-{shard.high} are split between "
                            f"{', '.join(sorted(by_id[i].name for i in held))}; fix by hand")
        holder = by_id[held.pop()] if held else shard.primary
        missing = [s for s in range(shard.low, shard.high + 1) if s not in owners]
        plan += [(holder, low, high) for low, high in runs(missing)]
    extra = sorted(s for s, owner in owners.items() if not any(sh.low <= s <= sh.high for sh in shards))
    if extra:
        raise InitError(f"slots outside every planned range are owned: {runs(extra)[:5]}")
    return plan


def plan_replicas(shards: list[Shard], ids: dict[Node, str], selves: dict[Node, Entry],
                  owners: dict[int, str]) -> list[tuple[Node, Node]]:
    """CLUSTER REPLICATE calls for shard members that do not yet follow the member holding the slots."""
    by_id = {node_id: node for node, node_id in ids.items()}
    plan = []
    for shard in shards:
        holder = by_id.get(owners.get(shard.low, ids[shard.primary]), shard.primary)
        for member in shard.members:
            if member == holder:
                continue
            me = selves[member]
            if ("slave" in me.flags or "replica" in me.flags) and me.master_id == ids[holder]:
                continue
            if me.slots:
                raise InitError(f"{member.name} owns slots {me.slots}: it cannot become a replica of {holder.name}")
            plan.append((member, holder))
    return plan


def runs(slots: list[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for slot in sorted(slots):
        if out and out[-1][1] == slot - 1:
            out[-1] = (out[-1][0], slot)
        else:
            out.append((slot, slot))
    return out


# ---- acting ------------------------------------------------------------------------------------

def wait_for(check: Callable[[], tuple[bool, str]], what: str, timeout: float) -> str:
    """Poll check() until done or the deadline; a timeout says what was last seen."""
    deadline = time.monotonic() + timeout
    seen = "nothing yet"
    interval = 0.02
    while True:
        try:
            done, seen = check()
        except redis.RedisError as exc:
            done, seen = False, f"{type(exc).__name__}: {exc}"
        if done:
            return seen
        if time.monotonic() > deadline:
            raise InitError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {seen}")
        time.sleep(interval)  # polling a condition with a deadline, backing off to 50 ms
        interval = min(0.05, interval * 1.5)


class Cluster:
    """One plain connection per node, raw replies (no redis-py parsing), no hidden retries."""

    def __init__(self, nodes: list[Node], password: str | None = None):
        self.nodes = nodes
        self.clients = {}
        for node in nodes:
            self.clients[node] = redis.Redis(host=node.host, port=node.port, password=password, socket_timeout=2.0,
                                             socket_connect_timeout=2.0, decode_responses=True,
                                             retry=Retry(NoBackoff(), 0))

    def raw(self, node: Node, *args: str) -> str:
        """The reply as the server sent it: redis-py's CLUSTER NODES/INFO callbacks drop what we parse.

        The connection API applies no response callback, so no client's callback table is changed
        (the harness does the same in app/lib/util.py raw_command; this script runs alone in its container).
        """
        pool = self.clients[node].connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command(*args)
            reply = conn.read_response()
        except BaseException:
            conn.disconnect()  # a half-read reply must not reach the next caller
            raise
        finally:
            pool.release(conn)
        if isinstance(reply, redis.ResponseError):
            raise reply
        return reply

    def view(self, node: Node) -> list[Entry]:
        return parse_nodes(self.raw(node, "CLUSTER", "NODES"))

    def views(self) -> dict[Node, list[Entry]]:
        return {node: self.view(node) for node in self.nodes}

    def info(self, node: Node) -> dict[str, str]:
        return parse_info(self.raw(node, "CLUSTER", "INFO"))

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def form(primaries: list[Node], replicas: list[Node], timeout: float, *, password: str | None = None,
         log: Callable[[str], None] = print) -> list[str]:
    """Bring the cluster to the wanted shape; return the changes made ([] if it already was)."""
    shards = shards_for(primaries, replicas)
    nodes = primaries + replicas
    deadline = time.monotonic() + timeout
    changes: list[str] = []

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    started = time.monotonic()

    def did(change: str) -> None:
        changes.append(change)
        log(f"{change} (+{time.monotonic() - started:.2f}s)")  # where bring-up time goes

    cluster = Cluster(nodes, password)
    try:
        for node in nodes:
            wait_for(lambda n=node: (bool(cluster.clients[n].ping()), "PONG"), f"{node.name} to answer PING", left())
            if cluster.clients[node].info("cluster").get("cluster_enabled") != 1:
                raise InitError(f"{node.name} does not run with cluster-enabled yes")
        selves = {node: next(e for e in cluster.view(node) if "myself" in e.flags) for node in nodes}
        ids = {node: entry.node_id for node, entry in selves.items()}
        # CLUSTER MEET takes an IP; in compose the host is a service name.
        addresses = {node: f"{socket.gethostbyname(node.host)}:{node.port}" for node in nodes}
        check_no_strangers(ids, cluster.views())

        # Slots first, then MEET (as redis-cli --cluster create does): each node's first handshake
        # then carries its slots, instead of a second round of gossip after the meeting (~1 s).
        owners = slot_owners(cluster.views())
        for holder, low, high in plan_slots(shards, ids, owners):
            cluster.clients[holder].execute_command("CLUSTER ADDSLOTSRANGE", low, high)
            did(f"assigned slots {low}-{high} to {holder.name}")

        first = nodes[0]
        for node in plan_meets(ids, addresses, cluster.view(first)):
            ip, port = addresses[node].rsplit(":", 1)
            cluster.clients[first].execute_command("CLUSTER MEET", ip, int(port))
            did(f"met {node.name} ({addresses[node]})")

        def everyone_knows_everyone() -> tuple[bool, str]:
            views = cluster.views()
            check_no_strangers(ids, views)
            seen = [f"{n.name} knows {sum(not e.handshake for e in v)}/{len(nodes)}"
                    + (f" (+{sum(e.handshake for e in v)} in handshake)" if any(e.handshake for e in v) else "")
                    for n, v in views.items()]
            return all(len(v) == len(nodes) and not any(e.handshake for e in v) for v in views.values()), \
                "; ".join(seen)

        wait_for(everyone_knows_everyone, "every node to know every other (no handshake left over)", left())
        log(f"every node knows every other (+{time.monotonic() - started:.2f}s)")

        def slots_agreed() -> tuple[bool, str]:
            owned = len(slot_owners(cluster.views()))
            counts = {n.name: sum(h - lo + 1 for e in v for lo, h in e.slots) for n, v in cluster.views().items()}
            return all(c == SLOTS for c in counts.values()) and owned == SLOTS, f"slots seen per node: {counts}"

        wait_for(slots_agreed, "every node to see all 16384 slots assigned", left())
        log(f"every node sees all slots assigned (+{time.monotonic() - started:.2f}s)")

        owners = slot_owners(cluster.views())
        selves = {node: next(e for e in cluster.view(node) if "myself" in e.flags) for node in nodes}
        for replica, holder in plan_replicas(shards, ids, selves, owners):
            cluster.clients[replica].execute_command("CLUSTER REPLICATE", ids[holder])
            did(f"attached {replica.name} as replica of {holder.name}")

        wait_for(lambda: ready(cluster, len(nodes)), "cluster_state:ok on every node and every replica link up",
                 left())
        return changes
    finally:
        cluster.close()


def ready(cluster: Cluster, expected_nodes: int) -> tuple[bool, str]:
    """cluster_state:ok, all slots assigned, no extra known nodes, every replica's link up."""
    seen, done = [], True
    for node in cluster.nodes:
        info = cluster.info(node)
        replication = cluster.clients[node].info("replication")
        link = replication.get("master_link_status", "-")
        seen.append(f"{node.name} {info.get('cluster_state')} slots={info.get('cluster_slots_assigned')} "
                    f"known={info.get('cluster_known_nodes')} link={link}")
        done &= (info.get("cluster_state") == "ok" and info.get("cluster_slots_assigned") == str(SLOTS)
                 and info.get("cluster_known_nodes") == str(expected_nodes)
                 and (replication.get("role") == "master" or link == "up"))
    return done, "; ".join(seen)


def parse_node(text: str) -> Node:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return Node(host, int(port))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--primary", action="append", type=parse_node, required=True, metavar="HOST:PORT")
    parser.add_argument("--replica", action="append", type=parse_node, default=[], metavar="HOST:PORT")
    parser.add_argument("--password", help="AUTH password of the nodes, if any")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole job (default 60)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        changes = form(args.primary, args.replica, args.timeout, password=args.password)
    except (InitError, redis.RedisError, OSError) as exc:
        print(f"cluster init failed: {exc}", file=sys.stderr)
        return 1
    print(f"cluster ok: {len(args.primary)} primaries, {len(args.replica)} replicas; {len(changes)} change(s)"
          + (" (it was already formed)" if not changes else "") + f" in {time.monotonic() - started:.2f}s",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
