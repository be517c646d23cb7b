"""Sentinel HA check: find the master through the sentinels, fail it over, measure what a client sees.

    python app/ha_test.py                      # the local stack (python app/stack.py up ha), else compose ports
    python app/ha_test.py --fault manual       # you run: docker kill valkey-master
    python app/ha_test.py --sentinel sentinel.example:26379 --master-name mymaster --fault graceful --json out.json

Checks: crud, master_kill, new_master, reconnect, consistency, replica_sync (and roles_restored after
--fault graceful on servers the harness did not start).
Faults and failovers run only on servers the harness started (lib/launcher/ownership.py), unless
--allow-destructive; then the harness puts the original master back afterwards.
Exit code: 0 all passed (WARN allowed), 1 a check failed, 2 setup error (one line on stderr),
130 interrupted (Ctrl-C or SIGTERM: the killed master is started again and the keys deleted first).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from dataclasses import dataclass

import redis
from rich.table import Table

from lib import events
from lib.checks.checker import error_counts, lost_writes, outage_around
from lib.checks.result import FAIL, OK, WARN, ScenarioResult, SuiteReport, run_scenario
from lib.clients.keyspace import delete_prefix
from lib.faults.fault import (
    Fault,
    LocalKill,
    ManualKill,
    choose_kill,
    restore_fault,
    undo_interrupted_fault,
)
from lib.ha_client import BACKOFF_CAP_S, RETRIES_PER_CALL, Address, HAClient, answers
from lib.launcher.discovery import running_stack, stack_serving
from lib.launcher.local_stack import LocalStack
from lib.launcher.ownership import require_owned
from lib.report.plot import plot_timeline, require_matplotlib
from lib.report.report import ManualPrompt, cli_main, console, finish, key_value_table, run_undoing_interrupts
from lib.report.timeline import Timeline, build_timeline, client_rows, history_to_dict, timeline_table
from lib.runs.ha_failover import (
    FailoverRun,
    SentinelFailover,
    faster_rejoin,
    put_back_master,
    run_failover,
    wait_replicas_synced,
    wait_synced_replica,
)
from lib.suites.cli import add_failover_options, parse_host_map, require_writable_output
from lib.util import format_endpoint, key_namespace, parse_endpoint
from lib.waits import WaitTimeout, wait_until
from lib.workload.workload import OK as OP_OK
from lib.workload.workload import History

SENTINELS_ENV = "VHC_SENTINELS"
DEFAULT_SENTINELS = [("127.0.0.1", 26379), ("127.0.0.1", 26380), ("127.0.0.1", 26381)]
MEASUREMENT_TOLERANCE_MS = 100  # our reported downtime vs the independent probe's
GRACEFUL_LOSS = ("; SENTINEL FAILOVER does not pause the old master, so what it acknowledged between the "
                 "promotion order and the switch is discarded when it is demoted (docs/ha.md)")


@dataclass
class Target:
    sentinels: list[Address]
    source: str
    stack: LocalStack | None = None


@dataclass
class Session:
    """What this run changed and must undo however it ends (Ctrl-C too): keys, a fault, swapped roles."""

    namespace: str
    wrote: bool = False  # False: nothing to clean up (an unreachable target must cost one line, not a block)
    fault: Fault | None = None
    owned: bool = True  # the harness started the target (else the roles are put back after a failover)
    original_master: Address | None = None  # as the sentinels announced it before the run
    roles_put_back: bool = False


def resolve_target(args) -> Target:
    """Sentinel endpoints: --sentinel flags, then $VHC_SENTINELS, then a local stack's record, then defaults."""
    if args.sentinel:
        return Target([parse_endpoint(s, example="127.0.0.1:26379") for s in args.sentinel], "--sentinel")
    if env := os.environ.get(SENTINELS_ENV):
        sentinels = [parse_endpoint(s, example="127.0.0.1:26379") for s in env.split(",") if s.strip()]
        return Target(sentinels, f"${SENTINELS_ENV}")
    if stack := running_stack("ha"):
        return Target(stack.endpoints("sentinel"), f"local stack {stack.state_dir}", stack)
    return Target(list(DEFAULT_SENTINELS), "defaults (the compose ports)")


