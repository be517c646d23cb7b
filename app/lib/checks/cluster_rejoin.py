"""The stopped nodes back in the cluster, and the roles put back: the suite acts
(lib/suites/cluster_restore.py), these only wait and judge."""

from __future__ import annotations

import redis

from lib.checks.result import FAIL, OK, WARN, ScenarioResult
from lib.cluster_client import ClusterClient
from lib.runs.cluster_failover_run import ClusterFailoverRun
from lib.runs.cluster_roles import wait_rejoined
from lib.topology.cluster_topology import ClusterNode, own_view
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until


def check_rejoin(client: ClusterClient, run: ClusterFailoverRun | None, not_restarted: str | None = None
                 ) -> ScenarioResult:
    """The old primary, started again by the suite, replicates the promoted one and the cluster is ok.

    not_restarted: why the suite could not start the old primary again (then there is nothing to wait for).
    """
    if run is None or run.promoted is None:
        return ScenarioResult("rejoin", WARN, "skipped: no failover happened")
    old = run.victim.primary
    if not_restarted:
        return ScenarioResult("rejoin", WARN, f"{format_endpoint(*old.announced)} {not_restarted}",
                              {"old_primary_restarted": False})
    try:
        seen = wait_rejoined(client, old, run.promoted, timeout=60)
        wait_until(lambda: cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
    except WaitTimeout as exc:
        return ScenarioResult("rejoin", FAIL, f"did not rejoin: {exc}", {"old_primary_rejoined": False})
    metrics = {"old_primary_rejoined": True, "new_primary": format_endpoint(*run.promoted.announced)}
    return ScenarioResult("rejoin", OK, f"{format_endpoint(*old.announced)} is back as a replica of "
                          f"{format_endpoint(*run.promoted.announced)} ({seen}); cluster ok", metrics)


def check_replica_return(client: ClusterClient, run: ClusterFailoverRun | None, not_restarted: str | None = None
                         ) -> ScenarioResult:
    """After a replica kill or a shard loss: the shard's primary holds its slots, its replica replicates it again
    with the link up, and the cluster is ok (the suite started the killed nodes again)."""
    if run is None or run.victim is None or not run.victim.replicas:
        return ScenarioResult("rejoin", WARN, "skipped: no node was stopped")
    primary, replica = run.victim.primary, run.victim.replicas[0]
    if not_restarted:
        return ScenarioResult("rejoin", WARN, f"{format_endpoint(*replica.announced)} {not_restarted}",
                              {"replica_restarted": False})
    try:
        wait_until(lambda: _holds_slots(client, primary), timeout=60,
                   what=f"{format_endpoint(*primary.announced)} to be the primary of {run.victim.label}")
        seen = wait_rejoined(client, replica, primary, timeout=60)
        wait_until(lambda: cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
    except WaitTimeout as exc:
        return ScenarioResult("rejoin", FAIL, f"did not come back: {exc}", {"replica_rejoined": False})
    return ScenarioResult("rejoin", OK, f"{format_endpoint(*replica.announced)} is back as a replica of "
                          f"{format_endpoint(*primary.announced)} ({seen}), which holds {run.victim.label}; cluster ok",
                          {"replica_rejoined": True, "primary": format_endpoint(*primary.announced)})


def _holds_slots(client: ClusterClient, node: ClusterNode) -> tuple[bool, str]:
    me = own_view(client.nodes([client.reachable(node)]))
    return me.is_primary and bool(me.slots), f"{'primary' if me.is_primary else 'replica'} slots={me.slots}"


def check_roles_put_back(client: ClusterClient, run: ClusterFailoverRun, rejoined: ScenarioResult,
                         problem: str | None) -> ScenarioResult:
    """After the suite made the old primary the primary again: the cluster is ok with the roles it started with.

    rejoined is check_rejoin's OK result; problem, why the suite could not put the roles back (None: done).
    """
    old, promoted = format_endpoint(*run.victim.primary.announced), format_endpoint(*run.promoted.announced)
    metrics = dict(rejoined.metrics)
    if problem is None:
        try:
            wait_until(lambda: cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
        except (WaitTimeout, redis.RedisError) as exc:
            problem = str(exc)
    if problem is not None:
        metrics["roles_put_back"] = False
        return ScenarioResult("rejoin", FAIL, f"{rejoined.detail}; the roles were NOT put back: {problem}", metrics)
    metrics.update({"roles_put_back": True, "new_primary": old})
    return ScenarioResult("rejoin", OK, f"{rejoined.detail}; roles put back: {old} is the primary again "
                          f"(CLUSTER FAILOVER), {promoted} its replica", metrics)


def cluster_ok(client: ClusterClient) -> tuple[bool, str]:
    """Every node answers cluster_state:ok and none is flagged failed (a wait_until check)."""
    states = {}
    for node in client.nodes():
        if node.failed:
            return False, f"{format_endpoint(*node.announced)} flagged {','.join(sorted(node.flags))}"
        with client.node(client.reachable(node)) as plain:
            states[format_endpoint(*node.announced)] = plain.cluster("INFO").get("cluster_state")
    return all(s == "ok" for s in states.values()), str(states)
