"""After the failover: the stopped node rejoined, the replicas caught up, and the roles are as before.

The rejoin phase (lib/phases/ha_phases.py) healed the fault, waited and recorded what it saw; these judge the record.
"""

from __future__ import annotations

from lib.checks.result import FAIL, OK, WARN, CheckResult
from lib.history import HARNESS, History
from lib.history import OK as OP_OK
from lib.phases.ha_phases import REJOINED, REPLICAS, ROLES


def check_replica_sync(history: History, failover_ran: bool) -> CheckResult:
    """The stopped node (the old master, or a replica) rejoined as a replica, and every replica caught up."""
    metrics: dict = {}
    status, notes = OK, []
    rejoined = history.observed(HARNESS, REJOINED) if failover_ran else None
    if rejoined is not None:
        seen, role = rejoined.value, rejoined.value["role"]
        metrics[f"{role}_restarted"] = seen["restarted"]
        if not seen["restarted"]:
            notes.append(f"{seen['node']} was not started again within {seen['timeout_s']:.0f}s")
            status = WARN
        elif rejoined.outcome != OP_OK:
            metrics[f"{role}_rejoined"] = False
            notes.append(f"{role.replace('_', ' ')} did not rejoin: {rejoined.error}")
            status = FAIL
        else:
            metrics[f"{role}_rejoined"] = True
            label = "old master" if role == "old_master" else role
            notes.append(f"{label} {seen['node']} rejoined as a replica ({seen['seen']})")
    replicas = history.observed(HARNESS, REPLICAS)
    if replicas is None:
        return CheckResult("replica_sync", FAIL, "; ".join([*notes, "the replicas were not looked at"]), metrics)
    info = replicas.value
    if replicas.outcome != OP_OK:
        status = FAIL
        notes.append(replicas.error or "")
    metrics.update(info)
    online = sum(1 for r in info["replicas"] if r.get("state") == "online")
    notes.insert(0, f"{online} replica(s) online on {info['master']}, offsets "
                 f"{[r.get('offset') for r in info['replicas']]} vs master {info['master_repl_offset']}")
    if online == 0:
        status = FAIL
    return CheckResult("replica_sync", status, "; ".join(notes), metrics)


def check_roles_restored(history: History) -> CheckResult:
    """After a failover on servers the harness did not start: the original master is master again."""
    put_back = history.observed(HARNESS, ROLES)
    if put_back is None:
        return CheckResult("roles_restored", WARN, "skipped: the roles were not put back")
    seen = put_back.value
    return CheckResult("roles_restored", OK if seen["done"] else FAIL, seen["detail"],
                          {"original_master": seen["original_master"], "steps": seen["steps"]})
