"""Between the fault and the end of a failover's measurement: recovery, a watch for a failover that must
not happen, a heal, the old master's demotion; each waited for with a deadline, each recorded in the run."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from lib import events
from lib.faults.fault import Fault, heal_fault
from lib.ha_client import Address, HAClient
from lib.history import HARNESS, OK, History
from lib.phases.ha_record import WATCH, FailoverView, RunPlan, Watch
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until

SETTLE_OPS = 200  # acknowledged writes after recovery, so the client is shown to keep working
HEAL_TIMEOUT_S = 30.0  # a pause resumed, a cut healed, sentinels started again
# A resumed (or reconnected) old master is demoted once a sentinel has seen it claim the master role for
# 4 publish periods (8 s) on an INFO reply (every 10 s outside a failover): up to ~20 s with the defaults.
DEMOTION_TIMEOUT_S = 45.0


def after_fault(run: FailoverView, ha: HAClient, fault: Fault, plan: RunPlan, recovery_timeout: float,
                 require_new_master: bool) -> None:
    """Everything between the fault and the end of the measurement, as the plan says."""
    if plan.watch_s > 0:
        _watch_for_failover(run, ha, plan.watch_s, plan.why_no_failover)
        if plan.heal_after_watch is not None:
            _heal(run, plan.heal_after_watch)
    elif fault.heals_in_run:
        try:  # heal only once the failover is seen: a pause must outlast failure detection
            wait_until(lambda: (_switch_after_fault(run) is not None, "no +switch-master yet"),
                       timeout=recovery_timeout, what="+switch-master before healing the fault")
        finally:  # healed even when no failover came (or on Ctrl-C): the fault must not outlive the run
            _heal(run, lambda: "healed after +switch-master" if heal_fault(fault, HEAL_TIMEOUT_S)
                  else "could not heal the fault")
    if not plan.expect_failover:
        _wait_kept_serving(run, ha)
        return
    _wait_recovered(run, ha, recovery_timeout, require_new_master)
    if plan.pin_old_master is not None:
        _wait_demoted(run, ha, plan.pin_old_master)


def _heal(run: FailoverView, heal: Callable[[], str]) -> None:
    detail = heal()
    run.healed_at = time.monotonic()
    run.history.event(events.HEALED, detail, at=run.healed_at)


def _switch_after_fault(run: FailoverView):
    return next((e for e in list(run.history.events) if e.name == events.SWITCH_MASTER and e.at >= run.fault_at),
                None)


def _watch_for_failover(run: FailoverView, ha: HAClient, seconds: float, why: str) -> None:
    """Watch the whole window (a deadline, not a sleep), ending early only if a failover happens after all."""
    end = run.fault_at + seconds

    def watched() -> tuple[bool, str]:
        if switch := _switch_after_fault(run):
            return True, f"+switch-master at {run.offset(switch.at):+.2f}s"
        left = end - time.monotonic()
        return left <= 0, f"{max(left, 0.0):.1f}s of the watch left, no +switch-master"

    wait_until(watched, timeout=seconds + 5, what=f"the end of the {seconds:.0f}s watch for a failover")
    ended = time.monotonic()
    switch = _switch_after_fault(run)
    seen = Counter(e.name for e in list(run.history.events) if run.fault_at <= e.at <= ended)
    views = ha.sentinel_views()
    run.watch = Watch(seconds, why, ended, switch.at if switch else None, dict(seen), views)
    run.history.event(events.WATCH_ENDED, f"{seconds:.1f}s watched, {'a' if switch else 'no'} failover", at=ended)
    run.history.observe(HARNESS, WATCH, {"seconds": seconds, "why": why, "views": views}, at=ended)


def _wait_kept_serving(run: FailoverView, ha: HAClient) -> None:
    """No failover expected: the measurement ends once a write after the fault is acknowledged."""
    wait_until(lambda: (_ok_after(run.history, run.fault_at), "no write acknowledged since the fault"),
               timeout=30, what="a write acknowledged after the fault")
    run.recovered_at = time.monotonic()
    run.history.event(events.RECOVERED, "a write acknowledged after the fault: the master kept serving",
                      at=run.recovered_at)
    run.new_master = ha.announced_master()


def _wait_demoted(run: FailoverView, ha: HAClient, address: Address) -> None:
    """Keep the pinned writer on the old master until it is a replica: all it acknowledged meanwhile counts."""
    def demoted() -> tuple[bool, str]:
        node = ha.node(address)
        try:
            role = node.info("replication").get("role")
        finally:
            node.close()
        return role == "slave", f"{format_endpoint(*address)} has role {role}"

    try:
        wait_until(demoted, timeout=DEMOTION_TIMEOUT_S, what=f"the old master {format_endpoint(*address)} to be "
                   "demoted")
    except WaitTimeout:
        return  # still a master: replica_sync judges the rejoin; old_master_demoted_s stays null
    run.old_master_demoted_at = time.monotonic()
    run.history.event(events.DEMOTED, f"{format_endpoint(*address)} reported role:slave", at=run.old_master_demoted_at)


def sentinels_agree_on_new_master(ha: HAClient, old: Address) -> tuple[bool, str]:
    views = ha.sentinel_views()
    values = set(views.values())
    text = "; ".join(f"{k} says {v}" for k, v in views.items())
    if len(values) != 1:
        return False, text
    (value,) = values
    return not value.startswith(("error", "unknown")) and value != format_endpoint(*old), text


def _wait_recovered(run: FailoverView, ha: HAClient, timeout: float, require_new_master: bool) -> None:
    def client_and_sentinels() -> tuple[bool, str]:
        first_ok = next((op for op in run.history.snapshot() if op.outcome == OK and op.start > run.fault_at),
                        None)
        agreed, views = sentinels_agree_on_new_master(ha, run.old_master) if require_new_master else (True, "")
        return first_ok is not None and agreed, f"client writing again: {first_ok is not None}; {views}"

    wait_until(client_and_sentinels, timeout=timeout,
               what="the client to write again and all sentinels to agree on a new master")
    run.recovered_at = time.monotonic()
    run.history.event(events.RECOVERED, "client writing, sentinels agree")
    run.new_master = ha.announced_master()
    settle = ok_count(run.history) + SETTLE_OPS
    wait_until(lambda: (ok_count(run.history) >= settle and _ok_after(run.probe, run.recovered_at),
                        f"{ok_count(run.history)} acknowledged"),
               timeout=30, what=f"{SETTLE_OPS} more acknowledged writes after recovery")


def ok_count(history: History) -> int:
    return sum(1 for op in history.snapshot() if op.outcome == OK)


def _ok_after(history: History, at: float) -> bool:
    return any(op.outcome == OK and op.start > at for op in history.snapshot())
