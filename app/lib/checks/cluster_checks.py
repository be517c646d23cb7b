"""The cluster suite's verdicts: topology, slot placement, MOVED, ASK, key spread, a shard's failover, the rejoin.

Checks read and judge. The slot migrations of moved and ask are the check itself (and always put back);
the fault, restarting the killed node and putting the roles back are the suite's (lib/suites/cluster.py).
"""

from __future__ import annotations

import time

import redis
from redis.crc import key_slot

from lib import events
from lib.checks.accounting import account_history, bound_line
from lib.checks.checker import error_counts, longest_gap_ms, lost_writes, outage_around
from lib.checks.result import FAIL, OK, WARN, ScenarioResult
from lib.checks.timeline import Timeline, build_timeline, client_rows, history_to_dict
from lib.cluster_client import BACKOFF_CAP_S, RETRIES_PER_CALL, ClusterClient
from lib.history import OK as OP_OK
from lib.runs.cluster_failover import (
    NO_FAILOVER,
    PINNED_GROUP,
    SHARD_DOWN,
    ClusterFailoverRun,
    wait_rejoined,
)
from lib.runs.cluster_migration import SlotMigration, slot_put_back_after
from lib.topology.cluster_topology import (
    SLOTS,
    ClusterNode,
    Shard,
    covered_slots,
    open_slots,
    own_view,
    shard_for_slot,
    tag_for_slot,
)
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until

PLACEMENT_KEYS = 300
TAGGED_GROUPS = 10  # of PLACEMENT_KEYS, these many hash-tag groups of 5 keys each
DISTRIBUTION_KEYS = 3000
DISTRIBUTION_TOLERANCE = 0.05  # a shard's share of keys vs its share of slots, absolute
ASK_KEYS = 20  # keys in the migrating slot; half are moved before the cluster client is asked
OTHER_SHARDS_MAX_GAP_MS = 1000  # "kept serving": longest pause of writes to a shard that lost nothing
# Any acknowledged write lost is a FAIL, whatever the fault. The faults of the fault matrix also get their
# notes (write pause, heal, pinned writer, NOREPLICAS, the server's shutdown log).
STRICT_FAULTS = ("coordinated", "pause", "partition", "sigterm", "exec", "replica-kill", "shard-loss")
HANDOVER_MARKS = ("failover to replica", "replicas are in sync when shutting down")  # Valkey 9.0 shutdown log


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


def check_primary_failure(client: ClusterClient, run: ClusterFailoverRun | None, skipped: str | None,
                          mode: str = "auto") -> ScenarioResult:
    """The shard's failover (or, for replica-kill and shard-loss, the lack of one) judged; mode is --fault."""
    if run is None:
        return ScenarioResult("primary_failure", WARN, f"skipped: {skipped}")
    victim = run.victim
    metrics: dict = {"fault": run.fault, "backoff_cap_ms": BACKOFF_CAP_S * 1000, "retries_per_call": RETRIES_PER_CALL,
                     "ops_total": len(run.ops()), "errors_by_type": error_counts(run.ops())}
    if victim is None:
        return ScenarioResult("primary_failure", FAIL, f"no shard lost its primary: {run.timeout_reason}", metrics)
    if run.expect == NO_FAILOVER:
        return judge_no_failover(client, run, metrics)
    if run.expect == SHARD_DOWN:
        return judge_shard_loss(client, run, metrics)
    metrics.update({"shard": victim.label, "old_primary": format_endpoint(*victim.primary.announced),
                    "promoted": format_endpoint(*run.promoted.announced) if run.promoted else None,
                    "promoted_after_s": round(run.offset(run.promoted_at), 3) if run.promoted_at else None})
    outage = outage_around(run.ops(victim), run.fault_at)
    metrics["affected_downtime_ms"] = round(outage.downtime_ms, 1) if outage and outage.downtime_ms else 0.0
    metrics.update(recovery_metrics(run, outage))
    metrics["timeline"] = failover_timeline(run).to_dict()
    metrics["history"] = history_to_dict(run.history, run.fault_at)
    end = run.recovered_at or time.monotonic()
    others = {s.label: round(longest_gap_ms(run.ops(s), run.fault_at, end), 1)
              for s in run.shards if s.label != victim.label}
    metrics["other_shards_longest_gap_ms"] = others
    strict = mode in STRICT_FAULTS
    notes = fault_notes(run, metrics, end, mode) if strict else []
    if run.timeout_reason:
        return ScenarioResult("primary_failure", FAIL, f"no recovery: {run.timeout_reason}"
                              + "".join(f"; {n}" for n in notes), metrics)
    loss = lost_writes(run.ops(), final_reader(client, run))
    metrics.update({"acked": loss.acked, "lost": loss.lost, "lost_keys_sample": loss.lost_keys})
    if strict:
        notes += loss_notes(run, loss, metrics)
    if bound := accounting(run, metrics):
        notes.append(bound)
    slow = {k: v for k, v in others.items() if v > OTHER_SHARDS_MAX_GAP_MS}
    detail = (f"{run.fault}; {metrics['promoted']} promoted after {metrics['promoted_after_s']:.2f} s; "
              f"shard {victim.label} unable to write for {metrics['affected_downtime_ms']:,.0f} ms; other shards' "
              f"longest pause {max(others.values(), default=0):,.0f} ms; {loss.acked:,} acknowledged writes, "
              f"{loss.lost} lost") + "".join(f"; {n}" for n in notes)
    if slow:
        return ScenarioResult("primary_failure", FAIL, f"{detail}; shards {', '.join(slow)} stopped serving "
                              f"for more than {OTHER_SHARDS_MAX_GAP_MS} ms", metrics)
    if loss.lost:  # strict, as Jepsen counts: the explanation does not excuse the loss
        why = ("" if strict else " (asynchronous replication: writes the dead primary acknowledged but had not sent "
               "to its replica)")
        return ScenarioResult("primary_failure", FAIL, f"{detail}{why}; any acknowledged write lost is a FAIL",
                              metrics)
    return ScenarioResult("primary_failure", OK, detail, metrics)


