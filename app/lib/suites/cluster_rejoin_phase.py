"""The cluster put back after the fault: the node started again, the roles, the run's CONFIG SET.

The suite acts here, before the check that judges it (lib/checks/cluster_rejoin.py only waits and judges).
"""

from __future__ import annotations

import redis

from lib import events
from lib.clients.server_config import ConfigChange
from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.fault import Fault, heal_fault
from lib.history import History
from lib.phases.cluster_phases import Steps
from lib.phases.cluster_record import REJOIN, ClusterFailoverView
from lib.phases.cluster_roles import put_back_roles, wait_rejoined
from lib.topology.cluster_topology import ClusterNode, own_view
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until

RESTART_TIMEOUT_S = 30.0  # a killed node the harness starts again (a person gets --manual-timeout)


def heal_after_broken_run(fault: Fault, history: History, timeout: float = RESTART_TIMEOUT_S) -> str:
    """A run that broke after its fault still heals it: a fault must not outlive the run."""
    if history.first_event(events.FAULT) is None or not fault.can_heal or fault.healed_by_person:
        return ""
    try:
        heal_fault(fault, timeout)
    except (SetupError, WaitTimeout) as exc:
        return f"; the fault was NOT healed: {exc}"
    return "; the fault was healed"


def undoable(fault: Fault | None) -> bool:
    """The fault is still in effect and the harness can heal it (a person's fault: the person can)."""
    return fault is not None and fault.pending_heal and (fault.can_heal or fault.by_hand)


def restart_old_primary(fault: Fault, timeout: float) -> str | None:
    """Heal the fault: start the killed primary again (or wait for the person to); None when it runs, else why not."""
    if not (fault.can_heal or fault.by_hand):
        return None  # a graceful failover stopped nothing
    if fault.heals_in_run and not fault.pending_heal:
        return None  # the run healed it already (resumed, cut healed)
    try:
        if heal_fault(fault, timeout):
            return None
    except (WaitTimeout, SetupError) as exc:
        return f"was not started again: {exc}"
    return f"was not started again within {timeout:.0f}s"


def put_roles_back(client: ClusterClient, run: ClusterFailoverView) -> str | None:
    """CLUSTER FAILOVER on the old primary, so the shard ends with the primary it started with; None when done."""
    try:
        put_back_roles(client, run.victim.primary, run.promoted, timeout=60)
    except (WaitTimeout, redis.RedisError) as exc:
        return str(exc)
    return None


def rejoin(client: ClusterClient, run: ClusterFailoverView | None, fault: Fault | None, restart_timeout: float,
           history: History, *, put_back: bool = False) -> None:
    """The rejoin phase after a promotion: the fault healed (the old primary started again), its rejoin as a
    replica of the promoted node and the cluster ok waited for, and with put_back the roles put back; each step
    recorded (REJOIN process) for lib/checks/cluster_rejoin.py to judge."""
    step = Steps(history, REJOIN)
    if run is None or run.promoted is None or fault is None:
        if undoable(fault):  # a fault must not outlive its run
            step.note("undone", restart_old_primary(fault, restart_timeout))  # type: ignore[arg-type]
        return
    if problem := restart_old_primary(fault, restart_timeout):
        step.note("restarted", error=problem)
        return
    step.note("restarted", True)
    try:
        step.note("rejoined", wait_rejoined(client, run.victim.primary, run.promoted, timeout=60))
        wait_until(lambda: cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
    except WaitTimeout as exc:
        step.note("rejoined", error=str(exc))
        return
    if put_back:
        problem = put_roles_back(client, run)
        if problem is None:
            try:
                wait_until(lambda: cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
            except (WaitTimeout, redis.RedisError) as exc:
                problem = str(exc)
        step.note("roles put back", error=problem) if problem else step.note("roles put back", True)


def rejoin_replica(client: ClusterClient, run: ClusterFailoverView, fault: Fault | None, restart_timeout: float,
                   history: History) -> None:
    """After a fault that should cause no promotion (a replica lost, a whole shard lost): start what is still down,
    wait until the shard's primary holds its slots, its replica replicates it and the cluster is ok; recorded."""
    step = Steps(history, REJOIN)
    if run is None or run.victim is None or not run.victim.replicas:
        return
    primary, replica = run.victim.primary, run.victim.replicas[0]
    if undoable(fault) and (problem := restart_old_primary(fault, restart_timeout)):  # type: ignore[arg-type]
        step.note("restarted", error=problem)
        return
    step.note("restarted", True)
    try:
        wait_until(lambda: _holds_slots(client, primary), timeout=60,
                   what=f"{format_endpoint(*primary.announced)} to be the primary of {run.victim.label}")
        step.note("rejoined", wait_rejoined(client, replica, primary, timeout=60))
        wait_until(lambda: cluster_ok(client), timeout=30, what="cluster_state:ok on every node")
    except WaitTimeout as exc:
        step.note("rejoined", error=str(exc))


def put_back_config(changes: list[ConfigChange], history: History) -> None:
    """The run's CONFIG SET put back (after the rejoin: a restarted node is reachable again), recorded."""
    applied = [change for change in changes if change.saved]
    if not applied:
        return
    problems = [problem for change in applied for problem in change.put_back()]
    names = sorted({name for change in applied for name in change.settings})
    step = Steps(history, REJOIN)
    step.note("config put back", names, error="; ".join(problems) or None)


def _holds_slots(client: ClusterClient, node: ClusterNode) -> tuple[bool, str]:
    me = own_view(client.nodes([client.reachable(node)]))
    return me.is_primary and bool(me.slots), f"{'primary' if me.is_primary else 'replica'} slots={me.slots}"


def cluster_ok(client: ClusterClient) -> tuple[bool, str]:
    """Every node answers cluster_state:ok and none is flagged failed (a wait_until check)."""
    states = {}
    for node in client.nodes():
        if node.failed:
            return False, f"{format_endpoint(*node.announced)} flagged {','.join(sorted(node.flags))}"
        with client.node(client.reachable(node)) as plain:
            states[format_endpoint(*node.announced)] = plain.cluster("INFO").get("cluster_state")
    return all(s == "ok" for s in states.values()), str(states)
