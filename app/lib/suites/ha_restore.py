"""Putting back what the fault did, just before the checks that judge it: the stopped node started again
(or healed by the person), the original master made master again."""

from __future__ import annotations

import contextlib

from lib.checks.ha_rejoin import check_replica_sync, check_roles_restored
from lib.checks.result import ScenarioResult
from lib.faults.fault import Fault, heal_fault
from lib.ha_client import HAClient
from lib.runs.ha_record import FailoverRun
from lib.runs.ha_rejoin import faster_rejoin
from lib.runs.ha_roles import put_back_master
from lib.suites.ha_session import Session


def replica_sync_scenario(ha: HAClient, run: FailoverRun | None, fault: Fault | None, heal_timeout: float,
                          *, owned: bool) -> ScenarioResult:
    """Heal the fault (start the old master again, or wait for the person to), then let check_replica_sync judge
    its rejoin and the replicas' sync.

    Sentinel's timers are shortened meanwhile where the fault says so (faster_rejoin): only the rejoin is watched
    with them, the failover was measured with the defaults.
    """
    if run is None or fault is None:
        return check_replica_sync(ha, run, None, heal_timeout)
    shorten = fault.shortens_rejoin(owned, after_failover=True)
    with faster_rejoin(ha) if shorten else contextlib.nullcontext():
        healed = heal_fault(fault, heal_timeout) if (fault.can_heal or fault.by_hand or fault.healed_by_person) \
            else True
        return check_replica_sync(ha, run, healed, heal_timeout)


def roles_restored_scenario(ha: HAClient, session: Session) -> ScenarioResult:
    """Put the original master back, then judge whether it is master."""
    original = session.original_master
    assert original is not None
    put_back = put_back_master(ha, original)
    session.roles_put_back = put_back.done
    return check_roles_restored(original, put_back)