def fault_notes(run: ClusterFailoverRun, metrics: dict, end: float, mode: str) -> list[str]:
    """What the fault matrix measures besides the kill's numbers: the write pause, the heal, the writer pinned
    to the old primary, NOREPLICAS, the server's own account of a shutdown; into metrics, and as detail notes."""
    victim = run.victim
    pause = round(write_pause_ms(run.ops(victim), run.fault_at, end), 1)
    metrics["write_pause_ms"] = pause
    notes = [f"write pause {pause:,.0f} ms (longest gap between acknowledged writes to {victim.label})"]
    if run.healed_at is not None:
        metrics["healed_after_s"] = round(run.offset(run.healed_at), 3)
        demoted = round((run.demoted_at - run.healed_at) * 1000, 1) if run.demoted_at else None
        metrics["old_primary_demoted_after_heal_ms"] = demoted
        notes.append(f"healed at +{metrics['healed_after_s']:.2f} s, the old primary a replica "
                     + (f"{demoted:,.0f} ms later" if demoted is not None else "never"))
    if run.pinned is not None:
        notes.append(pinned_note(run, metrics, mode))
    if "min-replicas-to-write" in run.settings:
        refused = [op for op in run.ops() if op.error and "NOREPLICAS" in op.error and op.end >= run.fault_at]
        first = min((op.end for op in refused), default=None)
        metrics["first_noreplicas_after_s"] = round(run.offset(first), 3) if first is not None else None
        notes.append(f"first NOREPLICAS at +{metrics['first_noreplicas_after_s']:.2f} s" if first is not None
                     else "no write refused with NOREPLICAS")
    metrics["run_settings"] = dict(run.settings)
    if run.server_log is not None:
        handover = [line for line in run.server_log if any(m in line.lower() for m in HANDOVER_MARKS)]
        metrics.update({"server_log": run.server_log[-20:], "server_log_handover": bool(handover)})
        notes.append(f"server log: {handover[-1].split(' * ', 1)[-1]}" if handover
                     else "the server log shows no hand-over to a replica")
    return notes


def final_reader(client: ClusterClient, run: ClusterFailoverRun):  # noqa: ANN201 - MGET-like
    """The final read the run recorded (what --recheck judges by), else a read now through the cluster client."""
    final = run.history.final_read
    if final is not None:
        return lambda keys: [final.get(key) for key in keys]
    return lambda keys: client.call(lambda rc: rc.mget_nonatomic(keys))


def accounting(run: ClusterFailoverRun, metrics: dict) -> str | None:
    """Jepsen's classes of every write (lib/checks/accounting.py) from the saved history and its final read, into
    metrics; the line saying whether the loss is within what min-replicas-max-lag documents (None: nothing to say)."""
    saved = metrics.get("history") or history_to_dict(run.history, run.fault_at)
    if saved.get("final_read") is None:
        return None
    acc = account_history(saved)
    lag = max_lag_s(run.settings)
    metrics.update({**acc.metrics(), "min_replicas_max_lag_s": lag})
    return bound_line(acc, lag, "Valkey Cluster") if acc.acked_lost or lag is not None else None


