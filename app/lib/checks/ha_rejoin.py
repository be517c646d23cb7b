"""After the failover: the stopped node rejoined, the replicas caught up, and the roles are as before.

The suite (lib/suites/ha_restore.py) restarts the node or puts the roles back; these only judge it.
"""

from __future__ import annotations

import redis

from lib.checks.result import FAIL, OK, WARN, ScenarioResult
from lib.ha_client import Address, HAClient
from lib.runs.ha_record import FailoverRun
from lib.runs.ha_rejoin import wait_synced_replica
from lib.runs.ha_roles import PutBack
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until


def check_replica_sync(ha: HAClient, run: FailoverRun | None, old_master_restarted: bool | None,
                       restore_timeout: float) -> ScenarioResult:
    """The old master rejoined as a replica (when a failover ran) and every replica caught up with the master.

    old_master_restarted: what the suite's restart of the old master came to (None: nothing to rejoin);
    restore_timeout is how long that restart was given.
    """
    metrics: dict = {}
    status, notes = OK, []
    if run is not None and old_master_restarted is not None:
        node, role = (run.victim, "replica") if run.victim is not None else (run.old_master, "old_master")
        status = _judge_rejoin(ha, node, old_master_restarted, restore_timeout, metrics, notes, role)
    master_address = ha.master_address()
    node = ha.node(master_address)
    try:
        target = node.info("replication").get("master_repl_offset", 0)
        try:
            wait_until(lambda: _replicas_caught_up(node, target), timeout=30,
                       what=f"replica offsets to reach the master's offset {target}")
        except WaitTimeout as exc:
            status = FAIL
            notes.append(str(exc))
        info = node.info("replication")
    finally:
        node.close()
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    metrics.update({"master": format_endpoint(*master_address), "connected_replicas": info.get("connected_slaves"),
                    "master_repl_offset": info.get("master_repl_offset"),
                    "replicas": [{"address": f"{r.get('ip')}:{r.get('port')}", "state": r.get("state"),
                                  "offset": r.get("offset"), "lag": r.get("lag")} for r in replicas]})
    online = sum(1 for r in replicas if r.get("state") == "online")
    notes.insert(0, f"{online} replica(s) online on {format_endpoint(*master_address)}, offsets "
                 f"{[r.get('offset') for r in replicas]} vs master {info.get('master_repl_offset')}")
    if online == 0:
        status = FAIL
    return ScenarioResult("replica_sync", status, "; ".join(notes), metrics)


def _judge_rejoin(ha: HAClient, old: Address, restarted: bool, restore_timeout: float, metrics: dict,
                  notes: list[str], role: str = "old_master") -> str:
    """WARN if the stopped node (the old master, or a replica) was not started again, FAIL if it does not come
    to replicate from the master."""
    metrics[f"{role}_restarted"] = restarted
    if not restarted:
        notes.append(f"{format_endpoint(*old)} was not started again within {restore_timeout:.0f}s")
        return WARN
    try:
        seen = wait_synced_replica(ha, old, ha.announced_master(), timeout=60)
    except WaitTimeout as exc:
        metrics[f"{role}_rejoined"] = False
        notes.append(f"{role.replace('_', ' ')} did not rejoin: {exc}")
        return FAIL
    label = "old master" if role == "old_master" else role
    notes.append(f"{label} {format_endpoint(*old)} rejoined as a replica ({seen})")
    metrics[f"{role}_rejoined"] = True
    return OK


def check_roles_restored(original: Address, put_back: PutBack) -> ScenarioResult:
    """After a failover on servers the harness did not start: the original master is master again."""
    return ScenarioResult("roles_restored", OK if put_back.done else FAIL, put_back.detail,
                          {"original_master": format_endpoint(*original), "steps": put_back.steps})


def roles_note(ha: HAClient, original: Address | None, owned: bool) -> str | None:
    """One line on the roles a failover left swapped (original: the master before it), or None if unchanged."""
    if original is None:
        return None
    try:
        now = ha.announced_master()
    except redis.RedisError as exc:
        return f"roles: could not ask the sentinels who is master now ({type(exc).__name__})"
    if now == original:
        return None
    swapped = f"roles left swapped: {format_endpoint(*now)} is the master now, {format_endpoint(*original)} a replica"
    if owned:
        return f"{swapped} (the harness's own stack, so they are not put back)"
    return (f"{swapped} (the fault was done by hand; to put them back: SENTINEL FAILOVER once "
            f"{format_endpoint(*original)} replicates with its link up)")


def _replicas_caught_up(node: redis.Redis, target: int) -> tuple[bool, str]:
    """Every replica has what the master had when we began to wait. Not "equal to the master's offset
    now": the sentinels' hello messages are PUBLISHed through the master and move it on all the time."""
    info = node.info("replication")
    offsets = [v.get("offset") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return bool(offsets) and all(o >= target for o in offsets), (
        f"replica offsets {offsets}, master {info.get('master_repl_offset')} (waiting for {target})")
