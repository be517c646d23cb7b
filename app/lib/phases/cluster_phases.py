"""The phases of a cluster run that act before the fault, each recorded in the run's history for a check to judge:
the cluster as formed (connect), keys on their slot's owner (placement), MOVED and ASK through real slot migrations
(moved, ask: the migration is the phase, always put back), and the key spread (distribution).

Each phase is one process of the history; its steps are operations (ok with what was seen, or fail with the error),
and a phase that breaks records why: lib/checks/cluster_placement.py and cluster_redirects.py judge the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from redis.crc import key_slot

from lib.cluster_client import ClusterClient
from lib.history import OK, History
from lib.phases.cluster_migration import MigrationError, SlotMigration, slot_put_back_after
from lib.phases.cluster_record import record_layout
from lib.topology.cluster_topology import (
    ClusterNode,
    Shard,
    covered_slots,
    open_slots,
    own_view,
    shard_for_slot,
    tag_for_slot,
)
from lib.util import format_endpoint

PLACEMENT_KEYS = 300
TAGGED_GROUPS = 10  # of PLACEMENT_KEYS, these many hash-tag groups of 5 keys each
DISTRIBUTION_KEYS = 3000
ASK_KEYS = 20  # keys in the migrating slot; half are moved before the cluster client is asked
PHASE_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException, MigrationError, OSError)


class Steps:
    """A phase's operations: each step timed and recorded under the phase's process (value, or the error)."""

    def __init__(self, history: History, process: str):
        self.history, self.process = history, process

    def __call__(self, f: str, action: Callable[[], Any], key: str = "") -> Any:
        start = time.monotonic()
        try:
            value = action()
        except PHASE_ERRORS as exc:
            self.history.observe(self.process, f, at=start, key=key, error=_error(exc))
            raise
        self.history.observe(self.process, f, value, at=start, key=key)
        return value

    def note(self, f: str, value: Any = None, error: str | None = None) -> None:
        self.history.observe(self.process, f, value, error=error)


def phase(history: History, process: str, body: Callable[[Steps], None]) -> None:
    """Run one phase; an error of the servers ends it, recorded as its last step ("broken") for the check to say."""
    steps = Steps(history, process)
    try:
        body(steps)
    except PHASE_ERRORS as exc:
        steps.note("broken", error=_error(exc))


def _error(exc: BaseException) -> str:
    return "; ".join([f"{type(exc).__name__}: {exc}", *getattr(exc, "__notes__", [])])


def observe_connect(client: ClusterClient, shards: list[Shard], history: History) -> None:
    """The cluster as formed: its state, its layout (recorded for every later check), slots covered, open slots."""
    record_layout(history, shards)

    def body(step: Steps) -> None:
        step.note("asked", format_endpoint(*client.reachable(shards[0].primary)))
        with client.node(client.reachable(shards[0].primary)) as node:
            step("cluster_state", lambda: node.cluster("INFO").get("cluster_state"))
        step("ping", lambda: bool(client.cluster.ping()))
        step("slots covered", lambda: covered_slots(shards))
        step("open slots", lambda: open_migrations(client, shards))

    phase(history, "connect", body)


def open_migrations(client: ClusterClient, shards: list[Shard]) -> list[str]:
    """'slot 7 migrating on A to B' for every open slot (a node shows its own only, so each primary is asked)."""
    names = {n.node_id: format_endpoint(*n.announced) for s in shards for n in (s.primary, *s.replicas)}
    found = []
    for shard in shards:
        me = own_view(client.nodes([client.reachable(shard.primary)]))
        for slot, (state, other) in sorted(open_slots(me).items()):
            found.append(f"slot {slot} {state} on {format_endpoint(*me.announced)} "
                         f"{'to' if state == 'migrating' else 'from'} {names.get(other, other[:8])}")
    return found


def observe_placement(client: ClusterClient, shards: list[Shard], ns: str, history: History) -> None:
    """Keys (some in hash-tag groups) written through the cluster client; the server's slot of each; what each
    slot's owner reads back."""
    keys = [f"{ns}p:{i}" for i in range(PLACEMENT_KEYS - TAGGED_GROUPS * 5)]
    groups = {f"{ns}g{g}": [f"{ns}{{g{g}}}:{i}" for i in range(5)] for g in range(TAGGED_GROUPS)}
    keys += [k for group in groups.values() for k in group]

    def body(step: Steps) -> None:
        pipe = client.cluster.pipeline()
        for key in keys:
            pipe.set(key, key)
        step("write", lambda: len(client.call(lambda rc: pipe.execute())))
        server = client.node(client.reachable(shards[0].primary))
        try:
            server_pipe = server.pipeline(transaction=False)
            for key in keys:
                server_pipe.execute_command("CLUSTER KEYSLOT", key)
            server_slots = step("keyslot", lambda: [int(s) for s in server_pipe.execute()])
        finally:
            server.close()
        step.note("slots", {"keys": keys, "client": [key_slot(k.encode()) for k in keys], "server": server_slots,
                            "groups": groups})
        for shard in shards:
            mine = [k for k in keys if shard.owns(key_slot(k.encode()))]
            with client.node(client.reachable(shard.primary)) as owner:
                owner_pipe = owner.pipeline(transaction=False)
                for key in mine:
                    owner_pipe.get(key)
                values = step(f"read on {shard.label}", lambda p=owner_pipe: [
                    v if isinstance(v, str) or v is None else repr(v) for v in p.execute(raise_on_error=False)])
            step.note(f"owner of {shard.label}", {"keys": mine, "values": values})

    phase(history, "placement", body)