def max_lag_s(settings: dict[str, str]) -> float | None:
    """The min-replicas bound the run had: max-lag seconds when min-replicas-to-write was set above 0."""
    if int(settings.get("min-replicas-to-write", 0) or 0) <= 0:
        return None
    return float(settings.get("min-replicas-max-lag", 10))  # 10 s: the server's default


def write_pause_ms(ops: list, fault_at: float, end: float) -> float:
    """The longest time between two acknowledged writes, from the last one before the fault until end."""
    acks = sorted(op.end for op in ops if op.outcome == OP_OK and op.end <= end)
    before = [at for at in acks if at < fault_at]
    points = [before[-1] if before else fault_at, *(at for at in acks if at >= fault_at), end]
    return max((b - a) * 1000 for a, b in zip(points, points[1:], strict=False))


def pinned_note(run: ClusterFailoverRun, metrics: dict, mode: str) -> str:
    """The plain client pinned to the old primary: when it stopped taking writes, what it took after the heal."""
    ops = sorted(run.pinned_ops(), key=lambda op: op.start)
    first_error = next((op for op in ops if op.outcome != OP_OK and op.end >= run.fault_at), None)
    after_heal = [op for op in ops if op.outcome == OP_OK and run.healed_at is not None and op.end >= run.healed_at]
    during = [op for op in ops if op.outcome == OP_OK and op.end >= run.fault_at
              and (run.healed_at is None or op.end < run.healed_at)]
    stopped_s = round(run.offset(first_error.end), 3) if first_error else None
    metrics.update({"pinned_to": format_endpoint(*run.pinned), "pinned_first_error_after_s": stopped_s,
                    "pinned_first_error": first_error.error if first_error else None,
                    "old_primary_acked_during_fault": len(during), "old_primary_acked_after_heal": len(after_heal)})
    if mode == "partition":  # the minority side: when it stops taking writes (cluster-node-timeout after the cut)
        metrics["minority_stopped_writes_after_s"] = stopped_s
    stopped = (f"first error at +{stopped_s:.2f} s ({(first_error.error or '').split(' (attempts')[0][:60]})"
               if first_error else "no error")
    return (f"writer pinned to {metrics['pinned_to']}: {stopped}; {len(during)} acknowledged during the fault, "
            f"{len(after_heal)} after the heal")


def loss_notes(run: ClusterFailoverRun, loss, metrics: dict) -> list[str]:
    """When each lost write was acknowledged (seconds from the fault), and the pinned writer's share."""
    acked_at = sorted(round(run.offset(op.end), 3) for op in loss.lost_ops)
    metrics.update({"lost_acked_at_s": acked_at,
                    "lost_acked_window_s": [acked_at[0], acked_at[-1]] if acked_at else None})
    notes = []
    if run.pinned is not None:
        pinned_lost = [op for op in loss.lost_ops if op.group == PINNED_GROUP]
        after_heal = [op for op in pinned_lost if run.healed_at is not None and op.end >= run.healed_at]
        metrics.update({"old_primary_acked_lost": len(pinned_lost),
                        "old_primary_acked_after_heal_lost": len(after_heal)})
        if pinned_lost:
            notes.append(f"{len(pinned_lost)} of the lost writes acknowledged by the old primary to the pinned "
                         f"writer ({len(after_heal)} after the heal)")
    if acked_at:
        notes.append(f"lost writes were acknowledged {acked_at[0]:+.2f} s to {acked_at[-1]:+.2f} s from the fault")
    return notes


