"""MOVED and ASK seen through real slot migrations: the migration is the check itself, always put back."""

from __future__ import annotations

import redis
from redis.crc import key_slot

from lib.checks.result import FAIL, OK, WARN, ScenarioResult
from lib.cluster_client import ClusterClient
from lib.runs.cluster_migration import SlotMigration, slot_put_back_after
from lib.topology.cluster_topology import ClusterNode, Shard, open_slots, own_view, shard_for_slot, tag_for_slot
from lib.util import format_endpoint

ASK_KEYS = 20  # keys in the migrating slot; half are moved before the cluster client is asked


def already_open(client: ClusterClient, slot: int, nodes: list[ClusterNode]) -> str | None:
    """Why a check must not migrate slot: it is migrating or importing already (e.g. left by another run)."""
    for node in nodes:
        state = open_slots(own_view(client.nodes([client.reachable(node)]))).get(slot)
        if state is not None:
            return (f"slot {slot} is {state[0]} on {format_endpoint(*node.announced)} already (another migration, or "
                    "one left open): nothing was changed; close it with valkey-cli --cluster fix "
                    f"{format_endpoint(*client.reachable(node))}")
    return None


def check_moved(client: ClusterClient, shards: list[Shard], ns: str) -> ScenarioResult:
    """A plain client at the wrong node gets MOVED; the cluster client, its slot map made stale by a real
    migration done behind its back, follows MOVED to the new owner. The slot is put back afterwards."""
    if len(shards) < 2:
        return ScenarioResult("moved", WARN, "skipped: one shard only, no node to be wrong about")
    key = f"{ns}moved"
    slot = key_slot(key.encode())
    client.call(lambda rc: rc.set(key, "here"))  # the cluster client now has the slot map in which owner has it
    owner = shard_for_slot(shards, slot)
    wrong = next(s for s in shards if s is not owner)
    if busy := already_open(client, slot, [owner.primary, wrong.primary]):
        return ScenarioResult("moved", FAIL, busy, {"slot": slot})
    with client.node(client.reachable(wrong.primary)) as plain:
        try:
            plain.get(key)
            reply = None
        except redis.exceptions.MovedError as exc:
            reply = f"MOVED {exc.args[0]}"
    primaries = [s.primary for s in shards]
    # Resharding behind the cluster client's back, with plain clients: its map still names the old owner.
    with slot_put_back_after(client, slot, owner.primary, wrong.primary, primaries) as restored:
        migration = SlotMigration(client, slot, owner.primary, wrong.primary)
        migration.begin()
        migration.complete(primaries)
        before = client.redirects_sent(owner.primary)
        value = client.call(lambda rc: rc.get(key))
        followed = (client.redirects_sent(owner.primary) - before)["MOVED"]
    metrics = {"key": key, "slot": slot, "asked": format_endpoint(*wrong.primary.announced),
               "plain_client_reply": reply, "cluster_client_value": value, "cluster_client_redirects": followed,
               "moved_to": format_endpoint(*wrong.primary.announced), "restored": restored[0]}
    if reply is None or not reply.startswith(f"MOVED {slot} "):
        return ScenarioResult("moved", FAIL, f"a plain client at the wrong node got {reply!r}, not MOVED", metrics)
    if value != "here" or followed < 1:
        return ScenarioResult("moved", FAIL, f"cluster client read {value!r}; the old owner sent it {followed} MOVED "
                              "(INFO errorstats)", metrics)
    return ScenarioResult("moved", OK, f"plain client at {format_endpoint(*wrong.primary.announced)}: {reply}; "
                          f"slot {slot} migrated behind the cluster client's back, it read the key after {followed} "
                          "MOVED (counted by the old owner); slot put back", metrics)


def check_ask(client: ClusterClient, shards: list[Shard], ns: str) -> ScenarioResult:
    """Live-migrate one slot between two primaries; read and write through ASK; the slot is put back
    afterwards, whatever happened (an error, Ctrl-C)."""
    if len(shards) < 2:
        return ScenarioResult("ask", WARN, "skipped: one shard only, nowhere to migrate a slot")
    source, target = shards[0], shards[1]
    slot = source.slots[0][0] + 7  # any slot of the source
    tag = tag_for_slot(slot)
    keys = [f"{ns}{{{tag}}}:{i}" for i in range(ASK_KEYS)]
    new_key = f"{ns}{{{tag}}}:new"
    if busy := already_open(client, slot, [source.primary, target.primary]):
        return ScenarioResult("ask", FAIL, busy, {"slot": slot})
    client.call(lambda rc: rc.mset_nonatomic({k: f"v{i}" for i, k in enumerate(keys)}))
    primaries = [s.primary for s in shards]
    migration = SlotMigration(client, slot, source.primary, target.primary)
    metrics: dict = {"slot": slot, "from": format_endpoint(*source.primary.announced),
                     "to": format_endpoint(*target.primary.announced), "keys": len(keys)}
    moved = keys[: len(keys) // 2]
    with slot_put_back_after(client, slot, source.primary, target.primary, primaries) as restored:
        migration.begin()
        migration.move_keys(moved)
        with client.node(client.reachable(source.primary)) as plain:
            try:
                plain.get(moved[0])
                metrics["plain_client_reply"] = "a value (no ASK)"
            except redis.exceptions.AskError as exc:
                metrics["plain_client_reply"] = f"ASK {exc.args[0]}"
        asks_before = client.redirects_sent(source.primary)["ASK"]
        values = [client.call(lambda rc, k=k: rc.get(k)) for k in keys]
        client.call(lambda rc: rc.set(new_key, "during"))
        client.call(lambda rc: rc.set(moved[0], "updated"))
        read_back = {k: client.call(lambda rc, k=k: rc.get(k)) for k in (new_key, moved[0], keys[-1])}
        metrics["ask_redirects_during"] = client.redirects_sent(source.primary)["ASK"] - asks_before
        metrics["moved_keys"] = migration.complete(primaries) + len(moved)
    keys.append(new_key)
    final = {k: client.call(lambda rc, k=k: rc.get(k)) for k in keys}
    metrics.update({"restored": restored[0], "restored_owner": format_endpoint(*source.primary.announced)})
    expected = [f"v{i}" for i in range(ASK_KEYS)]
    problems = []
    if not str(metrics.get("plain_client_reply", "")).startswith("ASK"):
        problems.append(f"plain client on the source got {metrics.get('plain_client_reply')}, not ASK")
    if values != expected:
        problems.append("reads during the migration returned wrong values")
    if read_back != {new_key: "during", moved[0]: "updated", keys[-2]: expected[-1]}:
        problems.append(f"writes during the migration read back as {read_back}")
    if metrics["ask_redirects_during"] < 1:
        problems.append("the source sent the cluster client no ASK (INFO errorstats)")
    if final.get(new_key) != "during" or final.get(moved[0]) != "updated" or None in final.values():
        problems.append("keys changed or vanished when the slot was moved back")
    detail = (f"slot {slot} migrated {metrics['from']} -> {metrics['to']} with half of its {ASK_KEYS} keys moved: "
              f"plain client got {metrics.get('plain_client_reply')}; cluster client read all {ASK_KEYS} and wrote "
              f"2 through {metrics['ask_redirects_during']} ASK redirect(s) (counted by the source); "
              "slot moved back, nothing left migrating")
    return ScenarioResult("ask", FAIL if problems else OK, "; ".join(problems) or detail, metrics)
