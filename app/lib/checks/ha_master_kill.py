"""The master_kill verdict: what the writer saw around the fault, or that no failover came when none may,
and the failover's timeline (also shown and plotted by the suite)."""

from __future__ import annotations

from lib import events
from lib.checks.checker import error_counts, outage_around
from lib.checks.ha_fault_metrics import fault_metrics
from lib.checks.result import FAIL, OK, WARN, CheckResult
from lib.checks.timeline import Timeline, build_timeline, client_rows
from lib.history import OK as OP_OK
from lib.phases.ha_record import FailoverView
from lib.util import format_endpoint


def check_master_kill(run: FailoverView | None, skipped: str | None) -> CheckResult:
    if run is None:
        return CheckResult("master_kill", WARN, f"skipped: {skipped}")
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
    }
    metrics.update(fault_metrics(run))
    if run.watch is not None:
        return _judge_watch(run, metrics)
    if run.timeout_reason:
        return CheckResult("master_kill", FAIL, f"no recovery: {run.timeout_reason}", metrics)
    detail = (f"{run.fault}; client unable to write for {downtime:,.0f} ms" if outage
              else f"{run.fault}; the client never saw an error")
    return CheckResult("master_kill", OK, detail + _heal_note(run, metrics), metrics)


def _heal_note(run: FailoverView, metrics: dict) -> str:
    notes = []
    if len(elections := metrics.get("leader_elections_s", [])) > 1:
        notes.append(f"the sentinels' first leader election failed (tried at {elections[0]:+.2f} s); Sentinel tried "
                     f"again at {', '.join(f'{t:+.2f} s' for t in elections[1:])} (2 x failover-timeout later)")
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


def _judge_watch(run: FailoverView, metrics: dict) -> CheckResult:
    """A fault after which no failover may happen within the watch (quorum loss, replica kill)."""
    watch = run.watch
    assert watch is not None
    metrics.update({"watch_s": round(watch.seconds, 1), "failover_in_watch": watch.switch_at is not None,
                    "watch_events": watch.events, "watch_views": watch.views, "why_no_failover": watch.why})
    seen = (f"+sdown {watch.events.get(events.SDOWN, 0)}x, +odown {watch.events.get(events.ODOWN, 0)}x, "
            f"+switch-master {watch.events.get(events.SWITCH_MASTER, 0)}x")
    if watch.switch_at is not None:
        return CheckResult("master_kill", FAIL, f"{run.fault}; a failover happened at "
                              f"{run.offset(watch.switch_at):+.2f} s although none was expected ({watch.why}); "
                              f"seen: {seen}", metrics)
    detail = f"{run.fault}; no failover: {watch.why}, as expected (watched {watch.seconds:.1f} s; {seen})"
    if run.healed_at is None:  # nothing comes back: the master must have kept serving
        if run.timeout_reason:
            return CheckResult("master_kill", FAIL, f"{detail}; but no write was acknowledged after the fault: "
                                  f"{run.timeout_reason}", metrics)
        return CheckResult("master_kill", OK, f"{detail}; the master kept serving (longest write gap "
                              f"{metrics['write_pause_ms']:,.0f} ms)", metrics)
    back = run.offset(run.healed_at)
    switch = next((e for e in run.history.events if e.name == events.SWITCH_MASTER and e.at >= run.healed_at), None)
    first_ok = next((op.end for op in sorted(run.history.snapshot(), key=lambda o: o.end)
                     if op.outcome == OP_OK and op.start >= run.healed_at), None)
    metrics.update({"sentinels_back_s": round(back, 3),
                    "switch_after_return_s": round(switch.at - run.healed_at, 3) if switch else None,
                    "writes_after_return_s": round(first_ok - run.healed_at, 3) if first_ok else None})
    if run.timeout_reason or switch is None:
        return CheckResult("master_kill", FAIL, f"{detail}; no recovery after the sentinels came back at "
                              f"{back:+.2f} s: {run.timeout_reason or 'no +switch-master'}", metrics)
    writes = f", writes succeeding {metrics['writes_after_return_s']:.2f} s later" if first_ok else ""
    return CheckResult("master_kill", OK, f"{detail}; the sentinels were back at {back:+.2f} s: +switch-master "
                          f"{metrics['switch_after_return_s']:.2f} s later{writes}", metrics)


def failover_timeline(run: FailoverView) -> Timeline:
    """The writer's history and the sentinels' events, plus when the probes recovered, as one timeline."""
    extra = [row for row in client_rows(run.probe.snapshot(), run.fault_at, "5 ms probe")
             if row.name.endswith(events.RECOVERED)]
    if run.plain is not None:
        extra += [row for row in client_rows(run.plain.snapshot(), run.fault_at, "plain redis-py")
                  if row.name.endswith(events.RECOVERED)]
    return build_timeline(run.history, run.fault_at, who="client", extra_events=extra)