def observe_distribution(client: ClusterClient, shards: list[Shard], ns: str, history: History) -> None:
    """DISTRIBUTION_KEYS keys written through the cluster client, then counted with SCAN on each primary."""
    prefix = f"{ns}d:"
    keys = [f"{prefix}{i}" for i in range(DISTRIBUTION_KEYS)]

    def body(step: Steps) -> None:
        for i in range(0, len(keys), 500):
            batch = keys[i:i + 500]
            step("write", lambda b=batch: client.call(lambda rc: rc.mset_nonatomic({k: "1" for k in b})) and len(b))
        for shard in shards:
            with client.node(client.reachable(shard.primary)) as node:
                step("count", lambda n=node: sum(1 for _ in n.scan_iter(match=f"{prefix}*", count=1000)),
                     key=shard.label)

    history.observe("distribution", "written", DISTRIBUTION_KEYS)
    phase(history, "distribution", body)


def already_open(client: ClusterClient, slot: int, nodes: list[ClusterNode]) -> str | None:
    """Why a phase must not migrate slot: it is migrating or importing already (e.g. left by another run)."""
    for node in nodes:
        state = open_slots(own_view(client.nodes([client.reachable(node)]))).get(slot)
        if state is not None:
            return (f"slot {slot} is {state[0]} on {format_endpoint(*node.announced)} already (another migration, or "
                    "one left open): nothing was changed; close it with valkey-cli --cluster fix "
                    f"{format_endpoint(*client.reachable(node))}")
    return None


def observe_moved(client: ClusterClient, shards: list[Shard], ns: str, history: History) -> None:
    """A plain client at the wrong node gets MOVED; the cluster client, its slot map made stale by a real migration
    done behind its back, follows MOVED to the new owner (counted by the old owner). The slot is put back."""
    if len(shards) < 2:
        history.observe("moved", "skipped", "one shard only, no node to be wrong about")
        return
    key = f"{ns}moved"
    slot = key_slot(key.encode())

    def body(step: Steps) -> None:
        step("set", lambda: client.call(lambda rc: rc.set(key, "here")), key=key)  # the client's map: owner has it
        owner = shard_for_slot(shards, slot)
        wrong = next(s for s in shards if s is not owner)
        step.note("plan", {"key": key, "slot": slot, "asked": format_endpoint(*wrong.primary.announced),
                           "moved_to": format_endpoint(*wrong.primary.announced)})
        if busy := already_open(client, slot, [owner.primary, wrong.primary]):
            step.note("refused", busy)
            return
        with client.node(client.reachable(wrong.primary)) as plain:
            try:
                plain.get(key)
                reply = None
            except redis.exceptions.MovedError as exc:
                reply = f"MOVED {exc.args[0]}"
        step.note("plain get", reply)
        primaries = [s.primary for s in shards]
        # Resharding behind the cluster client's back, with plain clients: its map still names the old owner.
        with slot_put_back_after(client, slot, owner.primary, wrong.primary, primaries) as restored:
            migration = SlotMigration(client, slot, owner.primary, wrong.primary)
            step("migrate", lambda: (migration.begin(), migration.complete(primaries))[1])
            before = client.redirects_sent(owner.primary)
            step("get", lambda: client.call(lambda rc: rc.get(key)), key=key)
            step.note("redirects", (client.redirects_sent(owner.primary) - before)["MOVED"])
        step.note("put back", restored[0])

    phase(history, "moved", body)