def judge_no_failover(client: ClusterClient, run: ClusterFailoverRun, metrics: dict) -> ScenarioResult:
    """A replica killed: the cluster flags it fail, nothing is promoted, every shard keeps taking writes."""
    victim, replica = run.victim, run.down
    end = run.recovered_at or time.monotonic()
    gaps = {s.label: round(longest_gap_ms(run.ops(s), run.fault_at, end), 1) for s in run.shards}
    metrics.update({"shard": victim.label, "killed_replica": format_endpoint(*replica.announced) if replica else None,
                    "primary": format_endpoint(*victim.primary.announced), "promoted": None,
                    "replica_flagged_fail_s": round(run.offset(run.down_seen_at), 3) if run.down_seen_at else None,
                    "longest_gap_ms": gaps, "history": history_to_dict(run.history, run.fault_at)})
    if run.timeout_reason:
        return ScenarioResult("primary_failure", FAIL, f"no verdict: {run.timeout_reason}", metrics)
    me = own_view(client.nodes([client.reachable(victim.primary)]))
    metrics["primary_kept_slots"] = me.is_primary and bool(me.slots)
    loss = lost_writes(run.ops(), final_reader(client, run))
    metrics.update({"acked": loss.acked, "lost": loss.lost, "lost_keys_sample": loss.lost_keys})
    accounting(run, metrics)
    slow = {k: v for k, v in gaps.items() if v > OTHER_SHARDS_MAX_GAP_MS}
    kept = metrics["primary_kept_slots"]
    detail = (f"{run.fault}: replica {metrics['killed_replica']} flagged fail after "
              f"{metrics['replica_flagged_fail_s']:.2f} s; {'no failover' if kept else 'a failover'} "
              f"({metrics['primary']} {'still serves' if kept else 'lost'} {victim.label}); every shard's longest "
              f"pause {max(gaps.values(), default=0):,.0f} ms; {loss.acked:,} acknowledged writes, {loss.lost} lost")
    problems = [p for p, bad in (("the primary is no longer the primary of its slots", not kept),
                                 (f"shards {', '.join(slow)} paused over {OTHER_SHARDS_MAX_GAP_MS} ms", bool(slow)),
                                 ("acknowledged writes were lost", bool(loss.lost))) if bad]
    if problems:
        return ScenarioResult("primary_failure", FAIL, f"{detail}; expected no failover and no loss: "
                              f"{'; '.join(problems)}", metrics)
    return ScenarioResult("primary_failure", OK, f"{detail}, as expected", metrics)


def judge_shard_loss(client: ClusterClient, run: ClusterFailoverRun, metrics: dict) -> ScenarioResult:
    """A primary and its replicas killed: no promotion is possible (expected). The other shards keep serving
    (cluster-require-full-coverage no) or all stop (yes); then the run restarts the shard and it recovers."""
    victim = run.victim
    others = [s for s in run.shards if s.label != victim.label]
    until = run.healed_at or run.recovered_at or time.monotonic()
    coverage = run.settings.get("cluster-require-full-coverage", "unknown")
    gaps = {s.label: round(longest_gap_ms(run.ops(s), run.fault_at, until), 1) for s in others}
    failures = {s.label: _stopped_s(run, s) for s in others}
    stopped = {label: pair[0] if pair else None for label, pair in failures.items()}
    outage = outage_around(run.ops(victim), run.fault_at)
    metrics.update({
        "shard": victim.label,
        "lost_nodes": [format_endpoint(*n.announced) for n in (victim.primary, *victim.replicas)],
        "promoted": None, "full_coverage": coverage,
        "node_flagged_fail_s": round(run.offset(run.down_seen_at), 3) if run.down_seen_at else None,
        "other_shards_longest_gap_ms": gaps, "healthy_shards_stopped_after_s": stopped,
        "healthy_shards_first_error_s": {label: pair[1] if pair else None for label, pair in failures.items()},
        "healed_after_s": round(run.offset(run.healed_at), 3) if run.healed_at else None,
        "recovered_after_heal_s": (round(run.recovered_at - run.healed_at, 3)
                                   if run.recovered_at and run.healed_at else None),
        "affected_downtime_ms": round(outage.downtime_ms, 1) if outage and outage.downtime_ms else None,
        "timeline": failover_timeline(run).to_dict(), "history": history_to_dict(run.history, run.fault_at)})
    if run.timeout_reason:
        return ScenarioResult("primary_failure", FAIL, f"no promotion possible (the whole shard {victim.label} is "
                              f"down), and then: {run.timeout_reason}", metrics)
    loss = lost_writes(run.ops(), final_reader(client, run))
    lost_here = sum(1 for op in loss.lost_ops if op.group == victim.label)
    metrics.update({"acked": loss.acked, "lost": loss.lost, "lost_on_lost_shard": lost_here,
                    "lost_keys_sample": loss.lost_keys})
    accounting(run, metrics)
    if coverage == "yes":
        seen = [v for v in stopped.values() if v is not None]
        errors = [v for v in metrics["healthy_shards_first_error_s"].values() if v is not None]
        others_line = (f"every other shard stopped taking writes at +{min(seen):.2f}-{max(seen):.2f} s (its last "
                       f"acknowledged write; CLUSTERDOWN reached the client at +{min(errors):.2f}-{max(errors):.2f} s)"
                       if seen and len(seen) == len(stopped) else f"other shards stopped: {stopped}")
    else:
        others_line = f"the other shards kept serving (longest pause {max(gaps.values(), default=0):,.0f} ms)"
    detail = (f"{run.fault}: no promotion possible: the whole shard {victim.label} is down (expected); flagged "
              f"fail after {metrics['node_flagged_fail_s']:.2f} s; cluster-require-full-coverage {coverage}: "
              f"{others_line}; nodes started again at +{metrics['healed_after_s']:.2f} s, writes to {victim.label} "
              f"{metrics['recovered_after_heal_s']:.2f} s later (shard down {metrics['affected_downtime_ms'] or 0:,.0f}"
              f" ms); {loss.acked:,} acknowledged writes, {lost_here} lost on {victim.label}, "
              f"{loss.lost - lost_here} on the others")
    if loss.lost - lost_here:
        return ScenarioResult("primary_failure", FAIL, f"{detail}: shards that lost nothing lost writes", metrics)
    if coverage != "yes" and max(gaps.values(), default=0) > OTHER_SHARDS_MAX_GAP_MS:
        return ScenarioResult("primary_failure", FAIL, f"{detail}; the other shards stopped serving for more than "
                              f"{OTHER_SHARDS_MAX_GAP_MS} ms", metrics)
    if coverage == "yes" and None in stopped.values():
        return ScenarioResult("primary_failure", WARN, f"{detail}; with full coverage required every shard should "
                              "have stopped", metrics)
    if lost_here:
        return ScenarioResult("primary_failure", WARN, f"{detail} (every copy of the shard was lost: a restart keeps "
                              "only what its nodes had on disk)", metrics)
    return ScenarioResult("primary_failure", OK, detail, metrics)


