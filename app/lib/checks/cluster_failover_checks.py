"""The verdict on a shard's failover (primary_failure), or on the lack of one the fault should cause.

Checks read and judge: the fault, restarting the killed node and putting the roles back are the suite's
(lib/suites/cluster_rejoin_phase.py).
"""

from __future__ import annotations

from lib import events
from lib.checks.checker import error_counts, longest_gap_ms, outage_around
from lib.checks.cluster_accounting import accounting, loss, unread
from lib.checks.cluster_fault_notes import fault_notes, loss_notes
from lib.checks.cluster_replica_kill import judge_no_failover
from lib.checks.cluster_shard_loss import judge_shard_loss
from lib.checks.cluster_timeline import OTHER_SHARDS_MAX_GAP_MS, failover_timeline
from lib.checks.result import ERROR, FAIL, OK, WARN, CheckResult
from lib.cluster_client import BACKOFF_CAP_S, RETRIES_PER_CALL
from lib.phases.cluster_record import NO_FAILOVER, SHARD_DOWN, ClusterFailoverView
from lib.util import format_endpoint


def check_primary_failure(run: ClusterFailoverView | None, skipped: str | None) -> CheckResult:
    """The shard's failover (or, when the fault should cause none, the lack of one) judged.

    Any acknowledged write lost is a FAIL, whatever the fault. A strict fault (its facts say so) also gets its notes
    (write pause, heal, pinned writer, NOREPLICAS, the server's shutdown log); another gets the explanation its
    facts give for a loss.
    """
    if run is None:
        return CheckResult("primary_failure", WARN, f"skipped: {skipped}")
    victim = run.victim
    metrics: dict = {"fault": run.fault, "backoff_cap_ms": BACKOFF_CAP_S * 1000, "retries_per_call": RETRIES_PER_CALL,
                     "ops_total": len(run.ops()), "errors_by_type": error_counts(run.ops())}
    if victim is None:
        return CheckResult("primary_failure", FAIL, f"no shard lost its primary: {run.timeout_reason}", metrics)
    if run.expect == NO_FAILOVER:
        return judge_no_failover(run, metrics)
    if run.expect == SHARD_DOWN:
        return judge_shard_loss(run, metrics)
    metrics.update({"shard": victim.label, "old_primary": format_endpoint(*victim.primary.announced),
                    "promoted": format_endpoint(*run.promoted.announced) if run.promoted else None,
                    "promoted_after_s": round(run.offset(run.promoted_at), 3) if run.promoted_at else None})
    outage = outage_around(run.ops(victim), run.fault_at)
    metrics["affected_downtime_ms"] = round(outage.downtime_ms, 1) if outage and outage.downtime_ms else 0.0
    metrics.update(recovery_metrics(run, outage))
    metrics["timeline"] = failover_timeline(run).to_dict()
    end = run.end_at
    others = {s.label: round(longest_gap_ms(run.ops(s), run.fault_at, end), 1)
              for s in run.shards if s.label != victim.label}
    metrics["other_shards_longest_gap_ms"] = others
    strict = run.facts.get("strict", True)
    notes = fault_notes(run, metrics, end) if strict else []
    if run.timeout_reason:
        return CheckResult("primary_failure", FAIL, f"no recovery: {run.timeout_reason}"
                              + "".join(f"; {n}" for n in notes), metrics)
    if why := unread(run):
        return CheckResult("primary_failure", ERROR, f"{run.fault}; {metrics['promoted']} promoted after "
                              f"{metrics['promoted_after_s']:.2f} s; writes not judged: {why}", metrics)
    acc = loss(run)
    metrics.update({"acked": acc.acked, "lost": acc.acked_lost, "lost_keys_sample": acc.lost_keys_sample})
    if strict:
        notes += loss_notes(run, acc, metrics)
    if bound := accounting(run, acc, metrics):
        notes.append(bound)
    slow = {k: v for k, v in others.items() if v > OTHER_SHARDS_MAX_GAP_MS}
    detail = (f"{run.fault}; {metrics['promoted']} promoted after {metrics['promoted_after_s']:.2f} s; "
              f"shard {victim.label} unable to write for {metrics['affected_downtime_ms']:,.0f} ms; other shards' "
              f"longest pause {max(others.values(), default=0):,.0f} ms; {acc.acked:,} acknowledged writes, "
              f"{acc.acked_lost} lost") + "".join(f"; {n}" for n in notes)
    if slow:
        return CheckResult("primary_failure", FAIL, f"{detail}; shards {', '.join(slow)} stopped serving "
                              f"for more than {OTHER_SHARDS_MAX_GAP_MS} ms", metrics)
    if acc.acked_lost:  # strict, as Jepsen counts: the explanation does not excuse the loss
        explained = run.facts.get("loss_explained")
        why = "" if strict or not explained else f" ({explained})"
        return CheckResult("primary_failure", FAIL, f"{detail}{why}; any acknowledged write lost is a FAIL",
                              metrics)
    return CheckResult("primary_failure", OK, detail, metrics)


def recovery_metrics(run: ClusterFailoverView, ours) -> dict:
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
