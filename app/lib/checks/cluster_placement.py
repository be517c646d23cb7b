"""The cluster as formed, and each key on its slot's owner: connect, placement, distribution."""

from __future__ import annotations

from redis.crc import key_slot

from lib.checks.result import FAIL, OK, WARN, ScenarioResult
from lib.cluster_client import ClusterClient
from lib.topology.cluster_topology import SLOTS, Shard, covered_slots, open_slots, own_view
from lib.util import format_endpoint

PLACEMENT_KEYS = 300
TAGGED_GROUPS = 10  # of PLACEMENT_KEYS, these many hash-tag groups of 5 keys each
DISTRIBUTION_KEYS = 3000
DISTRIBUTION_TOLERANCE = 0.05  # a shard's share of keys vs its share of slots, absolute


def check_connect(client: ClusterClient, shards: list[Shard]) -> ScenarioResult:
    with client.node(client.reachable(shards[0].primary)) as node:
        state = node.cluster("INFO").get("cluster_state")
    client.cluster.ping()
    covered = covered_slots(shards)
    lonely = [s.label for s in shards if not s.replicas]
    left_open = open_migrations(client, shards)
    metrics = {"cluster_state": state, "shards": len(shards), "slots_covered": covered, "open_slots": left_open,
               "layout": [{"slots": s.label, "primary": format_endpoint(*s.primary.announced),
                           "replicas": [format_endpoint(*r.announced) for r in s.replicas]} for s in shards]}
    detail = f"{len(shards)} shards, {covered} of {SLOTS} slots covered, cluster_state:{state}"
    if state != "ok" or covered != SLOTS:
        return ScenarioResult("connect", FAIL, detail, metrics)
    if left_open:
        return ScenarioResult("connect", FAIL, f"{detail}; {'; '.join(left_open)}: a slot migration was left open "
                              "(its keys answer ASK or MOVED, and the next migration fails); close it with "
                              f"valkey-cli --cluster fix {format_endpoint(*client.reachable(shards[0].primary))}",
                              metrics)
    if lonely:
        return ScenarioResult("connect", WARN, f"{detail}; no replica for {', '.join(lonely)}", metrics)
    return ScenarioResult("connect", OK, detail + "; every shard has a replica, no slot migrating", metrics)


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


def check_placement(client: ClusterClient, shards: list[Shard], ns: str) -> ScenarioResult:
    keys = [f"{ns}p:{i}" for i in range(PLACEMENT_KEYS - TAGGED_GROUPS * 5)]
    groups = {f"{ns}g{g}": [f"{ns}{{g{g}}}:{i}" for i in range(5)] for g in range(TAGGED_GROUPS)}
    keys += [k for group in groups.values() for k in group]
    pipe = client.cluster.pipeline()
    for key in keys:
        pipe.set(key, key)
    client.call(lambda rc: pipe.execute())
    server = client.node(client.reachable(shards[0].primary))
    wrong_slot, wrong_node = [], []
    try:
        slots = {key: key_slot(key.encode()) for key in keys}
        server_pipe = server.pipeline(transaction=False)
        for key in keys:
            server_pipe.execute_command("CLUSTER KEYSLOT", key)
        wrong_slot = [k for k, s in zip(keys, server_pipe.execute(), strict=True) if int(s) != slots[k]]
    finally:
        server.close()
    split_groups = [g for g, members in groups.items() if len({slots[k] for k in members}) != 1]
    for shard in shards:
        mine = [k for k in keys if shard.owns(slots[k])]
        owner = client.node(client.reachable(shard.primary))
        try:
            owner_pipe = owner.pipeline(transaction=False)
            for key in mine:
                owner_pipe.get(key)
            values = owner_pipe.execute(raise_on_error=False)
        finally:
            owner.close()
        wrong_node += [k for k, v in zip(mine, values, strict=True) if v != k]
    metrics = {"keys": len(keys), "hash_tag_groups": len(groups), "client_slot_mismatches": len(wrong_slot),
               "split_hash_tag_groups": split_groups, "not_on_owner": wrong_node[:10]}
    failed = wrong_slot or split_groups or wrong_node
    detail = (f"{len(keys)} keys: client slot == CLUSTER KEYSLOT for all; {len(groups)} hash-tag groups each in "
              "one slot; every key read back from the primary that owns its slot" if not failed else
              f"{len(wrong_slot)} slot mismatches, {len(split_groups)} split tag groups, "
              f"{len(wrong_node)} keys not on their slot's owner")
    return ScenarioResult("placement", FAIL if failed else OK, detail, metrics)


def check_distribution(client: ClusterClient, shards: list[Shard], ns: str) -> ScenarioResult:
    """Keys spread by slot: each shard's share of keys is its share of slots (the counts go to
    lib/report/cluster_report.distribution_table)."""
    prefix = f"{ns}d:"
    keys = [f"{prefix}{i}" for i in range(DISTRIBUTION_KEYS)]
    for i in range(0, len(keys), 500):
        batch = keys[i:i + 500]
        client.call(lambda rc, b=batch: rc.mset_nonatomic({k: "1" for k in b}))
    counts, problems = {}, []
    for shard in shards:
        node = client.node(client.reachable(shard.primary))
        try:
            count = sum(1 for _ in node.scan_iter(match=f"{prefix}*", count=1000))
        finally:
            node.close()
        counts[shard.label] = count
        key_share, slot_share = count / DISTRIBUTION_KEYS, shard.primary.slot_count / SLOTS
        if abs(key_share - slot_share) > DISTRIBUTION_TOLERANCE:
            problems.append(f"{shard.label} holds {key_share:.1%} of keys for {slot_share:.1%} of slots")
    total = sum(counts.values())
    if total != DISTRIBUTION_KEYS:
        problems.insert(0, f"counted {total} keys on the primaries, wrote {DISTRIBUTION_KEYS}")
    metrics = {"written": DISTRIBUTION_KEYS, "counted": total, "per_shard": counts}
    detail = (f"{DISTRIBUTION_KEYS:,} keys written, {total:,} counted with SCAN on the primaries; per shard "
              + ", ".join(f"{k}: {v:,}" for k, v in counts.items()))
    return ScenarioResult("distribution", FAIL if problems else OK, "; ".join(problems) or detail, metrics)
