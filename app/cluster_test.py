"""Cluster check: topology, slot placement, MOVED, ASK during a live migration, key spread, shard failover.

    python app/cluster_test.py                       # the local stack (python app/stack.py up cluster), else :7000
    python app/cluster_test.py --fault manual        # you run e.g.: docker kill node-7000 (any primary)
    python app/cluster_test.py --node redis.example:6379 --fault graceful --allow-destructive --json out.json

Checks: connect, placement, moved, ask, distribution, primary_failure, rejoin.
Exit code: 0 all passed (WARN allowed), 1 a check failed, 2 setup error (one line on stderr).
Reads the topology it is given: no assumption about ports or the number of shards.

moved and ask migrate a slot, and the faults kill or fail over a primary: on servers the harness did
not start (a local stack, this repo's compose containers) only with --allow-destructive. Slots are
always put back; a graceful failover (and, with --allow-destructive, a kill) is undone afterwards.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from redis.crc import key_slot
from rich.table import Table

from lib import events
from lib.checks.checker import error_counts, longest_gap_ms, lost_writes, outage_around
from lib.checks.result import FAIL, OK, WARN, ScenarioResult, SuiteReport, run_scenario
from lib.clients.keyspace import delete_prefix
from lib.cluster_client import BACKOFF_CAP_S, RETRIES_PER_CALL, ClusterClient
from lib.errors import SetupError
from lib.faults.fault import (
    DockerKill,
    Fault,
    LocalKill,
    ManualKill,
    WaitNotice,
    choose_kill,
    restore_fault,
    undo_interrupted_fault,
)
from lib.ha_client import answers
from lib.launcher.discovery import running_stack, stack_serving
from lib.launcher.ownership import require_owned
from lib.report.plot import plot_timeline, require_matplotlib
from lib.report.report import (
    ManualPrompt,
    cli_main,
    console,
    err_console,
    finish,
    key_value_table,
    run_undoing_interrupts,
)
from lib.report.timeline import Timeline, build_timeline, client_rows, history_to_dict, timeline_table
from lib.runs.cluster_failover import (
    ClusterFailoverRun,
    ClusterManualFailover,
    put_back_roles,
    run_cluster_failover,
    wait_links_up,
    wait_rejoined,
)
from lib.runs.cluster_migration import SlotMigration, slot_put_back_after
from lib.suites.cli import add_failover_options, parse_host_map, require_writable_output
from lib.topology.cluster_topology import (
    SLOTS,
    Address,
    ClusterNode,
    Shard,
    covered_slots,
    open_slots,
    own_view,
    shard_for_slot,
    shards_of,
    tag_for_slot,
)
from lib.util import format_endpoint, key_namespace, parse_endpoint
from lib.waits import WaitTimeout, wait_until
from lib.workload.workload import OK as OP_OK
from lib.workload.workload import History

DEFAULT_NODE = ("127.0.0.1", 7000)
PLACEMENT_KEYS = 300
TAGGED_GROUPS = 10  # of PLACEMENT_KEYS, these many hash-tag groups of 5 keys each
DISTRIBUTION_KEYS = 3000
DISTRIBUTION_TOLERANCE = 0.05  # a shard's share of keys vs its share of slots, absolute
ASK_KEYS = 20  # keys in the migrating slot; half are moved before the cluster client is asked
OTHER_SHARDS_MAX_GAP_MS = 1000  # "kept serving": longest pause of writes to a shard that lost nothing


@dataclass
class Target:
    seeds: list[Address]
    source: str


def resolve_target(args) -> Target:
    """--node flags, then the local stack ($VHC_STACK_STATE, .stack/cluster), else 127.0.0.1:7000."""
    if args.node:
        return Target([parse_endpoint(n, example="127.0.0.1:7000") for n in args.node], "--node")
    if stack := running_stack("cluster"):
        return Target([stack.endpoint(n) for n in stack.running() if stack.service(n).kind == "server"],
                      f"local stack {stack.state_dir}")
    return Target([DEFAULT_NODE], "default (the compose port of node-7000)")


# ---- checks ------------------------------------------------------------------------------------

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


def check_distribution(client: ClusterClient, shards: list[Shard], ns: str) -> tuple[ScenarioResult, Table]:
    prefix = f"{ns}d:"
    keys = [f"{prefix}{i}" for i in range(DISTRIBUTION_KEYS)]
    for i in range(0, len(keys), 500):
        batch = keys[i:i + 500]
        client.call(lambda rc, b=batch: rc.mset_nonatomic({k: "1" for k in b}))
    table = Table(title=f"Key distribution ({DISTRIBUTION_KEYS:,} keys)")
    for column in ("shard (slot ranges)", "primary", "slots", "keys", "share of keys", "share of slots"):
        table.add_column(column)
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
        table.add_row(shard.label, format_endpoint(*shard.primary.announced), f"{shard.primary.slot_count:,}",
                      f"{count:,}", f"{key_share:.1%}", f"{slot_share:.1%}")
    total = sum(counts.values())
    table.add_row("total", "", f"{covered_slots(shards):,}", f"{total:,}", f"{total / DISTRIBUTION_KEYS:.1%}", "")
    if total != DISTRIBUTION_KEYS:
        problems.insert(0, f"counted {total} keys on the primaries, wrote {DISTRIBUTION_KEYS}")
    metrics = {"written": DISTRIBUTION_KEYS, "counted": total, "per_shard": counts}
    detail = (f"{DISTRIBUTION_KEYS:,} keys written, {total:,} counted with SCAN on the primaries; per shard "
              + ", ".join(f"{k}: {v:,}" for k, v in counts.items()))
    return ScenarioResult("distribution", FAIL if problems else OK, "; ".join(problems) or detail, metrics), table


def check_primary_failure(client: ClusterClient, run: ClusterFailoverRun | None, skipped: str | None) -> ScenarioResult:
    if run is None:
        return ScenarioResult("primary_failure", WARN, f"skipped: {skipped}")
    victim = run.victim
    metrics: dict = {"fault": run.fault, "backoff_cap_ms": BACKOFF_CAP_S * 1000, "retries_per_call": RETRIES_PER_CALL,
                     "ops_total": len(run.ops()), "errors_by_type": error_counts(run.ops())}
    if victim is None:
        return ScenarioResult("primary_failure", FAIL, f"no shard lost its primary: {run.timeout_reason}", metrics)
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
    if run.timeout_reason:
        return ScenarioResult("primary_failure", FAIL, f"no recovery: {run.timeout_reason}", metrics)
    loss = lost_writes(run.ops(), lambda keys: client.call(lambda rc: rc.mget_nonatomic(keys)))
    metrics.update({"acked": loss.acked, "lost": loss.lost, "lost_keys_sample": loss.lost_keys})
    slow = {k: v for k, v in others.items() if v > OTHER_SHARDS_MAX_GAP_MS}
    detail = (f"{run.fault}; {metrics['promoted']} promoted after {metrics['promoted_after_s']:.2f} s; "
              f"shard {victim.label} unable to write for {metrics['affected_downtime_ms']:,.0f} ms; other shards' "
              f"longest pause {max(others.values(), default=0):,.0f} ms; {loss.acked:,} acknowledged writes, "
              f"{loss.lost} lost")
    if slow:
        return ScenarioResult("primary_failure", FAIL, f"{detail}; shards {', '.join(slow)} stopped serving "
                              f"for more than {OTHER_SHARDS_MAX_GAP_MS} ms", metrics)
    if loss.lost:
        return ScenarioResult("primary_failure", WARN, f"{detail} (asynchronous replication: writes the dead "
                              "primary acknowledged but had not sent to its replica)", metrics)
    return ScenarioResult("primary_failure", OK, detail, metrics)


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


def check_rejoin(client: ClusterClient, run: ClusterFailoverRun | None, fault: Fault | None,
                 restore_timeout: float, *, put_back: bool = False) -> ScenarioResult:
    """The old primary runs again and replicates the promoted one; with put_back, it is then made the
    primary again (CLUSTER FAILOVER on it), so the cluster ends with the roles it started with."""
    if run is None or run.promoted is None or fault is None:
        return ScenarioResult("rejoin", WARN, "skipped: no failover happened")
    old = run.victim.primary
    try:
        restored = restore_fault(fault, restore_timeout) if (fault.can_restore or fault.by_hand) else True
        why = f"was not started again within {restore_timeout:.0f}s"
    except (WaitTimeout, SetupError) as exc:
        restored, why = False, f"was not started again: {exc}"
    if not restored:
        return ScenarioResult("rejoin", WARN, f"{format_endpoint(*old.announced)} {why}",
                              {"old_primary_restarted": False})
    try:
        seen = wait_rejoined(client, old, run.promoted, timeout=60)
        wait_until(lambda: _cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
    except WaitTimeout as exc:
        return ScenarioResult("rejoin", FAIL, f"did not rejoin: {exc}", {"old_primary_rejoined": False})
    metrics = {"old_primary_rejoined": True, "new_primary": format_endpoint(*run.promoted.announced)}
    detail = (f"{format_endpoint(*old.announced)} is back as a replica of {format_endpoint(*run.promoted.announced)} "
              f"({seen}); cluster ok")
    if not put_back:
        return ScenarioResult("rejoin", OK, detail, metrics)
    try:
        put_back_roles(client, old, run.promoted, timeout=60)
        wait_until(lambda: _cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
    except (WaitTimeout, redis.RedisError) as exc:
        metrics["roles_put_back"] = False
        return ScenarioResult("rejoin", FAIL, f"{detail}; the roles were NOT put back: {exc}", metrics)
    metrics.update({"roles_put_back": True, "new_primary": format_endpoint(*old.announced)})
    return ScenarioResult("rejoin", OK, f"{detail}; roles put back: {format_endpoint(*old.announced)} is the primary "
                          f"again (CLUSTER FAILOVER), {format_endpoint(*run.promoted.announced)} its replica", metrics)


def _cluster_ok(client: ClusterClient) -> tuple[bool, str]:
    states = {}
    for node in client.nodes():
        if node.failed:
            return False, f"{format_endpoint(*node.announced)} flagged {','.join(sorted(node.flags))}"
        with client.node(client.reachable(node)) as plain:
            states[format_endpoint(*node.announced)] = plain.cluster("INFO").get("cluster_state")
    return all(s == "ok" for s in states.values()), str(states)


# ---- faults ------------------------------------------------------------------------------------

def build_fault(args, client: ClusterClient, shards: list[Shard], history: History,
                notify: Callable[[WaitNotice], None] | None = None) -> tuple[Fault | None, object]:
    """The fault, and a callable naming the shard it hits (asked after the fault).

    Built before any server is touched: a fault that cannot be done (no docker, no replica) is a
    setup error that costs nothing.
    """
    victim = shards[0]  # the primary of slot 0 (node-7000 in our stack)
    if args.fault == "none":
        return None, None
    if args.fault == "graceful":
        if not victim.replicas:
            raise SetupError(f"--fault graceful: shard {victim.label} has no replica to promote")
        return ClusterManualFailover(client, victim.replicas[0]), lambda: victim
    if args.fault == "manual":
        def down_shard() -> Shard | None:
            return next((s for s in shards if not answers(client.reachable(s.primary), client.password, 0.3)), None)

        local = stack_serving("cluster", client.reachable(victim.primary))
        name = victim.primary.announced[0]
        hint, restart = ((f"python app/stack.py kill {local[1]}", "python app/stack.py start SERVICE") if local
                         else (f"docker kill {name}", "docker start CONTAINER"))
        fault = ManualKill("any primary", hint, lambda: down_shard() is not None,
                           lambda: down_shard() is None, live_view(shards, history), timeout=args.manual_timeout,
                           restart_hint=restart, notify=notify, role="")
        return fault, lambda: down_shard() or victim
    kill = choose_kill(args.fault, "cluster", victim.primary.announced, client.reachable(victim.primary))
    return kill, lambda: victim


def changed_by(fault: Fault | None, shards: list[Shard]) -> list[ClusterNode]:
    """The nodes whose process or role the fault changes (a manual fault is the user's own act: none)."""
    victim = shards[0]
    if isinstance(fault, ClusterManualFailover):
        return [victim.primary, fault.replica]
    if isinstance(fault, LocalKill | DockerKill):
        return [victim.primary]
    return []


def puts_back_roles(args, fault: Fault | None) -> bool:
    """A graceful failover is undone always; a kill on servers the harness does not own, too."""
    return isinstance(fault, ClusterManualFailover) or (args.allow_destructive and fault is not None
                                                          and not fault.by_hand)


def live_view(shards: list[Shard], history: History):
    def render(remaining: float) -> Table:
        table = Table(title=f"waiting for a primary to be killed ({remaining:,.0f}s left)")
        table.add_column("shard")
        table.add_column("writes ok (last s)")
        table.add_column("errors (last s)")
        now = time.monotonic()
        recent = [op for op in history.snapshot() if op.end >= now - 1.0]
        for shard in shards:
            mine = [op for op in recent if op.group == shard.label]
            table.add_row(shard.label, str(sum(op.outcome == OP_OK for op in mine)),
                          str(sum(op.outcome != OP_OK for op in mine)))
        return table
    return render


# ---- output ------------------------------------------------------------------------------------

def topology_table(client: ClusterClient, shards: list[Shard]) -> Table:
    table = Table(title="Cluster topology")
    for column in ("shard (slots)", "role", "node (announced)", "reached at", "node id", "state"):
        table.add_column(column)
    for shard in shards:
        for i, node in enumerate([shard.primary, *shard.replicas]):
            reached = client.reachable(node)
            table.add_row(shard.label if i == 0 else "", "primary" if i == 0 else "replica",
                          format_endpoint(*node.announced),
                          format_endpoint(*reached) if reached != node.announced else "same",
                          node.node_id[:8], "failed" if node.failed else "connected")
    return table


def failover_timeline(run: ClusterFailoverRun) -> Timeline:
    """Every shard's writes in the buckets; the outage measured on the shard that lost its primary."""
    victim_ops = run.ops(run.victim) if run.victim is not None else None
    extra = []
    if run.plain is not None:
        extra = [row for row in client_rows(run.plain.snapshot(), run.fault_at, "plain redis-py")
                 if "recovered" in row.name]
    who = f"client ({run.victim.label})" if run.victim is not None else "client"
    return build_timeline(run.history, run.fault_at, ops=victim_ops, who=who, extra_events=extra)


def cleanup(client: ClusterClient, ns: str) -> str | None:
    """SCAN + UNLINK of this run's keys on every primary; None when done, else one line saying why not.

    ASKING before each UNLINK: a primary importing a slot holds keys of it that it does not own.
    """
    try:
        for shard in client.shards():
            with client.node(client.reachable(shard.primary), timeout=5.0) as node:
                delete_prefix(node, ns, cluster_node=True, asking=True)
    except (redis.RedisError, redis.exceptions.RedisClusterException, SetupError) as exc:
        return f"could not clean up keys {ns}*: {type(exc).__name__}: {first_line(str(exc))}"
    return None


def first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


# ---- main --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app/cluster_test.py", description=__doc__.split("\n")[0])
    parser.add_argument("--node", action="append", metavar="HOST:PORT",
                        help="a cluster node (repeat for more); default: the local stack, else 127.0.0.1:7000")
    add_failover_options(parser, fault_help=("auto: local launcher kill, else docker kill; manual: you kill a primary; "
                             "graceful: CLUSTER FAILOVER on a replica; none: no failover"),
                         host_map_fallback="the first node's host")
    return parser


def check_outputs(args) -> None:
    """--json and --plot are checked before any server is touched: a run whose results are lost is wasted."""
    require_writable_output(args.json)
    if args.plot:
        require_matplotlib()
        require_writable_output(args.plot, "--plot")


@dataclass
class Plan:
    """What the run will do, all of it validated before the first write."""

    nodes: list[ClusterNode]
    shards: list[Shard]
    version: str
    fault: Fault | None
    victim: object
    history: History = field(default_factory=History)


def prepare(args, client: ClusterClient, target: Target, *, migrates: bool,
            notify: Callable[[WaitNotice], None] | None = None) -> Plan:
    """Read the cluster, check that every node is reachable, build the fault, and refuse what the harness
    may not do; nothing is written. migrates: the suite moves slots (cluster_test's moved and ask checks)."""
    nodes = client.nodes()
    shards = shards_of(nodes)
    if not shards:
        raise SetupError(f"{format_endpoint(*target.seeds[0])} is in cluster mode but no node owns slots: "
                         "the cluster is not formed (run cluster-init)")
    client.require_reachable([n for n in nodes if not n.failed])
    version = server_version(client, shards[0].primary)
    history = History()
    fault, victim = build_fault(args, client, shards, history, notify)
    if migrates and len(shards) > 1:
        require_owned([client.reachable(s.primary) for s in shards], allowed=args.allow_destructive,
                      action="migrate slots between the primaries (checks moved and ask)")
    if changed := changed_by(fault, shards):
        require_owned([client.reachable(n) for n in changed], allowed=args.allow_destructive,
                      action=fault.description)
    return Plan(nodes, shards, version, fault, victim, history)


def server_version(client: ClusterClient, node: ClusterNode) -> str:
    try:
        with client.node(client.reachable(node)) as plain:
            server = plain.info("server")
    except redis.RedisError as exc:
        raise SetupError(f"{format_endpoint(*node.announced)} does not answer INFO: {exc}") from None
    return f"{server.get('server_name', 'redis')} {server.get('valkey_version') or server.get('redis_version')}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_outputs(args)
    host_map = parse_host_map(args.host_map, "node-7000=10.0.0.5")
    target = resolve_target(args)
    ns = key_namespace("cluster")
    prompt = ManualPrompt()
    with ClusterClient(target.seeds, password=args.password, host_map=host_map) as client:
        plan = prepare(args, client, target, migrates=True, notify=prompt)  # a SetupError: nothing written
        try:
            return run_undoing_interrupts(lambda: run_suite(args, client, target, plan, ns),
                                          lambda: [n for n in [undo_interrupted_fault(plan.fault)] if n], prompt)
        finally:
            prompt.close()
            if problem := cleanup(client, ns):
                err_console.print(f"[yellow]{problem}[/]", soft_wrap=True)


def run_suite(args, client: ClusterClient, target: Target, plan: Plan, ns: str) -> int:
    shards = plan.shards
    console.print(key_value_table("Target", [
        ("seed nodes", ", ".join(format_endpoint(*s) for s in target.seeds) + f"  (from {target.source})"),
        ("server", plan.version), ("nodes", len(plan.nodes)), ("shards", len(shards))]))
    console.print(topology_table(client, shards))
    report = SuiteReport("cluster", {"nodes": [format_endpoint(*s) for s in target.seeds],
                                     "server_version": plan.version, "shards": len(shards), "fault": args.fault})
    report.add(run_scenario("connect", lambda: check_connect(client, shards)))
    report.add(run_scenario("placement", lambda: check_placement(client, shards, ns)))
    report.add(run_scenario("moved", lambda: check_moved(client, shards, ns)))
    report.add(run_scenario("ask", lambda: check_ask(client, shards, ns)))
    distribution = run_scenario("distribution", lambda: check_distribution(client, shards, ns))
    if isinstance(distribution, tuple):
        distribution, table = distribution
        console.print(table)
    report.add(distribution)

    fault = plan.fault
    run, failed = None, None
    if fault is not None:
        try:
            run = failover(args, client, plan, ns)
        except (WaitTimeout, redis.RedisError, redis.exceptions.RedisClusterException, RuntimeError) as exc:
            failed = ScenarioResult("primary_failure", FAIL, f"the failover run stopped: {type(exc).__name__}: "
                                    f"{exc}{restart_after_broken_run(fault, plan.history)}",
                                    {"fault": fault.description})
    elif args.plot:
        console.print("[yellow]--plot: no failover ran (--fault none), nothing to plot[/]")
    report.add(failed or run_scenario("primary_failure", lambda: check_primary_failure(
        client, run, "--fault none" if fault is None else None)))
    report.add(run_scenario("rejoin", lambda: check_rejoin(
        client, run, fault, args.manual_timeout if fault and fault.by_hand else 30,
        put_back=puts_back_roles(args, fault))))
    return finish(report, args.json)


def restart_after_broken_run(fault: Fault, history: History, timeout: float = 30.0) -> str:
    """A run that broke after its kill still starts the node again: a fault must not outlive the run."""
    if history.first_event(events.FAULT) is None or not fault.can_restore:
        return ""
    try:
        restore_fault(fault, timeout)
    except (SetupError, WaitTimeout) as exc:
        return f"; the killed node was NOT started again: {exc}"
    return "; the killed node was started again"


def failover(args, client: ClusterClient, plan: Plan, ns: str) -> ClusterFailoverRun:
    """The measured failover, its timeline printed (and plotted with --plot)."""
    wait_links_up(client, plan.shards, timeout=60)
    run = run_cluster_failover(client, plan.fault, plan.shards, plan.victim, ns,
                               recovery_timeout=args.recovery_timeout, history=plan.history, progress=console.print)
    timeline = failover_timeline(run)
    console.print(timeline_table(timeline))
    if args.plot:
        written = plot_timeline(timeline, args.plot, f"Cluster failover: {run.fault}")
        console.print(f"timeline plot written to {written}")
    return run


if __name__ == "__main__":
    cli_main(main)
