"""The stopped nodes back in the cluster, and the roles and the config put back: judged from what the rejoin phase
recorded (lib/suites/cluster_rejoin_phase.py acts and waits; these read the history alone)."""

from __future__ import annotations

from lib.checks.result import FAIL, OK, WARN, CheckResult
from lib.history import OK as OP_OK
from lib.history import History
from lib.phases.cluster_record import PROMOTION, REJOIN, ClusterFailoverView
from lib.util import format_endpoint


def check_rejoin(history: History, run: ClusterFailoverView | None) -> CheckResult:
    """After a promotion: the old primary replicates the promoted one and the cluster is ok (and, when the run put
    the roles back, the old primary is the primary again); after a fault with no promotion: the stopped node is a
    replica of its shard's primary again, which holds its slots."""
    no_promotion = run is not None and run.expect != PROMOTION
    return _config(history, _replica_return(history, run) if no_promotion else _rejoin(history, run))


def _steps(history: History) -> dict:
    return {op.f: op for op in history.snapshot(REJOIN)}


def _rejoin(history: History, run: ClusterFailoverView | None) -> CheckResult:
    steps = _steps(history)
    if run is None or run.promoted is None:
        skipped = CheckResult("rejoin", WARN, "skipped: no failover happened")
        if "undone" in steps:
            problem = steps["undone"].value
            skipped.detail += f"; the fault was undone{f' only in part: {problem}' if problem else ''}"
        return skipped
    old, promoted = format_endpoint(*run.victim.primary.announced), format_endpoint(*run.promoted.announced)
    restarted, rejoined = steps.get("restarted"), steps.get("rejoined")
    if restarted is not None and restarted.outcome != OP_OK:
        return CheckResult("rejoin", WARN, f"{old} {restarted.error}", {"old_primary_restarted": False})
    if rejoined is None or rejoined.outcome != OP_OK:
        why = rejoined.error if rejoined is not None else "the rejoin was not watched"
        return CheckResult("rejoin", FAIL, f"did not rejoin: {why}", {"old_primary_rejoined": False})
    metrics = {"old_primary_rejoined": True, "new_primary": promoted}
    detail = f"{old} is back as a replica of {promoted} ({rejoined.value}); cluster ok"
    if (put_back := steps.get("roles put back")) is None:
        return CheckResult("rejoin", OK, detail, metrics)
    if put_back.outcome != OP_OK:
        return CheckResult("rejoin", FAIL, f"{detail}; the roles were NOT put back: {put_back.error}",
                              {**metrics, "roles_put_back": False})
    return CheckResult("rejoin", OK, f"{detail}; roles put back: {old} is the primary again (CLUSTER FAILOVER), "
                          f"{promoted} its replica", {**metrics, "roles_put_back": True, "new_primary": old})


def _replica_return(history: History, run: ClusterFailoverView) -> CheckResult:
    if run.victim is None or not run.victim.replicas:
        return CheckResult("rejoin", WARN, "skipped: no node was stopped")
    steps = _steps(history)
    primary, replica = run.victim.primary, run.victim.replicas[0]
    restarted, rejoined = steps.get("restarted"), steps.get("rejoined")
    if restarted is not None and restarted.outcome != OP_OK:
        return CheckResult("rejoin", WARN, f"{format_endpoint(*replica.announced)} {restarted.error}",
                              {"replica_restarted": False})
    if rejoined is None or rejoined.outcome != OP_OK:
        why = rejoined.error if rejoined is not None else "the return was not watched"
        return CheckResult("rejoin", FAIL, f"did not come back: {why}", {"replica_rejoined": False})
    return CheckResult("rejoin", OK, f"{format_endpoint(*replica.announced)} is back as a replica of "
                          f"{format_endpoint(*primary.announced)} ({rejoined.value}), which holds {run.victim.label}; "
                          "cluster ok", {"replica_rejoined": True, "primary": format_endpoint(*primary.announced)})


def _config(history: History, result: CheckResult) -> CheckResult:
    """The run's CONFIG SET put back (a FAIL if not), as the rejoin phase recorded it last."""
    put_back = _steps(history).get("config put back")
    if put_back is None:
        return result
    if put_back.outcome != OP_OK:
        return CheckResult(result.name, FAIL, f"{result.detail}; config NOT put back: {put_back.error}",
                              {**result.metrics, "config_put_back": False})
    return CheckResult(result.name, result.status, f"{result.detail}; {', '.join(put_back.value)} put back",
                          {**result.metrics, "config_put_back": True})
