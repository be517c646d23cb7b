"""The cache suite's verdicts: every store method on a real cluster, the client-side-sharding comparison, and
the HTTP cache through a primary failover."""

from __future__ import annotations

from dataclasses import replace

from lib import events
from lib.checks.cluster_placement import layout
from lib.checks.result import FAIL, OK, WARN, CheckResult, checked
from lib.checks.timeline import Timeline, build_timeline
from lib.description import TestDescription
from lib.history import FAIL as FAIL_OP
from lib.history import OK as OP_OK
from lib.history import WRITER, History, Op
from lib.phases.cache_failover import CacheFailoverView
from lib.phases.cache_outage import rate_kept, request_totals, shard_recovery
from lib.phases.cache_phases import BODY, RING_KEYS, SPREAD_KEYS, TTL_S
from lib.phases.cluster_phases import broken, recorded
from lib.util import format_endpoint
from lib.workload.http_requests import CACHE_ERROR, HTTP, cache_of


def check_basics(history: History) -> CheckResult:
    seen = recorded(history, "store basics")
    if why := broken(history, "store basics"):
        return CheckResult("store_basics", FAIL, f"the store failed: {why}")
    problems = []
    if seen.get("get after set") != repr((BODY, True)):
        problems.append(f"get after set returned {seen.get('get after set')}")
    if seen.get("get after delete") != repr((b"", False)):
        problems.append("the entry is still there after delete")
    if seen.get("get never set") != repr((b"", False)):
        problems.append("a key never set was found")
    if seen.get("found after a past expiration replaced it"):
        problems.append("an expiration in the past did not delete the entry")
    if seen.get("found after a set with a past expiration"):
        problems.append("an expiration in the past stored the entry")
    detail = ("set/get of a binary body on key 2**64-1, delete, missing key -> (b'', False), a past expiration "
              "neither stores nor keeps the entry")
    return CheckResult("store_basics", FAIL if problems else OK, "; ".join(problems) or detail)


def check_ttl(history: History) -> CheckResult:
    seen = recorded(history, "store ttl")
    pttl = seen.get("pttl")
    failed = [op for op in history.snapshot("store ttl") if op.outcome != OP_OK]
    if failed:
        return CheckResult("store_ttl", FAIL, failed[-1].error or "", {"pttl_ms": pttl})
    gone_after = seen["gone after"]
    metrics = {"ttl_s": TTL_S, "pttl_ms": pttl, "gone_after_s": gone_after}
    if not 0 < pttl <= TTL_S * 1000:
        return CheckResult("store_ttl", FAIL, f"PTTL {pttl} ms right after set, expected 1..{TTL_S * 1000:.0f}",
                              metrics)
    if gone_after < TTL_S - 0.1:
        return CheckResult("store_ttl", FAIL, f"gone after {gone_after:.2f} s, before its expiration", metrics)
    return CheckResult("store_ttl", OK, f"PTTL {pttl} ms right after set; gone {gone_after:.2f} s later "
                          f"(expiration {TTL_S} s)", metrics)


def check_spread(history: History) -> CheckResult:
    if why := broken(history, "store spread"):
        return CheckResult("store_spread", FAIL, f"the store failed: {why}")
    counts = recorded(history, "store spread")["counts"]
    shards = layout(history)
    metrics = {"written": SPREAD_KEYS, "per_primary": counts}
    problems = []
    if sum(counts.values()) != SPREAD_KEYS:
        problems.append(f"counted {sum(counts.values())} entries on the primaries, wrote {SPREAD_KEYS}")
    empty = [name for name, count in counts.items() if count == 0]
    if len(counts) != len(shards) or empty:
        problems.append(f"entries on {len(counts) - len(empty)} of {len(shards)} shards")
    detail = f"{SPREAD_KEYS} entries over {len(counts)} primaries: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    return CheckResult("store_spread", FAIL if problems else OK, "; ".join(problems) or detail, metrics)


def check_clear(history: History) -> CheckResult:
    """clear() empties the prefix on every primary and leaves a key outside it (one per shard) alone."""
    if why := broken(history, "store clear"):
        return CheckResult("store_clear", FAIL, f"the store failed: {why}")
    seen = recorded(history, "store clear")
    before, deleted, after = seen["before"], seen["deleted"], seen["after"]
    foreign, kept = seen["foreign keys"], seen["foreign keys kept"]
    metrics = {"before": before, "deleted": deleted, "after": after, "foreign_keys_kept": kept}
    problems = []
    if any(after.values()):
        problems.append(f"entries left after clear: {after}")
    if deleted != sum(before.values()):
        problems.append(f"clear reported {deleted} deleted, there were {sum(before.values())}")
    if kept < foreign:
        problems.append("clear deleted a key outside its prefix")
    if sum(1 for v in before.values() if v) < len(layout(history)):
        problems.append(f"entries were on only {sum(1 for v in before.values() if v)} shards before clear")
    detail = (f"{deleted} entries on {len(before)} primaries removed by SCAN + UNLINK; 0 left; the {foreign} "
              "foreign keys (one per shard) untouched")
    return CheckResult("store_clear", FAIL if problems else OK, "; ".join(problems) or detail, metrics)


