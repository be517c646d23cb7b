"""The HA suite's verdicts: each reads what a failover run recorded, or asks the servers, and judges it.

Checks do no fault work: the suite (lib/suites/ha.py) starts a killed master again or puts the roles
back, and hands the check what came of it.
"""

from __future__ import annotations

import time

import redis

from lib import events
from lib.checks.accounting import account_history, consistency_result
from lib.checks.checker import LossReport, error_counts, lost_writes, outage_around
from lib.checks.result import FAIL, OK, WARN, ScenarioResult
from lib.checks.timeline import Timeline, build_timeline, client_rows, history_to_dict
from lib.ha_client import BACKOFF_CAP_S, RETRIES_PER_CALL, Address, HAClient
from lib.history import OK as OP_OK
from lib.history import Op
from lib.runs.ha_failover import FailoverRun, PutBack, acked_after, wait_synced_replica
from lib.util import format_endpoint, parse_endpoint
from lib.waits import WaitTimeout, wait_until

MEASUREMENT_TOLERANCE_MS = 100  # our reported downtime vs the independent probe's
GRACEFUL_LOSS = ("; SENTINEL FAILOVER does not pause the old master, so what it acknowledged between the "
                 "promotion order and the switch is discarded when it is demoted (docs/ha.md)")
LOST_AT_LIMIT = 5000  # lost_acked_at_s lists at most this many (sorted) acknowledgement times


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
    metrics.update(fault_metrics(run))
    if run.watch is not None:
        return _judge_watch(run, metrics)
    if run.timeout_reason:
        return ScenarioResult("master_kill", FAIL, f"no recovery: {run.timeout_reason}", metrics)
    detail = (f"{run.fault}; client unable to write for {downtime:,.0f} ms" if outage
              else f"{run.fault}; the client never saw an error")
    return ScenarioResult("master_kill", OK, detail + _heal_note(run, metrics), metrics)


def fault_metrics(run: FailoverRun) -> dict:
    """What the newer faults add to master_kill: the write pause, the heal, the config, NOREPLICAS."""
    ops = run.history.snapshot()
    until = run.recovered_at or max((op.end for op in ops), default=run.fault_at)
    metrics: dict = {"write_pause_ms": round(write_pause_ms(ops, run.fault_at, until), 1)}
    metrics.update(run.extra)
    if run.settings:
        metrics["config_for_run"] = dict(run.settings)
    if run.healed_at is not None:
        metrics["healed_s"] = round(run.offset(run.healed_at), 3)
    if run.pinned is not None:
        pinned = run.pinned.snapshot()
        metrics["old_master_demoted_s"] = (round(run.offset(run.old_master_demoted_at), 3)
                                           if run.old_master_demoted_at is not None else None)
        metrics["old_master_writes"] = {outcome: sum(1 for op in pinned if op.outcome == outcome)
                                        for outcome in ("ok", "fail", "unknown")}
        metrics["old_master_acked_after_heal"] = (len(acked_after(pinned, run.healed_at))
                                                  if run.healed_at is not None else 0)
    if "min-replicas-to-write" in run.settings:
        metrics["first_noreplicas_after_s"] = first_noreplicas_s(run)
        if run.pinned is not None:  # the old master's own refusal, apart from a new master's first writes
            metrics["old_master_first_noreplicas_after_s"] = first_noreplicas_s(run, pinned_only=True)
    return metrics


def write_pause_ms(ops: list[Op], fault_at: float, until: float) -> float:
    """The longest time between two acknowledged writes that ends after the fault (and by `until`)."""
    ends = sorted(op.end for op in ops if op.outcome == OP_OK and op.end <= until)
    gaps = [(b - a) * 1000 for a, b in zip(ends, ends[1:], strict=False) if b >= fault_at]
    return max(gaps, default=0.0)


def first_noreplicas_s(run: FailoverRun, *, pinned_only: bool = False) -> float | None:
    """Seconds from the fault to the first NOREPLICAS error the writers saw (None: none was seen)."""
    pinned = run.pinned.snapshot() if run.pinned is not None else []
    ops = pinned if pinned_only else run.history.snapshot() + pinned
    seen = [op.end for op in ops if op.error and "NOREPLICAS" in op.error and op.end >= run.fault_at]
    return round(run.offset(min(seen)), 3) if seen else None


