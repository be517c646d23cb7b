"""What the newer faults add to master_kill's metrics: the write pause, the heal, the config, NOREPLICAS."""

from __future__ import annotations

from lib import events
from lib.history import OK as OP_OK
from lib.history import Op
from lib.phases.ha_record import FailoverView, acked_after


def fault_metrics(run: FailoverView) -> dict:
    """What the newer faults add to master_kill: the write pause, the heal, the config, NOREPLICAS."""
    ops = run.history.snapshot()
    until = run.recovered_at or max((op.end for op in ops), default=run.fault_at)
    metrics: dict = {"write_pause_ms": round(write_pause_ms(ops, run.fault_at, until), 1)}
    if attempts := leader_elections_s(run):
        metrics["leader_elections_s"] = attempts
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


def first_noreplicas_s(run: FailoverView, *, pinned_only: bool = False) -> float | None:
    """Seconds from the fault to the first NOREPLICAS error the writers saw (None: none was seen)."""
    pinned = run.pinned.snapshot() if run.pinned is not None else []
    ops = pinned if pinned_only else run.history.snapshot() + pinned
    seen = [op.end for op in ops if op.error and "NOREPLICAS" in op.error and op.end >= run.fault_at]
    return round(run.offset(min(seen)), 3) if seen else None


ELECTION_BURST_S = 1.0  # +try-failover events this close together belong to one attempt (every sentinel tries)


def leader_elections_s(run: FailoverView) -> list[float]:
    """When the sentinels tried to elect a failover leader, one time per attempt, from the fault on.

    More than one: the first election failed (a split vote: every sentinel tried at once and voted for
    itself, seen on compose under load), and Sentinel tries again only 2 x failover-timeout later.
    """
    tries = sorted(e.at for e in run.history.events if e.name == events.TRY_FAILOVER and e.at >= run.fault_at)
    attempts = [t for i, t in enumerate(tries) if i == 0 or t - tries[i - 1] > ELECTION_BURST_S]
    return [round(run.offset(t), 3) for t in attempts]