def build_fault(args, ha: HAClient, announced: Address, reachable: Address, history_view,
                notify=None) -> Fault | None:
    """The fault --fault asks for, checked (a SetupError if it cannot be done here); nothing is touched yet."""
    if args.fault == "none":
        return None
    if args.fault == "graceful":
        return SentinelFailover(ha)
    if args.fault == "manual":
        local = stack_serving("ha", reachable)
        by_name = not announced[0][0].isdigit()
        hint, restart = ((f"python app/stack.py kill {local[1]}", f"python app/stack.py start {local[1]}") if local
                         else (f"docker kill {announced[0]}", f"docker start {announced[0]}") if by_name
                         else ("kill the master process", "start it again"))

        def master_answers() -> bool:
            return answers(reachable, ha.password, timeout=0.3)

        return ManualKill(format_endpoint(*announced), hint, lambda: not master_answers(), master_answers, history_view,
                          timeout=args.manual_timeout, restart_hint=restart, notify=notify)
    return choose_kill(args.fault, "ha", announced, reachable)


def require_ownership(args, ha: HAClient, fault: Fault | None, reachable: Address) -> bool:
    """Refuse a fault on servers the harness did not start unless --allow-destructive; True if they are ours.

    A fault done by hand is the person's action, and --fault none changes nothing but our own keys.
    Checked before any write, so a refusal leaves the target exactly as it was.
    """
    if fault is None or fault.by_hand:
        return True
    found = require_owned([reachable, *ha.sentinel_addresses], allowed=args.allow_destructive,
                          action=f"run {fault.description} against {format_endpoint(*reachable)}")
    return all(o.owned for o in found)


# ---- checks ------------------------------------------------------------------------------------

def check_crud(ha: HAClient, ns: str) -> ScenarioResult:
    master = ha.master()
    key = f"{ns}crud"
    steps = {}
    t0 = time.perf_counter()
    steps["set"] = master.set(key, "v1", ex=60)
    steps["get"] = master.get(key) == "v1"
    ttl = master.ttl(key)
    steps["ttl"] = 0 < ttl <= 60
    steps["update"] = master.set(key, "v2", xx=True) and master.get(key) == "v2"
    steps["delete"] = master.delete(key) == 1 and master.get(key) is None
    elapsed_ms = (time.perf_counter() - t0) * 1000
    failed = [name for name, ok in steps.items() if not ok]
    address = ha.master_address()
    detail = (f"set/get/update/delete with TTL through the master at {format_endpoint(*address)}" if not failed
              else f"failed steps: {', '.join(failed)}")
    return ScenarioResult("crud", FAIL if failed else OK, detail,
                          {"master": format_endpoint(*address), "ttl_s": ttl, "elapsed_ms": round(elapsed_ms, 2),
                           "steps": {k: bool(v) for k, v in steps.items()}})


def check_master_kill(run: FailoverRun | None, skipped: str | None) -> ScenarioResult:
    if run is None:
        return ScenarioResult("master_kill", WARN, f"skipped: {skipped}")
    ops = run.history.snapshot()
    outage = outage_around(ops, run.fault_at)
    downtime = outage.downtime_ms if outage else 0.0
    metrics = {
        "fault": run.fault, "old_master": format_endpoint(*run.old_master),
        "new_master": format_endpoint(*run.new_master) if run.new_master else None,
        "downtime_ms": round(downtime, 1) if downtime is not None else None,
        "failed_ops": outage.failed_ops if outage else 0,
        "errors_by_type": error_counts(ops), "ops_total": len(ops),
        "ops_ok": sum(1 for op in ops if op.outcome == OP_OK),
        "ops_unknown": sum(1 for op in ops if op.outcome == "unknown"),
        "events": [{"t_s": round(run.offset(e.at), 3), "event": e.name, "detail": e.detail}
                   for e in run.history.events],
        "timeline": failover_timeline(run).to_dict(),
        "history": history_to_dict(run.history, run.fault_at),
    }
    if run.timeout_reason:
        return ScenarioResult("master_kill", FAIL, f"no recovery: {run.timeout_reason}", metrics)
    detail = (f"{run.fault}; client unable to write for {downtime:,.0f} ms" if outage
              else f"{run.fault}; the client never saw an error")
    return ScenarioResult("master_kill", OK, detail, metrics)


