"""A prepared run on a cluster: the undo, cleanup, failover and rejoin steps both cluster suites share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from lib.checks.result import CheckResult, SuiteReport
from lib.checks.timeline import Timeline
from lib.clients.keyspace import delete_prefix
from lib.cluster_client import ClusterClient
from lib.description import TestDescription
from lib.errors import SetupError
from lib.history import HARNESS, History
from lib.phases.cache_failover import CacheFailoverView
from lib.phases.cluster_record import BROKEN, PROMOTION, ClusterFailoverView
from lib.report.plot import plot_timeline
from lib.report.timeline_table import timeline_table
from lib.suites.cluster_rejoin_phase import (
    RESTART_TIMEOUT_S,
    cluster_ok,
    heal_after_broken_run,
    put_back_config,
    rejoin,
    rejoin_replica,
)
from lib.suites.cluster_target import Plan, Target
from lib.suites.skeleton import Output
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until

FAILOVER_ERRORS = (WaitTimeout, redis.RedisError, redis.exceptions.RedisClusterException, RuntimeError)
R = TypeVar("R")


SETTLE_TIMEOUT_S = 30.0  # after an interrupted fault was undone: how long cleanup waits for the cluster


def cleanup(client: ClusterClient, ns: str, *, settle: bool = False) -> str | None:
    """SCAN + UNLINK of this run's keys on every primary; None when done, else one line saying why not.

    ASKING before each UNLINK: a primary importing a slot holds keys of it that it does not own.
    settle: first wait (up to SETTLE_TIMEOUT_S) until every node says ok and none is flagged failed. After
    Ctrl-C during a failover, the killed primary is started again while its replica may still win the
    election: keys deleted on the restarted node then come back from the replica it follows (seen in CI
    under load: 1,513 keys of an interrupted run left on the new primary).
    """
    unsettled = ""
    if settle:
        try:
            wait_until(lambda: cluster_ok(client), timeout=SETTLE_TIMEOUT_S, what="the cluster to settle")
        except WaitTimeout as exc:
            unsettled = f" (the cluster had not settled within {SETTLE_TIMEOUT_S:.0f}s: {exc.observed})"
    try:
        for shard in client.shards():
            with client.node(client.reachable(shard.primary), timeout=5.0) as node:
                delete_prefix(node, ns, cluster_node=True, asking=True)
    except (redis.RedisError, redis.exceptions.RedisClusterException, SetupError) as exc:
        return f"could not clean up keys {ns}*: {type(exc).__name__}: {first_line(str(exc))}{unsettled}"
    if unsettled:  # deleted on the primaries of the moment: a replica promoted later may bring some back
        return f"deleted keys {ns}*, but some may come back{unsettled}"
    return None


def first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


@dataclass
class ClusterTargetRun:
    """A prepared run on a cluster: the undo, cleanup, failover and rejoin phases both cluster suites share."""

    test: TestDescription
    client: ClusterClient
    target: Target
    plan: Plan
    ns: str
    undid_fault: bool = field(default=False, init=False)  # a node brought back or a cut healed: cleanup settles

    @property
    def history(self) -> History:
        return self.plan.history

    def undo_interrupted(self) -> list[str]:
        fault = self.plan.fault
        self.undid_fault = fault is not None and fault.pending_heal
        notes = [note for note in [fault.undo() if fault is not None else None] if note]
        for change in (c for c in self.plan.config if c.saved):  # a run interrupted after its CONFIG SET
            nodes = len(change.saved)
            notes += change.put_back() or [f"put back {', '.join(change.settings)} on {nodes} node(s)"]
        return notes

    def cleanup(self) -> str | None:
        return cleanup(self.client, self.ns, settle=self.undid_fault)

    def seed_nodes(self) -> str:
        return ", ".join(format_endpoint(*s) for s in self.target.seeds) + f"  (from {self.target.source})"

    def report(self, suite: str, results: list[CheckResult], zero: float, **extra: Any) -> SuiteReport:
        """The report of the run: target, the checks' results, the description and the history as saved."""
        return SuiteReport(suite, {"nodes": [format_endpoint(*s) for s in self.target.seeds],
                                   "server_version": self.plan.version, "shards": len(self.plan.shards),
                                   "fault": self.test.fault, **extra}, results, self.test.to_dict(),
                           self.history.to_dict(zero))

    def judged(self, judge: Callable[[TestDescription, History], list[CheckResult]], zero: float
               ) -> list[CheckResult]:
        """The checks over the history as the JSON saves it (times from the fault): --recheck of the file
        recomputes exactly these verdicts."""
        return judge(self.test, History.from_dict(self.history.to_dict(zero)))

    def measured(self, failover: Callable[[], R], out: Output) -> R | None:
        """The failover phase; when it broke, why is recorded (the check says FAIL) and the fault is healed."""
        fault = self.plan.fault
        if fault is None:
            if self.test.plot:
                out.show(f"[yellow]--plot: no failover ran (--fault {self.test.fault}), nothing to plot[/]")
            return None
        try:
            for change in self.plan.config:
                change.apply()
            return failover()
        except FAILOVER_ERRORS as exc:
            self.history.observe(HARNESS, BROKEN, error=f"{type(exc).__name__}: {exc}"
                                 f"{heal_after_broken_run(fault, self.history)}")
            return None

    def show_timeline(self, out: Output, timeline: Timeline, plot_title: str, table_title: str | None = None) -> None:
        out.show(timeline_table(timeline, table_title) if table_title else timeline_table(timeline))
        if self.test.plot:
            written = plot_timeline(timeline, self.test.plot, plot_title)
            out.show(f"timeline plot written to {written}")

    def rejoin(self, run: ClusterFailoverView | CacheFailoverView | None) -> None:
        """The rejoin phase: the old primary back as a replica (and, when the fault says so, the roles put back),
        then the run's CONFIG SET put back; recorded for the rejoin check."""
        fault, test = self.plan.fault, self.test
        timeout = test.manual_timeout_s if fault and (fault.by_hand or fault.healed_by_person) else RESTART_TIMEOUT_S
        if fault is not None and fault.expects != PROMOTION:
            rejoin_replica(self.client, run, fault, timeout, self.history)  # type: ignore[arg-type]
        else:
            # --allow-destructive treats the servers as someone else's: what the run changed is put back
            put_back = fault is not None and fault.puts_back_roles("cluster", self.plan.owned
                                                                   and not test.allow_destructive)
            rejoin(self.client, run, fault, timeout, self.history, put_back=put_back)  # type: ignore[arg-type]
        put_back_config(self.plan.config, self.history)