def _heal_note(run: FailoverRun, metrics: dict) -> str:
    notes = []
    if "healed_s" in metrics:
        notes.append(f"healed at {metrics['healed_s']:+.2f} s")
    if run.pinned is not None:
        demoted = metrics["old_master_demoted_s"]
        notes.append(f"the old master acknowledged {metrics['old_master_acked_after_heal']} writes after that, "
                     + (f"until its demotion at {demoted:+.2f} s" if demoted is not None
                        else "and was not demoted within the run"))
    if "first_noreplicas_after_s" in metrics:
        first = metrics["first_noreplicas_after_s"]
        notes.append(f"first NOREPLICAS at {first:+.2f} s" if first is not None else "no NOREPLICAS seen")
        if (old := metrics.get("old_master_first_noreplicas_after_s")) is not None:
            notes.append(f"the old master's first at {old:+.2f} s")
    return "".join(f"; {note}" for note in notes)


def _judge_watch(run: FailoverRun, metrics: dict) -> ScenarioResult:
    """A fault after which no failover may happen within the watch (quorum loss, replica kill)."""
    watch = run.watch
    assert watch is not None
    metrics.update({"watch_s": round(watch.seconds, 1), "failover_in_watch": watch.switch_at is not None,
                    "watch_events": watch.events, "watch_views": watch.views, "why_no_failover": watch.why})
    seen = (f"+sdown {watch.events.get(events.SDOWN, 0)}x, +odown {watch.events.get(events.ODOWN, 0)}x, "
            f"+switch-master {watch.events.get(events.SWITCH_MASTER, 0)}x")
    if watch.switch_at is not None:
        return ScenarioResult("master_kill", FAIL, f"{run.fault}; a failover happened at "
                              f"{run.offset(watch.switch_at):+.2f} s although none was expected ({watch.why}); "
                              f"seen: {seen}", metrics)
    detail = f"{run.fault}; no failover: {watch.why}, as expected (watched {watch.seconds:.1f} s; {seen})"
    if run.healed_at is None:  # nothing comes back: the master must have kept serving
        if run.timeout_reason:
            return ScenarioResult("master_kill", FAIL, f"{detail}; but no write was acknowledged after the fault: "
                                  f"{run.timeout_reason}", metrics)
        return ScenarioResult("master_kill", OK, f"{detail}; the master kept serving (longest write gap "
                              f"{metrics['write_pause_ms']:,.0f} ms)", metrics)
    back = run.offset(run.healed_at)
    switch = next((e for e in run.history.events if e.name == events.SWITCH_MASTER and e.at >= run.healed_at), None)
    first_ok = next((op.end for op in sorted(run.history.snapshot(), key=lambda o: o.end)
                     if op.outcome == OP_OK and op.start >= run.healed_at), None)
    metrics.update({"sentinels_back_s": round(back, 3),
                    "switch_after_return_s": round(switch.at - run.healed_at, 3) if switch else None,
                    "writes_after_return_s": round(first_ok - run.healed_at, 3) if first_ok else None})
    if run.timeout_reason or switch is None:
        return ScenarioResult("master_kill", FAIL, f"{detail}; no recovery after the sentinels came back at "
                              f"{back:+.2f} s: {run.timeout_reason or 'no +switch-master'}", metrics)
    writes = f", writes succeeding {metrics['writes_after_return_s']:.2f} s later" if first_ok else ""
    return ScenarioResult("master_kill", OK, f"{detail}; the sentinels were back at {back:+.2f} s: +switch-master "
                          f"{metrics['switch_after_return_s']:.2f} s later{writes}", metrics)


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
    if not run.expected_failover:
        if announced != metrics["old_master"]:
            return ScenarioResult("new_master", FAIL, f"the master moved from {metrics['old_master']} to {announced} "
                                  "although no failover was expected", metrics)
        return ScenarioResult("new_master", OK, f"no failover, as expected: all {len(views)} sentinels still agree "
                              f"on {announced} (role master)", metrics)
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
    """Every write judged against the final read the run recorded (lib/checks/accounting.py), Jepsen's way.

    Strict: any acknowledged write lost is a FAIL; the second line says whether the loss is within the bound
    min-replicas-max-lag documents. The same verdict is recomputed from the saved JSON by --recheck.
    """
    if run is None or run.recovered_at is None:
        return ScenarioResult("consistency", WARN if run is None else FAIL, f"skipped: {skipped or 'no recovery'}")
    if run.history.final_read is None:
        return ScenarioResult("consistency", FAIL, "no final read was recorded after the run: nothing to judge by")
    acc = account_history(history_to_dict(run.history, run.fault_at))
    loss = lost_writes(run.history.snapshot(), _read_from(run.history.final_read))
    metrics = {"lost": loss.lost, "checked_on": run.extra.get("final_read_on")}
    if loss.lost_ops:
        metrics["lost_between_s"] = [round(run.offset(min(op.start for op in loss.lost_ops)), 3),
                                     round(run.offset(max(op.end for op in loss.lost_ops)), 3)]
    window = (f"; lost writes were acknowledged between +{metrics['lost_between_s'][0]:.2f} s and "
              f"+{metrics['lost_between_s'][1]:.2f} s after the fault" if loss.lost_ops else "")
    pinned = None
    if run.pinned is not None and run.pinned.final_read is not None:
        saved_pinned = history_to_dict(run.pinned, run.fault_at)
        acc = acc.merged(account_history(saved_pinned))
        pinned = lost_writes(run.pinned.snapshot(), _read_from(run.pinned.final_read))
        metrics["old_master_history"] = saved_pinned  # --recheck accounts it too
    notes = window + (_old_master_note(run, pinned, metrics) if pinned is not None else "")
    lost_ops = loss.lost_ops + (pinned.lost_ops if pinned is not None else [])
    if lost_ops:
        lost_at = sorted(round(run.offset(op.end), 3) for op in lost_ops)
        metrics["lost_acked_at_s"] = lost_at[:LOST_AT_LIMIT]  # when each lost write was acknowledged
    if "min-replicas-to-write" in run.settings:
        notes += _min_replicas_note(run, lost_ops)
    if acc.acked_lost:
        notes += _loss_explained(run)
    result = consistency_result(acc, max_lag_s(run.settings), "Sentinel", **metrics)
    first, _, bound = result.detail.partition("\n")
    result.detail = first + notes + (f"\n{bound}" if bound else "")
    return result