def observe_ask(client: ClusterClient, shards: list[Shard], ns: str, history: History) -> None:
    """Live-migrate one slot between two primaries; read and write through ASK; the slot is put back afterwards,
    whatever happened (an error, Ctrl-C)."""
    if len(shards) < 2:
        history.observe("ask", "skipped", "one shard only, nowhere to migrate a slot")
        return
    source, target = shards[0], shards[1]
    slot = source.slots[0][0] + 7  # any slot of the source
    tag = tag_for_slot(slot)
    keys = [f"{ns}{{{tag}}}:{i}" for i in range(ASK_KEYS)]
    new_key = f"{ns}{{{tag}}}:new"
    moved = keys[: len(keys) // 2]

    def body(step: Steps) -> None:
        step.note("plan", {"slot": slot, "from": format_endpoint(*source.primary.announced),
                           "to": format_endpoint(*target.primary.announced), "keys": keys, "new_key": new_key,
                           "moved_first": moved})
        if busy := already_open(client, slot, [source.primary, target.primary]):
            step.note("refused", busy)
            return
        step("set", lambda: client.call(lambda rc: rc.mset_nonatomic({k: f"v{i}" for i, k in enumerate(keys)})))
        primaries = [s.primary for s in shards]
        migration = SlotMigration(client, slot, source.primary, target.primary)
        with slot_put_back_after(client, slot, source.primary, target.primary, primaries) as restored:
            step("begin", migration.begin)
            step("move keys", lambda: migration.move_keys(moved))
            with client.node(client.reachable(source.primary)) as plain:
                try:
                    plain.get(moved[0])
                    reply = "a value (no ASK)"
                except redis.exceptions.AskError as exc:
                    reply = f"ASK {exc.args[0]}"
            step.note("plain get", reply)
            asks_before = client.redirects_sent(source.primary)["ASK"]
            for k in keys:
                step("get", lambda k=k: client.call(lambda rc: rc.get(k)), key=k)
            step("set during", lambda: client.call(lambda rc: rc.set(new_key, "during")), key=new_key)
            step("set during", lambda: client.call(lambda rc: rc.set(moved[0], "updated")), key=moved[0])
            for k in (new_key, moved[0], keys[-1]):
                step("read back", lambda k=k: client.call(lambda rc: rc.get(k)), key=k)
            step.note("redirects", client.redirects_sent(source.primary)["ASK"] - asks_before)
            step("complete", lambda: migration.complete(primaries) + len(moved))
        step.note("put back", restored[0])
        for k in [*keys, new_key]:
            step("final get", lambda k=k: client.call(lambda rc: rc.get(k)), key=k)

    phase(history, "ask", body)


def recorded(history: History, process: str) -> dict[str, Any]:
    """A phase's steps by name: the last value of each (steps taken once), for its check to judge."""
    return {op.f: op.value for op in history.snapshot(process) if op.outcome == OK}


def broken(history: History, process: str) -> str | None:
    """Why the phase stopped (the error of its last failed step), None when it ran to the end."""
    failed = [op for op in history.snapshot(process) if op.outcome != OK]
    return failed[-1].error if failed else None
