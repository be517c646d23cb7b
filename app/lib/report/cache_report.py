"""The output of the HTTP-under-failover run: its timeline and its History as JSON (the verdict is
lib/checks/cache_checks.check_http_failover)."""

from __future__ import annotations

from dataclasses import replace

from lib.clients.http_requests import CACHE_ERROR
from lib.report.timeline import Timeline, build_timeline, history_to_dict
from lib.runs.cache_failover import CacheFailoverRun
from lib.workload.workload import FAIL as FAIL_OP
from lib.workload.workload import History, Op


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
