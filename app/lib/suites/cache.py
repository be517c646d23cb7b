"""The cache suite: an HTTP-response cache store on a real cluster, why client-side sharding fails, and the
HTTP cache through a primary failover. Target, plan, fault and cleanup are the cluster suite's (cluster.py)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from lib.checks.cache_checks import cache_timeline, judge
from lib.checks.result import SuiteReport
from lib.description import Loop
from lib.errors import SetupError
from lib.faults.fault import record_evidence
from lib.phases.cache_failover import CacheFailoverView, measure_cache_failover
from lib.phases.cache_phases import observe_basics, observe_clear, observe_ring, observe_spread, observe_ttl
from lib.phases.cluster_record import record_layout
from lib.phases.cluster_watch import wait_links_up
from lib.report.report import key_value_table
from lib.suites.cluster_target import build_parser, connected
from lib.suites.cluster_target_run import ClusterTargetRun
from lib.suites.skeleton import Output
from lib.util import format_endpoint, key_namespace
from lib.workload.cache_store import ClusterCacheStore
from lib.workload.http_requests import HTTP

DESCRIPTION = ("Cache check: an HTTP-response cache store on a real cluster, why client-side sharding fails, and "
               "failover.")
HIDDEN_METRICS = ("timeline", "middleware")  # in the JSON, too long for the "HTTP under failover" table
# One request loop per shard (lib/workload/scheduler.py), over URLs whose cache keys live on that shard.
LOOPS = [Loop("http", HTTP, 0.005, per_shard=True)]
CHECKS = ["store_basics", "store_ttl", "store_spread", "store_clear", "ring_vs_cluster", "http_failover", "rejoin"]


@dataclass
class CacheSuiteRun(ClusterTargetRun):
    store: ClusterCacheStore  # closed by CacheSuite.prepare when the run ends

    def checks(self, out: Output) -> SuiteReport:
        client, store, shards, ns, history = self.client, self.store, self.plan.shards, self.ns, self.history
        out.show(key_value_table("Target", [("seed nodes", self.seed_nodes()), ("server", self.plan.version),
                                            ("shards", len(shards)), ("store prefix", store.prefix)]))
        record_layout(history, shards)
        observe_basics(store, history)
        observe_ttl(store, history)
        observe_spread(store, history)
        observe_clear(store, client, shards, f"{ns}foreign:", history)
        observe_ring(store, client, shards, datetime.now(UTC) + timedelta(minutes=1), history)
        run = self.measured(lambda: self.failover(out), out)
        self.rejoin(run)
        zero = run.fault_at if run is not None else 0.0
        results = self.judged(judge, zero)
        http = next(r for r in results if r.name == "http_failover")
        if run is not None and "requests" in http.metrics:
            shown = {k: v for k, v in http.metrics.items() if k not in HIDDEN_METRICS}
            if "hit_ratio" in shown:
                shown["hit_ratio"] = f"{shown['hit_ratio']:.1%}"
            out.show(key_value_table("HTTP under failover", shown))
        return self.report("cache", results, zero, prefix=store.prefix)

    def failover(self, out: Output) -> CacheFailoverView:
        """The HTTP cache through the fault, its timeline shown (and plotted with --plot)."""
        plan, test = self.plan, self.test
        wait_links_up(self.client, plan.shards, timeout=60)
        live = measure_cache_failover(test, self.client, self.store, plan.fault, plan.shards, plan.victim,
                                  self.history, progress=out.show)
        record_evidence(plan.fault, self.history, live.promoted.announced if live.promoted else None)
        run = CacheFailoverView.from_history(self.history, test.facts)
        self.show_timeline(out, cache_timeline(run), f"HTTP cache under failover: {run.fault}",
                           "Cache failover timeline (seconds from the fault)")
        return run


class CacheSuite:
    """The cache store's methods, the ring comparison, then HTTP requests through a primary failover."""

    name = "cache"

    def __init__(self, argv: list[str] | None = None):
        self.argv = argv  # --help lists every fault's own help (it imports every fault file)

    def build_parser(self) -> argparse.ArgumentParser:
        return build_parser("python app/cache_test.py", DESCRIPTION, "cache", self.argv)

    @contextlib.contextmanager
    def prepare(self, args: argparse.Namespace, out: Output) -> Iterator[CacheSuiteRun]:
        with connected(args, out, migrates=False, suite="cache", loops=LOOPS) as (test, client, target, plan):
            test.checks = list(CHECKS)
            ns = key_namespace("cache")
            try:
                store = ClusterCacheStore.connect(target.seeds, f"{ns}c:", password=test.password,
                                                  address_remap=client.remap)
            except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:  # the latter is no RedisError
                raise SetupError(f"no cluster reachable at {format_endpoint(*target.seeds[0])}: {exc} (start one: "
                                 "python app/stack.py up cluster; or pass --node HOST:PORT)") from None
            try:
                yield CacheSuiteRun(test, client, target, plan, ns, store)
            finally:
                store.close()
