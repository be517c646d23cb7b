"""The cluster suite: topology, placement, MOVED, ASK, key spread, then a shard failover and the rejoin.

What it shares with the cache suite (lib/suites/cache.py) lives beside it: cluster_target.py (target, parser,
plan), cluster_faults.py, cluster_target_run.py and cluster_restore.py. Settings a fault needs for the run
(shutdown-on-sigterm, --min-replicas-to-write) are set by CONFIG SET and put back after the rejoin
(lib/clients/server_config.py).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

import redis

from lib.checks.client_rows import check_client_comparison
from lib.checks.cluster_failover_checks import check_primary_failure
from lib.checks.cluster_placement import check_connect, check_distribution, check_placement
from lib.checks.cluster_redirects import check_ask, check_moved
from lib.checks.cluster_timeline import failover_timeline
from lib.checks.result import SuiteReport, run_scenario
from lib.cluster_client import ClusterClient
from lib.errors import HarnessError, SetupError
from lib.report.client_report import client_table
from lib.report.cluster_report import distribution_table, topology_table
from lib.report.report import key_value_table
from lib.runs.cluster_failover import run_cluster_failover
from lib.runs.cluster_failover_run import ClusterFailoverRun
from lib.runs.cluster_watch import wait_links_up
from lib.runs.final_read import read_back
from lib.suites.cluster_target import build_parser, connected
from lib.suites.cluster_target_run import FAILOVER_ERRORS, ClusterTargetRun
from lib.suites.compared import cluster_comparison
from lib.suites.skeleton import Output
from lib.topology.cluster_topology import Shard
from lib.util import key_namespace

DESCRIPTION = "Cluster check: topology, slot placement, MOVED, ASK during a live migration, key spread, shard failover."
SERVER_LOG_LINES = 30  # the old primary's log lines kept around a SIGTERM


def full_coverage(client: ClusterClient, shards: list[Shard]) -> str:
    """cluster-require-full-coverage as a node that keeps running says it ("unknown" if CONFIG GET is refused)."""
    witness = shards[1].primary if len(shards) > 1 else shards[0].primary
    try:
        with client.node(client.reachable(witness)) as node:
            return str(node.config_get("cluster-require-full-coverage").get("cluster-require-full-coverage",
                                                                            "unknown"))
    except redis.RedisError:
        return "unknown"


class ClusterSuiteRun(ClusterTargetRun):
    def checks(self, out: Output) -> SuiteReport:
        client, shards, ns = self.client, self.plan.shards, self.ns
        out.show(key_value_table("Target", [("seed nodes", self.seed_nodes()), ("server", self.plan.version),
                                            ("nodes", len(self.plan.nodes)), ("shards", len(shards))]))
        out.show(topology_table(client, shards))
        report = self.report("cluster")
        report.add(run_scenario("connect", lambda: check_connect(client, shards)))
        report.add(run_scenario("placement", lambda: check_placement(client, shards, ns)))
        report.add(run_scenario("moved", lambda: check_moved(client, shards, ns)))
        report.add(run_scenario("ask", lambda: check_ask(client, shards, ns)))
        distribution = report.add(run_scenario("distribution", lambda: check_distribution(client, shards, ns)))
        if "per_shard" in distribution.metrics:  # not when the check crashed
            out.show(distribution_table(shards, distribution.metrics))
        run, failed = self.measured("primary_failure", lambda: self.failover(out), out)
        skipped = "--fault none" if self.plan.fault is None else None
        report.add(failed or run_scenario("primary_failure", lambda: check_primary_failure(client, run, skipped)))
        if self.args.client:
            result = run_scenario("client_comparison", lambda: check_client_comparison(
                run.compared if run else None, run.fault_at if run else 0.0, run.promoted_at if run else None,
                run.victim.label if run and run.victim else None, skipped or (None if run else "the failover failed")))
            report.add(result)
            if result.metrics.get("clients"):
                out.show(client_table(result.metrics, "Clients during the fault (cluster)"))
        report.add(self.rejoin(run))
        return report

    def failover(self, out: Output) -> ClusterFailoverRun:
        """The measured failover, its timeline shown (and plotted with --plot)."""
        plan, fault = self.plan, self.plan.fault
        wait_links_up(self.client, plan.shards, timeout=60)
        settings = {"cluster-require-full-coverage": full_coverage(self.client, plan.shards)}
        for change in plan.config:
            settings.update(change.settings)
        compared = cluster_comparison(self.args, self.client, plan.shards, self.ns)
        if compared is not None:
            out.show(f"comparing clients side by side: {', '.join(self.args.client)}")
        run = run_cluster_failover(self.client, fault, plan.shards, plan.victim, self.ns,
                                   recovery_timeout=self.args.recovery_timeout, history=plan.history,
                                   progress=out.show, expect=fault.expects, pinned=fault.pins_old_primary,
                                   settings=settings, compared=compared)
        run.facts = fault.facts()
        run.evidence = fault.evidence(run.promoted.announced if run.promoted else None)
        self.show_timeline(out, failover_timeline(run), f"Cluster failover: {run.fault}")
        if run.victim is not None:  # recorded, so the verdict and --recheck judge by the same read
            # HarnessError: no answer within the read's deadline; the history keeps why, the check says ERROR
            with contextlib.suppress(*FAILOVER_ERRORS, SetupError, HarnessError):
                read_back(lambda keys: self.client.call(lambda rc: rc.mget_nonatomic(keys)), None, run.history,
                          where="through the cluster client")
                for library in compared.clients if compared is not None else []:
                    read_back(lambda keys: self.client.call(lambda rc: rc.mget_nonatomic(keys)), None,
                              library.history, where="through the cluster client")
        return run


class ClusterSuite:
    """Topology, placement, MOVED, ASK, key spread, then a shard failover and the old primary's rejoin."""

    name = "cluster"

    def __init__(self, argv: list[str] | None = None):
        self.argv = argv  # --help lists every fault's own help (it imports every fault file)

    def build_parser(self) -> argparse.ArgumentParser:
        return build_parser("python app/cluster_test.py", DESCRIPTION, "cluster", self.argv)

    @contextlib.contextmanager
    def prepare(self, args: argparse.Namespace, out: Output) -> Iterator[ClusterSuiteRun]:
        with connected(args, out, migrates=True) as (client, target, plan):
            yield ClusterSuiteRun(args, client, target, plan, key_namespace("cluster"))
