"""A live migration of one slot between two primaries, the way resharding does it, and how to undo one.

IMPORTING on the target, MIGRATING on the source, then MIGRATE key by key: while it runs, the
source answers ASK for keys it no longer has, which is what the ASK check needs to observe.
Completing it is SETSLOT NODE on every primary; moving the slot back is a second migration.

Commands go to each node at the address this machine reaches it (the remap), but an address
*inside* a command is the one the nodes use for each other: MIGRATE names the target as the
sending node's own CLUSTER NODES shows it (the ip field). Under compose the harness reaches
node-7001 at 127.0.0.1:7001, a port mapping of the host that no container can use.

put_slot_back() undoes a migration from whatever state it was left in (an error, Ctrl-C, an
earlier run): it never leaves a slot MIGRATING or IMPORTING, even when MIGRATE itself fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.topology.cluster_topology import Address, ClusterNode, open_slots, own_view, owner_of
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until

MIGRATE_TIMEOUT_MS = 5000
KEYS_PER_MIGRATE = 1000


class MigrationError(Exception):
    """A migration step failed; the text says what each step saw and what is left to do by hand."""


@dataclass
class SlotMigration:
    client: ClusterClient
    slot: int
    source: ClusterNode
    target: ClusterNode

    def _node(self, node: ClusterNode) -> redis.Redis:
        return self.client.node(self.client.reachable(node), timeout=5.0)

    def _on(self, node: ClusterNode, *args) -> object:
        with self._node(node) as client:
            return client.execute_command(*args)

    def begin(self) -> None:
        """Target first: a source that says ASK before the target imports would send clients nowhere."""
        self._on(self.target, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source.node_id)
        self._on(self.source, "CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target.node_id)

    def move_keys(self, keys: list[str]) -> int:
        """MIGRATE these keys from source to target, named as the source knows it."""
        if not keys:
            return 0
        host, port = address_seen_by(self.client, self.source, self.target)
        reply = self._on(self.source, "MIGRATE", host, port, "", 0, MIGRATE_TIMEOUT_MS, *self._auth(), "KEYS", *keys)
        return 0 if reply == "NOKEY" else len(keys)

    def _auth(self) -> list[str]:
        return ["AUTH", self.client.password] if self.client.password else []

    def keys_left(self, count: int = KEYS_PER_MIGRATE) -> list[str]:
        return list(self._on(self.source, "CLUSTER", "GETKEYSINSLOT", self.slot, count))

    def complete(self, primaries: list[ClusterNode], timeout: float = 30.0) -> int:
        """Move the remaining keys, hand the slot to the target everywhere, wait until all agree."""
        moved = _drain(self.keys_left, self.move_keys, f"slot {self.slot} on {format_endpoint(*self.source.announced)}")
        self._on(self.target, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        self._on(self.source, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        for node in primaries:
            if node.node_id not in (self.source.node_id, self.target.node_id):
                self._on(node, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        wait_owner(self.client, primaries, self.slot, self.target, timeout)
        return moved


def address_seen_by(client: ClusterClient, viewer: ClusterNode, node: ClusterNode) -> Address:
    """node's address in viewer's own CLUSTER NODES: what viewer connects to (never our remapped one)."""
    seen = next((n for n in client.nodes([client.reachable(viewer)]) if n.node_id == node.node_id), None)
    if seen is None:
        raise MigrationError(f"{format_endpoint(*viewer.announced)} does not know {format_endpoint(*node.announced)}"
                             f" ({node.node_id[:8]}): is it part of this cluster?")
    host = seen.ip or seen.hostname  # an empty ip: the node is known by its announced hostname only
    if not host:
        raise MigrationError(f"{format_endpoint(*viewer.announced)} has no address for {node.node_id[:8]} (noaddr)")
    return host, seen.port


@contextmanager
def slot_put_back_after(client: ClusterClient, slot: int, home: ClusterNode, away: ClusterNode,
                        primaries: list[ClusterNode]) -> Iterator[list[str]]:
    """Whatever the with-block does to slot, it is put back on home when the block ends (an error and
    Ctrl-C included). Yields a list that receives put_slot_back's account.

    After an error the error is raised, with a note saying whether the slot was put back; after a
    clean block a failure to put it back is the error.
    """
    outcome: list[str] = []
    try:
        yield outcome
    except BaseException as exc:
        try:
            outcome.append(put_slot_back(client, slot, home, away, primaries))
        except (MigrationError, redis.RedisError, WaitTimeout, SetupError) as cleanup_error:
            exc.add_note(f"and slot {slot} was NOT put back: {type(cleanup_error).__name__}: {cleanup_error}")
        else:
            exc.add_note(outcome[-1])
        raise
    outcome.append(put_slot_back(client, slot, home, away, primaries))


def put_slot_back(client: ClusterClient, slot: int, home: ClusterNode, away: ClusterNode,
                  primaries: list[ClusterNode], timeout: float = 30.0) -> str:
    """End with slot on home, STABLE on both nodes, and its keys on home, from whatever state a
    migration between home and away was left in. Returns what it did; raises MigrationError.

    - away owns it (a migration was completed, or its handover began): move it back, finishing
      first whichever migration is open.
    - home owns it: SETSLOT STABLE on home first, so that home takes keys again; MIGRATE the keys
      already on away back from away (ASKING: away is importing, it does not own them); then
      STABLE on away, always, even when MIGRATE failed.
    """
    away_view = client.nodes([client.reachable(away)])
    owner = owner_of(away_view, slot)
    if owner is not None and owner.node_id == away.node_id:
        return _move_home(client, slot, home, away, primaries, timeout)
    home_open = open_slots(own_view(client.nodes([client.reachable(home)]))).get(slot)
    away_open = open_slots(own_view(away_view)).get(slot)
    problems: list[str] = []
    moved = 0
    try:
        if home_open is not None:
            _step(problems, "SETSLOT STABLE on home",
                  lambda: _on(client, home, "CLUSTER", "SETSLOT", slot, "STABLE"))
        back = _KeysBack(client, slot, home, away, importing=away_open is not None)
        moved = _step(problems, "MIGRATE the moved keys back", back.run) or 0
    finally:
        _step(problems, "SETSLOT STABLE on away", lambda: _on(client, away, "CLUSTER", "SETSLOT", slot, "STABLE"))
    if problems:
        raise MigrationError(f"slot {slot} is STABLE on both nodes, but " + "; ".join(problems))
    if home_open is None and away_open is None and not moved:
        return f"slot {slot} was on {format_endpoint(*home.announced)} already, no migration open"
    wait_owner(client, primaries, slot, home, timeout)
    return (f"open migration of slot {slot} cancelled: {moved} key(s) moved back to "
            f"{format_endpoint(*home.announced)}, STABLE on both nodes")


def _move_home(client: ClusterClient, slot: int, home: ClusterNode, away: ClusterNode,
               primaries: list[ClusterNode], timeout: float) -> str:
    """away owns the slot: complete an open migration towards home, or the handover to away, then move it home."""
    home_view = own_view(client.nodes([client.reachable(home)]))
    if open_slots(home_view).get(slot, ("", ""))[0] != "importing":
        # the handover to away may be half done (SETSLOT NODE on some primaries): finish it first
        SlotMigration(client, slot, home, away).complete(primaries, timeout)
        SlotMigration(client, slot, away, home).begin()
    moved = SlotMigration(client, slot, away, home).complete(primaries, timeout)
    return f"slot {slot} moved back to {format_endpoint(*home.announced)} with {moved} key(s)"


@dataclass
class _KeysBack:
    """The keys of slot that reached away, back to home (which owns the slot and is STABLE)."""

    client: ClusterClient
    slot: int
    home: ClusterNode
    away: ClusterNode
    importing: bool

    def keys(self) -> list[str]:
        return list(_on(self.client, self.away, "CLUSTER", "GETKEYSINSLOT", self.slot, KEYS_PER_MIGRATE))

    def run(self) -> int:
        keys = self.keys()
        if not keys:
            return 0
        if not self.importing:  # orphans on a stable node: importing lets it serve them after ASKING
            _on(self.client, self.away, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.home.node_id)
        return _drain(self.keys, self.move, f"slot {self.slot} on {format_endpoint(*self.away.announced)}")

    def move(self, keys: list[str]) -> int:
        """MIGRATE back from away; if MIGRATE fails (a wrong AUTH, a target it cannot reach), copy them
        through our own connections instead, so that a failed MIGRATE never strands keys on away."""
        try:
            return self._migrate(keys)
        except redis.ResponseError:
            return self._copy(keys)

    def _migrate(self, keys: list[str]) -> int:
        host, port = address_seen_by(self.client, self.away, self.home)
        auth = ["AUTH", self.client.password] if self.client.password else []
        with self.client.node(self.client.reachable(self.away), timeout=5.0) as node:
            pipe = node.pipeline(transaction=False)
            pipe.execute_command("ASKING")  # away does not own the slot: without it, MIGRATE gets MOVED
            pipe.execute_command("MIGRATE", host, port, "", 0, MIGRATE_TIMEOUT_MS, *auth, "KEYS", *keys)
            reply = pipe.execute()[-1]
        return 0 if reply == "NOKEY" else len(keys)

    def _copy(self, keys: list[str]) -> int:
        """DUMP on away, RESTORE on home, DEL on away; a key home has already is the residue of a MIGRATE
        that failed after RESTORE (the source keeps its copy then): away's copy is just deleted."""
        with (self.client.node(self.client.reachable(self.away), timeout=5.0, decode=False) as away,
              self.client.node(self.client.reachable(self.home), timeout=5.0, decode=False) as home):
            for key in keys:
                if not home.exists(key):
                    pipe = away.pipeline(transaction=False)
                    pipe.execute_command("ASKING")
                    pipe.dump(key)
                    pipe.execute_command("ASKING")
                    pipe.pttl(key)
                    _, payload, _, pttl = pipe.execute()
                    if payload is not None:
                        home.restore(key, max(int(pttl), 0), payload)
                pipe = away.pipeline(transaction=False)
                pipe.execute_command("ASKING")
                pipe.delete(key)
                pipe.execute()
        return len(keys)