def check_new_master(ha: HAClient, run: FailoverRun | None) -> ScenarioResult:
    views = run.views_after if run else ha.sentinel_views()
    values = set(views.values())
    metrics: dict = {"sentinel_views": views}
    if len(values) != 1 or next(iter(values)).startswith(("error", "unknown")):
        return ScenarioResult("new_master", FAIL, f"the sentinels disagree: {views}", metrics)
    (announced,) = values
    node = ha.node(ha.remap(parse_endpoint(announced)))
    try:
        role = node.info("replication").get("role")
    finally:
        node.close()
    metrics.update({"master": announced, "role": role})
    if role != "master":
        return ScenarioResult("new_master", FAIL, f"all sentinels say {announced}, but its role is {role}", metrics)
    if run is None:
        return ScenarioResult("new_master", OK, f"no failover run; all {len(views)} sentinels agree on {announced}",
                              metrics)
    metrics["old_master"] = format_endpoint(*run.old_master)
    if announced == metrics["old_master"]:
        return ScenarioResult("new_master", FAIL, f"the master is still the old one, {announced}", metrics)
    switch = run.history.first_event(events.SWITCH_MASTER)
    if switch:
        metrics["switch_master_s"] = round(run.offset(switch.at), 3)
    return ScenarioResult("new_master", OK, f"all {len(views)} sentinels agree: {metrics['old_master']} -> "
                          f"{announced} (role master)", metrics)


def check_reconnect(run: FailoverRun | None, skipped: str | None, switches: int) -> ScenarioResult:
    cap = {"backoff_cap_ms": BACKOFF_CAP_S * 1000, "retries_per_call": RETRIES_PER_CALL}
    if run is None or run.recovered_at is None:
        return ScenarioResult("reconnect", WARN if run is None else FAIL, f"skipped: {skipped or 'no recovery'}", cap)
    ours = outage_around(run.history.snapshot(), run.fault_at)
    probe = outage_around(run.probe.snapshot(), run.fault_at)
    metrics = dict(cap, ours_downtime_ms=_ms(ours), probe_downtime_ms=_ms(probe))
    switch = run.history.first_event(events.SWITCH_MASTER)
    if switch and ours and ours.first_ok_end:
        metrics["ours_after_switch_ms"] = round((ours.first_ok_end - switch.at) * 1000, 1)
    if switch and probe and probe.first_ok_end:
        metrics["probe_after_switch_ms"] = round((probe.first_ok_end - switch.at) * 1000, 1)
    plain = outage_around(run.plain.snapshot(), run.fault_at) if run.plain is not None else None
    metrics["plain_downtime_ms"] = _ms(plain)
    if switch and plain and plain.first_ok_end:
        metrics["plain_after_switch_ms"] = round((plain.first_ok_end - switch.at) * 1000, 1)
    if ours is not None and ours.downtime_ms is None:
        return ScenarioResult("reconnect", FAIL, "no write succeeded after the fault", metrics)
    ours_ms = ours.downtime_ms if ours else 0.0
    probe_ms = probe.downtime_ms if probe and probe.downtime_ms is not None else 0.0
    diff = ours_ms - probe_ms
    metrics["difference_ms"] = round(diff, 1)
    metrics["switches_followed"] = switches
    detail = (f"same client, no restart; backoff capped at {BACKOFF_CAP_S * 1000:.0f} ms; reported "
              f"downtime {ours_ms:,.0f} ms vs independent 5 ms probe {probe_ms:,.0f} ms "
              f"(difference {diff:+.0f} ms, limit ±{MEASUREMENT_TOLERANCE_MS})")
    if diff > MEASUREMENT_TOLERANCE_MS:
        return ScenarioResult("reconnect", FAIL, detail, metrics)
    if diff < -MEASUREMENT_TOLERANCE_MS:
        # Ours wrote again first: it trusts the failover leader, which names the promoted replica
        # before the sentinels announce +switch-master; the probe waits for that announcement. Our
        # early writes are real (consistency checks them on the new master), so this is not a
        # measurement error of ours, but the yardstick failed to confirm it: say so, do not pass it.
        announced = f"+switch-master at {run.offset(switch.at):+.2f} s" if switch else "no +switch-master seen"
        return ScenarioResult("reconnect", WARN, f"{detail}; the probe follows the announced master "
                              f"({announced}), ours the failover leader: the probe could not confirm ours", metrics)
    return ScenarioResult("reconnect", OK, detail, metrics)


