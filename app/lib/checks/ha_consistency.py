"""The consistency verdict: every acknowledged write read back after the run, and why one was lost."""

from __future__ import annotations

from lib.checks.accounting import Accounting, account_history, consistency_result, max_lag_s
from lib.checks.ha_fault_metrics import first_noreplicas_s
from lib.checks.result import ERROR, FAIL, WARN, CheckResult
from lib.history import PINNED, WRITER, Op
from lib.phases.ha_record import FailoverView, acked_after

LOST_AT_LIMIT = 5000  # lost_acked_at_s lists at most this many (sorted) acknowledgement times


def check_consistency(run: FailoverView | None, skipped: str | None) -> CheckResult:
    """Every write judged against the final read the run recorded (lib/checks/accounting.py), Jepsen's way.

    Strict: any acknowledged write lost is a FAIL; the second line says whether the loss is within the bound
    min-replicas-max-lag documents. The same verdict is recomputed from the saved JSON by --recheck.
    """
    if run is None or run.recovered_at is None:
        return CheckResult("consistency", WARN if run is None else FAIL, f"skipped: {skipped or 'no recovery'}")
    if run.history.final_read is None:
        return CheckResult("consistency", ERROR, run.history.final_read_error
                              or "no final read was recorded after the run: nothing to judge the writes by")
    acc = account_history(run.history, (WRITER,))
    metrics = {"lost": acc.acked_lost, "checked_on": run.extra.get("final_read_on")}
    if acc.lost_ops:
        metrics["lost_between_s"] = [round(run.offset(min(op.start for op in acc.lost_ops)), 3),
                                     round(run.offset(max(op.end for op in acc.lost_ops)), 3)]
    window = (f"; lost writes were acknowledged between +{metrics['lost_between_s'][0]:.2f} s and "
              f"+{metrics['lost_between_s'][1]:.2f} s after the fault" if acc.lost_ops else "")
    lost_ops = list(acc.lost_ops)
    notes = window
    if run.history.snapshot(PINNED):
        pinned = account_history(run.history, (PINNED,))
        acc = acc.merged(pinned)
        notes += _old_master_note(run, pinned, metrics)
        lost_ops += pinned.lost_ops
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


def _loss_explained(run: FailoverView) -> str:
    """The fault's own words for why it can lose acknowledged writes (lib/faults/*.py: explain_loss)."""
    return f"; {run.loss_explained}" if run.loss_explained else ""


def _old_master_note(run: FailoverView, pinned: Accounting, metrics: dict) -> str:
    """The second writer's: what the old master acknowledged after the heal, and whether it survived."""
    ops = run.history.snapshot(PINNED)
    after_heal = acked_after(pinned.lost_ops, run.healed_at) if run.healed_at is not None else []
    acked_after_heal = len(acked_after(ops, run.healed_at)) if run.healed_at is not None else 0
    metrics.update({"old_master_acked": pinned.acked, "old_master_acked_lost": pinned.acked_lost,
                    "old_master_wait_confirmed_lost": pinned.wait_confirmed_lost,
                    "old_master_acked_after_heal": acked_after_heal,
                    "old_master_acked_after_heal_lost": len(after_heal)})
    if pinned.lost_ops:
        metrics["old_master_lost_between_s"] = [round(run.offset(min(op.start for op in pinned.lost_ops)), 3),
                                                round(run.offset(max(op.end for op in pinned.lost_ops)), 3)]
    demoted = (f", discarded when it was demoted at {run.offset(run.old_master_demoted_at):+.2f} s"
               if run.old_master_demoted_at is not None and pinned.acked_lost else "")
    return (f"; a second writer kept on the old master had {pinned.acked:,} writes acknowledged there, "
            f"{acked_after_heal:,} of them after the heal: {pinned.acked_lost:,} lost ({len(after_heal):,} after the "
            f"heal){demoted}")


def _min_replicas_note(run: FailoverView, lost_ops: list[Op]) -> str:
    setting = run.settings["min-replicas-to-write"]
    lag = run.settings.get("min-replicas-max-lag")
    first = first_noreplicas_s(run)
    seen = f"first NOREPLICAS at {first:+.2f} s" if first is not None else "no NOREPLICAS seen"
    window = (f"lost writes acknowledged between {run.offset(min(op.end for op in lost_ops)):+.2f} s and "
              f"{run.offset(max(op.end for op in lost_ops)):+.2f} s" if lost_ops else "no acknowledged write lost")
    return f"; with min-replicas-to-write {setting}" + (f" (max-lag {lag} s)" if lag else "") + f": {seen}, {window}"