def _stopped_s(run: ClusterFailoverRun, shard: Shard) -> tuple[float, float] | None:
    """(last acknowledged write before the first failure, that failure's end), seconds from the fault; None if no
    write to shard failed. A client that retries learns late: the shard stopped at the first, not the second."""
    ops = sorted(run.ops(shard), key=lambda op: op.start)
    first = next((op for op in ops if op.outcome != OP_OK and op.start >= run.fault_at), None)
    if first is None:
        return None
    last_ok = max((op.end for op in ops if op.outcome == OP_OK and op.end <= first.end), default=run.fault_at)
    return round(run.offset(last_ok), 3), round(run.offset(first.end), 3)


def recovery_metrics(run: ClusterFailoverRun, ours) -> dict:
    """Our client's and a default RedisCluster's first write after the promotion (the bench compares them)."""
    metrics: dict = {}
    plain = outage_around(run.plain.snapshot(), run.fault_at) if run.plain is not None else None
    metrics["plain_downtime_ms"] = round(plain.downtime_ms, 1) if plain and plain.downtime_ms is not None else None
    if run.promoted_at is not None:
        if ours and ours.first_ok_end:
            metrics["ours_after_promotion_ms"] = round((ours.first_ok_end - run.promoted_at) * 1000, 1)
        if plain and plain.first_ok_end:
            metrics["plain_after_promotion_ms"] = round((plain.first_ok_end - run.promoted_at) * 1000, 1)
    flagged = {e.name: round(run.offset(e.at), 3) for e in run.history.events
               if e.name in (events.NODE_PFAIL, events.NODE_FAIL)}
    metrics.update({f"{name.replace(' ', '_')}_s": at for name, at in flagged.items()})
    return metrics


