"""The HTTP cache under a primary failover: a WSGI app behind HTTPCache, requests in a loop, one fault.

Records only (every request an Op in a History, server-side moments as events); lib/phases/cache_outage.py
gives the numbers afterwards. One request loop per shard, over URLs whose cache keys live on that
shard, so "hits returned on the affected shard" is measured on that shard's own requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis.crc import key_slot

from lib import events
from lib.cluster_client import ClusterClient
from lib.description import TestDescription
from lib.errors import SetupError
from lib.faults.fault import Fault, inject_recorded
from lib.history import HARNESS, History
from lib.phases.cache_outage import ok_count, shard_recovery
from lib.phases.cluster_record import (
    GAVE_UP,
    PROMOTED_NODE,
    PROMOTION,
    VICTIM,
    ClusterFailoverView,
    record_layout,
    record_node,
)
from lib.phases.cluster_watch import wait_promoted
from lib.topology.cluster_topology import ClusterNode, Shard
from lib.waits import WaitTimeout, wait_until
from lib.workload.cache_store import ClusterCacheStore, storage_key
from lib.workload.http_cache import HTTPCache, request_key
from lib.workload.http_requests import HTTP, RequestLoop
from lib.workload.http_server import LocalWsgiServer, OriginApp
from lib.workload.scheduler import Scheduler

PATHS_PER_SHARD = 20
WARMUP_HITS = 50  # hits per shard before the fault: the cache is warm everywhere
SETTLE_REQUESTS = 100  # answered requests per shard after hits returned: the client keeps working
CACHE_TTL = timedelta(minutes=5)  # longer than any run: a MISS after the fault is a lost entry, not expiry


CACHE_RUN = "cache run"  # the harness's observation: origin calls, the middleware's counters, slot-map refreshes


@dataclass
class CacheFailoverView:
    fault: str
    shards: list[Shard]
    history: History = field(default_factory=History)
    victim: Shard | None = None
    fault_at: float = 0.0
    promoted: ClusterNode | None = None
    graceful: bool = False  # a promotion ordered on a healthy primary: no outage expected
    origin_calls: int = 0
    middleware: dict = field(default_factory=dict)
    timeout_reason: str | None = None
    refreshes: int | None = None  # the store's slot-map re-reads during the run (None: not counted)

    def offset(self, at: float) -> float:
        return at - self.fault_at

    @property
    def expect(self) -> str:
        return PROMOTION

    @classmethod
    def from_history(cls, history: History, facts: dict[str, Any] | None) -> CacheFailoverView:
        """The view of a recorded run (what the checks judge); facts are what the fault said of itself."""
        cluster = ClusterFailoverView.from_history(history, facts)
        seen = history.observed(HARNESS, CACHE_RUN)
        value = seen.value if seen is not None else {}
        return cls(cluster.fault, cluster.shards, history, cluster.victim, cluster.fault_at, cluster.promoted,
                   bool((facts or {}).get("hands_over")), value.get("origin_calls", 0), value.get("middleware", {}),
                   cluster.timeout_reason, value.get("refreshes"))


def paths_by_shard(base_url: str, prefix: str, shards: list[Shard]) -> dict[str, list[str]]:
    """PATHS_PER_SHARD paths per shard, chosen by where the middleware will store their responses."""
    found: dict[str, list[str]] = {s.label: [] for s in shards}
    for n in range(100_000):
        path = f"/item/{n}"
        slot = key_slot(storage_key(prefix, request_key("GET", base_url + path)).encode())
        shard = next(s for s in shards if s.owns(slot))
        if len(found[shard.label]) < PATHS_PER_SHARD:
            found[shard.label].append(path)
        if all(len(p) == PATHS_PER_SHARD for p in found.values()):
            return found
    raise SetupError("could not find request paths for every shard (is every slot covered?)")


def measure_cache_failover(test: TestDescription, client: ClusterClient, store: ClusterCacheStore, fault: Fault,
                       shards: list[Shard], victim: Callable[[], Shard], history: History, *,
                       progress: Callable[[str], None] | None = None) -> CacheFailoverView:
    """Serve cached pages, inject the fault, wait for promotion and for hits on the shard again; into history.

    progress is told (one line) when the fault is about to be injected: library code does not print. The request
    loops are the test description's (one per shard, over URLs whose cache keys live on that shard).
    """
    run = CacheFailoverView(fault.description, shards, history, graceful=fault.hands_over)
    record_layout(history, shards)
    origin = OriginApp()
    cache = HTTPCache(origin, store, ttl=CACHE_TTL, expose_errors=True)
    refreshes_before = store.refreshes()
    with LocalWsgiServer(cache) as server:
        paths = paths_by_shard(server.url, store.prefix, shards)
        loops = Scheduler(test.workload, {"http": lambda loop: [
            RequestLoop(server.url, shard_paths, label, history, pause_s=loop.pause_s)
            for label, shard_paths in paths.items()]})
        try:
            loops.start()
            _wait_per_shard(run, shards, WARMUP_HITS, after=0.0, cache="HIT", what="hits per shard before the fault")
            if progress is not None:
                progress(f"serving {server.url} with a warm cache ({len(history.snapshot(HTTP))} requests so "
                         f"far); fault: {fault.description}")
            try:
                run.fault_at = inject_recorded(fault, history, "a primary stopped answering")
            except WaitTimeout as exc:  # --fault manual: nobody killed a primary in time
                run.timeout_reason = str(exc)
                history.observe(HARNESS, GAVE_UP, error=str(exc))
                return run
            run.victim = victim()
            history.observe(HARNESS, VICTIM, run.victim.label)
            try:
                run.promoted, promoted_at = wait_promoted(run.victim, history, client, test.recovery_timeout_s)
                record_node(history, PROMOTED_NODE, run.promoted)
                _wait_per_shard(run, [run.victim], 1, after=promoted_at, cache="HIT",
                                timeout=test.recovery_timeout_s,
                                what=f"a cache hit on {run.victim.label} after the promotion")
                _wait_per_shard(run, shards, SETTLE_REQUESTS, after=time.monotonic(),
                                what="answered requests per shard after hits returned")
            except WaitTimeout as exc:
                run.timeout_reason = str(exc)
                history.observe(HARNESS, GAVE_UP, error=str(exc))
        finally:
            loops.stop()
            run.origin_calls, run.middleware = origin.total_calls, cache.stats.to_dict()
            run.refreshes = store.refreshes() - refreshes_before if refreshes_before is not None else None
            history.observe(HARNESS, CACHE_RUN, {"origin_calls": run.origin_calls, "middleware": run.middleware,
                                                 "refreshes": run.refreshes})
    _record_recovery(run)
    return run


def _wait_per_shard(run: CacheFailoverView, shards: list[Shard], count: int, *, after: float, what: str,
                    cache: str | None = None, timeout: float = 60.0) -> None:
    def enough() -> tuple[bool, str]:
        ops = run.history.snapshot(HTTP)
        counts = {s.label: ok_count(ops, s.label, after, cache) for s in shards}
        return all(c >= count for c in counts.values()), f"per shard: {counts}"

    wait_until(enough, timeout=timeout, what=f"{count} {what}")


def _record_recovery(run: CacheFailoverView) -> None:
    """Client-side moments, read from the finished history: hits returned / client recovered per shard."""
    ops = run.history.snapshot(HTTP)
    for shard in run.shards:
        recovery = shard_recovery(shard.label, ops, run.fault_at)
        if recovery.client_recovered_at is not None:
            run.history.event(events.CLIENT_RECOVERED, f"{shard.label}: store answers again after "
                              f"{recovery.cache_errors} cache errors", at=recovery.client_recovered_at)
        if recovery.hits_returned_at is not None:
            run.history.event(events.HITS_RETURNED, shard.label, at=recovery.hits_returned_at)
