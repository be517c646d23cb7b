"""What the fault matrix measures besides a kill's numbers, as metrics and as notes on primary_failure."""

from __future__ import annotations

from lib.checks.accounting import Accounting
from lib.history import OK as OP_OK
from lib.phases.cluster_record import PINNED_GROUP, ClusterFailoverView
from lib.util import format_endpoint


def fault_notes(run: ClusterFailoverView, metrics: dict, end: float) -> list[str]:
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
        notes.append(pinned_note(run, metrics))
    if "min-replicas-to-write" in run.settings:
        refused = [op for op in run.ops() if op.error and "NOREPLICAS" in op.error and op.end >= run.fault_at]
        first = min((op.end for op in refused), default=None)
        metrics["first_noreplicas_after_s"] = round(run.offset(first), 3) if first is not None else None
        notes.append(f"first NOREPLICAS at +{metrics['first_noreplicas_after_s']:.2f} s" if first is not None
                     else "no write refused with NOREPLICAS")
    metrics["run_settings"] = dict(run.settings)
    if "server_log" in run.evidence:  # the fault's own (lib/faults/sigterm.py): the server's shutdown lines
        metrics.update(run.evidence)
        line = run.evidence.get("server_log_handover_line")
        notes.append(f"server log: {line}" if line else "the server log shows no hand-over to a replica")
    return notes


def write_pause_ms(ops: list, fault_at: float, end: float) -> float:
    """The longest time between two acknowledged writes, from the last one before the fault until end."""
    acks = sorted(op.end for op in ops if op.outcome == OP_OK and op.end <= end)
    before = [at for at in acks if at < fault_at]
    points = [before[-1] if before else fault_at, *(at for at in acks if at >= fault_at), end]
    return max((b - a) * 1000 for a, b in zip(points, points[1:], strict=False))


def pinned_note(run: ClusterFailoverView, metrics: dict) -> str:
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
    if run.facts.get("minority_side"):  # when the cut side stops taking writes (cluster-node-timeout after the cut)
        metrics["minority_stopped_writes_after_s"] = stopped_s
    stopped = (f"first error at +{stopped_s:.2f} s ({(first_error.error or '').split(' (attempts')[0][:60]})"
               if first_error else "no error")
    return (f"writer pinned to {metrics['pinned_to']}: {stopped}; {len(during)} acknowledged during the fault, "
            f"{len(after_heal)} after the heal")


def loss_notes(run: ClusterFailoverView, loss: Accounting, metrics: dict) -> list[str]:
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