def check_consistency(ha: HAClient, run: FailoverRun | None, skipped: str | None) -> ScenarioResult:
    if run is None or run.recovered_at is None:
        return ScenarioResult("consistency", WARN if run is None else FAIL, f"skipped: {skipped or 'no recovery'}")
    master = ha.master()
    loss = lost_writes(run.history.snapshot(), lambda keys: master.mget(keys))
    metrics = {"acked": loss.acked, "lost": loss.lost, "wait_confirmed": loss.confirmed,
               "wait_confirmed_lost": loss.confirmed_lost, "lost_keys_sample": loss.lost_keys,
               "checked_on": format_endpoint(*ha.master_address())}
    if loss.lost_ops:
        metrics["lost_between_s"] = [round(run.offset(min(op.start for op in loss.lost_ops)), 3),
                                     round(run.offset(max(op.end for op in loss.lost_ops)), 3)]
    window = (f"; lost writes were acknowledged between +{metrics['lost_between_s'][0]:.2f} s and "
              f"+{metrics['lost_between_s'][1]:.2f} s after the fault" if loss.lost_ops else "")
    if loss.confirmed_lost:
        return ScenarioResult("consistency", FAIL, f"{loss.confirmed_lost} writes confirmed by WAIT 1 were lost "
                              f"(of {loss.confirmed}; {loss.lost} acknowledged writes lost in all){window}"
                              + (GRACEFUL_LOSS if isinstance(run.fault, str) and run.fault.startswith("SENTINEL")
                                 else ""), metrics)
    if loss.lost:
        return ScenarioResult("consistency", WARN, f"{loss.lost} of {loss.acked} acknowledged writes were lost, "
                              f"none of the {loss.confirmed} confirmed by WAIT 1 (asynchronous replication){window}",
                              metrics)
    return ScenarioResult("consistency", OK, f"all {loss.acked:,} acknowledged writes found on the new master "
                          f"({loss.confirmed:,} confirmed by WAIT 1); 0 lost", metrics)


def check_replica_sync(ha: HAClient, run: FailoverRun | None, fault: Fault | None,
                       restore_timeout: float) -> ScenarioResult:
    metrics: dict = {}
    status, notes = OK, []
    if run is not None and fault is not None:
        old = run.old_master
        with faster_rejoin(ha) if isinstance(fault, LocalKill) else contextlib.nullcontext():
            _restore_and_rejoin(ha, fault, old, restore_timeout, metrics, notes)
        if not metrics["old_master_restarted"]:
            status = WARN
        elif not metrics["old_master_rejoined"]:
            status = FAIL
    master_address = ha.master_address()
    node = ha.node(master_address)
    try:
        target = node.info("replication").get("master_repl_offset", 0)
        try:
            wait_until(lambda: _replicas_caught_up(node, target), timeout=30,
                       what=f"replica offsets to reach the master's offset {target}")
        except WaitTimeout as exc:
            status = FAIL
            notes.append(str(exc))
        info = node.info("replication")
    finally:
        node.close()
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    metrics.update({"master": format_endpoint(*master_address), "connected_replicas": info.get("connected_slaves"),
                    "master_repl_offset": info.get("master_repl_offset"),
                    "replicas": [{"address": f"{r.get('ip')}:{r.get('port')}", "state": r.get("state"),
                                  "offset": r.get("offset"), "lag": r.get("lag")} for r in replicas]})
    online = sum(1 for r in replicas if r.get("state") == "online")
    notes.insert(0, f"{online} replica(s) online on {format_endpoint(*master_address)}, offsets "
                 f"{[r.get('offset') for r in replicas]} vs master {info.get('master_repl_offset')}")
    if online == 0:
        status = FAIL
    return ScenarioResult("replica_sync", status, "; ".join(notes), metrics)


