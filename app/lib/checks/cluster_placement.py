"""The cluster as formed, and each key on its slot's owner: connect, placement, distribution.

Judged from what the phases recorded (lib/phases/cluster_phases.py): a function of the history alone.
"""

from __future__ import annotations

from lib.checks.result import FAIL, OK, WARN, CheckResult
from lib.history import History
from lib.phases.cluster_phases import broken, recorded
from lib.phases.cluster_record import LAYOUT
from lib.topology.cluster_topology import SLOTS, parse_cluster_nodes, shards_of
from lib.util import format_endpoint

DISTRIBUTION_TOLERANCE = 0.05  # a shard's share of keys vs its share of slots, absolute


def layout(history: History) -> list:
    """The shards as the connect phase recorded them (CLUSTER NODES lines)."""
    op = history.observed("harness", LAYOUT)
    return shards_of(parse_cluster_nodes(op.value)) if op is not None and op.value else []


def check_connect(history: History) -> CheckResult:
    shards = layout(history)
    seen = recorded(history, "connect")
    if why := broken(history, "connect"):
        return CheckResult("connect", FAIL, f"the cluster did not answer: {why}")
    state, covered, left_open = seen.get("cluster_state"), seen.get("slots covered"), seen.get("open slots") or []
    lonely = [s.label for s in shards if not s.replicas]
    metrics = {"cluster_state": state, "shards": len(shards), "slots_covered": covered, "open_slots": left_open,
               "layout": [{"slots": s.label, "primary": format_endpoint(*s.primary.announced),
                           "replicas": [format_endpoint(*r.announced) for r in s.replicas]} for s in shards]}
    detail = f"{len(shards)} shards, {covered} of {SLOTS} slots covered, cluster_state:{state}"
    if state != "ok" or covered != SLOTS:
        return CheckResult("connect", FAIL, detail, metrics)
    if left_open:
        return CheckResult("connect", FAIL, f"{detail}; {'; '.join(left_open)}: a slot migration was left open "
                              "(its keys answer ASK or MOVED, and the next migration fails); close it with "
                              f"valkey-cli --cluster fix {seen.get('asked')}", metrics)
    if lonely:
        return CheckResult("connect", WARN, f"{detail}; no replica for {', '.join(lonely)}", metrics)
    return CheckResult("connect", OK, detail + "; every shard has a replica, no slot migrating", metrics)


def check_placement(history: History) -> CheckResult:
    seen = recorded(history, "placement")
    if why := broken(history, "placement"):
        return CheckResult("placement", FAIL, f"the placement phase broke: {why}")
    slots = seen["slots"]
    keys, client_slots, server_slots, groups = slots["keys"], slots["client"], slots["server"], slots["groups"]
    by_key = dict(zip(keys, client_slots, strict=True))
    wrong_slot = [k for k, mine, theirs in zip(keys, client_slots, server_slots, strict=True) if mine != theirs]
    split_groups = [g for g, members in groups.items() if len({by_key[k] for k in members}) != 1]
    wrong_node = [k for f, owner in seen.items() if f.startswith("owner of ")
                  for k, v in zip(owner["keys"], owner["values"], strict=True) if v != k]
    metrics = {"keys": len(keys), "hash_tag_groups": len(groups), "client_slot_mismatches": len(wrong_slot),
               "split_hash_tag_groups": split_groups, "not_on_owner": wrong_node[:10]}
    failed = wrong_slot or split_groups or wrong_node
    detail = (f"{len(keys)} keys: client slot == CLUSTER KEYSLOT for all; {len(groups)} hash-tag groups each in "
              "one slot; every key read back from the primary that owns its slot" if not failed else
              f"{len(wrong_slot)} slot mismatches, {len(split_groups)} split tag groups, "
              f"{len(wrong_node)} keys not on their slot's owner")
    return CheckResult("placement", FAIL if failed else OK, detail, metrics)


def check_distribution(history: History) -> CheckResult:
    """Keys spread by slot: each shard's share of keys is its share of slots (the counts go to
    lib/report/cluster_report.distribution_table)."""
    if why := broken(history, "distribution"):
        return CheckResult("distribution", FAIL, f"the distribution phase broke: {why}")
    written = recorded(history, "distribution")["written"]
    counts = {op.key: op.value for op in history.snapshot("distribution", "count")}
    problems = []
    for shard in layout(history):
        count = counts.get(shard.label, 0)
        key_share, slot_share = count / written, shard.primary.slot_count / SLOTS
        if abs(key_share - slot_share) > DISTRIBUTION_TOLERANCE:
            problems.append(f"{shard.label} holds {key_share:.1%} of keys for {slot_share:.1%} of slots")
    total = sum(counts.values())
    if total != written:
        problems.insert(0, f"counted {total} keys on the primaries, wrote {written}")
    metrics = {"written": written, "counted": total, "per_shard": counts}
    detail = (f"{written:,} keys written, {total:,} counted with SCAN on the primaries; per shard "
              + ", ".join(f"{k}: {v:,}" for k, v in counts.items()))
    return CheckResult("distribution", FAIL if problems else OK, "; ".join(problems) or detail, metrics)