def check_rejoin(client: ClusterClient, run: ClusterFailoverRun | None, not_restarted: str | None = None
                 ) -> ScenarioResult:
    """The old primary, started again by the suite, replicates the promoted one and the cluster is ok.

    not_restarted: why the suite could not start the old primary again (then there is nothing to wait for).
    """
    if run is None or run.promoted is None:
        return ScenarioResult("rejoin", WARN, "skipped: no failover happened")
    old = run.victim.primary
    if not_restarted:
        return ScenarioResult("rejoin", WARN, f"{format_endpoint(*old.announced)} {not_restarted}",
                              {"old_primary_restarted": False})
    try:
        seen = wait_rejoined(client, old, run.promoted, timeout=60)
        wait_until(lambda: cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
    except WaitTimeout as exc:
        return ScenarioResult("rejoin", FAIL, f"did not rejoin: {exc}", {"old_primary_rejoined": False})
    metrics = {"old_primary_rejoined": True, "new_primary": format_endpoint(*run.promoted.announced)}
    return ScenarioResult("rejoin", OK, f"{format_endpoint(*old.announced)} is back as a replica of "
                          f"{format_endpoint(*run.promoted.announced)} ({seen}); cluster ok", metrics)


def check_replica_return(client: ClusterClient, run: ClusterFailoverRun | None, not_restarted: str | None = None
                         ) -> ScenarioResult:
    """After a replica kill or a shard loss: the shard's primary holds its slots, its replica replicates it again
    with the link up, and the cluster is ok (the suite started the killed nodes again)."""
    if run is None or run.victim is None or not run.victim.replicas:
        return ScenarioResult("rejoin", WARN, "skipped: no node was stopped")
    primary, replica = run.victim.primary, run.victim.replicas[0]
    if not_restarted:
        return ScenarioResult("rejoin", WARN, f"{format_endpoint(*replica.announced)} {not_restarted}",
                              {"replica_restarted": False})
    try:
        wait_until(lambda: _holds_slots(client, primary), timeout=60,
                   what=f"{format_endpoint(*primary.announced)} to be the primary of {run.victim.label}")
        seen = wait_rejoined(client, replica, primary, timeout=60)
        wait_until(lambda: cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
    except WaitTimeout as exc:
        return ScenarioResult("rejoin", FAIL, f"did not come back: {exc}", {"replica_rejoined": False})
    return ScenarioResult("rejoin", OK, f"{format_endpoint(*replica.announced)} is back as a replica of "
                          f"{format_endpoint(*primary.announced)} ({seen}), which holds {run.victim.label}; cluster ok",
                          {"replica_rejoined": True, "primary": format_endpoint(*primary.announced)})


def _holds_slots(client: ClusterClient, node: ClusterNode) -> tuple[bool, str]:
    me = own_view(client.nodes([client.reachable(node)]))
    return me.is_primary and bool(me.slots), f"{'primary' if me.is_primary else 'replica'} slots={me.slots}"


def check_roles_put_back(client: ClusterClient, run: ClusterFailoverRun, rejoined: ScenarioResult,
                         problem: str | None) -> ScenarioResult:
    """After the suite made the old primary the primary again: the cluster is ok with the roles it started with.

    rejoined is check_rejoin's OK result; problem, why the suite could not put the roles back (None: done).
    """
    old, promoted = format_endpoint(*run.victim.primary.announced), format_endpoint(*run.promoted.announced)
    metrics = dict(rejoined.metrics)
    if problem is None:
        try:
            wait_until(lambda: cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
        except (WaitTimeout, redis.RedisError) as exc:
            problem = str(exc)
    if problem is not None:
        metrics["roles_put_back"] = False
        return ScenarioResult("rejoin", FAIL, f"{rejoined.detail}; the roles were NOT put back: {problem}", metrics)
    metrics.update({"roles_put_back": True, "new_primary": old})
    return ScenarioResult("rejoin", OK, f"{rejoined.detail}; roles put back: {old} is the primary again "
                          f"(CLUSTER FAILOVER), {promoted} its replica", metrics)


def cluster_ok(client: ClusterClient) -> tuple[bool, str]:
    """Every node answers cluster_state:ok and none is flagged failed (a wait_until check)."""
    states = {}
    for node in client.nodes():
        if node.failed:
            return False, f"{format_endpoint(*node.announced)} flagged {','.join(sorted(node.flags))}"
        with client.node(client.reachable(node)) as plain:
            states[format_endpoint(*node.announced)] = plain.cluster("INFO").get("cluster_state")
    return all(s == "ok" for s in states.values()), str(states)


def failover_timeline(run: ClusterFailoverRun) -> Timeline:
    """Every shard's writes in the buckets; the outage measured on the shard that lost its primary."""
    victim_ops = run.ops(run.victim) if run.victim is not None else None
    extra = []
    if run.plain is not None:
        extra = [row for row in client_rows(run.plain.snapshot(), run.fault_at, "plain redis-py")
                 if row.name.endswith(events.RECOVERED)]
    if run.pinned is not None:  # what the old primary itself told a client that stayed with it
        extra += [row for row in client_rows(run.pinned_ops(), run.fault_at, "pinned writer")
                  if not row.name.endswith(events.RECOVERED)]
    who = f"client ({run.victim.label})" if run.victim is not None else "client"
    return build_timeline(run.history, run.fault_at, ops=victim_ops, who=who, extra_events=extra)