def max_lag_s(settings: dict[str, str]) -> float | None:
    """The min-replicas bound the run had: max-lag seconds when min-replicas-to-write was set above 0."""
    if int(settings.get("min-replicas-to-write", 0) or 0) <= 0:
        return None
    return float(settings.get("min-replicas-max-lag", 10))  # 10 s: the server's default max-lag


def _read_from(final: dict[str, str | None]):  # noqa: ANN202 - the ReadMany lost_writes takes
    return lambda keys: [final.get(key) for key in keys]


def _loss_explained(run: FailoverRun) -> str:
    """Why a SENTINEL FAILOVER lost writes: plain does not pause the old master; COORDINATED should have."""
    if not run.fault.startswith("SENTINEL FAILOVER"):
        return ""
    if "COORDINATED" not in run.fault:
        return GRACEFUL_LOSS
    seen = run.extra.get("coordinated_path_seen")
    path = {True: "its log lines were seen", False: "the servers did not log it",
            None: "no server log to tell"}[seen]
    return (f"; SENTINEL FAILOVER COORDINATED should lose no acknowledged write (coordinated path: {path}; "
            "see master_kill's coordinated_path_seen)")


def _old_master_note(run: FailoverRun, pinned: LossReport, metrics: dict) -> str:
    """The second writer's: what the old master acknowledged after the heal, and whether it survived."""
    after_heal = acked_after(pinned.lost_ops, run.healed_at) if run.healed_at is not None else []
    acked_after_heal = (len(acked_after(run.pinned.snapshot(), run.healed_at))  # type: ignore[union-attr]
                        if run.healed_at is not None else 0)
    metrics.update({"old_master_acked": pinned.acked, "old_master_acked_lost": pinned.lost,
                    "old_master_wait_confirmed_lost": pinned.confirmed_lost,
                    "old_master_acked_after_heal": acked_after_heal,
                    "old_master_acked_after_heal_lost": len(after_heal)})
    if pinned.lost_ops:
        metrics["old_master_lost_between_s"] = [round(run.offset(min(op.start for op in pinned.lost_ops)), 3),
                                                round(run.offset(max(op.end for op in pinned.lost_ops)), 3)]
    demoted = (f", discarded when it was demoted at {run.offset(run.old_master_demoted_at):+.2f} s"
               if run.old_master_demoted_at is not None and pinned.lost else "")
    return (f"; a second writer kept on the old master had {pinned.acked:,} writes acknowledged there, "
            f"{acked_after_heal:,} of them after the heal: {pinned.lost:,} lost ({len(after_heal):,} after the "
            f"heal){demoted}")