def check_ring_vs_cluster(history: History) -> CheckResult:
    """The same set/get/delete through a client-side ring over the primaries, and through the cluster store."""
    if why := broken(history, "ring vs cluster"):
        return CheckResult("ring_vs_cluster", FAIL, f"the phase failed: {why}")
    seen = recorded(history, "ring vs cluster")
    ring, cluster, nodes = seen["ring"], seen["cluster store"], seen["ring nodes"]
    metrics = {"ring_nodes": nodes, "ring": ring, "cluster_store": cluster}
    detail = (f"{ring['ops']} ops (set/get/delete of {RING_KEYS} keys): ring of {len(nodes)} independent primaries "
              f"(key mod {len(nodes)}) failed {ring['moved']} with MOVED ({ring['moved'] / ring['ops']:.0%}); "
              f"cluster store: {sum(cluster['errors'].values())} errors")
    if cluster["errors"]:
        return CheckResult("ring_vs_cluster", FAIL, f"{detail}; cluster store error: {cluster['first_error']}",
                              metrics)
    if len(nodes) > 1 and ring["moved"] == 0:
        return CheckResult("ring_vs_cluster", FAIL, f"{detail}: expected MOVED from the ring", metrics)
    return CheckResult("ring_vs_cluster", OK, detail, metrics)


def check_http_failover(run: CacheFailoverView | None, skipped: str | None) -> CheckResult:
    if run is None:
        return CheckResult("http_failover", WARN, f"skipped: {skipped}")
    ops = run.history.snapshot(HTTP)
    totals = request_totals(ops)
    metrics: dict = {"fault": run.fault, **totals.to_dict(), "origin_calls": run.origin_calls,
                     "middleware": run.middleware, "timeline": cache_timeline(run).to_dict()}
    if run.victim is None:
        return CheckResult("http_failover", FAIL, f"no shard lost its primary: {run.timeout_reason}", metrics)
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
        return CheckResult("http_failover", FAIL, f"{detail}; the cache turned requests into errors "
                              f"({totals.http_5xx} 5xx, {totals.http_failed} without a response)", metrics)
    if run.timeout_reason:
        return CheckResult("http_failover", FAIL, f"no recovery: {run.timeout_reason}", metrics)
    if recovery.cache_errors == 0 and not run.graceful:
        return CheckResult("http_failover", WARN, f"{detail}; a killed primary cost no cache error: was the "
                              "fault on the shard the run watched?", metrics)
    return CheckResult("http_failover", OK, detail, metrics)


def _after(run: CacheFailoverView, at: float | None) -> float | None:
    return None if at is None else round(run.offset(at), 3)


def cache_view(ops: list[Op]) -> list[Op]:
    """The requests as cache lookups (the writer's process, for the timeline): a store error is a failed op, though
    the page itself was served."""
    return [replace(op, outcome=FAIL_OP if cache_of(op) == CACHE_ERROR else op.outcome, process=WRITER) for op in ops]


def cache_timeline(run: CacheFailoverView) -> Timeline:
    """The timeline of the run (table, JSON summary, plot), with the cache's outage on the killed shard."""
    view = History(ops=cache_view(run.history.snapshot(HTTP)), events=list(run.history.events))
    label = run.victim.label if run.victim is not None else None
    return build_timeline(view, run.fault_at, ops=[op for op in view.ops if op.group == label] or None,
                          who=f"cache ({label})" if label else "cache")


def judge(test: TestDescription, history: History) -> list[CheckResult]:
    """Every check of the cache suite from the description and the history alone (the suite, and --recheck)."""
    from lib.checks.cluster_checks import failover_of
    from lib.checks.cluster_rejoin import check_rejoin

    _, failed = failover_of(test, history)
    skipped = f"--fault {test.fault}" if test.facts is None else None
    run = CacheFailoverView.from_history(history, test.facts) if test.facts is not None and failed is None else None
    http = CheckResult("http_failover", failed.status, failed.detail, failed.metrics) if failed else None
    return [checked("store_basics", lambda: check_basics(history)),
            checked("store_ttl", lambda: check_ttl(history)),
            checked("store_spread", lambda: check_spread(history)),
            checked("store_clear", lambda: check_clear(history)),
            checked("ring_vs_cluster", lambda: check_ring_vs_cluster(history)),
            http or checked("http_failover", lambda: check_http_failover(run, skipped)),
            checked("rejoin", lambda: check_rejoin(history, run))]
