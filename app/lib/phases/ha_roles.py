"""Putting the roles back after a failover on servers the harness did not start: one more SENTINEL FAILOVER
that can only pick the original master."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

from lib.errors import SetupError
from lib.ha_client import Address, HAClient
from lib.phases.ha_rejoin import faster_rejoin, wait_synced_replica
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until

NEVER_PROMOTED = 0  # replica-priority 0: Sentinel never picks this replica


@dataclass
class PutBack:
    """What put_back_master did: whether the original master is master again, and how."""

    done: bool
    detail: str
    steps: list[str] = field(default_factory=list)


def put_back_master(ha: HAClient, original: Address, timeout: float = 90.0) -> PutBack:
    """Make `original` (an announced address) the master again with one more SENTINEL FAILOVER.

    A graceful failover leaves the roles swapped; on a deployment the harness did not start they
    must be as before. SENTINEL FAILOVER picks the replica by replica-priority, then offset, so the
    other replicas get replica-priority 0 (never promoted) until the switch, then their old value.
    Only once `original` is a synced replica (link up) whose new priority-0 peers the sentinel has
    seen, else Sentinel would promote another one or none.

    Sentinel polls a replica's INFO every 10 s and demotes a node that claims the master role only after
    4 publish periods (8 s): the put-back took 20-30 s of those timers. The sentinels' timers are shortened
    (faster_rejoin, put back afterwards) while no failover is under way: before this SENTINEL FAILOVER, and
    once every sentinel names the original master. Never during it: with 100 ms timers the other sentinels
    demoted the replica being promoted before the leader finished (measured; the failover then aborted).
    """
    deadline = time.monotonic() + timeout
    steps: list[str] = []

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    current = ha.announced_master()
    if current == original:
        return PutBack(True, f"{format_endpoint(*original)} is the master already", steps)
    saved: dict[Address, str] = {}
    not_put_back: list[str] = []
    try:
        sentinel, others = ha.sentinel_addresses[0], []
        try:
            with faster_rejoin(ha):
                steps.append(wait_synced_replica(ha, original, current, left()))
                others = [a for a in _sentinel_replicas(ha, sentinel) if a != original]
                _set_priorities(ha, others, NEVER_PROMOTED, saved)
                steps.append(wait_until(lambda: _sentinel_would_pick(ha, sentinel, original, others),
                                        timeout=left(), what=f"sentinel {format_endpoint(*sentinel)} to see "
                                        f"{format_endpoint(*original)} as the only replica it may promote"))
            _sentinel_failover(ha, sentinel)
            steps.append(wait_until(lambda: _master_everywhere(ha, original), timeout=left(),
                                    what=f"all sentinels to name {format_endpoint(*original)} master again"))
        finally:
            not_put_back = _put_back_priorities(ha, saved)
        with faster_rejoin(ha):
            steps.append(wait_until(lambda: _replicas_back(ha, original, [current, *others]), timeout=left(),
                                    what=f"{format_endpoint(*original)}'s replicas to be online again"))
    except (WaitTimeout, SetupError, redis.RedisError) as exc:
        return PutBack(False, f"could not make {format_endpoint(*original)} master again: {exc}; "
                       f"{_priority_note(saved, not_put_back)}. By hand: once {format_endpoint(*original)} "
                       f"replicates with its link up, SENTINEL FAILOVER {ha.master_name} (with the other replicas' "
                       "replica-priority at 0 meanwhile)", steps)
    if not_put_back:
        return PutBack(False, f"{format_endpoint(*original)} is the master again, but "
                       f"{_priority_note(saved, not_put_back)}", steps)
    return PutBack(True, f"{format_endpoint(*original)} is the master again (SENTINEL FAILOVER once it had synced; "
                   f"{_priority_note(saved, not_put_back)})", steps)


def _priority_note(saved: dict[Address, str], not_put_back: list[str]) -> str:
    if not saved:
        return "no replica-priority was changed"
    if not_put_back:
        return f"replica-priority is still 0 on {'; '.join(not_put_back)}"
    return (f"replica-priority of {', '.join(format_endpoint(*a) for a in saved)} was 0 meanwhile "
            "and is back")


def _sentinel_replicas(ha: HAClient, sentinel: Address) -> list[Address]:
    client = ha.node(sentinel, sentinel=True)
    try:
        return [(r["ip"], int(r["port"])) for r in client.sentinel_slaves(ha.master_name)]
    finally:
        client.close()


def _set_priorities(ha: HAClient, replicas: list[Address], priority: int, saved: dict[Address, str]) -> None:
    """CONFIG SET replica-priority on each replica, noting each old value in saved as soon as it is changed."""
    for address in replicas:
        node = ha.node(ha.remap(address))
        try:
            value = node.config_get("replica-priority")["replica-priority"]
            node.config_set("replica-priority", priority)
            saved[address] = value
        finally:
            node.close()


def _put_back_priorities(ha: HAClient, saved: dict[Address, str]) -> list[str]:
    """Put the saved replica-priority values back; returns the replicas where that failed, and why."""
    failed = []
    for address, value in saved.items():
        node = ha.node(ha.remap(address))
        try:
            node.config_set("replica-priority", value)
        except redis.RedisError as exc:
            failed.append(f"{format_endpoint(*address)} (set it back to {value}: {exc})")
        finally:
            node.close()
    return failed


def _sentinel_would_pick(ha: HAClient, sentinel: Address, original: Address,
                         others: list[Address]) -> tuple[bool, str]:
    client = ha.node(sentinel, sentinel=True)
    try:
        replicas = {(r["ip"], int(r["port"])): r for r in client.sentinel_slaves(ha.master_name)}
    finally:
        client.close()
    candidate = replicas.get(original, {})
    seen = "; ".join(f"{format_endpoint(*a)} priority={r.get('slave-priority')} link={r.get('master-link-status')} "
                     f"flags={r.get('flags')}" for a, r in replicas.items())
    ready = (bool(candidate) and candidate.get("master-link-status") == "ok" and not candidate.get("is_sdown")
             and not candidate.get("is_disconnected") and int(candidate.get("slave-priority", 0)) > 0
             and all(int(replicas.get(a, {}).get("slave-priority", NEVER_PROMOTED)) == NEVER_PROMOTED
                     for a in others))
    return ready, seen


def _sentinel_failover(ha: HAClient, sentinel: Address) -> None:
    client = ha.node(sentinel, sentinel=True)
    try:
        client.sentinel_failover(ha.master_name)
    finally:
        client.close()


def _master_everywhere(ha: HAClient, original: Address) -> tuple[bool, str]:
    views = ha.sentinel_views()
    node = ha.node(ha.remap(original))
    try:
        role = node.info("replication").get("role")
    finally:
        node.close()
    agreed = set(views.values()) == {format_endpoint(*original)}
    return agreed and role == "master", f"sentinels say {views}; {format_endpoint(*original)} has role {role}"


def _replicas_back(ha: HAClient, master: Address, replicas: list[Address]) -> tuple[bool, str]:
    node = ha.node(ha.remap(master))
    try:
        info = node.info("replication")
    finally:
        node.close()
    online = {int(v.get("port", 0)) for k, v in info.items()
              if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"}
    return all(port in online for _, port in replicas), f"online replica ports {sorted(online)}"
