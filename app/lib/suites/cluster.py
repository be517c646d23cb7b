"""The cluster suite: topology, placement, MOVED, ASK, key spread, then a shard failover and the rejoin.

What it shares with the cache suite (lib/suites/cache.py) lives beside it: cluster_target.py (target, parser,
plan), cluster_faults.py, cluster_target_run.py and cluster_rejoin_phase.py. Settings a fault needs for the run
(shutdown-on-sigterm, --min-replicas-to-write) are set by CONFIG SET and put back after the rejoin
(lib/clients/server_config.py).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

import redis

from lib.checks.cluster_checks import judge
from lib.checks.cluster_timeline import failover_timeline
from lib.checks.result import SuiteReport
from lib.cluster_client import ClusterClient
from lib.description import Loop
from lib.errors import HarnessError, SetupError
from lib.faults.fault import record_evidence
from lib.history import PLAIN, WRITER
from lib.phases.cluster_failover import measure_cluster_failover
from lib.phases.cluster_phases import (
    observe_ask,
    observe_connect,
    observe_distribution,
    observe_moved,
    observe_placement,
)
from lib.phases.cluster_record import ClusterFailoverView
from lib.phases.cluster_watch import wait_links_up
from lib.phases.final_read import read_back
from lib.report.client_report import client_table
from lib.report.cluster_report import distribution_table, topology_table
from lib.report.report import key_value_table
from lib.suites.cluster_target import build_parser, connected
from lib.suites.cluster_target_run import FAILOVER_ERRORS, ClusterTargetRun
from lib.suites.compared import cluster_comparison
from lib.suites.skeleton import Output
from lib.topology.cluster_topology import Shard
from lib.util import key_namespace

DESCRIPTION = "Cluster check: topology, slot placement, MOVED, ASK during a live migration, key spread, shard failover."
# The loops beside the fault (lib/workload/scheduler.py): a writer per shard (our cluster client, every ~2 ms) and the
# stock RedisCluster yardstick on the victim's shard; the pinned writer and --client's libraries are added by the
# fault and the options (lib/suites/cluster_target.connected).
LOOPS = [Loop("writer", WRITER, 0.002, per_shard=True), Loop("plain", PLAIN, 0.005)]


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
        client, shards, ns, history = self.client, self.plan.shards, self.ns, self.history
        out.show(key_value_table("Target", [("seed nodes", self.seed_nodes()), ("server", self.plan.version),
                                            ("nodes", len(self.plan.nodes)), ("shards", len(shards))]))
        out.show(topology_table(client, shards))
        observe_connect(client, shards, history)
        observe_placement(client, shards, ns, history)
        observe_moved(client, shards, ns, history)
        observe_ask(client, shards, ns, history)
        observe_distribution(client, shards, ns, history)
        run = self.measured(lambda: self.failover(out), out)
        self.rejoin(run)
        zero = run.fault_at if run is not None else 0.0
        results = self.judged(judge, zero)
        distribution = next(r for r in results if r.name == "distribution")
        if "per_shard" in distribution.metrics:  # not when the phase broke
            out.show(distribution_table(shards, distribution.metrics))
        comparison = next((r for r in results if r.name == "client_comparison"), None)
        if comparison is not None and comparison.metrics.get("clients"):
            out.show(client_table(comparison.metrics, "Clients during the fault (cluster)"))
        return self.report("cluster", results, zero)

    def failover(self, out: Output) -> ClusterFailoverView:
        """The measured failover, its timeline shown (and plotted with --plot), and the final read."""
        plan, fault, test = self.plan, self.plan.fault, self.test
        wait_links_up(self.client, plan.shards, timeout=60)
        settings = {"cluster-require-full-coverage": full_coverage(self.client, plan.shards)}
        for change in plan.config:
            settings.update(change.settings)
        test.config.update({k: v for change in plan.config for k, v in change.settings.items()})
        compared = cluster_comparison(test, self.client, plan.shards, self.ns, self.history)
        if compared is not None:
            out.show(f"comparing clients side by side: {', '.join(test.clients)}")
        live = measure_cluster_failover(test, self.client, fault, plan.shards, plan.victim, self.ns, self.history,
                                    progress=out.show, settings=settings, compared=compared)
        record_evidence(fault, self.history, live.promoted.announced if live.promoted else None)
        if live.victim is not None:  # recorded, so the verdict and --recheck judge by the same read
            # HarnessError: no answer within the read's deadline; the history keeps why, the check says ERROR
            with contextlib.suppress(*FAILOVER_ERRORS, SetupError, HarnessError):
                read_back(lambda keys: self.client.call(lambda rc: rc.mget_nonatomic(keys)), None, self.history,
                          where="through the cluster client")
        run = ClusterFailoverView.from_history(self.history, test.facts)
        self.show_timeline(out, failover_timeline(run), f"Cluster failover: {run.fault}")
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
        with connected(args, out, migrates=True, suite="cluster", loops=LOOPS) as (test, client, target, plan):
            test.checks = ["connect", "placement", "moved", "ask", "distribution", "primary_failure",
                           *(["client_comparison"] if test.clients else []), "rejoin"]
            yield ClusterSuiteRun(test, client, target, plan, key_namespace("cluster"))