def _min_replicas_note(run: FailoverRun, lost_ops: list[Op]) -> str:
    setting = run.settings["min-replicas-to-write"]
    lag = run.settings.get("min-replicas-max-lag")
    first = first_noreplicas_s(run)
    seen = f"first NOREPLICAS at {first:+.2f} s" if first is not None else "no NOREPLICAS seen"
    window = (f"lost writes acknowledged between {run.offset(min(op.end for op in lost_ops)):+.2f} s and "
              f"{run.offset(max(op.end for op in lost_ops)):+.2f} s" if lost_ops else "no acknowledged write lost")
    return f"; with min-replicas-to-write {setting}" + (f" (max-lag {lag} s)" if lag else "") + f": {seen}, {window}"


def check_replica_sync(ha: HAClient, run: FailoverRun | None, old_master_restarted: bool | None,
                       restore_timeout: float) -> ScenarioResult:
    """The old master rejoined as a replica (when a failover ran) and every replica caught up with the master.

    old_master_restarted: what the suite's restart of the old master came to (None: nothing to rejoin);
    restore_timeout is how long that restart was given.
    """
    metrics: dict = {}
    status, notes = OK, []
    if run is not None and old_master_restarted is not None:
        node, role = (run.victim, "replica") if run.victim is not None else (run.old_master, "old_master")
        status = _judge_rejoin(ha, node, old_master_restarted, restore_timeout, metrics, notes, role)
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


def _judge_rejoin(ha: HAClient, old: Address, restarted: bool, restore_timeout: float, metrics: dict,
                  notes: list[str], role: str = "old_master") -> str:
    """WARN if the stopped node (the old master, or a replica) was not started again, FAIL if it does not come
    to replicate from the master."""
    metrics[f"{role}_restarted"] = restarted
    if not restarted:
        notes.append(f"{format_endpoint(*old)} was not started again within {restore_timeout:.0f}s")
        return WARN
    try:
        seen = wait_synced_replica(ha, old, ha.announced_master(), timeout=60)
    except WaitTimeout as exc:
        metrics[f"{role}_rejoined"] = False
        notes.append(f"{role.replace('_', ' ')} did not rejoin: {exc}")
        return FAIL
    label = "old master" if role == "old_master" else role
    notes.append(f"{label} {format_endpoint(*old)} rejoined as a replica ({seen})")
    metrics[f"{role}_rejoined"] = True
    return OK


def check_roles_restored(original: Address, put_back: PutBack) -> ScenarioResult:
    """After a failover on servers the harness did not start: the original master is master again."""
    return ScenarioResult("roles_restored", OK if put_back.done else FAIL, put_back.detail,
                          {"original_master": format_endpoint(*original), "steps": put_back.steps})


def roles_note(ha: HAClient, original: Address | None, owned: bool) -> str | None:
    """One line on the roles a failover left swapped (original: the master before it), or None if unchanged."""
    if original is None:
        return None
    try:
        now = ha.announced_master()
    except redis.RedisError as exc:
        return f"roles: could not ask the sentinels who is master now ({type(exc).__name__})"
    if now == original:
        return None
    swapped = f"roles left swapped: {format_endpoint(*now)} is the master now, {format_endpoint(*original)} a replica"
    if owned:
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


def failover_timeline(run: FailoverRun) -> Timeline:
    """The writer's history and the sentinels' events, plus when the probes recovered, as one timeline."""
    extra = [row for row in client_rows(run.probe.snapshot(), run.fault_at, "5 ms probe")
             if row.name.endswith(events.RECOVERED)]
    if run.plain is not None:
        extra += [row for row in client_rows(run.plain.snapshot(), run.fault_at, "plain redis-py")
                  if row.name.endswith(events.RECOVERED)]
    return build_timeline(run.history, run.fault_at, who="client", extra_events=extra)