def _restore_and_rejoin(ha: HAClient, fault: Fault, old: Address, restore_timeout: float, metrics: dict,
                        notes: list[str]) -> None:
    """Start the old master again (if the fault can) and wait until it replicates from the new one."""
    restored = restore_fault(fault, restore_timeout) if (fault.can_restore or fault.by_hand) else True
    metrics["old_master_restarted"] = restored
    if not restored:
        notes.append(f"{format_endpoint(*old)} was not started again within {restore_timeout:.0f}s")
        return
    try:
        seen = wait_synced_replica(ha, old, ha.announced_master(), timeout=60)
        notes.append(f"old master {format_endpoint(*old)} rejoined as a replica ({seen})")
        metrics["old_master_rejoined"] = True
    except WaitTimeout as exc:
        metrics["old_master_rejoined"] = False
        notes.append(f"old master did not rejoin: {exc}")


def check_roles_restored(ha: HAClient, session: Session) -> ScenarioResult:
    """After a failover on servers the harness did not start: the original master is master again."""
    original = session.original_master
    assert original is not None
    put_back = put_back_master(ha, original)
    session.roles_put_back = put_back.done
    return ScenarioResult("roles_restored", OK if put_back.done else FAIL, put_back.detail,
                          {"original_master": format_endpoint(*original), "steps": put_back.steps})


def roles_note(ha: HAClient, session: Session) -> str | None:
    """One line on the roles a failover left behind on the harness's own stack, or None if unchanged."""
    original = session.original_master
    if original is None or session.roles_put_back:
        return None
    try:
        now = ha.announced_master()
    except redis.RedisError as exc:
        return f"roles: could not ask the sentinels who is master now ({type(exc).__name__})"
    if now == original:
        return None
    swapped = f"roles left swapped: {format_endpoint(*now)} is the master now, {format_endpoint(*original)} a replica"
    if session.owned:
        return f"{swapped} (the harness's own stack, so they are not put back)"
    return (f"{swapped} (the fault was done by hand; to put them back: SENTINEL FAILOVER once "
            f"{format_endpoint(*original)} replicates with its link up)")


