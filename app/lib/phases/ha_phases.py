"""The phases of an HA run that act on the servers, each recorded in the run's history for the checks to judge.

CRUD through the master before the fault; after it, what the sentinels name and the role of that node; the fault
healed and the stopped node's rejoin; the original master put back. Every step is an operation (ok, or fail with
what was seen), so the checks (lib/checks/ha_checks.py, ha_rejoin.py) read the history alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import redis

from lib.faults.fault import Fault, heal_fault
from lib.ha_client import Address, HAClient
from lib.history import HARNESS, NEMESIS, History
from lib.phases.ha_record import SENTINELS_AFTER, FailoverView
from lib.phases.ha_rejoin import faster_rejoin, wait_synced_replica
from lib.phases.ha_roles import put_back_master
from lib.util import format_endpoint, parse_endpoint
from lib.waits import WaitTimeout, wait_until

CRUD = "crud"  # the process of the CRUD steps
NEW_MASTER_ROLE = "new master role"  # {"address": announced, "role": ...}
SWITCHES = "switches followed"  # how many +switch-master our client followed
REJOINED, REPLICAS, ROLES = "rejoined", "replicas", "roles put back"  # observations of the rejoin phase
CAUGHT_UP_TIMEOUT_S = 30.0
REJOIN_TIMEOUT_S = 60.0


def crud(ha: HAClient, ns: str, history: History) -> None:
    """SET with a TTL, GET, TTL, update (XX), DEL, GET through the master the sentinels name; each step an op."""
    key = f"{ns}crud"
    master = ha.master()
    history.observe(CRUD, "master", format_endpoint(*ha.master_address()))
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("set", lambda: bool(master.set(key, "v1", ex=60))), ("get", lambda: master.get(key)),
        ("ttl", lambda: master.ttl(key)), ("update", lambda: bool(master.set(key, "v2", xx=True))),
        ("get after update", lambda: master.get(key)), ("delete", lambda: master.delete(key)),
        ("get after delete", lambda: master.get(key))]
    for name, step in steps:
        start = time.monotonic()
        try:
            value = step()
        except redis.RedisError as exc:
            history.observe(CRUD, name, at=start, error=f"{type(exc).__name__}: {exc}")
            continue
        history.observe(CRUD, name, value, at=start)


def after_run(ha: HAClient, history: History) -> None:
    """What the sentinels name once the run is over, and that node's own role; how many switches ours followed."""
    views = ha.sentinel_views()
    agreed = set(views.values())
    master = next(iter(agreed)) if len(agreed) == 1 and not next(iter(agreed)).startswith(("error", "unknown")) \
        else None
    history.observe(HARNESS, SENTINELS_AFTER, {"views": views, "master": master})
    history.observe(HARNESS, SWITCHES, ha.switches_followed)
    if master is not None:
        with contextlib.closing(ha.node(ha.remap(parse_endpoint(master)))) as node:
            try:
                role = node.info("replication").get("role")
            except redis.RedisError as exc:
                history.observe(HARNESS, NEW_MASTER_ROLE, {"address": master}, error=f"{type(exc).__name__}: {exc}")
                return
        history.observe(HARNESS, NEW_MASTER_ROLE, {"address": master, "role": role})


def heal_recorded(fault: Fault, history: History, timeout: float) -> bool:
    """Heal the fault and record it as the nemesis's operation (ok, or fail: not back within timeout)."""
    start = time.monotonic()
    try:
        healed = heal_fault(fault, timeout)
    except (WaitTimeout, OSError, redis.RedisError) as exc:
        history.observe(NEMESIS, "heal", {"description": fault.description}, at=start,
                        error=f"{type(exc).__name__}: {exc}")
        return False
    history.observe(NEMESIS, "heal", {"description": fault.description}, at=start,
                    error=None if healed else f"not back within {timeout:.0f}s")
    return healed


def rejoin(ha: HAClient, run: FailoverView, fault: Fault, heal_timeout: float, *, owned: bool) -> None:
    """Heal the fault (start the stopped node, or wait for the person), then wait until it replicates from the
    master and every replica caught up; each step an operation. Sentinel's timers are shortened meanwhile where the
    fault says so: only the rejoin is watched with them, the failover was measured with the defaults."""
    history = run.history
    with faster_rejoin(ha) if fault.shortens_rejoin(owned, after_failover=True) else contextlib.nullcontext():
        healed = heal_recorded(fault, history, heal_timeout) if fault.can_heal or fault.by_hand else True
        node, role = (run.victim, "replica") if run.victim is not None else (run.old_master, "old_master")
        value = {"node": format_endpoint(*node), "role": role, "restarted": healed, "timeout_s": heal_timeout}
        if healed:
            try:
                value["seen"] = wait_synced_replica(ha, node, ha.announced_master(), timeout=REJOIN_TIMEOUT_S)
            except WaitTimeout as exc:
                history.observe(HARNESS, REJOINED, value, error=str(exc))
            else:
                history.observe(HARNESS, REJOINED, value)
        else:
            history.observe(HARNESS, REJOINED, value)
    replicas_caught_up(ha, history)


def replicas_caught_up(ha: HAClient, history: History) -> None:
    """Wait until every replica has what the master had when the wait began; record what the master said."""
    master_address = ha.master_address()
    with contextlib.closing(ha.node(master_address)) as node:
        target = node.info("replication").get("master_repl_offset", 0)
        error = None
        try:
            wait_until(lambda: _caught_up(node, target), timeout=CAUGHT_UP_TIMEOUT_S,
                       what=f"replica offsets to reach the master's offset {target}")
        except WaitTimeout as exc:
            error = str(exc)
        info = node.info("replication")
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    history.observe(HARNESS, REPLICAS, {
        "master": format_endpoint(*master_address), "connected_replicas": info.get("connected_slaves"),
        "master_repl_offset": info.get("master_repl_offset"),
        "replicas": [{"address": f"{r.get('ip')}:{r.get('port')}", "state": r.get("state"), "offset": r.get("offset"),
                      "lag": r.get("lag")} for r in replicas]}, error=error)


def _caught_up(node: redis.Redis, target: int) -> tuple[bool, str]:
    """Every replica has what the master had when we began to wait. Not "equal to the master's offset now": the
    sentinels' hello messages are PUBLISHed through the master and move it on all the time."""
    info = node.info("replication")
    offsets = [v.get("offset") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return bool(offsets) and all(o >= target for o in offsets), (
        f"replica offsets {offsets}, master {info.get('master_repl_offset')} (waiting for {target})")


def put_back_roles(ha: HAClient, original: Address, history: History) -> bool:
    """The original master made master again (one more SENTINEL FAILOVER), recorded; True when done."""
    put_back = put_back_master(ha, original)
    history.observe(HARNESS, ROLES, {"original_master": format_endpoint(*original), "done": put_back.done,
                                     "detail": put_back.detail, "steps": put_back.steps})
    return put_back.done
