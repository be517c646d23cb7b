"""A replica killed: nothing may be promoted, and no shard may stop or lose a write."""

from __future__ import annotations

import time

from lib.checks.checker import longest_gap_ms, lost_writes
from lib.checks.cluster_accounting import accounting, final_reader, unread
from lib.checks.cluster_timeline import OTHER_SHARDS_MAX_GAP_MS
from lib.checks.result import ERROR, FAIL, OK, ScenarioResult
from lib.checks.timeline import history_to_dict
from lib.cluster_client import ClusterClient
from lib.runs.cluster_failover_run import ClusterFailoverRun
from lib.topology.cluster_topology import own_view
from lib.util import format_endpoint


def judge_no_failover(client: ClusterClient, run: ClusterFailoverRun, metrics: dict) -> ScenarioResult:
    """A replica killed: the cluster flags it fail, nothing is promoted, every shard keeps taking writes."""
    victim, replica = run.victim, run.down
    end = run.recovered_at or time.monotonic()
    gaps = {s.label: round(longest_gap_ms(run.ops(s), run.fault_at, end), 1) for s in run.shards}
    metrics.update({"shard": victim.label, "killed_replica": format_endpoint(*replica.announced) if replica else None,
                    "primary": format_endpoint(*victim.primary.announced), "promoted": None,
                    "replica_flagged_fail_s": round(run.offset(run.down_seen_at), 3) if run.down_seen_at else None,
                    "longest_gap_ms": gaps, "history": history_to_dict(run.history, run.fault_at)})
    if run.timeout_reason:
        return ScenarioResult("primary_failure", FAIL, f"no verdict: {run.timeout_reason}", metrics)
    me = own_view(client.nodes([client.reachable(victim.primary)]))
    metrics["primary_kept_slots"] = me.is_primary and bool(me.slots)
    if why := unread(run):
        return ScenarioResult("primary_failure", ERROR, f"{run.fault}: writes not judged: {why}", metrics)
    loss = lost_writes(run.ops(), final_reader(run))
    metrics.update({"acked": loss.acked, "lost": loss.lost, "lost_keys_sample": loss.lost_keys})
    accounting(run, metrics)
    slow = {k: v for k, v in gaps.items() if v > OTHER_SHARDS_MAX_GAP_MS}
    kept = metrics["primary_kept_slots"]
    detail = (f"{run.fault}: replica {metrics['killed_replica']} flagged fail after "
              f"{metrics['replica_flagged_fail_s']:.2f} s; {'no failover' if kept else 'a failover'} "
              f"({metrics['primary']} {'still serves' if kept else 'lost'} {victim.label}); every shard's longest "
              f"pause {max(gaps.values(), default=0):,.0f} ms; {loss.acked:,} acknowledged writes, {loss.lost} lost")
    problems = [p for p, bad in (("the primary is no longer the primary of its slots", not kept),
                                 (f"shards {', '.join(slow)} paused over {OTHER_SHARDS_MAX_GAP_MS} ms", bool(slow)),
                                 ("acknowledged writes were lost", bool(loss.lost))) if bad]
    if problems:
        return ScenarioResult("primary_failure", FAIL, f"{detail}; expected no failover and no loss: "
                              f"{'; '.join(problems)}", metrics)
    return ScenarioResult("primary_failure", OK, f"{detail}, as expected", metrics)
