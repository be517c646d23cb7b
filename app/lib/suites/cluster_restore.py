"""The cluster put back after the fault: the node started again, the roles, the run's CONFIG SET.

The suite acts here, before the check that judges it (lib/checks/cluster_rejoin.py only waits and judges).
"""

from __future__ import annotations

import redis

from lib import events
from lib.checks.cluster_rejoin import check_rejoin, check_replica_return, check_roles_put_back
from lib.checks.result import FAIL, OK, ScenarioResult
from lib.clients.server_config import ConfigChange
from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.fault import Fault, heal_fault
from lib.history import History
from lib.runs.cluster_failover_run import ClusterFailoverRun
from lib.runs.cluster_roles import put_back_roles
from lib.waits import WaitTimeout

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


def put_roles_back(client: ClusterClient, run: ClusterFailoverRun) -> str | None:
    """CLUSTER FAILOVER on the old primary, so the shard ends with the primary it started with; None when done."""
    try:
        put_back_roles(client, run.victim.primary, run.promoted, timeout=60)
    except (WaitTimeout, redis.RedisError) as exc:
        return str(exc)
    return None


def rejoin(client: ClusterClient, run: ClusterFailoverRun | None, fault: Fault | None, restart_timeout: float,
           *, put_back: bool = False) -> ScenarioResult:
    """The rejoin scenario: the suite starts the old primary again and check_rejoin judges its rejoin; with
    put_back the suite then makes it the primary again and check_roles_put_back judges that."""
    if run is None or run.promoted is None or fault is None:
        skipped = check_rejoin(client, None)
        if undoable(fault):  # a fault must not outlive its run
            problem = restart_old_primary(fault, restart_timeout)
            skipped.detail += f"; the fault was undone{f' only in part: {problem}' if problem else ''}"
        return skipped
    result = check_rejoin(client, run, restart_old_primary(fault, restart_timeout))
    if not put_back or result.status != OK:
        return result
    return check_roles_put_back(client, run, result, put_roles_back(client, run))


def rejoin_replica(client: ClusterClient, run: ClusterFailoverRun, fault: Fault | None,
                   restart_timeout: float) -> ScenarioResult:
    """After a replica kill or a shard loss: the suite starts what is still down, check_replica_return judges."""
    problem = restart_old_primary(fault, restart_timeout) if undoable(fault) else None
    return check_replica_return(client, run, problem)


def put_back_config(changes: list[ConfigChange], result: ScenarioResult) -> ScenarioResult:
    """The run's CONFIG SET put back (after the rejoin: a restarted node is reachable again); a FAIL if not."""
    applied = [change for change in changes if change.saved]
    if not applied:
        return result
    problems = [problem for change in applied for problem in change.restore()]
    names = sorted({name for change in applied for name in change.settings})
    if problems:
        return ScenarioResult(result.scenario, FAIL, f"{result.detail}; config NOT put back: {'; '.join(problems)}",
                              {**result.metrics, "config_put_back": False})
    return ScenarioResult(result.scenario, result.status, f"{result.detail}; {', '.join(names)} put back",
                          {**result.metrics, "config_put_back": True})
