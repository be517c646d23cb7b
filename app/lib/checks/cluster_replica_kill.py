"""A replica killed: nothing may be promoted, and no shard may stop or lose a write."""

from __future__ import annotations

from lib.checks.checker import longest_gap_ms
from lib.checks.cluster_accounting import accounting, loss, unread
from lib.checks.cluster_timeline import OTHER_SHARDS_MAX_GAP_MS
from lib.checks.result import ERROR, FAIL, OK, CheckResult
from lib.history import HARNESS
from lib.history import OK as OP_OK
from lib.phases.cluster_record import PRIMARY_KEPT_SLOTS, ClusterFailoverView
from lib.util import format_endpoint


def judge_no_failover(run: ClusterFailoverView, metrics: dict) -> CheckResult:
    """A replica killed: the cluster flags it fail, nothing is promoted, every shard keeps taking writes."""
    victim, replica = run.victim, run.down
    end = run.end_at
    gaps = {s.label: round(longest_gap_ms(run.ops(s), run.fault_at, end), 1) for s in run.shards}
    metrics.update({"shard": victim.label, "killed_replica": format_endpoint(*replica.announced) if replica else None,
                    "primary": format_endpoint(*victim.primary.announced), "promoted": None,
                    "replica_flagged_fail_s": round(run.offset(run.down_seen_at), 3) if run.down_seen_at else None,
                    "longest_gap_ms": gaps})
    if run.timeout_reason:
        return CheckResult("primary_failure", FAIL, f"no verdict: {run.timeout_reason}", metrics)
    kept = run.history.observed(HARNESS, PRIMARY_KEPT_SLOTS)
    metrics["primary_kept_slots"] = bool(kept is not None and kept.outcome == OP_OK and kept.value)
    if why := unread(run):
        return CheckResult("primary_failure", ERROR, f"{run.fault}: writes not judged: {why}", metrics)
    acc = loss(run)
    metrics.update({"acked": acc.acked, "lost": acc.acked_lost, "lost_keys_sample": acc.lost_keys_sample})
    accounting(run, acc, metrics)
    slow = {k: v for k, v in gaps.items() if v > OTHER_SHARDS_MAX_GAP_MS}
    kept = metrics["primary_kept_slots"]
    detail = (f"{run.fault}: replica {metrics['killed_replica']} flagged fail after "
              f"{metrics['replica_flagged_fail_s']:.2f} s; {'no failover' if kept else 'a failover'} "
              f"({metrics['primary']} {'still serves' if kept else 'lost'} {victim.label}); every shard's longest "
              f"pause {max(gaps.values(), default=0):,.0f} ms; {acc.acked:,} acknowledged writes, "
              f"{acc.acked_lost} lost")
    problems = [p for p, bad in (("the primary is no longer the primary of its slots", not kept),
                                 (f"shards {', '.join(slow)} paused over {OTHER_SHARDS_MAX_GAP_MS} ms", bool(slow)),
                                 ("acknowledged writes were lost", bool(acc.acked_lost))) if bad]
    if problems:
        return CheckResult("primary_failure", FAIL, f"{detail}; expected no failover and no loss: "
                              f"{'; '.join(problems)}", metrics)
    return CheckResult("primary_failure", OK, f"{detail}, as expected", metrics)
