"""Putting back what the fault did, just before the checks that judge it: the stopped node started again
(or healed by the person), the original master made master again."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from lib.checks.ha_rejoin import check_replica_sync, check_roles_restored
from lib.checks.result import ScenarioResult
from lib.faults.compound import Compound
from lib.faults.exec import ExecFault
from lib.faults.fault import DockerKill, Fault, LocalKill, ManualKill, restore_fault
from lib.faults.sentinel_failover import SentinelFailover
from lib.faults.sigterm import Terminate
from lib.ha_client import HAClient
from lib.runs.ha_record import FailoverRun
from lib.runs.ha_rejoin import faster_rejoin
from lib.runs.ha_roles import put_back_master
from lib.suites.ha_session import Session


def put_fault_back(fault: Fault, timeout: float, heal_by_hand: Callable[[float], bool] | None = None) -> bool:
    """Start the killed node again (or wait for the person to); True for a fault that stopped nothing."""
    if heal_by_hand is not None:
        healed = heal_by_hand(timeout)
        fault.pending_restore = fault.pending_restore and not healed
        return healed
    return restore_fault(fault, timeout) if (fault.can_restore or fault.by_hand) else True


def fast_rejoin(fault: Fault | None, owned: bool) -> bool:
    """Shorten the sentinels' timers while the stopped node rejoins: after a local kill, and after the newer
    faults that stop a node, on servers the harness started (the failover itself was measured with defaults)."""
    return isinstance(fault, LocalKill) or (owned and isinstance(fault, Terminate | ExecFault | Compound))


def fast_rejoin_after_failover(fault: Fault | None, owned: bool) -> bool:
    """fast_rejoin, and also after SENTINEL FAILOVER (on servers not ours only with --allow-destructive, which
    that fault needs) and after a docker kill or a kill by hand on servers the harness started: the old
    master waited 8-10 s on the default timers. Only once the run saw every sentinel name the new master,
    so no failover is under way; not when undoing an interrupted run, where one may be (with short timers
    the other sentinels demote the replica being promoted while the old master still looks sane)."""
    return (fast_rejoin(fault, owned) or isinstance(fault, SentinelFailover)
            or (owned and isinstance(fault, DockerKill | ManualKill)))


def replica_sync_scenario(ha: HAClient, run: FailoverRun | None, fault: Fault | None,
                          restore_timeout: float, *, fast_rejoin: bool | None = None,
                          heal_by_hand: Callable[[float], bool] | None = None) -> ScenarioResult:
    """Start the old master again, then let check_replica_sync judge its rejoin and the replicas' sync.

    After a local kill the sentinels' timers are shortened meanwhile (faster_rejoin): only the rejoin is
    watched with them, the failover was measured with the defaults.
    """
    if run is None or fault is None:
        return check_replica_sync(ha, run, None, restore_timeout)
    shorten = isinstance(fault, LocalKill) if fast_rejoin is None else fast_rejoin
    with faster_rejoin(ha) if shorten else contextlib.nullcontext():
        restarted = put_fault_back(fault, restore_timeout, heal_by_hand)
        return check_replica_sync(ha, run, restarted, restore_timeout)


def roles_restored_scenario(ha: HAClient, session: Session) -> ScenarioResult:
    """Put the original master back (servers the harness did not start), then judge whether it is master."""
    original = session.original_master
    assert original is not None
    put_back = put_back_master(ha, original)
    session.roles_put_back = put_back.done
    return check_roles_restored(original, put_back)