def _drain(keys_left: Callable[[], list[str]], move: Callable[[list[str]], int], where: str) -> int:
    """Move batches until none is left; a batch that comes back unchanged is an error, not a loop."""
    moved, previous = 0, None
    while keys := keys_left():
        if keys == previous:
            raise MigrationError(f"MIGRATE moved none of {len(keys)} key(s) of {where}")
        moved += move(keys)
        previous = keys
    return moved


def _on(client: ClusterClient, node: ClusterNode, *args) -> object:
    with client.node(client.reachable(node), timeout=5.0) as plain:
        return plain.execute_command(*args)


def _step(problems: list[str], what: str, action: Callable[[], object]) -> object:
    """Run one cleanup step; an error is noted and the next step still runs."""
    try:
        return action()
    except (redis.RedisError, MigrationError) as exc:
        problems.append(f"{what} failed: {type(exc).__name__}: {exc}")
        return None


def wait_owner(client: ClusterClient, primaries: list[ClusterNode], slot: int, owner: ClusterNode,
               timeout: float) -> str:
    """Every primary's CLUSTER NODES shows owner holding slot, with no migration left."""
    addresses = [client.reachable(p) for p in primaries]

    def agreed() -> tuple[bool, str]:
        seen = []
        for address in addresses:
            nodes = client.nodes([address])
            holder = owner_of(nodes, slot)
            busy = slot in open_slots(own_view(nodes))
            seen.append(f"{format_endpoint(*address)}: {holder.announced if holder else None}"
                        + (" (migrating)" if busy else ""))
            if holder is None or holder.node_id != owner.node_id or busy:
                return False, "; ".join(seen)
        return True, "; ".join(seen)

    return wait_until(agreed, timeout=timeout, what=f"every primary to see slot {slot} on "
                      f"{format_endpoint(*owner.announced)}")
