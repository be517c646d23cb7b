"""A whole shard lost: no promotion is possible; how the other shards fared, and the shard's return."""

from __future__ import annotations

from lib.checks.checker import longest_gap_ms, outage_around
from lib.checks.cluster_accounting import accounting, loss, unread
from lib.checks.cluster_timeline import OTHER_SHARDS_MAX_GAP_MS, failover_timeline
from lib.checks.result import ERROR, FAIL, OK, WARN, CheckResult
from lib.history import OK as OP_OK
from lib.phases.cluster_record import ClusterFailoverView
from lib.topology.cluster_topology import Shard
from lib.util import format_endpoint


def judge_shard_loss(run: ClusterFailoverView, metrics: dict) -> CheckResult:
    """A primary and its replicas killed: no promotion is possible (expected). The other shards keep serving
    (cluster-require-full-coverage no) or all stop (yes); then the run restarts the shard and it recovers."""
    victim = run.victim
    others = [s for s in run.shards if s.label != victim.label]
    until = run.healed_at or run.end_at
    coverage = run.settings.get("cluster-require-full-coverage", "unknown")
    gaps = {s.label: round(longest_gap_ms(run.ops(s), run.fault_at, until), 1) for s in others}
    failures = {s.label: _stopped_s(run, s) for s in others}
    stopped = {label: pair[0] if pair else None for label, pair in failures.items()}
    outage = outage_around(run.ops(victim), run.fault_at)
    metrics.update({
        "shard": victim.label,
        "lost_nodes": [format_endpoint(*n.announced) for n in (victim.primary, *victim.replicas)],
        "promoted": None, "full_coverage": coverage,
        "node_flagged_fail_s": round(run.offset(run.down_seen_at), 3) if run.down_seen_at else None,
        "other_shards_longest_gap_ms": gaps, "healthy_shards_stopped_after_s": stopped,
        "healthy_shards_first_error_s": {label: pair[1] if pair else None for label, pair in failures.items()},
        "healed_after_s": round(run.offset(run.healed_at), 3) if run.healed_at else None,
        "recovered_after_heal_s": (round(run.recovered_at - run.healed_at, 3)
                                   if run.recovered_at and run.healed_at else None),
        "affected_downtime_ms": round(outage.downtime_ms, 1) if outage and outage.downtime_ms else None,
        "timeline": failover_timeline(run).to_dict()})
    if run.timeout_reason:
        return CheckResult("primary_failure", FAIL, f"no promotion possible (the whole shard {victim.label} is "
                              f"down), and then: {run.timeout_reason}", metrics)
    if why := unread(run):
        return CheckResult("primary_failure", ERROR, f"{run.fault}: no promotion possible (the whole shard "
                              f"{victim.label} is down), as expected; writes not judged: {why}", metrics)
    acc = loss(run)
    lost_here = sum(1 for op in acc.lost_ops if op.group == victim.label)
    metrics.update({"acked": acc.acked, "lost": acc.acked_lost, "lost_on_lost_shard": lost_here,
                    "lost_keys_sample": acc.lost_keys_sample})
    accounting(run, acc, metrics)
    if coverage == "yes":
        seen = [v for v in stopped.values() if v is not None]
        errors = [v for v in metrics["healthy_shards_first_error_s"].values() if v is not None]
        others_line = (f"every other shard stopped taking writes at +{min(seen):.2f}-{max(seen):.2f} s (its last "
                       f"acknowledged write; CLUSTERDOWN reached the client at +{min(errors):.2f}-{max(errors):.2f} s)"
                       if seen and len(seen) == len(stopped) else f"other shards stopped: {stopped}")
    else:
        others_line = f"the other shards kept serving (longest pause {max(gaps.values(), default=0):,.0f} ms)"
    detail = (f"{run.fault}: no promotion possible: the whole shard {victim.label} is down (expected); flagged "
              f"fail after {metrics['node_flagged_fail_s']:.2f} s; cluster-require-full-coverage {coverage}: "
              f"{others_line}; nodes started again at +{metrics['healed_after_s']:.2f} s, writes to {victim.label} "
              f"{metrics['recovered_after_heal_s']:.2f} s later (shard down {metrics['affected_downtime_ms'] or 0:,.0f}"
              f" ms); {acc.acked:,} acknowledged writes, {lost_here} lost on {victim.label}, "
              f"{acc.acked_lost - lost_here} on the others")
    if acc.acked_lost - lost_here:
        return CheckResult("primary_failure", FAIL, f"{detail}: shards that lost nothing lost writes", metrics)
    if coverage != "yes" and max(gaps.values(), default=0) > OTHER_SHARDS_MAX_GAP_MS:
        return CheckResult("primary_failure", FAIL, f"{detail}; the other shards stopped serving for more than "
                              f"{OTHER_SHARDS_MAX_GAP_MS} ms", metrics)
    if coverage == "yes" and None in stopped.values():
        return CheckResult("primary_failure", WARN, f"{detail}; with full coverage required every shard should "
                              "have stopped", metrics)
    if lost_here:
        return CheckResult("primary_failure", WARN, f"{detail} (every copy of the shard was lost: a restart keeps "
                              "only what its nodes had on disk)", metrics)
    return CheckResult("primary_failure", OK, detail, metrics)


def _stopped_s(run: ClusterFailoverView, shard: Shard) -> tuple[float, float] | None:
    """(last acknowledged write before the first failure, that failure's end), seconds from the fault; None if no
    write to shard failed. A client that retries learns late: the shard stopped at the first, not the second."""
    ops = sorted(run.ops(shard), key=lambda op: op.start)
    first = next((op for op in ops if op.outcome != OP_OK and op.start >= run.fault_at), None)
    if first is None:
        return None
    last_ok = max((op.end for op in ops if op.outcome == OP_OK and op.end <= first.end), default=run.fault_at)
    return round(run.offset(last_ok), 3), round(run.offset(first.end), 3)
