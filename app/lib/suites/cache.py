"""The cache suite: an HTTP-response cache store on a real cluster, why client-side sharding fails, and the
HTTP cache through a primary failover. Target, plan, fault and cleanup are the cluster suite's (cluster.py)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from lib.checks.cache_checks import (
    cache_timeline,
    check_basics,
    check_clear,
    check_http_failover,
    check_ring_vs_cluster,
    check_spread,
    check_ttl,
)
from lib.checks.result import SuiteReport, run_scenario
from lib.errors import SetupError
from lib.report.report import key_value_table
from lib.runs.cache_failover import CacheFailoverRun, run_cache_failover
from lib.runs.cluster_watch import wait_links_up
from lib.suites.cluster_target import build_parser, connected
from lib.suites.cluster_target_run import ClusterTargetRun
from lib.suites.skeleton import Output
from lib.util import format_endpoint, key_namespace
from lib.workload.cache_store import ClusterCacheStore

DESCRIPTION = ("Cache check: an HTTP-response cache store on a real cluster, why client-side sharding fails, and "
               "failover.")
HIDDEN_METRICS = ("history", "timeline", "middleware")  # in the JSON, too long for the "HTTP under failover" table


@dataclass
class CacheSuiteRun(ClusterTargetRun):
    store: ClusterCacheStore  # closed by CacheSuite.prepare when the run ends

    def checks(self, out: Output) -> SuiteReport:
        client, store, shards, ns = self.client, self.store, self.plan.shards, self.ns
        out.show(key_value_table("Target", [("seed nodes", self.seed_nodes()), ("server", self.plan.version),
                                            ("shards", len(shards)), ("store prefix", store.prefix)]))
        report = self.report("cache", prefix=store.prefix)
        report.add(run_scenario("store_basics", lambda: check_basics(store)))
        report.add(run_scenario("store_ttl", lambda: check_ttl(store)))
        report.add(run_scenario("store_spread", lambda: check_spread(store, shards)))
        report.add(run_scenario("store_clear", lambda: check_clear(store, client, shards, f"{ns}foreign:")))
        expiration = datetime.now(UTC) + timedelta(minutes=1)
        report.add(run_scenario("ring_vs_cluster", lambda: check_ring_vs_cluster(store, client, shards, expiration)))
        run, failed = self.measured("http_failover", lambda: self.failover(out), out)
        skipped = "--fault none" if self.plan.fault is None else None
        http = report.add(failed or run_scenario("http_failover", lambda: check_http_failover(run, skipped)))
        report.add(self.rejoin(run))
        if run is not None:
            shown = {k: v for k, v in http.metrics.items() if k not in HIDDEN_METRICS}
            if "hit_ratio" in shown:
                shown["hit_ratio"] = f"{shown['hit_ratio']:.1%}"
            out.show(key_value_table("HTTP under failover", shown))
        return report

    def failover(self, out: Output) -> CacheFailoverRun:
        """The HTTP cache through the fault, its timeline shown (and plotted with --plot)."""
        plan = self.plan
        wait_links_up(self.client, plan.shards, timeout=60)
        run = run_cache_failover(self.client, self.store, plan.fault, plan.shards, plan.victim,
                                 recovery_timeout=self.args.recovery_timeout, history=plan.history,
                                 progress=out.show)
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
        with connected(args, out, migrates=False, suite="cache") as (client, target, plan):
            ns = key_namespace("cache")
            try:
                store = ClusterCacheStore.connect(target.seeds, f"{ns}c:", password=args.password,
                                                  address_remap=client.remap)
            except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:  # the latter is no RedisError
                raise SetupError(f"no cluster reachable at {format_endpoint(*target.seeds[0])}: {exc} (start one: "
                                 "python app/stack.py up cluster; or pass --node HOST:PORT)") from None
            try:
                yield CacheSuiteRun(args, client, target, plan, ns, store)
            finally:
                store.close()
