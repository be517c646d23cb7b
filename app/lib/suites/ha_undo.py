"""Undoing an interrupted HA run (Ctrl-C, SIGTERM): the fault, the config, swapped roles, then our keys once
a master is stable."""

from __future__ import annotations

import contextlib

import redis

from lib.ha_client import Address, HAClient, answers
from lib.phases.ha_rejoin import faster_rejoin
from lib.phases.ha_roles import put_back_master
from lib.suites.ha_session import Session, cleanup, one_line, put_config_back
from lib.util import format_endpoint, parse_endpoint
from lib.waits import WaitTimeout, wait_until


def undo_interrupted(ha: HAClient, session: Session, timeout: float = 60.0) -> list[str]:
    """After Ctrl-C / SIGTERM: start a killed master again, put back roles we swapped on someone
    else's servers, then delete our keys once a master is stable. Returns one line per step."""
    notes = []
    fault = session.fault
    if fault is not None and (note := fault.undo(timeout)):
        notes.append(note)
    if session.config:
        names = sorted({name for change in session.config for name in change.settings})
        notes += put_config_back(session) or [f"put back: {', '.join(names)}"]
    if (fault is not None and fault.puts_back_roles("sentinel", session.roles_ours) and not fault.by_hand
            and session.original_master is not None and not session.roles_put_back):
        put_back = put_back_master(ha, session.original_master)
        notes.append(put_back.detail)
    if session.wrote:
        with faster_rejoin(ha) if fault is not None and fault.shortens_rejoin(session.owned) else \
                contextlib.nullcontext():
            notes.append(_cleanup_when_stable(ha, session, timeout))
    return notes


def failover_flags(ha: HAClient) -> dict[str, str]:
    """The sentinels that see the master down or a failover under way, with their flags for it."""
    busy = {}
    for address in ha.sentinel_addresses:
        client = ha.node(address, sentinel=True)
        try:
            flags = str(client.sentinel_master(ha.master_name).get("flags", ""))
        except redis.RedisError as exc:
            flags = f"error: {type(exc).__name__}"
        finally:
            client.close()
        if any(flag in flags for flag in ("s_down", "o_down", "failover_in_progress", "error")):
            busy[format_endpoint(*address)] = flags
    return busy


def _cleanup_when_stable(ha: HAClient, session: Session, timeout: float) -> str:
    """Delete our keys on the master once the sentinels agree on it, no failover is under way, and every
    node that answers (the one we may have restarted too) replicates from it, synced: deleted on a node
    that is then demoted and resynced, or before a replica's full sync, they would come back."""
    restarted = session.original_master

    def stable() -> tuple[bool, str]:
        views = ha.sentinel_views()
        if len(set(views.values())) != 1 or next(iter(views.values())).startswith(("error", "unknown")):
            return False, f"sentinels say {views}"
        if busy := failover_flags(ha):
            return False, f"sentinels report {busy}"
        master = ha.remap(parse_endpoint(next(iter(views.values()))))
        replicas = set(ha.sentinel.discover_slaves(ha.master_name)) - {master}
        if restarted and ha.remap(restarted) != master and answers(ha.remap(restarted), ha.password):
            replicas.add(ha.remap(restarted))  # one killed by hand may still be down
        roles = {address: _replication(ha, address) for address in (master, *replicas)}
        synced = roles[master][0] == "master" and all(
            role == "slave" and port == master[1] and link == "up" and not syncing
            for address, (role, port, link, syncing) in roles.items() if address != master)
        return synced, f"sentinels agree on {format_endpoint(*master)}; (role, master port, link, syncing): {roles}"

    try:
        wait_until(stable, timeout=timeout, what="a stable master to delete this run's keys on")
    except WaitTimeout as exc:
        return f"could not clean up keys {session.namespace}*: {one_line(exc)}"
    session.wrote = False  # the skeleton's final cleanup need not do it again
    return cleanup(ha, session.namespace) or f"deleted this run's keys {session.namespace}*"


def _replication(ha: HAClient, address: Address) -> tuple[str, int, str, bool]:
    node = ha.node(address)
    try:
        info = node.info("replication")
    finally:
        node.close()
    return (info.get("role", "?"), int(info.get("master_port", 0)), info.get("master_link_status", "-"),
            bool(int(info.get("master_sync_in_progress", 0))))