def _replicas_caught_up(node: redis.Redis, target: int) -> tuple[bool, str]:
    """Every replica has what the master had when we began to wait. Not "equal to the master's offset
    now": the sentinels' hello messages are PUBLISHed through the master and move it on all the time."""
    info = node.info("replication")
    offsets = [v.get("offset") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return bool(offsets) and all(o >= target for o in offsets), (
        f"replica offsets {offsets}, master {info.get('master_repl_offset')} (waiting for {target})")


def _ms(outage) -> float | None:
    return None if outage is None or outage.downtime_ms is None else round(outage.downtime_ms, 1)


# ---- output ------------------------------------------------------------------------------------

def failover_timeline(run: FailoverRun) -> Timeline:
    """The writer's history and the sentinels' events, plus when the probes recovered, as one timeline."""
    extra = [row for row in client_rows(run.probe.snapshot(), run.fault_at, "5 ms probe")
             if row.name.endswith(events.RECOVERED)]
    if run.plain is not None:
        extra += [row for row in client_rows(run.plain.snapshot(), run.fault_at, "plain redis-py")
                  if row.name.endswith(events.RECOVERED)]
    return build_timeline(run.history, run.fault_at, who="client", extra_events=extra)


def live_view(ha: HAClient, history: History):
    """The rich renderable shown while waiting for a person to kill the master."""
    def render(remaining: float) -> Table:
        table = Table(title=f"waiting for the kill ({remaining:,.0f}s left)")
        for column in ("writes/s", "errors (last s)", "master (sentinels say)"):
            table.add_column(column)
        ops = history.snapshot()
        now = time.monotonic()
        recent = [op for op in ops if op.end >= now - 1.0]
        views = set(ha.sentinel_views().values())
        table.add_row(str(sum(1 for op in recent if op.outcome == OP_OK)),
                      str(sum(1 for op in recent if op.outcome != OP_OK)), ", ".join(sorted(views)))
        return table
    return render


def cleanup(ha: HAClient, ns: str) -> str | None:
    """SCAN + DEL of this run's keys only, on whichever node is master now; a failure is one line."""
    try:
        master = ha.node(ha.master_address())
        try:
            delete_prefix(master, ns)
        finally:
            master.close()
    except redis.RedisError as exc:
        return f"could not clean up keys {ns}*: {one_line(exc)}"
    return None


def one_line(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def undo_interrupted(ha: HAClient, session: Session, timeout: float = 60.0) -> list[str]:
    """After Ctrl-C / SIGTERM: start a killed master again, put back roles we swapped on someone
    else's servers, then delete our keys once a master is stable. Returns one line per step."""
    notes = []
    fault = session.fault
    if note := undo_interrupted_fault(fault, timeout):
        notes.append(note)
    if (isinstance(fault, SentinelFailover) and not session.owned and session.original_master is not None
            and not session.roles_put_back):
        put_back = put_back_master(ha, session.original_master)
        notes.append(put_back.detail)
    if session.wrote:
        with faster_rejoin(ha) if isinstance(fault, LocalKill) else contextlib.nullcontext():
            notes.append(_cleanup_when_stable(ha, session, timeout))
    return notes


def failover_flags(ha: HAClient) -> dict[str, str]:
    """The sentinels that see the master down or a failover under way, with their flags for it."""
    busy = {}
    for address in ha.sentinel_addresses:
        client = ha.node(address, sentinel=True)
        try:
            flags = str(client.sentinel_master(ha.master_name).get("flags", ""))
        except redis.RedisError as exc:
            flags = f"error: {type(exc).__name__}"
        finally:
            client.close()
        if any(flag in flags for flag in ("s_down", "o_down", "failover_in_progress", "error")):
            busy[format_endpoint(*address)] = flags
    return busy


def _cleanup_when_stable(ha: HAClient, session: Session, timeout: float) -> str:
    """Delete our keys on the master once the sentinels agree on it, no failover is under way, and every
    node that answers (the one we may have restarted too) replicates from it, synced: deleted on a node
    that is then demoted and resynced, or before a replica's full sync, they would come back."""
    restarted = session.original_master

    def stable() -> tuple[bool, str]:
        views = ha.sentinel_views()
        if len(set(views.values())) != 1 or next(iter(views.values())).startswith(("error", "unknown")):
            return False, f"sentinels say {views}"
        if busy := failover_flags(ha):
            return False, f"sentinels report {busy}"
        master = ha.remap(parse_endpoint(next(iter(views.values()))))
        replicas = set(ha.sentinel.discover_slaves(ha.master_name)) - {master}
        if restarted and ha.remap(restarted) != master and answers(ha.remap(restarted), ha.password):
            replicas.add(ha.remap(restarted))  # one killed by hand may still be down
        roles = {address: _replication(ha, address) for address in (master, *replicas)}
        synced = roles[master][0] == "master" and all(
            role == "slave" and port == master[1] and link == "up" and not syncing
            for address, (role, port, link, syncing) in roles.items() if address != master)
        return synced, f"sentinels agree on {format_endpoint(*master)}; (role, master port, link, syncing): {roles}"

    try:
        wait_until(stable, timeout=timeout, what="a stable master to delete this run's keys on")
    except WaitTimeout as exc:
        return f"could not clean up keys {session.namespace}*: {one_line(exc)}"
    session.wrote = False  # the finally of main need not do it again
    return cleanup(ha, session.namespace) or f"deleted this run's keys {session.namespace}*"


def _replication(ha: HAClient, address: Address) -> tuple[str, int, str, bool]:
    node = ha.node(address)
    try:
        info = node.info("replication")
    finally:
        node.close()
    return (info.get("role", "?"), int(info.get("master_port", 0)), info.get("master_link_status", "-"),
            bool(int(info.get("master_sync_in_progress", 0))))


# ---- main --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app/ha_test.py", description=__doc__.split("\n")[0])
    parser.add_argument("--sentinel", action="append", metavar="HOST:PORT",
                        help=f"a sentinel (repeat for each); default: ${SENTINELS_ENV}, the local stack, "
                             "else 127.0.0.1:26379-26381")
    parser.add_argument("--master-name", default="myvalkey")
    parser.add_argument("--sentinel-password", help="password of the sentinels, if they have one")
    add_failover_options(parser, fault_help=("auto: local launcher kill, else docker kill; manual: you kill it; "
                             "graceful: SENTINEL FAILOVER; none: no failover"),
                         host_map_fallback="the sentinel's host")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require_writable_output(args.json)  # before any server is touched: a run's results must not be lost
    if args.plot:
        require_matplotlib()
        require_writable_output(args.plot, "--plot")
    host_map = parse_host_map(args.host_map, "valkey-master=10.0.0.5")
    target = resolve_target(args)
    ha = HAClient(target.sentinels, args.master_name, password=args.password,
                  sentinel_password=args.sentinel_password, host_map=host_map)
    session = Session(key_namespace("ha"))
    prompt = ManualPrompt()
    try:
        return run_undoing_interrupts(lambda: run_suite(args, ha, target, session, prompt),
                                      lambda: undo_interrupted(ha, session), prompt)
    finally:
        prompt.close()
        if session.wrote and (problem := cleanup(ha, session.namespace)):
            console.print(f"[yellow]{problem}[/]", soft_wrap=True)
        ha.close()


def run_suite(args, ha: HAClient, target: Target, session: Session, prompt: ManualPrompt) -> int:
    reachable = ha.check_reachable()
    announced = ha.announced_master()
    master_info = server_info(ha, reachable)
    version = master_info.get("valkey_version") or master_info.get("redis_version")
    history = History()
    fault = build_fault(args, ha, announced, reachable, live_view(ha, history), prompt)
    session.owned = require_ownership(args, ha, fault, reachable)  # refuses before anything is written
    session.fault, session.original_master = fault, announced
    console.print(key_value_table("Target", [
        ("sentinels", ", ".join(format_endpoint(*s) for s in target.sentinels) + f"  (from {target.source})"),
        ("master name", args.master_name), ("master", f"{format_endpoint(*announced)}"
                                            + (f" (reached at {format_endpoint(*reachable)})"
                                               if reachable != announced else "")),
        ("server", f"{master_info.get('server_name', 'redis')} {version}"),
    ]))
    report = SuiteReport("ha", {"sentinels": [format_endpoint(*s) for s in target.sentinels],
                                "master_name": args.master_name, "master": format_endpoint(*announced),
                                "server_version": version, "fault": args.fault, "harness_started": session.owned})
    session.wrote = True  # from here on, keys under the namespace may exist
    report.add(run_scenario("crud", lambda: check_crud(ha, session.namespace)))
    run, skipped = None, None
    if fault is None:
        skipped = "--fault none"
        if args.plot:
            console.print("[yellow]--plot: no failover ran (--fault none), nothing to plot[/]")
    else:
        replicas = wait_replicas_synced(ha, timeout=60)
        console.print(f"{len(replicas)} replica(s) in sync; starting the writer, the 5 ms probe and the "
                      f"sentinel event recorder")
        run = run_failover(ha, fault, session.namespace, recovery_timeout=args.recovery_timeout, history=history,
                           progress=console.print)
        timeline = failover_timeline(run)
        console.print(timeline_table(timeline))
        if args.plot:
            written = plot_timeline(timeline, args.plot, f"HA failover: {run.fault}")
            console.print(f"timeline plot written to {written}")
    report.add(run_scenario("master_kill", lambda: check_master_kill(run, skipped)))
    report.add(run_scenario("new_master", lambda: check_new_master(ha, run)))
    report.add(run_scenario("reconnect", lambda: check_reconnect(run, skipped, ha.switches_followed)))
    report.add(run_scenario("consistency", lambda: check_consistency(ha, run, skipped)))
    report.add(run_scenario("replica_sync", lambda: check_replica_sync(ha, run, fault, args.manual_timeout
                                                                        if fault and fault.by_hand else 30)))
    if run is not None and not session.owned and isinstance(fault, SentinelFailover):
        report.add(run_scenario("roles_restored", lambda: check_roles_restored(ha, session)))
    elif run is not None and (note := roles_note(ha, session)):
        console.print(note, soft_wrap=True)
    return finish(report, args.json)


def server_info(ha: HAClient, address: Address) -> dict:
    node = ha.node(address)
    try:
        return node.info("server")
    finally:
        node.close()


if __name__ == "__main__":
    cli_main(main)
