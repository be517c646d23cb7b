"""The verdict and the output of the HTTP-under-failover run: the scenario result, its timeline, its History as JSON."""

from __future__ import annotations

from dataclasses import replace

from lib import events
from lib.checks.result import FAIL, OK, WARN, ScenarioResult
from lib.clients.http_requests import CACHE_ERROR
from lib.report.timeline import Timeline, build_timeline, history_to_dict
from lib.runs.cache_failover import CacheFailoverRun
from lib.runs.cache_outage import request_totals, shard_recovery
from lib.util import format_endpoint
from lib.workload.workload import FAIL as FAIL_OP
from lib.workload.workload import History, Op


def check_http_failover(run: CacheFailoverRun | None, skipped: str | None) -> ScenarioResult:
    if run is None:
        return ScenarioResult("http_failover", WARN, f"skipped: {skipped}")
    ops = run.history.snapshot()
    totals = request_totals(ops)
    metrics: dict = {"fault": run.fault, **totals.to_dict(), "origin_calls": run.origin_calls,
                     "middleware": run.middleware, "timeline": cache_timeline(run).to_dict(),
                     "history": history_json(run)}
    if run.victim is None:
        return ScenarioResult("http_failover", FAIL, f"no shard lost its primary: {run.timeout_reason}", metrics)
    recovery = shard_recovery(run.victim.label, ops, run.fault_at)
    promoted = run.history.first_event(events.PROMOTED)
    flagged = run.history.first_event(events.NODE_FAIL)
    metrics.update({
        "shard": run.victim.label, "old_primary": format_endpoint(*run.victim.primary.announced),
        "promoted": format_endpoint(*run.promoted.announced) if run.promoted else None,
        "flagged_fail_after_s": _after(run, flagged.at if flagged else None),
        "promoted_after_s": _after(run, promoted.at if promoted else None),
        "affected_cache_errors": recovery.cache_errors,
        "client_recovered_after_s": _after(run, recovery.client_recovered_at),
        "hits_returned_after_s": _after(run, recovery.hits_returned_at),
        "other_shards_cache_errors": {s.label: shard_recovery(s.label, ops, run.fault_at).cache_errors
                                      for s in run.shards if s.label != run.victim.label}})
    back = (f"hits back on {run.victim.label} after {metrics['hits_returned_after_s']} s" if recovery.cache_errors
            else f"no cache error on {run.victim.label}: hits never stopped")
    detail = (f"{totals.requests:,} requests, hit ratio {totals.hit_ratio:.1%}, {run.origin_calls:,} origin calls, "
              f"{totals.cache_errors} cache errors, {totals.http_5xx} 5xx; {metrics['promoted']} promoted after "
              f"{metrics['promoted_after_s']} s; {back}")
    if totals.http_5xx or totals.http_failed:
        return ScenarioResult("http_failover", FAIL, f"{detail}; the cache turned requests into errors "
                              f"({totals.http_5xx} 5xx, {totals.http_failed} without a response)", metrics)
    if run.timeout_reason:
        return ScenarioResult("http_failover", FAIL, f"no recovery: {run.timeout_reason}", metrics)
    if recovery.cache_errors == 0 and not run.graceful:
        return ScenarioResult("http_failover", WARN, f"{detail}; a killed primary cost no cache error: was the "
                              "fault on the shard the run watched?", metrics)
    return ScenarioResult("http_failover", OK, detail, metrics)


def _after(run: CacheFailoverRun, at: float | None) -> float | None:
    return None if at is None else round(run.offset(at), 3)


def cache_view(ops: list[Op]) -> list[Op]:
    """The requests as cache lookups: a store error is a failed op, though the page itself was served."""
    return [replace(op, outcome=FAIL_OP) if getattr(op, "cache", None) == CACHE_ERROR else op for op in ops]


def cache_timeline(run: CacheFailoverRun) -> Timeline:
    """The timeline of the run (table, JSON summary, plot), with the cache's outage on the killed shard."""
    view = History(ops=cache_view(run.history.snapshot()), events=list(run.history.events))
    label = run.victim.label if run.victim is not None else None
    return build_timeline(view, run.fault_at, ops=[op for op in view.ops if op.group == label] or None,
                          who=f"cache ({label})" if label else "cache")


def history_json(run: CacheFailoverRun) -> dict:
    """timeline.history_to_dict (times from the fault), each request with its path, HTTP status and X-Cache."""
    history = history_to_dict(run.history, run.fault_at)
    ordered = sorted(run.history.snapshot(), key=lambda op: op.start)  # the order history_to_dict writes
    for row, op in zip(history["ops"], ordered, strict=True):
        row.update({"path": op.key, "status": getattr(op, "status", None), "cache": getattr(op, "cache", None)})
    return history
