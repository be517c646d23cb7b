"""The cache suite's verdicts: every store method on a real cluster, the client-side-sharding comparison, and
the HTTP cache through a primary failover."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import redis

from lib import events
from lib.checks.result import FAIL, OK, WARN, ScenarioResult
from lib.checks.timeline import Timeline, build_timeline, history_to_dict
from lib.cluster_client import ClusterClient
from lib.history import FAIL as FAIL_OP
from lib.history import History, Op
from lib.runs.cache_failover import CacheFailoverRun
from lib.runs.cache_outage import rate_kept, request_totals, shard_recovery
from lib.topology.cluster_topology import Shard, key_in_shard
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until
from lib.workload.cache_ring import RingStore, exercise
from lib.workload.cache_store import ClusterCacheStore, storage_key
from lib.workload.http_requests import CACHE_ERROR

SPREAD_KEYS = 300
RING_KEYS = 300
TTL_S = 1.5


def _later(seconds: float = 60) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def check_basics(store: ClusterCacheStore) -> ScenarioResult:
    body = b"HTTP/1.1 200 OK\r\n\r\n\x00\xff binary body"
    problems, key = [], 2**64 - 1  # the largest key: 64 bits, unsigned
    store.set(key, body, _later())
    if store.get(key) != (body, True):
        problems.append(f"get after set returned {store.get(key)!r}")
    store.delete(key)
    if store.get(key) != (b"", False):
        problems.append("the entry is still there after delete")
    if store.get(12345) != (b"", False):
        problems.append("a key never set was found")
    store.set(7, b"old", _later())
    store.set(7, b"new", datetime.now(UTC) - timedelta(seconds=1))
    if store.get(7)[1]:
        problems.append("an expiration in the past did not delete the entry")
    store.set(8, b"stale", datetime.now(UTC) - timedelta(seconds=1))
    if store.get(8)[1]:
        problems.append("an expiration in the past stored the entry")
    detail = ("set/get of a binary body on key 2**64-1, delete, missing key -> (b'', False), a past expiration "
              "neither stores nor keeps the entry")
    return ScenarioResult("store_basics", FAIL if problems else OK, "; ".join(problems) or detail)


def check_ttl(store: ClusterCacheStore) -> ScenarioResult:
    key = 424242
    set_at = time.monotonic()
    store.set(key, b"short-lived", _later(TTL_S))
    pttl = store.client.pttl(storage_key(store.prefix, key))
    try:
        wait_until(lambda: (not store.get(key)[1], "still there"), timeout=TTL_S + 10,
                   what=f"the entry to expire {TTL_S} s after it was set")
    except WaitTimeout as exc:
        return ScenarioResult("store_ttl", FAIL, str(exc), {"pttl_ms": pttl})
    gone_after = time.monotonic() - set_at
    metrics = {"ttl_s": TTL_S, "pttl_ms": pttl, "gone_after_s": round(gone_after, 3)}
    if not 0 < pttl <= TTL_S * 1000:
        return ScenarioResult("store_ttl", FAIL, f"PTTL {pttl} ms right after set, expected 1..{TTL_S * 1000:.0f}",
                              metrics)
    if gone_after < TTL_S - 0.1:
        return ScenarioResult("store_ttl", FAIL, f"gone after {gone_after:.2f} s, before its expiration", metrics)
    return ScenarioResult("store_ttl", OK, f"PTTL {pttl} ms right after set; gone {gone_after:.2f} s later "
                          f"(expiration {TTL_S} s)", metrics)


def check_spread(store: ClusterCacheStore, shards: list[Shard]) -> ScenarioResult:
    for key in range(SPREAD_KEYS):
        store.set(key * 7919, f"page {key}".encode(), _later())
    counts = store.shard_counts()
    metrics = {"written": SPREAD_KEYS, "per_primary": counts}
    problems = []
    if sum(counts.values()) != SPREAD_KEYS:
        problems.append(f"counted {sum(counts.values())} entries on the primaries, wrote {SPREAD_KEYS}")
    empty = [name for name, count in counts.items() if count == 0]
    if len(counts) != len(shards) or empty:
        problems.append(f"entries on {len(counts) - len(empty)} of {len(shards)} shards")
    detail = f"{SPREAD_KEYS} entries over {len(counts)} primaries: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    return ScenarioResult("store_spread", FAIL if problems else OK, "; ".join(problems) or detail, metrics)


def check_clear(store: ClusterCacheStore, client: ClusterClient, shards: list[Shard],
                foreign_prefix: str) -> ScenarioResult:
    """clear() empties the prefix on every primary and leaves a key outside it (one per shard) alone."""
    foreign = [key_in_shard(shard, foreign_prefix, i) for i, shard in enumerate(shards)]
    for key in foreign:
        client.call(lambda rc, k=key: rc.set(k, "not the cache's"))
    try:
        before = store.shard_counts()
        if not sum(before.values()):
            for key in range(SPREAD_KEYS):
                store.set(key, b"x", _later())
            before = store.shard_counts()
        deleted = store.clear()
        after = store.shard_counts()
        kept = [client.call(lambda rc, k=key: rc.get(k)) for key in foreign]
    finally:
        for key in foreign:
            client.call(lambda rc, k=key: rc.delete(k))
    metrics = {"before": before, "deleted": deleted, "after": after, "foreign_keys_kept": sum(v is not None
                                                                                              for v in kept)}
    problems = []
    if any(after.values()):
        problems.append(f"entries left after clear: {after}")
    if deleted != sum(before.values()):
        problems.append(f"clear reported {deleted} deleted, there were {sum(before.values())}")
    if None in kept:
        problems.append("clear deleted a key outside its prefix")
    if sum(1 for v in before.values() if v) < len(shards):
        problems.append(f"entries were on only {sum(1 for v in before.values() if v)} shards before clear")
    detail = (f"{deleted} entries on {len(before)} primaries removed by SCAN + UNLINK; 0 left; the {len(foreign)} "
              "foreign keys (one per shard) untouched")
    return ScenarioResult("store_clear", FAIL if problems else OK, "; ".join(problems) or detail, metrics)


def check_ring_vs_cluster(store: ClusterCacheStore, client: ClusterClient, shards: list[Shard],
                          expiration: datetime) -> ScenarioResult:
    """The same set/get/delete through a client-side ring over the primaries, and through the cluster store."""
    keys = [k * 104729 + 1 for k in range(RING_KEYS)]
    nodes = [redis.Redis(*client.reachable(s.primary), password=client.password, socket_timeout=2.0)
             for s in shards]
    try:
        ring = exercise(RingStore(nodes, store.prefix), keys, expiration)
    finally:
        for node in nodes:
            node.close()
    cluster = exercise(store, keys, expiration)
    metrics = {"ring_nodes": [format_endpoint(*s.primary.announced) for s in shards], "ring": ring.to_dict(),
               "cluster_store": cluster.to_dict()}
    detail = (f"{ring.ops} ops (set/get/delete of {RING_KEYS} keys): ring of {len(nodes)} independent primaries "
              f"(key mod {len(nodes)}) failed {ring.moved} with MOVED ({ring.moved / ring.ops:.0%}); cluster store: "
              f"{sum(cluster.errors.values())} errors")
    if cluster.errors:
        return ScenarioResult("ring_vs_cluster", FAIL, f"{detail}; cluster store error: {cluster.first_error}", metrics)
    if len(shards) > 1 and ring.moved == 0:
        return ScenarioResult("ring_vs_cluster", FAIL, f"{detail}: expected MOVED from the ring", metrics)
    return ScenarioResult("ring_vs_cluster", OK, detail, metrics)


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
                                      for s in run.shards if s.label != run.victim.label},
        "slot_map_refreshes": run.refreshes})
    until = recovery.client_recovered_at or (promoted.at if promoted else None)
    if until is not None:  # the healthy shards' rate while the victim's lookups failed
        rates = {s.label: rate_kept(ops, s.label, run.fault_at, until) for s in run.shards
                 if s.label != run.victim.label}
        metrics["other_shards_rate"] = rates
        kept = [r["kept_pct"] for r in rates.values() if r["kept_pct"] is not None]
        metrics["other_shards_rate_kept_pct"] = min(kept) if kept else None
    back = (f"hits back on {run.victim.label} after {metrics['hits_returned_after_s']} s" if recovery.cache_errors
            else f"no cache error on {run.victim.label}: hits never stopped")
    detail = (f"{totals.requests:,} requests, hit ratio {totals.hit_ratio:.1%}, {run.origin_calls:,} origin calls, "
              f"{totals.cache_errors} cache errors, {totals.http_5xx} 5xx; {metrics['promoted']} promoted after "
              f"{metrics['promoted_after_s']} s; {back}")
    if metrics.get("other_shards_rate_kept_pct") is not None:
        detail += f"; the other shards kept {metrics['other_shards_rate_kept_pct']:.0f}% of their request rate"
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
